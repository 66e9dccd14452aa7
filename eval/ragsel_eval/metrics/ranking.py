"""Ranking metrics over one ranked list and graded qrels, as pytrec_eval/BEIR define them.

- nDCG@k: DCG = sum over ranks i=1..k of ``rel_i / log2(i + 1)`` (gain = the grade, as
  ``pytrec_eval``'s ``ndcg_cut``), divided by the DCG of the ideal ordering of the qrels.
- Recall@k: relevant documents (grade >= ``min_grade``) in the top k / all relevant.
- Precision@k: relevant in the top k / k.
- MRR@k: 1 / rank of the first relevant document within k (0 when none).
- AP / MAP(@k): mean of precision@i over the ranks i (<= k) holding a relevant document,
  divided by the number of relevant documents (``pytrec_eval``'s ``map_cut``).

``binary=True`` turns graded qrels into 0/1 (grade >= ``min_grade``) before nDCG.
A query with no relevant documents gives NaN ("unmeasurable"), never 0: aggregate with
:func:`ragsel_eval.metrics.stats.nanmean`.

>>> round(ndcg_at_k(["a", "b", "c"], {"b": 1}, 10), 4)
0.6309
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

NAN = float("nan")


def _rel(qrels: Mapping[str, int], min_grade: int) -> set[str]:
    return {d for d, g in qrels.items() if g >= min_grade}


def dedupe(ranked: Iterable[str]) -> list[str]:
    """Drop repeated ids, keeping the first (best) occurrence."""
    return list(dict.fromkeys(ranked))


def doc_ranking(chunk_doc_ids: Iterable[str]) -> list[str]:
    """Document ranking from a ranked chunk list (a document ranks where its best chunk does)."""
    return dedupe(chunk_doc_ids)


def dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(
    ranked: Sequence[str],
    qrels: Mapping[str, int],
    k: int,
    *,
    binary: bool = False,
    min_grade: int = 1,
) -> float:
    ranked = dedupe(ranked)
    grades = {d: (1 if g >= min_grade else 0) if binary else max(g, 0) for d, g in qrels.items()}
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return NAN
    return dcg([grades.get(d, 0) for d in ranked[:k]]) / dcg(ideal)


def recall_at_k(
    ranked: Sequence[str], qrels: Mapping[str, int], k: int, *, min_grade: int = 1
) -> float:
    rel = _rel(qrels, min_grade)
    if not rel:
        return NAN
    return len(rel.intersection(dedupe(ranked)[:k])) / len(rel)


def precision_at_k(
    ranked: Sequence[str], qrels: Mapping[str, int], k: int, *, min_grade: int = 1
) -> float:
    rel = _rel(qrels, min_grade)
    if not rel:
        return NAN
    return len(rel.intersection(dedupe(ranked)[:k])) / k


def mrr_at_k(
    ranked: Sequence[str], qrels: Mapping[str, int], k: int, *, min_grade: int = 1
) -> float:
    rel = _rel(qrels, min_grade)
    if not rel:
        return NAN
    for i, d in enumerate(dedupe(ranked)[:k], 1):
        if d in rel:
            return 1.0 / i
    return 0.0


def average_precision(
    ranked: Sequence[str], qrels: Mapping[str, int], k: int | None = None, *, min_grade: int = 1
) -> float:
    rel = _rel(qrels, min_grade)
    if not rel:
        return NAN
    hits, total = 0, 0.0
    for i, d in enumerate(dedupe(ranked)[: k or None], 1):
        if d in rel:
            hits += 1
            total += hits / i
    return total / len(rel)


def ranking_metrics(
    ranked: Sequence[str],
    qrels: Mapping[str, int],
    ks: Sequence[int] = (1, 5, 10, 100),
    *,
    binary: bool = False,
    min_grade: int = 1,
) -> dict[str, float]:
    """All ranking metrics for one query: ``ndcg@k, recall@k, precision@k, mrr@k, map@k``
    for each k, plus ``map`` (uncut)."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(ranked, qrels, k, binary=binary, min_grade=min_grade)
        out[f"recall@{k}"] = recall_at_k(ranked, qrels, k, min_grade=min_grade)
        out[f"precision@{k}"] = precision_at_k(ranked, qrels, k, min_grade=min_grade)
        out[f"mrr@{k}"] = mrr_at_k(ranked, qrels, k, min_grade=min_grade)
        out[f"map@{k}"] = average_precision(ranked, qrels, k, min_grade=min_grade)
    out["map"] = average_precision(ranked, qrels, None, min_grade=min_grade)
    return out


def evaluate_run(
    run: Mapping[str, Sequence[str] | Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int] = (1, 5, 10, 100),
    **kw,
) -> dict[str, dict[str, float]]:
    """Per-query metrics for a whole run (``{qid: ranked ids}`` or ``{qid: {id: score}}``,
    scores sorted descending with ties broken by id, as pytrec_eval does). Queries in
    ``qrels`` missing from ``run`` count as empty rankings."""
    out = {}
    for qid, rels in qrels.items():
        r = run.get(qid, [])
        if isinstance(r, Mapping):
            r = [d for d, _ in sorted(r.items(), key=lambda x: (-x[1], x[0]))]
        out[qid] = ranking_metrics(list(r), rels, ks, **kw)
    return out
