"""Cut rules of the learned cutoff: where to cut a list given each item's relevance
probability (exact or approximate expected F1, a target recall, a threshold, a fixed k), and
the grid of rules a fit chooses from (:data:`RULE_GRID`, scored by :func:`cut_f1s`), and the
calibration that lets the expected-F1 rules read a model's output as probabilities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragsel.errors import ConfigError

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
        suffix[k] = _add_item(suffix[k + 1], float(p[k]))
    out = np.zeros(top)
    pre = np.ones(1)
    for k in range(1, top + 1):
        pre = _add_item(pre, float(p[k - 1]))
        a = np.arange(k + 1, dtype=np.float64)[:, None]
        b = np.arange(suffix[k].size, dtype=np.float64)[None, :]
        out[k - 1] = float(pre @ (2 * a / (k + a + b)) @ suffix[k])
    return out


def _add_item(dist: np.ndarray, q: float) -> np.ndarray:
    """The distribution of a count after one more item relevant with probability ``q``
    (the same sums as appending/inserting a zero, without numpy's insert overhead)."""
    out = np.empty(dist.size + 1)
    out[:-1] = dist * (1 - q)
    out[-1] = 0.0
    out[1:] += dist * q
    return out


def choose_cut(
    p: np.ndarray,
    *,
    objective: str = "f1",
    beta: float = 1.0,
    target_recall: float = 0.9,
    threshold: float = 0.5,
    k: int = 5,
    min_k: int = 1,
    max_k: int | None = None,
) -> tuple[int, dict[str, Any]]:
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
        raise ConfigError(
            f"unknown cut objective {objective!r}: use f1, ef1, recall, threshold or top_k"
        )
    lo = min(max(min_k, 0), n)
    hi = n if max_k is None else min(max_k, n)
    k = min(max(k, lo), hi)
    return k, {
        "method": "learned",
        "objective": objective,
        **param,
        "n": n,
        "expected": round(value, 4),
        "expected_relevant": round(total, 3),
    }


#: Cut rules tried when fitting; the one with the best out-of-fold F1 becomes the default.
RULE_GRID: list[dict[str, Any]] = (
    [{"objective": "f1", "beta": b} for b in (0.5, 0.75, 1.0, 1.5, 2.0)]
    + [{"objective": "ef1"}]
    + [{"objective": "threshold", "threshold": t} for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    + [{"objective": "top_k", "k": k} for k in range(1, 11)]
)


#: The rule a fit keeps unless another is clearly better out of fold (see ``fit_cutoff_model``):
#: re-rank by probability, cut at the exact expected-F1 maximum. It has no parameter to
#: overfit, and it adapts the cut to each query where a fixed k cannot.
DEFAULT_RULE: dict[str, Any] = {"objective": "ef1", "order": "probability"}


def cut_f1s(
    probs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    rule: Mapping[str, Any],
    order: str = "input",
) -> np.ndarray:
    """F1 of ``rule`` on each list that has a relevant item (lists without one are skipped)."""
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
    return np.array(f1s, dtype=np.float64)


def platt_fit(runs: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """``[a, b]`` mapping a model's log-odds ``z`` to ``a*z + b``, fitted on out-of-fold
    predictions (in-sample GBDT probabilities are overconfident, and the expected-F1 cut reads
    them as probabilities); identity when the fit is degenerate."""
    from sklearn.linear_model import LogisticRegression

    p = np.concatenate([q for pairs in runs for q, _ in pairs])
    y = np.concatenate([t for pairs in runs for _, t in pairs]).astype(int)
    if y.min() == y.max():
        return np.array([1.0, 0.0])
    z = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
    lr = LogisticRegression(C=100.0, max_iter=1000).fit(z[:, None], y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return np.array([a, b]) if a > 0 else np.array([1.0, 0.0])


def platt_apply(p: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``p`` mapped through the ``[a, b]`` of :func:`platt_fit`."""
    z = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
    return 1.0 / (1.0 + np.exp(-np.clip(ab[0] * z + ab[1], -30, 30)))
