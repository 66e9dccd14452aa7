"""Features of a ranked candidate list for the learned cutoff (one row per position).

Versioned by :data:`FEATURE_VERSION`: a model file records the version it was fitted with and
is refused by a ragsel that computes other features.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.stages.cutoff._curve import elbow_index
from ragsel.types import Candidates

FEATURE_VERSION = 1
_RANK = re.compile(r"rank (\d+)")

_BASE_FEATURES = [
    "score", "score_minus_top", "score_ratio_top", "score_z", "gap_next", "gap_next_z",
    "gap_prev", "rank", "rank_frac", "log_n", "before_largest_gap", "above_elbow",
    "top_score", "score_std", "log_words", "log_doc_position", "doc_first",
    "neighbors_above", "same_doc_top5", "paired", "n_paired_by", "retriever_agreement",
]


def feature_names(retrievers: Sequence[str]) -> list[str]:
    names = list(_BASE_FEATURES)
    for r in retrievers:
        names += [f"{r}:present", f"{r}:score_z", f"{r}:rank_frac"]
    return names


def retriever_scores(sc: Any) -> dict[str, tuple[float, int | None]]:
    """``{retriever stage: (score, rank)}`` from a chunk's "retrieved" events."""
    out: dict[str, tuple[float, int | None]] = {}
    for e in sc.events:
        if e.action == "retrieved" and e.score is not None:
            m = _RANK.search(e.reason or "")
            out[e.stage] = (float(e.score), int(m.group(1)) if m else None)
    return out


def discover_retrievers(lists: Sequence[Candidates]) -> list[str]:
    names: set[str] = set()
    for cands in lists:
        for sc in cands.items:
            names.update(retriever_scores(sc))
    return sorted(names)


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std()) if x.size else 0.0
    return np.zeros_like(x) if sd <= 0 else (x - x.mean()) / sd


def list_features(cands: Candidates, retrievers: Sequence[str]) -> np.ndarray:
    """``(n, F)`` feature matrix for the candidates in their given order."""
    items = cands.items
    n = len(items)
    names = feature_names(retrievers)
    if n == 0:
        return np.zeros((0, len(names)))
    s = np.array([sc.score for sc in items], dtype=np.float64)
    gap_next = np.append(s[:-1] - s[1:], 0.0)
    gap_prev = np.insert(s[:-1] - s[1:], 0, 0.0)
    largest = int(np.argmax(gap_next[:-1])) if n > 1 else 0
    elbow, _ = elbow_index(s, 1.0) if n else (0, {})
    top = s[0]
    rank = np.arange(n, dtype=np.float64)
    pos_of = {(sc.chunk.doc_id, sc.chunk.position): i for i, sc in enumerate(items)
              if sc.chunk.position is not None}
    docs_top5 = [sc.chunk.doc_id for sc in items[:5]]
    per_ret = [retriever_scores(sc) for sc in items]
    X = np.zeros((n, len(names)))
    X[:, 0] = s
    X[:, 1] = s - top
    X[:, 2] = s / top if top > 0 else 0.0
    X[:, 3] = _z(s)
    X[:, 4] = gap_next
    X[:, 5] = _z(gap_next)
    X[:, 6] = gap_prev
    X[:, 7] = rank
    X[:, 8] = rank / n
    X[:, 9] = math.log(n)
    X[:, 10] = rank <= largest
    X[:, 11] = rank < elbow
    X[:, 12] = top
    X[:, 13] = s.std()
    for i, sc in enumerate(items):
        ch = sc.chunk
        X[i, 14] = math.log1p(len(ch.text.split()))
        if ch.position is not None:
            X[i, 15] = math.log1p(ch.position)
            X[i, 16] = ch.position == 0
            X[i, 17] = sum(1 for d in (-1, 1)
                           if pos_of.get((ch.doc_id, ch.position + d), n) < i)
        X[i, 18] = sum(d == ch.doc_id for d in docs_top5) / max(1, len(docs_top5))
        X[i, 19] = bool(sc.rationales)
        X[i, 20] = len(sc.rationales)
        X[i, 21] = (sum(r in per_ret[i] for r in retrievers) / len(retrievers)
                    if retrievers else 1.0)
    col = len(_BASE_FEATURES)
    for r in retrievers:
        present = np.array([r in pr for pr in per_ret], dtype=bool)
        raw = np.array([pr[r][0] if r in pr else np.nan for pr in per_ret])
        if present.any():
            vals = raw[present]
            sd = vals.std()
            z = np.where(present, (np.nan_to_num(raw, nan=vals.min()) - vals.mean()) /
                         (sd if sd > 0 else 1.0), 0.0)
            z[~present] = ((vals.min() - vals.mean()) / (sd if sd > 0 else 1.0)) - 1.0
        else:
            z = np.full(n, -3.0)
        ranks = np.array([(pr[r][1] if r in pr and pr[r][1] is not None else
                           (i + 1 if r in pr else 2 * n)) for i, pr in enumerate(per_ret)],
                         dtype=np.float64)
        X[:, col] = present
        X[:, col + 1] = z
        X[:, col + 2] = ranks / n
        col += 3
    return X
