"""Metrics against values computed by hand (and nDCG against scikit-learn's independent
implementation of the same definition: gain = grade, log2 discount)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ragsel_eval.metrics import (
    attack_success,
    average_precision,
    bootstrap_ci,
    chunks_at_recall,
    count_tokens,
    detection_scores,
    doc_ranking,
    evaluate_run,
    exact_match,
    fixed_k_curve,
    gold_retention,
    micro_detection,
    mrr_at_k,
    nanmean,
    ndcg_at_k,
    paired_test,
    pr_at_k,
    precision_at_k,
    recall_at_k,
    selection_scores,
    summarize,
    token_f1,
)

RANKED = ["d1", "d2", "d3", "d4"]
QRELS = {"d2": 2, "d3": 1, "d5": 1, "d9": 0}


def test_ndcg_hand_computed_graded():
    # DCG@3 = 0 + 2/log2(3) + 1/log2(4); IDCG@3 = 2 + 1/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 0.5
    idcg = 2 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(RANKED, QRELS, 3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKED, QRELS, 3) == pytest.approx(0.562727, abs=1e-6)
    # binary: every relevant doc has gain 1
    assert ndcg_at_k(RANKED, QRELS, 3, binary=True) == pytest.approx(
        (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    )
    assert ndcg_at_k(["d2", "d3", "d5"], QRELS, 3) == pytest.approx(1.0)
    assert math.isnan(ndcg_at_k(RANKED, {"x": 0}, 10))


def test_ndcg_matches_sklearn_definition():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        grades = rng.integers(0, 3, size=12)
        if grades.sum() == 0:
            continue
        scores = rng.random(12)
        ids = [f"d{i}" for i in range(12)]
        ranked = [ids[i] for i in np.argsort(-scores)]
        qrels = {ids[i]: int(g) for i, g in enumerate(grades)}
        ref = ndcg_score([grades], [scores], k=10)
        assert ndcg_at_k(ranked, qrels, 10) == pytest.approx(ref, abs=1e-9)


def test_recall_precision_mrr_map_hand_computed():
    assert recall_at_k(RANKED, QRELS, 3) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, QRELS, 1) == 0.0
    assert precision_at_k(RANKED, QRELS, 2) == 0.5
    assert mrr_at_k(RANKED, QRELS, 10) == 0.5 and mrr_at_k(RANKED, QRELS, 1) == 0.0
    # hits at ranks 2 and 3 -> (1/2 + 2/3) / 3 relevant
    assert average_precision(RANKED, QRELS) == pytest.approx((0.5 + 2 / 3) / 3)
    assert average_precision(RANKED, QRELS, 2) == pytest.approx(0.5 / 3)
    # min_grade=2: only d2 relevant
    assert recall_at_k(RANKED, QRELS, 2, min_grade=2) == 1.0


def test_duplicates_and_doc_ranking():
    assert doc_ranking(["a", "a", "b", "a", "c"]) == ["a", "b", "c"]
    # a repeated relevant id must not count twice
    assert recall_at_k(["d2", "d2", "d2"], QRELS, 3) == pytest.approx(1 / 3)


def test_evaluate_run_with_scores_and_missing_query():
    run = {"q1": {"d3": 0.2, "d2": 0.9, "d1": 0.5}}
    out = evaluate_run(run, {"q1": QRELS, "q2": {"d1": 1}}, ks=(3,))
    assert out["q1"]["recall@3"] == pytest.approx(2 / 3) and out["q1"]["mrr@3"] == 1.0
    assert out["q2"]["ndcg@3"] == 0.0


def test_selection_scores_edge_cases():
    s = selection_scores(["a", "b", "c", "d"], {"a", "b", "x"})
    assert (s["precision"], s["recall"]) == (0.5, pytest.approx(2 / 3))
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)) and s["found"] == 1.0
    empty = selection_scores([], {"a"})
    assert (empty["precision"], empty["recall"], empty["f1"], empty["found"]) == (0, 0, 0, 0)
    nogold = selection_scores(["a"], set())
    assert math.isnan(nogold["precision"]) and math.isnan(nogold["found"])
    assert count_tokens(["a b  c", "d\ne"]) == 5
    assert count_tokens(["abc"], tokenizer=list) == 3


def test_fixed_k_curve_and_chunks_at_recall():
    rankings = [["g", "x", "y"], ["x", "g", "h"]]
    golds = [{"g"}, {"g", "h"}]
    pk = pr_at_k(rankings[1], golds[1], [1, 2, 3])
    assert pk[2]["precision"] == 0.5 and pk[3]["recall"] == 1.0
    curve = fixed_k_curve(rankings, golds, ks=[1, 2, 3])
    # k=1: recalls 1 and 0 -> 0.5; k=2: 1 and 0.5 -> 0.75; k=3: 1 and 1
    assert [c["recall"] for c in curve] == [0.5, 0.75, 1.0]
    assert [c["precision"] for c in curve] == pytest.approx([0.5, 0.5, 0.5])
    assert chunks_at_recall(curve, 0.875) == pytest.approx(2.5)
    assert chunks_at_recall(curve, 0.25) == pytest.approx(0.5)
    assert math.isnan(chunks_at_recall(curve[:1], 0.9))


def test_robustness_metrics():
    d = detection_scores({"p1", "p2", "c1"}, {"p1", "p2", "p3", "p4"})
    assert d["precision"] == pytest.approx(2 / 3) and d["recall"] == 0.5
    assert detection_scores({"p1"}, {"p1", "p9"}, available={"p1", "c"})["recall"] == 1.0
    assert detection_scores({"c"}, set())["precision"] == 0.0
    assert gold_retention({"g1", "p1"}, {"g1", "g2"}) == 0.5
    assert math.isnan(gold_retention({"a"}, set()))
    a = attack_success({"g1", "p1", "p2"}, {"p1", "p2", "p3"}, {"g1"})
    assert a == {"attack_success": 1.0, "attack_majority": 1.0, "poisoned_in_context": 2.0}
    assert attack_success({"g1", "p1"}, {"p1"}, {"g1"})["attack_majority"] == 0.0
    micro = micro_detection([d, detection_scores({"p5"}, {"p5"})])
    assert micro["precision"] == pytest.approx(3 / 4) and micro["recall"] == pytest.approx(3 / 5)


def test_answer_metrics_squad_normalisation():
    assert exact_match("The  Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert exact_match("Tower", ["eiffel tower"]) == 0.0
    # pred tokens {eiffel, tower, paris}, gold {eiffel, tower}: P 2/3, R 1
    assert token_f1("Eiffel Tower, Paris", ["the Eiffel Tower"]) == pytest.approx(0.8)
    assert token_f1("x", ["y", "x"]) == 1.0
    assert math.isnan(token_f1("x", []))


def test_nan_is_unmeasured_not_zero():
    s = summarize([1.0, float("nan"), 0.5, None])
    assert s["mean"] == 0.75 and s["n"] == 2 and s["unmeasured"] == 2
    assert math.isnan(nanmean([float("nan")]))


def test_bootstrap_ci_properties():
    vals = np.r_[np.ones(50), np.zeros(50)]
    lo, hi = bootstrap_ci(vals, seed=1)
    assert lo < 0.5 < hi and hi - lo < 0.25
    assert bootstrap_ci(vals, seed=1) == (lo, hi)  # seeded: reproducible
    assert bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))


@pytest.mark.parametrize("method", ["randomization", "bootstrap"])
def test_paired_test_detects_real_difference_only(method):
    rng = np.random.default_rng(0)
    a = rng.random(80)
    better = paired_test(a, a + 0.1 + rng.normal(0, 0.02, 80), method=method)
    assert better.diff == pytest.approx(0.1, abs=0.01) and better.p_value < 0.01
    assert better.ci_low > 0
    same = paired_test(a, a[::-1].copy(), method=method)
    assert same.p_value > 0.05
    nan_b = a.copy()
    nan_b[:10] = np.nan
    assert paired_test(a, nan_b, method=method).n == 70
