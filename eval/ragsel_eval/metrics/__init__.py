"""Metrics: ranking (nDCG/Recall/MRR/MAP), selection (chunk P/R/F1, chunks and tokens per
query, fixed-k curves), robustness (poison detection, gold retention, attack success), answers
(EM / token F1), and statistics (bootstrap CIs, paired tests). Every metric returns NaN when it
cannot be measured for a query; aggregate with :func:`summarize` / :func:`nanmean`."""

from ragsel_eval.metrics.answers import contains_answer, exact_match, normalize_answer, token_f1
from ragsel_eval.metrics.ranking import (
    average_precision,
    dcg,
    dedupe,
    doc_ranking,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from ragsel_eval.metrics.robustness import (
    attack_success,
    detection_scores,
    gold_retention,
    micro_detection,
)
from ragsel_eval.metrics.selection import (
    chunks_at_recall,
    count_tokens,
    fixed_k_curve,
    pr_at_k,
    prf,
    selection_scores,
)
from ragsel_eval.metrics.stats import PairedTest, bootstrap_ci, nanmean, paired_test, summarize

__all__ = [
    "PairedTest",
    "attack_success",
    "average_precision",
    "bootstrap_ci",
    "chunks_at_recall",
    "contains_answer",
    "count_tokens",
    "dcg",
    "dedupe",
    "detection_scores",
    "doc_ranking",
    "evaluate_run",
    "exact_match",
    "fixed_k_curve",
    "gold_retention",
    "micro_detection",
    "mrr_at_k",
    "nanmean",
    "ndcg_at_k",
    "normalize_answer",
    "paired_test",
    "pr_at_k",
    "precision_at_k",
    "prf",
    "ranking_metrics",
    "recall_at_k",
    "selection_scores",
    "summarize",
    "token_f1",
]
