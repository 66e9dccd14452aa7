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
``_learned_features``; everything is normalised within the query's list. With corpus priors
(default) also what the labelled queries found in this corpus (``_learned_priors``).
Probabilities are Platt-scaled on out-of-fold predictions (the expected-F1 cut reads them).

At run time the stage may first re-rank the list by that probability (``order:
probability``), then keeps the prefix that maximises the exact expected F1 (``ef1``) or an
approximate expected F-beta (``f1``), the shortest prefix expected to reach
``target_recall``, everything up to the last chunk above a probability ``threshold``, or the
``k`` most probable (``top_k``); by default (``auto``) the order and rule chosen when the model
was fitted: re-rank and cut at the exact expected F1 (:data:`DEFAULT_RULE`), unless another
rule beat it by more than one standard error on out-of-fold predictions over the training
queries (two 3-fold splits averaged; a few dozen queries make the grid's best mostly noise).

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
from ragsel.stages.cutoff._learned_features import (
    FEATURE_VERSION,
    discover_retrievers,
    feature_names,
    list_features,
)
from ragsel.stages.cutoff._learned_priors import PRIOR_ARRAYS, PRIOR_FEATURES, CorpusPriors
from ragsel.stages.cutoff._learned_rules import (
    DEFAULT_RULE,
    RULE_GRID,
    choose_cut,
    cut_f1s,
    platt_apply,
    platt_fit,
)
from ragsel.types import Candidates, Event, Query

MIN_QUERIES = 20  # fewer labelled queries than this give a model that mostly memorises
MODEL_FORMAT = "ragsel-learned-cutoff"
_Z_CLIP = 10.0  # standardised features beyond this many training SDs are clipped
_PATHLIKE = ("index", "path", "dir", "file", "model", "corpus")


def model_features(header: Mapping[str, Any]) -> list[str]:
    """The feature names a model with this header reads."""
    return feature_names(header.get("retrievers", []), bool(header.get("query_features"))) + (
        list(PRIOR_FEATURES) if header.get("corpus_priors") else []
    )


def pipeline_hash(pipeline: Any, stage_name: str) -> tuple[str, list[list[str]]]:
    """Hash of the stages upstream of ``stage_name`` (types, configs without paths, wiring),
    and their ``[name, type]`` list. Paths are left out so a model moves with its index."""
    ups = pipeline.upstream_of(stage_name)
    desc = []
    for name in sorted(ups):
        st = pipeline.stages[name]
        cfg = {k: v for k, v in st.to_dict().items() if not any(p in k.lower() for p in _PATHLIKE)}
        desc.append([name, cfg])
    wires = sorted(
        str(c) for c in pipeline.connections if c.dst in ups | {stage_name} and c.src in ups
    )
    blob = json.dumps({"stages": desc, "wires": wires}, sort_keys=True, default=str)
    return (
        hashlib.sha256(blob.encode()).hexdigest()[:16],
        [[n, pipeline.stages[n].type_name] for n in sorted(ups)],
    )


@dataclass
class CutoffModel:
    """A fitted cutoff model: a header (JSON) plus arrays evaluated with numpy only."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _priors: CorpusPriors | None = field(default=None, repr=False, compare=False)

    @property
    def retrievers(self) -> list[str]:
        return list(self.header["retrievers"])

    # --- prediction --------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        a = self.arrays
        if self.header["kind"] == "logistic":
            # clipped: a feature far outside its training range should not decide alone
            z = np.clip((X - a["mean"]) / a["scale"], -_Z_CLIP, _Z_CLIP) @ a["coef"] + float(
                a["intercept"][0]
            )
        else:
            # scikit-learn trees compare float32 copies of the features: do the same, or a
            # value at a split threshold can take the other branch
            X = X.astype(np.float32).astype(np.float64)
            left, right, feat, thr, val = (
                a["left"],
                a["right"],
                a["feature"],
                a["threshold"],
                a["value"],
            )
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
        if "calibration" in a:  # Platt scaling fitted on out-of-fold predictions
            z = float(a["calibration"][0]) * z + float(a["calibration"][1])
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def check_candidates(self, cands: Candidates) -> None:
        seen = set(discover_retrievers([cands]))
        unknown = seen - set(self.retrievers)
        if unknown or (self.retrievers and seen and not seen & set(self.retrievers)):
            raise InputError(
                f"learned cutoff model {self.header.get('path', '')!r} was fitted on candidates "
                f"from retrievers {self.retrievers}, but these come from {sorted(seen)}: it "
                "belongs to another pipeline. Re-fit it with 'ragsel fit' for this pipeline."
            )

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
                "pass query=..., or fit a model without queries"
            )
        text = text if self.uses_query else None  # as fitted: a list-only model never reads it
        X = list_features(cands, self.retrievers, text)
        if self.header.get("corpus_priors"):
            if self._priors is None:
                self._priors = CorpusPriors.from_arrays(self.arrays)
            X = np.hstack([X, self._priors.features(cands, text)])
        return self.predict_proba(X)

    def cut(
        self, cands: Candidates, query: Query | str | None = None, **options: Any
    ) -> tuple[int, dict[str, Any]]:
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
            path = (
                path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps(self.header, sort_keys=True)
        arrays: dict[str, Any] = {"__header__": np.array(header), **self.arrays}
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, expect_pipeline: str | None = None) -> CutoffModel:
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"learned cutoff model not found: {path}. Fit one with "
                f"'ragsel fit PIPELINE --dataset NAME --out {path}'"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                arrays = {k: data[k] for k in data.files if k != "__header__"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            why = str(exc)
            if "pickle" in why.lower():  # numpy's advice (allow_pickle=True) would run code
                why = "it holds pickled Python objects, which ragsel never loads"
            raise InputError(
                f"{path} is not a ragsel learned-cutoff model file ({why}); write one with "
                "'ragsel fit'"
            ) from None
        if header.get("format") != MODEL_FORMAT:
            raise InputError(f"{path} is not a ragsel learned-cutoff model file")
        if header.get("feature_version") != FEATURE_VERSION:
            raise InputError(
                f"learned cutoff model {path} uses feature version "
                f"{header.get('feature_version')}, this ragsel computes version "
                f"{FEATURE_VERSION}: re-fit it with 'ragsel fit'"
            )
        if header.get("features") != model_features(header):
            raise InputError(
                f"learned cutoff model {path} lists other features than this "
                f"ragsel computes (feature version {FEATURE_VERSION}): re-fit it "
                "with 'ragsel fit'"
            )
        missing = (
            [k for k in PRIOR_ARRAYS if k not in arrays] if header.get("corpus_priors") else []
        )
        if missing:
            raise InputError(
                f"learned cutoff model {path} declares corpus priors but lacks "
                f"{missing}: the file is damaged; re-fit it with 'ragsel fit'"
            )
        if expect_pipeline is not None and header.get("pipeline_hash") != expect_pipeline:
            raise InputError(
                f"learned cutoff model {path} was fitted for another pipeline (its upstream "
                f"stages {header.get('upstream')} hash to {header.get('pipeline_hash')}, this "
                f"pipeline's to {expect_pipeline}); re-fit it with 'ragsel fit' for this "
                "pipeline"
            )
        header["path"] = str(path)
        return cls(header, arrays)


def fit_cutoff_model(
    lists: Sequence[Candidates],
    golds: Sequence[set[str]],
    *,
    queries: Sequence[Query | str] | None = None,
    kind: Literal["gbdt", "logistic", "auto"] = "gbdt",
    retrievers: Sequence[str] | None = None,
    pipeline_hash: str = "",
    upstream: Sequence[Sequence[str]] = (),
    seed: int = 0,
    defaults: Mapping[str, Any] | None = None,
    priors: bool = True,
    inner_repeats: int = 2,
    one_se: bool = True,
    calibrate: bool = True,
    orders: Sequence[str] = ("input", "probability"),
    info: Mapping[str, Any] | None = None,
) -> CutoffModel:
    """Fit a cutoff model on labelled lists (``golds[i]`` = relevant chunk ids of list i).

    With ``queries`` (one per list) the model also reads the query text (query-term and title
    features) and then needs the query at run time. With ``priors`` (default) it also reads
    what the training queries found in this corpus (:mod:`._learned_priors`: per chunk,
    per document, per similar query; leave-one-query-out on the training rows), which pays
    when many queries share a corpus and is inert when they do not. Unless ``defaults`` fixes
    the cut rule, the rule (expected F-beta, exact expected F1, a probability threshold or a
    fixed k; :data:`RULE_GRID`) and the order it cuts (as ranked, or re-ranked by predicted
    relevance) are chosen by the mean F1 they reach on 3-fold out-of-fold predictions over
    the training queries (averaged over ``inner_repeats`` splits), and stored in the header
    (``orders=("input",)`` for a consumer that always cuts a prefix of the list as ranked);
    with ``one_se`` (default) the parameter-free :data:`DEFAULT_RULE` is kept unless the best
    rule beats it by more than one standard error, as a guard against choosing noise among
    ~50 rules on a few dozen queries. ``kind="auto"`` chooses between GBDT and logistic
    regression the same way (with a fixed rule, by that rule's out-of-fold F1).
    """
    if len(lists) != len(golds):
        raise InputError(f"{len(lists)} candidate lists but {len(golds)} gold sets")
    if queries is not None and len(queries) != len(lists):
        raise InputError(f"{len(lists)} candidate lists but {len(queries)} queries")
    texts = (
        [q.text if isinstance(q, Query) else str(q) for q in queries]
        if queries is not None
        else [None] * len(lists)
    )
    usable = [(c, g, t) for c, g, t in zip(lists, golds, texts) if len(c.items)]
    if len(usable) < MIN_QUERIES:
        raise InputError(
            f"a learned cutoff needs at least {MIN_QUERIES} labelled queries with "
            f"candidates to fit; got {len(usable)}. Label more queries."
        )
    rets = list(retrievers) if retrievers is not None else discover_retrievers(lists)
    data = _Data(usable, rets, priors)
    y = np.concatenate(data.labels).astype(int)
    if y.min() == y.max():
        raise InputError(
            "the labelled lists contain only "
            f"{'relevant' if y[0] else 'irrelevant'} candidates; a cutoff cannot "
            "be learned (check that gold ids match the pipeline's chunk ids)"
        )
    if kind not in ("gbdt", "logistic", "auto"):
        raise ConfigError(f"unknown cutoff model kind {kind!r}; use gbdt, logistic or auto")
    if not orders or set(orders) - {"input", "probability"}:
        raise ConfigError(f"orders must be input and/or probability, got {list(orders)}")
    header: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "feature_version": FEATURE_VERSION,
        "kind": kind,
        "retrievers": rets,
        "query_features": queries is not None,
        "corpus_priors": priors,
        "pipeline_hash": pipeline_hash,
        "upstream": [list(u) for u in upstream],
        "defaults": dict(defaults or {}),
        "training": {
            "queries": len(usable),
            "rows": int(len(y)),
            "positives": int(y.sum()),
            "seed": seed,
            **dict(info or {}),
        },
    }
    header["features"] = model_features(header)
    everything = list(range(len(usable)))
    X, _ = data.rows(everything, everything)
    kinds = ("gbdt", "logistic") if kind == "auto" else (kind,)
    if defaults is not None and len(kinds) == 1:
        return _finish(_fit_arrays(header, X, y, kind, seed), data)
    # choose on out-of-fold predictions (in-sample ones are overconfident), averaged over
    # `inner_repeats` different 3-fold splits: with a few dozen queries one split is noisy
    rules = (
        [{"objective": "f1", **dict(defaults)}]
        if defaults is not None
        else [{**r, "order": how} for how in orders for r in RULE_GRID]
    )
    dflt_rule = (
        DEFAULT_RULE if DEFAULT_RULE["order"] in orders else {**DEFAULT_RULE, "order": orders[0]}
    )
    per_query: dict[tuple[str, int], np.ndarray] = {}
    platt: dict[str, np.ndarray] = {}
    for kd in kinds:
        runs = [_out_of_fold(data, header, kd, seed + r) for r in range(max(1, inner_repeats))]
        if calibrate:
            platt[kd] = platt_fit(runs)
            runs = [[(platt_apply(p, platt[kd]), lab) for p, lab in pairs] for pairs in runs]
        for j, rule in enumerate(rules):
            cut = {k: v for k, v in rule.items() if k != "order"}
            per_query[kd, j] = np.mean(
                [
                    cut_f1s(
                        [a for a, _ in pairs],
                        [b for _, b in pairs],
                        cut,
                        rule.get("order", "input"),
                    )
                    for pairs in runs
                ],
                axis=0,
            )
    mean = {key: float(v.mean()) if v.size else 0.0 for key, v in per_query.items()}
    best = max(per_query, key=lambda key: (mean[key], -key[1], key[0] == "gbdt"))
    choice = {"best_out_of_fold": [best[0], rules[best[1]], round(mean[best], 4)]}
    if defaults is None and one_se:
        # keep the parameter-free default rule unless the best of the grid beats it by more
        # than one standard error of the per-query difference (the grid's maximum is biased
        # upwards by the number of rules tried)
        dflt = max(
            (key for key in per_query if rules[key[1]] == dflt_rule),
            key=lambda key: (mean[key], key[0] == "gbdt"),
        )
        diff = per_query[best] - per_query[dflt]
        se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        choice["default_out_of_fold"] = [dflt[0], round(mean[dflt], 4)]
        if float(diff.mean()) <= se:
            best = dflt
    f1 = mean[best]
    header["kind"] = best[0]
    model = _finish(_fit_arrays(header, X, y, best[0], seed), data)
    if best[0] in platt:
        model.arrays["calibration"] = platt[best[0]]
    if defaults is None:
        model.header["defaults"] = dict(rules[best[1]])
    model.header["training"].update(out_of_fold_f1=round(f1, 4), choice=choice)
    return model


class _Data:
    """The labelled lists of a fit, their list/query features (computed once) and, with
    priors, the prior block for any split (counts from the fitting queries only)."""

    def __init__(
        self,
        usable: Sequence[tuple[Candidates, set[str], str | None]],
        rets: Sequence[str],
        priors: bool,
    ):
        self.usable, self.priors = usable, priors
        self.base = [list_features(c, rets, t) for c, _, t in usable]
        self.labels = [np.array([sc.chunk.id in g for sc in c.items]) for c, g, _ in usable]

    def counts(self, fit: Sequence[int]) -> CorpusPriors:
        return CorpusPriors.count(
            [self.usable[i][0] for i in fit],
            [self.usable[i][1] for i in fit],
            [self.usable[i][2] for i in fit],
        )

    def blocks(self, fit: Sequence[int], apply: Sequence[int]) -> list[np.ndarray]:
        """Feature matrices of the lists ``apply`` for a model fitted on ``fit`` (the lists
        of ``fit`` itself get leave-one-query-out priors)."""
        if not self.priors:
            return [self.base[i] for i in apply]
        pri = self.counts(fit)
        where = {i: j for j, i in enumerate(fit)}
        return [
            np.hstack(
                [
                    self.base[i],
                    pri.features(self.usable[i][0], self.usable[i][2], exclude=where.get(i)),
                ]
            )
            for i in apply
        ]

    def rows(self, fit: Sequence[int], apply: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.vstack(self.blocks(fit, apply)),
            np.concatenate([self.labels[i] for i in apply]).astype(int),
        )


def _finish(model: CutoffModel, data: _Data) -> CutoffModel:
    """Store the priors of all the fitting queries in the model."""
    if data.priors:
        model.arrays.update(data.counts(range(len(data.usable))).to_arrays())
    return model


def _out_of_fold(
    data: _Data, header: dict[str, Any], kind: str, seed: int, folds: int = 3
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(3-fold out-of-fold probabilities, labels) for every labelled list."""
    n = len(data.usable)
    perm = np.random.default_rng(seed).permutation(n)
    oof: list[np.ndarray] = [np.empty(0)] * n
    for f in range(folds):
        test = sorted(perm[f::folds].tolist())
        tr = [i for i in range(n) if i not in set(test)]
        Xt, yt = data.rows(tr, tr)
        if yt.min() == yt.max():  # a degenerate split: predict the only rate it saw
            for i in test:
                oof[i] = np.full(data.labels[i].size, float(yt[0]))
            continue
        inner = _fit_arrays(header, Xt, yt, kind, seed, check=False)
        for i, Xi in zip(test, data.blocks(tr, test)):
            oof[i] = inner.predict_proba(Xi)
    return [(p, data.labels[i]) for i, p in enumerate(oof)]


def _fit_arrays(
    header: dict[str, Any], X: np.ndarray, y: np.ndarray, kind: str, seed: int, check: bool = True
) -> CutoffModel:
    from sklearn.ensemble import GradientBoostingClassifier  # fitting only
    from sklearn.linear_model import LogisticRegression

    header = dict(json.loads(json.dumps(header)), kind=kind)
    if kind == "logistic":
        mean, scale = X.mean(axis=0), X.std(axis=0)
        # a column constant in training (up to rounding: std ~1e-14) must not blow up a value
        # that differs slightly at run time (e.g. a prior counted over one more query)
        scale[scale <= 1e-9 * np.maximum(1.0, np.abs(mean))] = 1.0
        lr = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, y)
        arrays = {
            "mean": mean,
            "scale": scale,
            "coef": lr.coef_[0],
            "intercept": lr.intercept_.astype(np.float64),
        }
        return CutoffModel(header, arrays)
    if kind != "gbdt":
        raise ConfigError(f"unknown cutoff model kind {kind!r}; use 'gbdt' or 'logistic'")
    depth, rate = 3, 0.05
    gb = GradientBoostingClassifier(
        n_estimators=200,
        max_depth=depth,
        learning_rate=rate,
        subsample=0.8,
        min_samples_leaf=5,
        random_state=seed,
    ).fit(X, y)
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
    arrays = {
        "left": np.concatenate(left),
        "right": np.concatenate(right),
        "feature": np.concatenate(feat).astype(np.int64),
        "threshold": np.concatenate(thr),
        "value": np.concatenate(val),
        "roots": np.asarray(roots, dtype=np.int64),
        "learning_rate": np.array([rate]),
        "max_depth": np.array([depth]),
        "init": np.array([0.0]),
    }
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

    config: Config

    class Config(ClampConfig):
        model: str = Field(..., description="model file written by 'ragsel fit'")
        objective: Literal["auto", "f1", "ef1", "recall", "threshold", "top_k"] = Field(
            "auto",
            description="auto: the rule chosen when the model was fitted; ef1: exact "
            "expected F1; top_k: the k most probable (with order: probability)",
        )
        beta: float = Field(1.0, gt=0, description="F-beta for objective f1 (>1 favours recall)")
        target_recall: float = Field(0.9, gt=0, le=1.0)
        threshold: float = Field(
            0.5,
            gt=0,
            lt=1.0,
            description="objective threshold: keep up "
            "to the last chunk with this relevance probability",
        )
        k: int = Field(5, ge=1, description="how many to keep for objective top_k")
        keep_paired: bool = True
        order: Literal["auto", "input", "probability"] = Field(
            "auto",
            description="cut the list as ranked, or re-rank it by predicted relevance "
            "first; auto: what the model was fitted to do best",
        )

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
        rule = (
            fitted
            if c.objective == "auto"
            else {
                "objective": c.objective,
                "beta": c.beta,
                "target_recall": c.target_recall,
                "threshold": c.threshold,
                "k": c.k,
            }
        )
        k, info = choose_cut(p[order], **rule, min_k=c.min_k, max_k=c.max_k)
        keep = set(order[:k].tolist())
        if c.keep_paired:
            keep |= {i for i, sc in enumerate(items) if sc.rationales}
        out, drops = [], {}
        for rank, i in enumerate(order.tolist(), 1):
            sc = items[i]
            if i in keep:
                why = "in the learned cut" if rank <= k else "paired by a rationale"
                out.append(
                    sc.with_event(
                        Event(
                            self.name,
                            "kept",
                            why,
                            sc.score,
                            {"p_relevant": round(float(p[i]), 4), "rank": rank},
                        )
                    )
                )
            else:
                drops[sc.chunk.id] = f"below the learned cut (rank {rank}, kept {k}; p={p[i]:.2f})"
        info.update(kept=len(out), cut=k, order=how, model=str(c.model))
        return candidates.derive(self.name, out, drop_reasons=drops, note=info)
