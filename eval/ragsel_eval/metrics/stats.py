"""Aggregation with honest uncertainty: NaN-aware means, bootstrap confidence intervals over
queries, and paired significance tests for two pipelines on the same queries.

NaN means "unmeasured" (no gold for that query, a judge that returned nothing): it is counted
and excluded, never treated as 0.

>>> m = summarize([1.0, 0.0, float("nan"), 1.0], seed=0)
>>> round(m["mean"], 3), m["n"], m["unmeasured"]
(0.667, 3, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


def _arr(values: Sequence[float]) -> np.ndarray:
    return np.asarray([NAN if v is None else v for v in values], dtype=float)


def nanmean(values: Sequence[float]) -> float:
    a = _arr(values)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else NAN


def bootstrap_ci(
    values: Sequence[float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over queries (NaNs dropped first)."""
    a = _arr(values)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return NAN, NAN
    if a.size == 1:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_resamples, a.size))
    stats = (
        np.apply_along_axis(statistic, 1, a[idx])
        if statistic is not np.mean
        else a[idx].mean(axis=1)
    )
    lo, hi = np.quantile(stats, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def summarize(
    values: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """mean, CI bounds, n measured and n unmeasured (NaN) of per-query values."""
    a = _arr(values)
    n_nan = int(np.isnan(a).sum())
    lo, hi = bootstrap_ci(a, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {
        "mean": nanmean(a),
        "ci_low": lo,
        "ci_high": hi,
        "n": int(a.size - n_nan),
        "unmeasured": n_nan,
    }


@dataclass(frozen=True)
class PairedTest:
    """Result of comparing pipeline B against pipeline A on the same queries."""

    method: str
    mean_a: float
    mean_b: float
    diff: float  # mean(b - a) over queries measured in both
    ci_low: float
    ci_high: float
    p_value: float
    n: int

    def as_dict(self) -> dict[str, float | str | int]:
        return dict(self.__dict__)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    method: str = "randomization",
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired test of ``mean(b) - mean(a)``.

    ``randomization`` (default): a sign-flip permutation test on the per-query differences;
    ``bootstrap``: resample the differences and report the share of resamples on the other
    side of 0 (times two). Queries where either value is NaN are left out. The CI is a
    bootstrap CI of the mean difference in both cases.
    """
    xa, xb = _arr(a), _arr(b)
    if xa.shape != xb.shape:
        raise ValueError("paired_test needs one value per query for both pipelines")
    ok = ~(np.isnan(xa) | np.isnan(xb))
    d = xb[ok] - xa[ok]
    n = int(d.size)
    if n == 0:
        return PairedTest(method, NAN, NAN, NAN, NAN, NAN, NAN, 0)
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    if method == "randomization":
        signs = rng.choice([-1.0, 1.0], size=(n_resamples, n))
        perm = (signs * d).mean(axis=1)
        p = (np.sum(np.abs(perm) >= abs(obs) - 1e-12) + 1) / (n_resamples + 1)
    elif method == "bootstrap":
        if np.all(d == 0):
            p = 1.0
        else:
            # shift the bootstrap distribution to the null (mean 0), two-sided
            p = (np.sum(np.abs(boot - obs) >= abs(obs) - 1e-12) + 1) / (n_resamples + 1)
    else:
        raise ValueError(f"method must be 'randomization' or 'bootstrap', got {method!r}")
    return PairedTest(
        method,
        float(xa[ok].mean()),
        float(xb[ok].mean()),
        obs,
        float(lo),
        float(hi),
        float(min(1.0, p)),
        n,
    )
