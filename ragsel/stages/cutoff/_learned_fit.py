"""The fitting half of the learned cutoff (scikit-learn, imported only here).

:func:`fit_cutoff_model` fits a :class:`~ragsel.stages.cutoff._learned_model.CutoffModel` on
labelled candidate lists; see ``learned`` for the model and its cut rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ragsel.errors import ConfigError, InputError
from ragsel.stages.cutoff._general_features import GENERAL_VERSION, general_features
from ragsel.stages.cutoff._learned_features import (
    FEATURE_VERSION,
    discover_retrievers,
    list_features,
)
from ragsel.stages.cutoff._learned_model import MODEL_FORMAT, CutoffModel, model_features
from ragsel.stages.cutoff._learned_priors import CorpusPriors
from ragsel.stages.cutoff._learned_rules import (
    DEFAULT_RULE,
    RULE_GRID,
    cut_f1s,
    platt_apply,
    platt_fit,
)
from ragsel.types import Candidates, Query

MIN_QUERIES = 20  # fewer labelled queries than this give a model that mostly memorises


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
    feature_set: Literal["list", "general"] = "list",
    max_rank: int | None = None,
    groups: Sequence[str] | None = None,
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

    With ``max_rank`` the model is fitted on, and at run time scores, only the first
    ``max_rank`` candidates of each list (features normalised over that prefix); the rest get
    probability 0. With ``groups`` (one label per list, e.g. the dataset or corpus it comes
    from; at least two distinct) the out-of-fold predictions that calibrate the model and
    choose its rule come from leave-one-group-out fits, and every group weighs the same in
    that choice: the rule is chosen for lists from a corpus the model has not seen, which is
    what a model shipped for any corpus meets.
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
    if groups is not None and len(groups) != len(lists):
        raise InputError(f"{len(lists)} candidate lists but {len(groups)} group labels")
    if max_rank is not None and max_rank < 2:
        raise ConfigError(f"max_rank must be at least 2, got {max_rank}")
    labels = list(groups) if groups is not None else [""] * len(lists)
    keep = [i for i, c in enumerate(lists) if len(c.items)]
    usable = [
        (Candidates(lists[i].items[:max_rank]) if max_rank else lists[i], golds[i], texts[i])
        for i in keep
    ]
    group_of = [str(labels[i]) for i in keep]
    if groups is not None and len(set(group_of)) < 2:
        raise InputError("groups= needs lists from at least two groups (e.g. two corpora)")
    if len(usable) < MIN_QUERIES:
        raise InputError(
            f"a learned cutoff needs at least {MIN_QUERIES} labelled queries with "
            f"candidates to fit; got {len(usable)}. Label more queries."
        )
    general = feature_set == "general"
    if feature_set not in ("list", "general"):
        raise ConfigError(f"unknown feature set {feature_set!r}; use list or general")
    if general:
        priors, rets = False, []
    else:
        rets = list(retrievers) if retrievers is not None else discover_retrievers(lists)
    data = _Data(usable, rets, priors, general, group_of if groups is not None else None)
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
        **({"feature_set": "general", "general_version": GENERAL_VERSION} if general else {}),
        "pipeline_hash": pipeline_hash,
        "max_rank": max_rank,
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
    X, y_rows = data.rows(everything, everything)
    kinds = ("gbdt", "logistic") if kind == "auto" else (kind,)
    if defaults is not None and len(kinds) == 1:
        return _finish(_fit_arrays(header, X, y_rows, kind, seed), data)
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
        repeats = 1 if data.groups else max(1, inner_repeats)  # group folds are not random
        runs = [_out_of_fold(data, header, kd, seed + r) for r in range(repeats)]
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
    weight = data.query_weights()
    mean = {key: float(weight @ v) if v.size else 0.0 for key, v in per_query.items()}
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
        gain = float(weight @ diff)
        # standard error of a weighted mean (equal weights: the usual std/sqrt(n))
        se = float(np.sqrt(weight**2 @ (diff - gain) ** 2)) if diff.size > 1 else 0.0
        choice["default_out_of_fold"] = [dflt[0], round(mean[dflt], 4)]
        if gain <= se:
            best = dflt
    f1 = mean[best]
    header["kind"] = best[0]
    model = _finish(_fit_arrays(header, X, y_rows, best[0], seed), data)
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
        general: bool = False,
        groups: Sequence[str] | None = None,
    ):
        self.usable, self.priors, self.groups = usable, priors, groups
        self.base = [
            general_features(c, t) if general else list_features(c, rets, t) for c, _, t in usable
        ]
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

    def query_weights(self) -> np.ndarray:
        """Weights (summing to 1) of the per-query F1s ``cut_f1s`` returns (lists with a
        relevant item): equal per query, or with groups equal per group."""
        scored = [i for i, y in enumerate(self.labels) if y.any()]
        if not scored:
            return np.zeros(0)
        if not self.groups:
            return np.full(len(scored), 1.0 / len(scored))
        names = [self.groups[i] for i in scored]
        size = {g: names.count(g) for g in set(names)}
        return np.array([1.0 / (len(size) * size[g]) for g in names])

    def folds(self, seed: int, k: int = 3) -> list[list[int]]:
        """The held-out lists of each out-of-fold fit: one group each, or k random folds."""
        n = len(self.usable)
        if self.groups:
            return [[i for i in range(n) if self.groups[i] == g] for g in sorted(set(self.groups))]
        perm = np.random.default_rng(seed).permutation(n)
        return [sorted(perm[f::k].tolist()) for f in range(k)]


def _finish(model: CutoffModel, data: _Data) -> CutoffModel:
    """Store the priors of all the fitting queries in the model."""
    if data.priors:
        model.arrays.update(data.counts(range(len(data.usable))).to_arrays())
    return model


def _out_of_fold(
    data: _Data, header: dict[str, Any], kind: str, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(out-of-fold probabilities, labels) for every labelled list (``_Data.folds``)."""
    n = len(data.usable)
    oof: list[np.ndarray] = [np.empty(0)] * n
    for test in data.folds(seed):
        held = set(test)
        tr = [i for i in range(n) if i not in held]
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
