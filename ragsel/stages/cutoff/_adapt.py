"""Adapting a cutoff model to a corpus: pseudo-queries (no labels) and calibration.

:func:`pseudo_queries` makes labelled queries out of the corpus itself: a sentence taken from
a chunk (with a third of its content words dropped, so it is not a verbatim copy of the
chunk) whose gold is that chunk, and a document's title whose gold is every chunk of that
document (a query with many relevant chunks). :func:`calibrate` keeps a model's trees and
refits only what a corpus changes most: the Platt scaling of its probabilities, and the cut
rule (kept unless another rule beats it by more than one standard error on those lists).
Used by ``ragsel fit --unsupervised`` (pseudo-queries) and ``ragsel fit --from general``
(the user's labelled queries).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.stages.cutoff._learned_model import CutoffModel
from ragsel.stages.cutoff._learned_rules import RULE_GRID, cut_f1s
from ragsel.types import Candidates, Chunk, Query

_SENT = re.compile(r"(?<=[.!?])\s+")
_MIN_WORDS, _MAX_WORDS = 6, 40


def pseudo_queries(
    chunks: Sequence[Chunk], n: int = 60, *, seed: int = 0, title_share: float = 0.3
) -> list[tuple[Query, set[str]]]:
    """Up to ``n`` (query, gold chunk ids) pairs drawn from ``chunks`` (seeded)."""
    rng = np.random.default_rng(seed)
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    out: list[tuple[Query, set[str]]] = []
    titled = [d for d, cs in by_doc.items() if len(cs) > 1 and _title(cs[0])]
    n_title = min(len(titled), int(round(n * title_share)))
    for i in rng.permutation(len(titled))[:n_title].tolist():
        cs = by_doc[titled[i]]
        out.append((Query(_title(cs[0]), id=f"title-{len(out)}"), {c.id for c in cs}))
    for i in rng.permutation(len(chunks)).tolist():
        if len(out) >= n:
            break
        sents = [
            s for s in _SENT.split(chunks[i].text) if _MIN_WORDS <= len(s.split()) <= _MAX_WORDS
        ]
        if not sents:
            continue
        words = sents[int(rng.integers(len(sents)))].split()
        keep = np.sort(rng.permutation(len(words))[: max(_MIN_WORDS - 2, (2 * len(words)) // 3)])
        out.append((Query(" ".join(words[j] for j in keep), id=f"sent-{len(out)}"), {chunks[i].id}))
    return out


def _title(c: Chunk) -> str:
    t = (c.metadata or {}).get("title")
    return t.strip() if isinstance(t, str) and len(t.split()) >= 2 else ""


def calibrate(
    model: CutoffModel,
    lists: Sequence[Candidates],
    golds: Sequence[set[str]],
    queries: Sequence[Query | str],
    *,
    info: dict[str, Any] | None = None,
) -> CutoffModel:
    """A copy of ``model`` with its probabilities re-calibrated on these labelled lists and
    its cut rule re-chosen on them (the model's own rule kept within one standard error)."""
    from ragsel.stages.cutoff._learned_rules import platt_apply, platt_fit

    pairs = []
    for c, g, q in zip(lists, golds, queries):
        if c.items:
            y = np.array([sc.chunk.id in g for sc in c.items])
            pairs.append((model.probabilities(c, q), y))
    if not pairs or not any(y.any() for _, y in pairs):
        from ragsel.errors import InputError

        raise InputError(
            "calibration needs lists that hold some gold chunks: none of the queries found "
            "its gold among the candidates (check the index and the pipeline)"
        )
    ab = platt_fit([pairs])
    cal = [(platt_apply(p, ab), y) for p, y in pairs]
    rules = [{**r, "order": how} for how in ("input", "probability") for r in RULE_GRID]
    own = dict(model.header.get("defaults") or {"objective": "ef1", "order": "probability"})
    if own not in rules:
        rules.append(own)
    scores = {
        j: cut_f1s(
            [p for p, _ in cal],
            [y for _, y in cal],
            {k: v for k, v in r.items() if k != "order"},
            r.get("order", "input"),
        )
        for j, r in enumerate(rules)
    }
    best = max(scores, key=lambda j: (float(scores[j].mean()), -j))
    mine = rules.index(own)
    diff = scores[best] - scores[mine]
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
    rule = rules[best] if float(diff.mean()) > se else own
    header = {**model.header, "defaults": rule}
    header.pop("path", None)
    arrays = dict(model.arrays)
    a0, b0 = arrays.get("calibration", np.array([1.0, 0.0]))
    arrays["calibration"] = np.array([ab[0] * a0, ab[0] * b0 + ab[1]])
    header["adapted"] = {
        "lists": len(pairs),
        "platt": [round(float(x), 4) for x in ab],
        "rule_f1": round(float(scores[rules.index(rule)].mean()), 4),
        "from_rule": own,
        **(info or {}),
    }
    return CutoffModel(header, arrays)
