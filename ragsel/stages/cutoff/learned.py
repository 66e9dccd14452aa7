"""Learned ranked-list truncation (in the spirit of Choppy, SIGIR 2020, and AttnCut, AAAI 2021).

A small model (GBDT or logistic regression) predicts, for every chunk of a candidate list, the
probability that it is relevant, from features of the list itself: the current score and its
gaps and z-scores, each retriever's score, rank and reciprocal rank (read from the chunks'
"retrieved" events), how many retrievers agree, the chunk's position in its document, the
scores of its document neighbours and of its document's best chunk, its length, whether a
rationale paired it, where the elbow rule would cut; and, when fitted with the queries (the
default of ``ragsel fit`` for this stage), how the chunk covers the query's terms (IDF-weighted
within the list, whole chunk and best window), the query's rarest term and bigrams, and its
document title (named in the query, or in the top chunks of other documents). See
``_learned_features``; everything is normalised within the query's list.

At run time the stage may first re-rank the list by that probability (``order:
probability``), then keeps the prefix that maximises the exact expected F1 (``ef1``) or an
approximate expected F-beta (``f1``), the shortest prefix expected to reach
``target_recall``, everything up to the last chunk above a probability ``threshold``, or the
``k`` most probable (``top_k``); by default (``auto``) the order and rule that scored best on
3-fold out-of-fold predictions over the training queries when the model was fitted.

The model is fitted with ``ragsel fit PIPELINE --dataset NAME --out MODEL`` (or
:func:`fit_cutoff_model`) and stored as one ``.npz`` file holding plain arrays (no pickle, so
loading a model file never runs code) plus a JSON header: ``feature_version``, the retriever
stage names the features use, the hash of the pipeline stages upstream of the cutoff, and
training facts. A file from another feature version or another pipeline is refused with a
clear error; fitting on fewer than :data:`MIN_QUERIES` labelled queries is refused too.
Pure numpy at run time; scikit-learn only to fit.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.errors import ConfigError, InputError
from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig
from ragsel.stages.cutoff._learned_features import (FEATURE_VERSION, discover_retrievers,
                                                     feature_names, list_features)
from ragsel.types import Candidates, Event, Query

MIN_QUERIES = 20  # fewer labelled queries than this give a model that mostly memorises
MODEL_FORMAT = "ragsel-learned-cutoff"
_PATHLIKE = ("index", "path", "dir", "file", "model", "corpus")

_EXACT_MAX_K = 60  # exact expected F1 is O(k·n) per prefix: longer prefixes are never wanted


def expected_f1(p: np.ndarray, max_k: int = _EXACT_MAX_K) -> np.ndarray:
    """Exact ``E[F1]`` of keeping each prefix ``k = 1..min(n, max_k)`` when item ``i`` is
    relevant with probability ``p[i]``, independently: ``E[2a / (k + a + b)]`` with ``a`` the
    relevant items kept and ``b`` those left out (Poisson-binomial distributions; Jansche 2007
    / Nan Ye et al. 2012 decode F1 the same way)."""
    n = int(p.size)
    top = min(n, max_k)
    # suffix[k] = distribution of relevant items among p[k:], built from the end
    suffix: list[np.ndarray] = [np.ones(1)] * (n + 1)
    for k in range(n - 1, 0, -1):
        d = suffix[k + 1]
        suffix[k] = np.append(d * (1 - p[k]), 0.0) + np.insert(d * p[k], 0, 0.0)
    out = np.zeros(top)
    pre = np.ones(1)
    for k in range(1, top + 1):
        pre = np.append(pre * (1 - p[k - 1]), 0.0) + np.insert(pre * p[k - 1], 0, 0.0)
        a = np.arange(k + 1, dtype=np.float64)[:, None]
        b = np.arange(suffix[k].size, dtype=np.float64)[None, :]
        out[k - 1] = float(pre @ (2 * a / (k + a + b)) @ suffix[k])
    return out


def choose_cut(p: np.ndarray, *, objective: str = "f1", beta: float = 1.0,
               target_recall: float = 0.9, threshold: float = 0.5, k: int = 5, min_k: int = 1,
               max_k: int | None = None) -> tuple[int, dict[str, Any]]:
    """Where to cut a list whose items have relevance probabilities ``p`` (in list order).

    - ``f1``: the prefix maximising expected F-beta, approximated as
      ``(1+b²)·TP_k / (k + b²·R)`` with ``TP_k`` the summed probabilities of the prefix and
      ``R`` of the whole list;
    - ``ef1``: the prefix maximising the exact expected F1 (:func:`expected_f1`);
    - ``recall``: the shortest prefix whose expected recall reaches ``target_recall``;
    - ``threshold``: up to the last item with ``p >= threshold``;
    - ``top_k``: the first ``k`` (useful after re-ranking by ``p``).
    """
    n = int(p.size)
    if n == 0:
        return 0, {"method": "learned", "n": 0}
    cum = np.cumsum(p)
    total = float(cum[-1])
    ks = np.arange(1, n + 1)
    param: dict[str, Any]
    if objective == "recall":
        k = n if total <= 0 else int(np.searchsorted(cum / total, target_recall - 1e-9)) + 1
        value = float(cum[k - 1] / total) if total > 0 else 0.0
        param = {"target_recall": target_recall}
    elif objective == "threshold":
        above = np.flatnonzero(p >= threshold)
        k = int(above[-1]) + 1 if above.size else 0
        value = float(p[k - 1]) if k else 0.0
        param = {"threshold": threshold}
    elif objective == "ef1":
        ef = expected_f1(np.asarray(p, dtype=np.float64))
        k = int(np.argmax(ef)) + 1
        value = float(ef[k - 1])
        param = {}
    elif objective == "top_k":
        k = min(int(k), n)
        value = float(cum[k - 1] / total) if total > 0 and k else 0.0
        param = {"k": k}
    elif objective == "f1":
        b2 = beta * beta
        ef = (1 + b2) * cum / (ks + b2 * total)
        k = int(np.argmax(ef)) + 1
        value = float(ef[k - 1])
        param = {"beta": beta}
    else:
        raise ConfigError(f"unknown cut objective {objective!r}: use f1, ef1, recall, "
                          "threshold or top_k")
    lo = min(max(min_k, 0), n)
    hi = n if max_k is None else min(max_k, n)
    k = min(max(k, lo), hi)
    return k, {"method": "learned", "objective": objective, **param, "n": n,
               "expected": round(value, 4), "expected_relevant": round(total, 3)}


#: Cut rules tried when fitting; the one with the best out-of-fold F1 becomes the default.
RULE_GRID: list[dict[str, Any]] = (
    [{"objective": "f1", "beta": b} for b in (0.5, 0.75, 1.0, 1.5, 2.0)]
    + [{"objective": "ef1"}]
    + [{"objective": "threshold", "threshold": t} for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    + [{"objective": "top_k", "k": k} for k in range(1, 11)])


def _mean_f1(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray],
             rule: Mapping[str, Any], order: str = "input") -> float:
    f1s = []
    for p, y in zip(probs, labels):
        if not y.any():
            continue
        if order == "probability":
            idx = np.argsort(-p, kind="stable")
            p, y = p[idx], y[idx]
        k, _ = choose_cut(p, **rule)
        tp = float(y[:k].sum())
        f1s.append(2 * tp / (k + y.sum()) if k else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def pipeline_hash(pipeline: Any, stage_name: str) -> tuple[str, list[list[str]]]:
    """Hash of the stages upstream of ``stage_name`` (types, configs without paths, wiring),
    and their ``[name, type]`` list. Paths are left out so a model moves with its index."""
    ups = pipeline.upstream_of(stage_name)
    desc = []
    for name in sorted(ups):
        st = pipeline.stages[name]
        cfg = {k: v for k, v in st.to_dict().items()
               if not any(p in k.lower() for p in _PATHLIKE)}
        desc.append([name, cfg])
    wires = sorted(str(c) for c in pipeline.connections if c.dst in ups | {stage_name}
                   and c.src in ups)
    blob = json.dumps({"stages": desc, "wires": wires}, sort_keys=True, default=str)
    return (hashlib.sha256(blob.encode()).hexdigest()[:16],
            [[n, pipeline.stages[n].type_name] for n in sorted(ups)])


@dataclass
class CutoffModel:
    """A fitted cutoff model: a header (JSON) plus arrays evaluated with numpy only."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def retrievers(self) -> list[str]:
        return list(self.header["retrievers"])

    # --- prediction --------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        a = self.arrays
        if self.header["kind"] == "logistic":
            z = ((X - a["mean"]) / a["scale"]) @ a["coef"] + float(a["intercept"][0])
        else:
            # scikit-learn trees compare float32 copies of the features: do the same, or a
            # value at a split threshold can take the other branch
            X = X.astype(np.float32).astype(np.float64)
            left, right, feat, thr, val = (a["left"], a["right"], a["feature"],
                                           a["threshold"], a["value"])
            # walk every tree for every row at once: node is (rows, trees)
            node = np.broadcast_to(a["roots"], (X.shape[0], a["roots"].size)).copy()
            rows = np.arange(X.shape[0])[:, None]
            for _ in range(int(a["max_depth"][0]) + 1):
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = X[rows, feat[node]] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            z = float(a["init"][0]) + float(a["learning_rate"][0]) * val[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def check_candidates(self, cands: Candidates) -> None:
        seen = set(discover_retrievers([cands]))
        unknown = seen - set(self.retrievers)
        if unknown or (self.retrievers and seen and not seen & set(self.retrievers)):
            raise InputError(
                f"learned cutoff model {self.header.get('path', '')!r} was fitted on candidates "
                f"from retrievers {self.retrievers}, but these come from {sorted(seen)}: it "
                "belongs to another pipeline. Re-fit it with 'ragsel fit' for this pipeline.")

    @property
    def uses_query(self) -> bool:
        """Whether the model reads the query text (fitted with ``queries``)."""
        return bool(self.header.get("query_features"))

    def probabilities(self, cands: Candidates, query: Query | str | None = None) -> np.ndarray:
        """Relevance probability of every candidate (in list order)."""
        self.check_candidates(cands)
        text = query.text if isinstance(query, Query) else query
        if self.uses_query and text is None:
            raise InputError(
                f"learned cutoff model {self.header.get('path', '')!r} was fitted with query "
                "features and needs the query: connect the pipeline query (a 'query' input) or "
                "pass query=..., or fit a model without queries")
        return self.predict_proba(list_features(cands, self.retrievers,
                                                text if self.uses_query else None))

    def cut(self, cands: Candidates, query: Query | str | None = None,
            **options: Any) -> tuple[int, dict[str, Any]]:
        """How many of ``cands`` (as ranked) to keep, with the fitted rule. (A rule fitted to
        re-rank by probability is applied to the list order here: a cut keeps a prefix.)"""
        p = self.probabilities(cands, query)
        opts = {**self.header.get("defaults", {}), **options}
        opts.pop("order", None)
        return choose_cut(p, **opts)

    # --- files -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else \
                path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps(self.header, sort_keys=True)
        np.savez(path, __header__=np.array(header), **self.arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, expect_pipeline: str | None = None) -> CutoffModel:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"learned cutoff model not found: {path}. Fit one with "
                             f"'ragsel fit PIPELINE --dataset NAME --out {path}'")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                arrays = {k: data[k] for k in data.files if k != "__header__"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not a ragsel learned-cutoff model file: {exc}") from exc
        if header.get("format") != MODEL_FORMAT:
            raise InputError(f"{path} is not a ragsel learned-cutoff model file")
        if header.get("feature_version") != FEATURE_VERSION:
            raise InputError(
                f"learned cutoff model {path} uses feature version "
                f"{header.get('feature_version')}, this ragsel computes version "
                f"{FEATURE_VERSION}: re-fit it with 'ragsel fit'")
        if header.get("features") != feature_names(header.get("retrievers", []),
                                                   bool(header.get("query_features"))):
            raise InputError(f"learned cutoff model {path} lists other features than this "
                             f"ragsel computes (feature version {FEATURE_VERSION}): re-fit it "
                             "with 'ragsel fit'")
        if expect_pipeline is not None and header.get("pipeline_hash") != expect_pipeline:
            raise InputError(
                f"learned cutoff model {path} was fitted for another pipeline (its upstream "
                f"stages {header.get('upstream')} hash to {header.get('pipeline_hash')}, this "
                f"pipeline's to {expect_pipeline}); re-fit it with 'ragsel fit' for this "
                "pipeline")
        header["path"] = str(path)
        return cls(header, arrays)


def fit_cutoff_model(lists: Sequence[Candidates], golds: Sequence[set[str]], *,
                     queries: Sequence[Query | str] | None = None,
                     kind: Literal["gbdt", "logistic", "auto"] = "gbdt",
                     retrievers: Sequence[str] | None = None, pipeline_hash: str = "",
                     upstream: Sequence[Sequence[str]] = (), seed: int = 0,
                     defaults: Mapping[str, Any] | None = None,
                     info: Mapping[str, Any] | None = None) -> CutoffModel:
    """Fit a cutoff model on labelled lists (``golds[i]`` = relevant chunk ids of list i).

    With ``queries`` (one per list) the model also reads the query text (query-term and title
    features) and then needs the query at run time. Unless ``defaults`` fixes the cut rule,
    the rule (expected F-beta, exact expected F1, a probability threshold or a fixed k;
    :data:`RULE_GRID`) and the order it cuts (as ranked, or re-ranked by predicted relevance)
    are chosen by the mean F1 they reach on 3-fold out-of-fold predictions over the training
    queries, and stored in the header. ``kind="auto"`` chooses between GBDT and logistic
    regression the same way (with a fixed rule, by that rule's out-of-fold F1).
    """
    if len(lists) != len(golds):
        raise InputError(f"{len(lists)} candidate lists but {len(golds)} gold sets")
    if queries is not None and len(queries) != len(lists):
        raise InputError(f"{len(lists)} candidate lists but {len(queries)} queries")
    texts = ([q.text if isinstance(q, Query) else str(q) for q in queries]
             if queries is not None else [None] * len(lists))
    usable = [(c, g, t) for c, g, t in zip(lists, golds, texts) if len(c.items)]
    if len(usable) < MIN_QUERIES:
        raise InputError(f"a learned cutoff needs at least {MIN_QUERIES} labelled queries with "
                         f"candidates to fit; got {len(usable)}. Label more queries.")
    rets = list(retrievers) if retrievers is not None else discover_retrievers(lists)
    per_list = [(list_features(c, rets, t), np.array([sc.chunk.id in g for sc in c.items]))
                for c, g, t in usable]
    X = np.vstack([f for f, _ in per_list])
    y = np.concatenate([lab for _, lab in per_list]).astype(int)
    if y.min() == y.max():
        raise InputError("the labelled lists contain only "
                         f"{'relevant' if y[0] else 'irrelevant'} candidates; a cutoff cannot "
                         "be learned (check that gold ids match the pipeline's chunk ids)")
    if kind not in ("gbdt", "logistic", "auto"):
        raise ConfigError(f"unknown cutoff model kind {kind!r}; use gbdt, logistic or auto")
    header: dict[str, Any] = {
        "format": MODEL_FORMAT, "feature_version": FEATURE_VERSION, "kind": kind,
        "retrievers": rets, "features": feature_names(rets, queries is not None),
        "query_features": queries is not None, "pipeline_hash": pipeline_hash,
        "upstream": [list(u) for u in upstream], "defaults": dict(defaults or {}),
        "training": {"queries": len(usable), "rows": int(len(y)), "positives": int(y.sum()),
                     "seed": seed, **dict(info or {})}}
    kinds = ("gbdt", "logistic") if kind == "auto" else (kind,)
    if defaults is not None and len(kinds) == 1:
        return _fit_arrays(header, X, y, kind, seed)
    # choose on out-of-fold predictions (in-sample ones are overconfident)
    rules = ([{"objective": "f1", **dict(defaults)}] if defaults is not None else
             [{**r, "order": how} for how in ("input", "probability") for r in RULE_GRID])
    scored = []
    for kd in kinds:
        pairs = _out_of_fold(per_list, header, kd, seed)
        for j, rule in enumerate(rules):
            how = rule.get("order", "input")
            cut = {k: v for k, v in rule.items() if k != "order"}
            f1 = _mean_f1([a for a, _ in pairs], [b for _, b in pairs], cut, how)
            scored.append((f1, -j, kd == "gbdt", kd, rule))
    f1, _, _, best_kind, rule = max(scored, key=lambda t: t[:3])
    header["kind"] = best_kind
    model = _fit_arrays(header, X, y, best_kind, seed)
    if defaults is None:
        model.header["defaults"] = dict(rule)
    model.header["training"]["out_of_fold_f1"] = round(f1, 4)
    return model


def _out_of_fold(per_list: Sequence[tuple[np.ndarray, np.ndarray]], header: dict[str, Any],
                 kind: str, seed: int, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """(3-fold out-of-fold probabilities, labels) for every labelled list."""
    perm = np.random.default_rng(seed).permutation(len(per_list))
    oof: list[np.ndarray] = [np.empty(0)] * len(per_list)
    for f in range(folds):
        test = set(perm[f::folds].tolist())
        tr = [i for i in range(len(per_list)) if i not in test]
        Xt = np.vstack([per_list[i][0] for i in tr])
        yt = np.concatenate([per_list[i][1] for i in tr]).astype(int)
        if yt.min() == yt.max():
            continue
        inner = _fit_arrays(header, Xt, yt, kind, seed, check=False)
        for i in test:
            oof[i] = inner.predict_proba(per_list[i][0])
    return [(p, per_list[i][1]) for i, p in enumerate(oof) if p.size]


def _fit_arrays(header: dict[str, Any], X: np.ndarray, y: np.ndarray, kind: str, seed: int,
                check: bool = True) -> CutoffModel:
    from sklearn.ensemble import GradientBoostingClassifier  # fitting only
    from sklearn.linear_model import LogisticRegression

    header = dict(json.loads(json.dumps(header)), kind=kind)
    if kind == "logistic":
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, y)
        arrays = {"mean": mean, "scale": scale, "coef": lr.coef_[0],
                  "intercept": lr.intercept_.astype(np.float64)}
        return CutoffModel(header, arrays)
    if kind != "gbdt":
        raise ConfigError(f"unknown cutoff model kind {kind!r}; use 'gbdt' or 'logistic'")
    depth, rate = 3, 0.05
    gb = GradientBoostingClassifier(n_estimators=200, max_depth=depth, learning_rate=rate,
                                    subsample=0.8, min_samples_leaf=5, random_state=seed).fit(X, y)
    left, right, feat, thr, val, roots = [], [], [], [], [], []
    offset = 0
    for est in gb.estimators_[:, 0]:
        t = est.tree_
        roots.append(offset)
        lft = t.children_left.copy()
        rgt = t.children_right.copy()
        left.append(np.where(lft >= 0, lft + offset, -1))
        right.append(np.where(rgt >= 0, rgt + offset, -1))
        feat.append(np.maximum(t.feature, 0))
        thr.append(t.threshold)
        val.append(t.value[:, 0, 0])
        offset += t.node_count
    arrays = {"left": np.concatenate(left), "right": np.concatenate(right),
              "feature": np.concatenate(feat).astype(np.int64),
              "threshold": np.concatenate(thr), "value": np.concatenate(val),
              "roots": np.asarray(roots, dtype=np.int64),
              "learning_rate": np.array([rate]), "max_depth": np.array([depth]),
              "init": np.array([0.0])}
    model = CutoffModel(header, arrays)
    # the prior log-odds sklearn starts from: its decision function minus the trees' sum
    p0 = np.clip(model.predict_proba(X), 1e-12, 1 - 1e-12)
    arrays["init"] = np.array([float(np.median(gb.decision_function(X) - np.log(p0 / (1 - p0))))])
    if check and not np.allclose(model.predict_proba(X), gb.predict_proba(X)[:, 1], atol=1e-5):
        raise RuntimeError("exported cutoff model disagrees with scikit-learn's predictions")
    return model


@register_stage("learned_cutoff")
class LearnedCutoff(Stage):
    """Keep the prefix a fitted model expects to be best (see the module docstring).

    Example (YAML): ``{type: learned_cutoff, model: models/cut.npz}`` (order and rule as
    fitted) or ``{type: learned_cutoff, model: cut.npz, order: probability, objective: ef1}``.
    Models fitted with query features read the pipeline query (the ``query`` input).
    With ``keep_paired`` (default) chunks a rationale paired are kept even below the cut, so
    ``rationale_selector (cutoff: none) -> learned_cutoff`` is METEORA with a learned cut.
    """

    class Config(ClampConfig):
        model: str = Field(..., description="model file written by 'ragsel fit'")
        objective: Literal["auto", "f1", "ef1", "recall", "threshold", "top_k"] = Field(
            "auto", description="auto: the rule chosen when the model was fitted; ef1: exact "
            "expected F1; top_k: the k most probable (with order: probability)")
        beta: float = Field(1.0, gt=0, description="F-beta for objective f1 (>1 favours recall)")
        target_recall: float = Field(0.9, gt=0, le=1.0)
        threshold: float = Field(0.5, gt=0, lt=1.0, description="objective threshold: keep up "
                                 "to the last chunk with this relevance probability")
        k: int = Field(5, ge=1, description="how many to keep for objective top_k")
        keep_paired: bool = True
        order: Literal["auto", "input", "probability"] = Field(
            "auto", description="cut the list as ranked, or re-rank it by predicted relevance "
            "first; auto: what the model was fitted to do best")

    blocking = False

    def _setup(self) -> None:
        self._model: CutoffModel | None = None
        self._expect: str | None = None
        self._lock = threading.Lock()

    def check_pipeline(self, pipeline: Any) -> None:
        """Called by the pipeline before the first run: refuse a model from another pipeline."""
        self._expect, _ = pipeline_hash(pipeline, self.name)
        with self._lock:
            self._model = None
        self._get_model()

    def _get_model(self) -> CutoffModel:
        with self._lock:
            if self._model is None:
                self._model = CutoffModel.load(self.config.model, expect_pipeline=self._expect)
            return self._model

    def warm_up(self) -> None:
        self._get_model()

    def _run(self, candidates: Candidates, query: Query | None = None) -> Candidates:
        c = self.config
        if not candidates.items:
            return candidates.derive(self.name, [], note={"empty": True})
        model = self._get_model()
        p = model.probabilities(candidates, query)
        items = list(candidates.items)
        fitted = dict(model.header.get("defaults") or {"objective": "f1"})
        how = fitted.pop("order", "input") if c.order == "auto" else c.order
        fitted.pop("order", None)
        order = np.argsort(-p, kind="stable") if how == "probability" else np.arange(len(items))
        rule = fitted if c.objective == "auto" else {
            "objective": c.objective, "beta": c.beta, "target_recall": c.target_recall,
            "threshold": c.threshold, "k": c.k}
        k, info = choose_cut(p[order], **rule, min_k=c.min_k, max_k=c.max_k)
        keep = set(order[:k].tolist())
        if c.keep_paired:
            keep |= {i for i, sc in enumerate(items) if sc.rationales}
        out, drops = [], {}
        for rank, i in enumerate(order.tolist(), 1):
            sc = items[i]
            if i in keep:
                why = "in the learned cut" if rank <= k else "paired by a rationale"
                out.append(sc.with_event(Event(self.name, "kept", why, sc.score,
                                               {"p_relevant": round(float(p[i]), 4),
                                                "rank": rank})))
            else:
                drops[sc.chunk.id] = (f"below the learned cut (rank {rank}, kept {k}; "
                                      f"p={p[i]:.2f})")
        info.update(kept=len(out), cut=k, order=how, model=str(c.model))
        return candidates.derive(self.name, out, drop_reasons=drops, note=info)
