"""Score calibration before fusion, learned from labelled queries (``fusion`` with
``method: calibrated``).

RRF throws the scores away and needs a rank constant and weights chosen by hand; z-score fusion
keeps the scores but weighs every retriever the same way. Calibrated fusion learns, from
labelled queries, how much each retriever's evidence says about relevance. Per retriever ``r``
and candidate ``c`` it reads three features:

- ``z``: the score's distance above the list's minimum in the list's standard deviations (0
  when ``c`` is not in the list, as in ``zscore`` fusion);
- ``log_rank``: ``log(rank)`` in the list (``log(n + 1)`` when absent);
- ``present``: 1 when ``c`` is in the list.

A logistic regression over all retrievers' features at once (so that two retrievers that agree
are not counted twice) gives one coefficient per feature; the fused score of ``c`` is the sum of
its features times their coefficients, the log-odds that ``c`` is relevant (up to a constant).
:func:`fit_calibration` fits it; ``ragsel fit-fusion`` runs a pipeline's retrievers over a
labelled dataset and prints the ``calibration:`` block for the YAML.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ragsel.errors import InputError
from ragsel.stages.retrieve.fusion import normalized_scores
from ragsel.types import Candidates, ScoredChunk

__all__ = [
    "FEATURES",
    "calibrated_scores",
    "feature_rows",
    "fit_calibration",
    "fit_for_pipeline",
    "fusion_stage",
]

FEATURES = ("z", "log_rank", "present")


def feature_rows(
    lists: Sequence[Candidates], names: Sequence[str]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(chunk ids in first-seen order, {name: (n_ids, 3) features})`` for the union of the
    lists; a chunk repeated within one list counts at its first (best) rank."""
    order: dict[str, int] = {}
    per: list[dict[str, tuple[float, int]]] = []
    for cands in lists:
        seen: dict[str, tuple[float, int]] = {}
        for sc in cands.items:
            if sc.chunk.id not in seen:
                seen[sc.chunk.id] = (float(sc.score), len(seen) + 1)
                order.setdefault(sc.chunk.id, len(order))
        per.append(seen)
    ids = list(order)
    out: dict[str, np.ndarray] = {}
    for name, seen in zip(names, per):
        x = np.zeros((len(ids), len(FEATURES)))
        x[:, 1] = math.log(len(seen) + 1)
        if seen:
            raw = np.fromiter((s for s, _ in seen.values()), np.float64, len(seen))
            if not np.all(np.isfinite(raw)):
                raise InputError(
                    f"the list from '{name}' has NaN/inf scores; calibrated fusion needs "
                    "finite scores (rrf uses ranks only)"
                )
            z = normalized_scores(raw, "zscore")  # the zscore method's own normalisation
            for (cid, (_, rank)), zi in zip(seen.items(), z):
                x[order[cid]] = (zi, math.log(rank), 1.0)
        out[name] = x
    return ids, out


def calibrated_scores(
    features: Mapping[str, np.ndarray], calibration: Mapping[str, Mapping[str, float]]
) -> np.ndarray:
    """The fused log-odds (up to a constant) of each row of ``features``."""
    total = None
    for name, x in features.items():
        coef = calibration[name]
        v = x @ np.array([float(coef.get(f, 0.0)) for f in FEATURES])
        total = v if total is None else total + v
    return np.zeros(0) if total is None else total


def fit_calibration(
    samples: Sequence[Sequence[Candidates]],
    golds: Sequence[set[str]],
    names: Sequence[str],
    *,
    c: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Fit the calibration on labelled queries: ``samples[i]`` holds query ``i``'s lists (one
    per retriever, named by ``names``), ``golds[i]`` its relevant chunk ids. Each query weighs
    the same whatever its number of candidates. ``c`` is the inverse L2 strength."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for lists, gold in zip(samples, golds, strict=True):
        if len(lists) != len(names):
            raise InputError(f"each query needs {len(names)} lists ({list(names)})")
        ids, feats = feature_rows(lists, names)
        if not ids:
            continue
        xs.append(np.hstack([feats[n] for n in names]))
        ys.append(np.array([i in gold for i in ids]))
        ws.append(np.full(len(ids), 1.0 / len(ids)))
    if not ys or not any(y.any() for y in ys) or all(y.all() for y in ys):
        raise InputError(
            "calibration needs queries whose lists hold both relevant and irrelevant chunks; "
            "check the dataset's gold against the index"
        )
    x, y, w = np.vstack(xs), np.concatenate(ys), np.concatenate(ws)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=1000).fit((x - mu) / sd, y, sample_weight=w * len(ys))
    coef = model.coef_[0] / sd  # back to raw feature units (the offset does not change order)
    k = len(FEATURES)
    return {
        n: {f: round(float(coef[i * k + j]), 4) for j, f in enumerate(FEATURES)}
        for i, n in enumerate(names)
    }


def fusion_stage(pipe: Any, stage: str | None = None) -> str:
    """The name of ``pipe``'s fusion stage: ``stage`` if it is one, else its only one."""
    stages = sorted(n for n, s in pipe.stages.items() if s.type_name == "fusion")
    if stage is None and len(stages) != 1:
        raise InputError(
            f"the pipeline has {len(stages)} fusion stages {stages}; "
            + ("name one with --stage" if stages else "calibration needs a fusion stage")
        )
    target = stage or stages[0]
    if target not in stages:
        raise InputError(f"--stage {target!r} is not a fusion stage; fusion stages: {stages}")
    return target


def fit_for_pipeline(
    pipe: Any,
    queries: Sequence[Any],
    gold: Callable[[Any, list[ScoredChunk]], set[str]],
    *,
    stage: str | None = None,
) -> tuple[str, dict[str, dict[str, float]], dict[str, Any]]:
    """Run the retrievers feeding ``pipe``'s fusion stage (``stage``, or its only one) over
    labelled ``queries`` and fit the calibration. ``gold(query, items) -> set of chunk ids``
    labels each query's candidates. Returns ``(stage name, calibration, summary)``."""
    import time

    from ragsel.types import Query

    target = fusion_stage(pipe, stage)
    feeds = sorted((c for c in pipe.connections if c.dst == target), key=lambda c: c.src)
    names = [c.src for c in feeds]
    sub = pipe.subgraph(pipe.upstream_of(target), name=f"upstream-of-{target}")
    t0 = time.perf_counter()
    samples, golds = [], []
    for q in queries:
        res = sub.run(Query(q.text, id=q.id))
        lists = [res.values[f"{c.src}.{c.src_out}"] for c in feeds]
        samples.append(lists)
        golds.append(gold(q, [sc for cands in lists for sc in cands.items]))
    calibration = fit_calibration(samples, golds, names)
    summary = {
        "queries": len(samples),
        "with_gold": sum(bool(g) for g in golds),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return target, calibration, summary
