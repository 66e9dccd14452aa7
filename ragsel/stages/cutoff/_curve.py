"""Score-curve math shared by the cutoff stages and the rationale selector.

Plain functions on a 1-d score array (no ragsel types), so any stage can call them::

    >>> cut, info = elbow_index([0.91, 0.88, 0.52, 0.50, 0.49])
    >>> cut, info["method"]
    (2, 'z_score')

Every function returns ``(cut, info)``: ``cut`` is how many of the best scores to keep (a
slice point on the scores sorted in descending order, ``sorted[:cut]``) and ``info`` a small
JSON-ready dict saying why (it goes into the stage's trace note).

Conventions (documented once, here):

- scores are sorted descending first; ``d_i = s_i - s_{i+1}`` is the gap *after* rank ``i``
  (0-based), so "cut at gap i" keeps ranks ``0..i``, i.e. ``cut = i + 1``;
- the rules are scale-free: multiplying the scores by a positive constant or adding a
  constant never moves the cut (gaps are z-scored or compared with each other);
- equal gaps (up to float noise) never decide a cut: a linear curve keeps everything
  (``method: "equal_gaps"``);
- NaN or infinite scores are rejected by :func:`as_scores` (a curve with holes has no elbow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.errors import InputError

_EPS = 1e-9  # z-scores that equal the threshold up to float noise do not count as above it


def as_scores(scores: Sequence[float] | np.ndarray, *, sort: bool = True) -> np.ndarray:
    """``scores`` as a float64 array (sorted descending when ``sort``); rejects NaN/inf."""
    arr = np.asarray(scores, dtype=np.float64).ravel()
    if arr.size and not np.all(np.isfinite(arr)):
        bad = [int(i) for i in np.flatnonzero(~np.isfinite(arr))[:5]]
        raise InputError(
            f"scores must be finite numbers; got NaN/inf at positions {bad}. "
            "Check the scoring stage upstream."
        )
    return -np.sort(-arr, kind="stable") if sort else arr


def gaps(scores: np.ndarray) -> np.ndarray:
    """``d_i = s_i - s_{i+1}`` for scores sorted descending (all ``>= 0``)."""
    return scores[:-1] - scores[1:]


def equal_gaps(d: np.ndarray) -> bool:
    """Whether the gaps are all equal up to float noise (a linear curve, e.g. rank-derived
    scores 1, 0.9, 0.8, ...): such a curve has no bend, so no gap may decide a cut."""
    if d.size == 0:
        return True
    spread = float(d.max() - d.min())
    return spread <= _EPS * max(float(np.abs(d).max()), 1e-300)


def zscores(values: np.ndarray) -> np.ndarray:
    """Population z-scores; all zeros when the values do not vary (up to float noise)."""
    std = float(values.std())
    if std <= _EPS * float(np.abs(values).max(initial=0.0)) or std <= 0.0:
        return np.zeros_like(values)
    return (values - values.mean()) / std


def second_difference_cut(d: np.ndarray) -> tuple[int, float]:
    """Where the drop slows down most: ``i = argmax(d_i - d_{i+1})``, with the curve taken as
    flat after its last score (``d_n = 0``), so a steep final drop can also be the bend.
    Returns ``(cut, value)`` with ``cut = i + 1``; ties go to the earliest rank."""
    nxt = np.append(d[1:], 0.0)
    second = d - nxt
    i = int(np.argmax(second))
    return i + 1, float(second[i])


def elbow_index(
    scores: Sequence[float] | np.ndarray, z_threshold: float = 1.0
) -> tuple[int, dict[str, Any]]:
    """METEORA's elbow rule on a score list.

    Sort descending, take the consecutive gaps, z-score them, and cut at the *first* gap whose
    z-score is above ``z_threshold``: keep the scores before it (``elbow + 1`` of them). If no
    gap is that far above the mean gap, fall back to the largest second difference
    (:func:`second_difference_cut`). With two scores or fewer, keep them all.

    Returns ``(cut, info)``; ``info`` has ``method`` (``"z_score"``, ``"second_difference"``,
    ``"too_few"`` or ``"empty"``), ``elbow`` (0-based rank of the last kept score), and for the
    cut gap its ``gap``, ``z``, and the scores on both sides.
    """
    s = as_scores(scores)
    n = int(s.size)
    if n == 0:
        return 0, {"method": "empty", "n": 0}
    if n <= 2:
        return n, {"method": "too_few", "n": n, "elbow": n - 1}
    d = gaps(s)
    if equal_gaps(d):
        return n, {"method": "equal_gaps", "n": n, "elbow": n - 1}
    z = zscores(d)
    above = np.flatnonzero(z > z_threshold + _EPS)
    if above.size:
        i = int(above[0])
        return i + 1, {
            "method": "z_score",
            "n": n,
            "elbow": i,
            "gap": float(d[i]),
            "z": float(z[i]),
            "z_threshold": z_threshold,
            "score_before": float(s[i]),
            "score_after": float(s[i + 1]),
        }
    cut, value = second_difference_cut(d)
    i = cut - 1
    info: dict[str, Any] = {
        "method": "second_difference",
        "n": n,
        "elbow": i,
        "second_difference": value,
        "max_z": float(z.max()),
        "z_threshold": z_threshold,
        "score_before": float(s[i]),
    }
    if i < n - 1:
        info.update(gap=float(d[i]), z=float(z[i]), score_after=float(s[i + 1]))
    return cut, info


def largest_gap_index(
    scores: Sequence[float] | np.ndarray, search: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Cut at the largest gap (the first one on ties), looking only at the gaps after the
    first ``search`` ranks when given. One score or none: keep all."""
    s = as_scores(scores)
    n = int(s.size)
    if n <= 1:
        return n, {"method": "too_few", "n": n}
    d = gaps(s)
    window = d[:search] if search is not None else d
    if equal_gaps(window):
        return n, {"method": "equal_gaps", "n": n}
    i = int(np.argmax(window))
    z = zscores(d)
    return i + 1, {
        "method": "largest_gap",
        "n": n,
        "elbow": i,
        "gap": float(d[i]),
        "z": float(z[i]),
        "score_before": float(s[i]),
        "score_after": float(s[i + 1]),
        "searched_gaps": int(window.size),
    }


