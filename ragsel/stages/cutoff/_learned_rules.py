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
    p = np.asarray(p, dtype=np.float64)
    top = min(int(p.size), max_k)
    if top == 0:
        return np.zeros(0)
    # items after the last one with p > 0 (e.g. past a model's horizon) are never relevant:
    # they leave every distribution as it is and only add to k
    nz = np.flatnonzero(p > 0)
    n = int(nz[-1]) + 1 if nz.size else 1
    inner = min(n, top)
    # pre[k] = distribution of the relevant count among p[:k]; suf[k] among p[k:n]
    pre = np.zeros((inner + 1, n + 1))
    pre[0, 0] = 1.0
    for k in range(1, inner + 1):
        pre[k] = _add_item(pre[k - 1], float(p[k - 1]))
    suf = np.zeros((n + 1, n + 1))
    suf[n, 0] = 1.0
    for k in range(n - 1, 0, -1):
        suf[k] = _add_item(suf[k + 1], float(p[k]))
    # 2a/(k+a+b) depends on a and s = a+b only: E[F1] at k is the sum over s of the
    # convolution (a * pre[k, a]) * suf[k, b] at s, divided by k+s (O(n) per k in C)
    out = np.empty(top)
    count = np.arange(n + 1, dtype=np.float64)
    for k in range(1, inner + 1):
        c = np.convolve(count[: k + 1] * pre[k, : k + 1], suf[k, : n - k + 1])
        out[k - 1] = 2.0 * float(np.dot(c, 1.0 / (k + count[: c.size])))
    if top > inner:  # past the last possible relevant item: b = 0, a as at n
        ks = np.arange(inner + 1, top + 1, dtype=np.float64)[:, None]
        out[inner:] = (2 * count * pre[inner] / (ks + count)).sum(axis=1)
    return out


def _add_item(dist: np.ndarray, q: float) -> np.ndarray:
    """The distribution of a count after one more item relevant with probability ``q``
    (``dist`` padded with zeros to a fixed length; its last entry stays 0 while unused)."""
    out = dist * (1 - q)
    out[1:] += dist[:-1] * q
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
