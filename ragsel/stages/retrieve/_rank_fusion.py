"""Reciprocal rank fusion as a plain function (used by retrievers for query rewrites and by
the ``fusion`` stage).

RRF (Cormack et al. 2009): ``score(d) = sum_i w_i / (k + rank_i(d))`` over the lists that
contain ``d`` (ranks from 1). A key that occurs twice in one list counts once, at its best
rank (LangChain's EnsembleRetriever counted duplicates twice: #37046). Ties go to the key with
the better best rank, then to the one from the earlier list, so the result is deterministic::

    reciprocal_rank_fusion([["a", "b", "c"], ["b", "a"]], k=60)
    # [("a", 0.0325), ("b", 0.0325), ("c", 0.0159)]  -- a tie; "a" came from list 0
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: float = 60.0, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Fuse ranked lists of keys; returns ``(key, fused score)`` best first.

    ``k`` (>= 0) damps the weight of top ranks; ``weights`` (one per list, default 1.0)
    scale each list's contribution.
    """
    if k < 0:
        raise ValueError(f"RRF k must be >= 0, got {k}")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} ranked lists")
    scores: dict[K, float] = {}
    best: dict[K, int] = {}
    for li, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[li])
        seen: set[K] = set()
        for rank, key in enumerate(ranking, 1):
            if key in seen:
                continue  # a duplicate inside one list counts once, at its best rank
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + w / (k + rank)
            if rank < best.get(key, rank + 1):
                best[key] = rank
    # ties: the better best rank, then the earlier list, which is the order keys entered
    # ``scores`` (sorted() is stable)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]]))


def rank_map(ranking: Sequence[K]) -> dict[K, int]:
    """key -> best 1-based rank in ``ranking``."""
    out: dict[K, int] = {}
    for rank, key in enumerate(ranking, 1):
        out.setdefault(key, rank)
    return out