def normalize(scores: np.ndarray, how: str) -> np.ndarray:
    """``"none"``, ``"minmax"`` (to [0, 1]; all equal -> all 1), ``"max"`` (divide by the
    best absolute score) or ``"zscore"`` (all equal -> all 0)."""
    if how == "none" or scores.size == 0:
        return scores
    if how == "minmax":
        lo, hi = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if hi - lo <= 0 else (scores - lo) / (hi - lo)
    if how == "max":
        top = float(np.abs(scores).max())
        return scores if top == 0 else scores / top
    if how == "zscore":
        return zscores(scores)
    raise ValueError(f"unknown normalisation {how!r}")


def top_p_index(
    scores: Sequence[float] | np.ndarray, p: float, temperature: float = 1.0, how: str = "zscore"
) -> tuple[int, dict[str, Any]]:
    """Keep the smallest prefix whose softmax mass (of the normalised scores divided by
    ``temperature``) reaches ``p``."""
    s = as_scores(scores)
    n = int(s.size)
    if n == 0:
        return 0, {"method": "empty", "n": 0}
    x = normalize(s, how) / temperature
    e = np.exp(x - x.max())
    probs = e / e.sum()
    mass = np.cumsum(probs)
    cut = min(int(np.searchsorted(mass, p - _EPS)) + 1, n)
    return cut, {
        "method": "top_p",
        "n": n,
        "p": p,
        "temperature": temperature,
        "normalize": how,
        "mass": float(mass[cut - 1]),
        "top_prob": float(probs[0]),
    }


def clamp(cut: int, n: int, min_k: int, max_k: int | None) -> int:
    """``cut`` limited to ``[min_k, max_k]`` and to the ``n`` scores there are."""
    if max_k is not None:
        cut = min(cut, max_k)
    return min(max(cut, min_k), n)
