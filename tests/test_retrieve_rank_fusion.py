"""The RRF helper shared by retrievers and the fusion stage."""

from __future__ import annotations

import pytest

from ragsel.stages.retrieve._rank_fusion import rank_map, reciprocal_rank_fusion


def test_rrf_scores_and_order():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert [k for k, _ in fused] == ["a", "c", "b"]


def test_duplicates_in_one_list_count_once():
    fused = dict(reciprocal_rank_fusion([["a", "a", "b"]], k=0))
    assert fused == {"a": 1.0, "b": pytest.approx(1 / 3)}


def test_weights_and_ties_are_deterministic():
    assert [k for k, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert [k for k, _ in reciprocal_rank_fusion([["x"], ["y"]], weights=[1, 2])] == ["y", "x"]
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["x"]], weights=[1, 2])
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([["x"]], k=-1)


def test_rank_map():
    assert rank_map(["a", "b", "a"]) == {"a": 1, "b": 2}


def test_ties_go_to_the_better_best_rank_then_the_earlier_list():
    # k=0: x = 1/1, a = 1/2 + 1/2, b = 1/1 -- all tied at 1.0
    fused = reciprocal_rank_fusion([["x", "a"], ["b", "a"]], k=0)
    assert [key for key, _ in fused] == ["x", "b", "a"]
