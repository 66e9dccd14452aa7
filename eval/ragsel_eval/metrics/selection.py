"""Selection metrics: how good and how much is the evidence a pipeline kept.

A *selection* is the final, unordered set of chunks; gold chunks come from
:func:`ragsel_eval.datasets.gold_chunk_ids` (chunks overlapping a gold span, or chunks of a
relevant document). With no gold chunk among the candidates, precision/recall/F1 are NaN
(unmeasurable, excluded from means); an empty selection against existing gold scores
precision 0 and recall 0 (selecting nothing is a failure, not "no false positives").

>>> s = selection_scores(["a", "b", "c"], {"a", "d"})
>>> round(s["precision"], 3), s["recall"], s["found"]
(0.333, 0.5, 1.0)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

NAN = float("nan")
_WORD = re.compile(r"\S+")


def prf(tp: int, n_selected: int, n_gold: int) -> tuple[float, float, float]:
    if n_gold == 0:
        return NAN, NAN, NAN
    p = tp / n_selected if n_selected else 0.0
    r = tp / n_gold
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def selection_scores(selected: Iterable[str], gold: Iterable[str]) -> dict[str, float]:
    """precision, recall, f1, ``found`` (1 if any gold chunk selected), ``chunks`` selected."""
    sel, g = set(selected), set(gold)
    tp = len(sel & g)
    p, r, f = prf(tp, len(sel), len(g))
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "found": (float(tp > 0) if g else NAN),
        "chunks": float(len(sel)),
        "gold_chunks": float(len(g)),
    }


def count_tokens(texts: Iterable[str], tokenizer: Callable[[str], Sequence] | None = None) -> int:
    """Tokens in ``texts``: whitespace words by default, or ``len(tokenizer(text))``."""
    if tokenizer is None:
        return sum(len(_WORD.findall(t)) for t in texts)
    return sum(len(tokenizer(t)) for t in texts)


def pr_at_k(ranked: Sequence[str], gold: Iterable[str], ks: Sequence[int]) -> dict[int, dict]:
    """Precision/recall/F1 of the fixed-k selection ``ranked[:k]`` for each k (one query).
    ``chunks`` is the number actually selected (less than k when the list is shorter)."""
    g = set(gold)
    ranked = list(dict.fromkeys(ranked))
    out = {}
    for k in ks:
        top = ranked[:k]
        p, r, f = prf(len(g.intersection(top)), len(top), len(g))
        out[k] = {"precision": p, "recall": r, "f1": f, "chunks": float(len(top))}
    return out


def fixed_k_curve(
    rankings: Sequence[Sequence[str]],
    golds: Sequence[Iterable[str]],
    ks: Sequence[int] = tuple(range(1, 21)),
) -> list[dict[str, float]]:
    """The fixed-k baseline curve over queries: for each k the mean precision, recall, F1 and
    chunks per query (NaN queries excluded), so adaptive selections can be placed on it."""
    if len(rankings) != len(golds):
        raise ValueError("rankings and golds must have one entry per query")
    per_q = [pr_at_k(r, g, ks) for r, g in zip(rankings, golds)]
    curve = []
    for k in ks:
        row: dict[str, float] = {"k": float(k)}
        for m in ("precision", "recall", "f1", "chunks"):
            vals = np.array([q[k][m] for q in per_q], dtype=float)
            vals = vals[~np.isnan(vals)]
            row[m] = float(vals.mean()) if vals.size else NAN
        curve.append(row)
    return curve


def chunks_at_recall(curve: Sequence[dict[str, float]], recall: float) -> float:
    """Chunks per query the fixed-k curve needs to reach ``recall`` (linear interpolation
    between neighbouring k; NaN when the curve never reaches it)."""
    pts = [(c["recall"], c["chunks"]) for c in curve if not np.isnan(c["recall"])]
    for (r0, c0), (r1, c1) in zip([(0.0, 0.0)] + pts, pts):
        if r1 >= recall:
            if r1 == r0:
                return c1
            return c0 + (c1 - c0) * (recall - r0) / (r1 - r0)
    return NAN
