"""Cutoff stages and the shared curve math: hand-computed cut positions, clamps, notes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragsel.errors import ConfigError, InputError, StageError
from ragsel.stage import Stage
from ragsel.stages.cutoff._curve import elbow_index, largest_gap_index, top_p_index
from ragsel.stages.cutoff.elbow import ElbowCutoff
from ragsel.stages.cutoff.largest_gap import LargestGapCutoff
from ragsel.stages.cutoff.threshold import ScoreThresholdCutoff
from ragsel.stages.cutoff.top_k import TopKCutoff
from ragsel.stages.cutoff.top_p import TopPCutoff
from ragsel.testing import make_chunks
from ragsel.types import Candidates


def cands(scores, stage="ret"):
    return Candidates.retrieved(
        stage, zip(make_chunks([f"t{i}" for i in range(len(scores))]), scores)
    )


# --- elbow_index: METEORA's rule ----------------------------------------------------------
def test_elbow_cuts_at_gap_with_z_above_one():
    # gaps .03 .36 .02 .01: mean .105, population std .14739 -> z(.36) = 1.730
    cut, info = elbow_index([0.91, 0.88, 0.52, 0.50, 0.49])
    assert cut == 2 and info["method"] == "z_score" and info["elbow"] == 1
    assert info["gap"] == pytest.approx(0.36)
    assert info["z"] == pytest.approx(1.7301, abs=1e-4)


def test_elbow_takes_the_first_standing_out_gap_not_the_largest():
    # gaps 3 .1 .1 3.8 .1 .1 .1: mean 7.3/7 = 1.04286, std 1.50604
    # -> z = 1.2995 for the first gap, 1.8307 for the (larger) fourth
    s = [10, 7, 6.9, 6.8, 3, 2.9, 2.8, 2.7]
    cut, info = elbow_index(s)
    assert cut == 1 and info["z"] == pytest.approx(1.2995, abs=1e-3)
    assert largest_gap_index(s)[0] == 4


def test_elbow_sorts_unsorted_scores():
    assert elbow_index([0.50, 0.91, 0.49, 0.88, 0.52])[0] == 2


@pytest.mark.parametrize("scores,expected", [([], 0), ([0.3], 1), ([0.9, 0.1], 2)])
def test_elbow_keeps_all_with_two_or_fewer(scores, expected):
    cut, info = elbow_index(scores)
    assert cut == expected and info["method"] in ("empty", "too_few")


@pytest.mark.parametrize(
    "scores,expected",
    [
        # three scores: the two gaps z-score to exactly -1 and +1, never > 1 -> second difference
        ([1.0, 0.99, 0.5], 2),  # d - next = [-.48, .49]: the final steep drop is the bend
        ([1.0, 0.5, 0.49], 1),  # [.49, .01]
        # (a straight line has equal gaps and keeps everything: tests/test_scoreless_input.py)
    ],
)
def test_elbow_falls_back_to_largest_second_difference(scores, expected):
    cut, info = elbow_index(scores)
    assert info["method"] == "second_difference"
    assert cut == expected


def test_elbow_threshold_is_configurable():
    s = [0.91, 0.88, 0.52, 0.50, 0.49]
    cut, info = elbow_index(s, z_threshold=2.0)  # 1.73 is no longer enough
    assert info["method"] == "second_difference" and cut == 2  # [-.33, .34, .01, .01]
    assert info["max_z"] == pytest.approx(1.7301, abs=1e-4)


def test_elbow_is_scale_free():
    rng = np.random.default_rng(7)
    for _ in range(50):
        s = np.sort(rng.gamma(1.5, size=int(rng.integers(3, 40))))[::-1]
        a = elbow_index(s)[0]
        assert elbow_index(s * 1000.0 + 5.0)[0] == a
        assert elbow_index(s / 60.0)[0] == a  # RRF-sized scores


def test_non_finite_scores_are_an_input_error():
    with pytest.raises(InputError, match="NaN"):
        elbow_index([0.5, math.nan, 0.1])


# --- ElbowCutoff stage ----------------------------------------------------------------------
def test_elbow_stage_records_where_and_why():
    out = ElbowCutoff().run(candidates=cands([0.91, 0.88, 0.52, 0.50, 0.49]))
    assert out.ids == ["doc#0", "doc#1"]
    note = out.note_of("elbow_cutoff")
    assert note["cut"] == 2 and note["method"] == "z_score"
    assert "z=1.73 > 1" in note["why"] and note["gap"] == pytest.approx(0.36)
    assert [d.id for d in out.dropped] == ["doc#2", "doc#3", "doc#4"]
    assert all(
        d.stage == "elbow_cutoff" and "below the cut after rank 2" in d.reason for d in out.dropped
    )
    assert out.items[0].events[-1].action == "kept"


def test_elbow_stage_clamps_and_says_so():
    s = [0.91, 0.88, 0.52, 0.50, 0.49]
    out = ElbowCutoff(min_k=3).run(candidates=cands(s))
    assert len(out) == 3 and "clamped by min_k from 2 to 3" in out.note_of("elbow_cutoff")["why"]
    out = ElbowCutoff(max_k=1).run(candidates=cands(s))
    assert len(out) == 1 and out.note_of("elbow_cutoff")["rule_cut"] == 2


def test_elbow_stage_on_unsorted_input_cuts_the_score_curve():
    out = ElbowCutoff().run(candidates=cands([0.50, 0.91, 0.49, 0.88, 0.52]))
    assert out.ids == ["doc#1", "doc#3"]
    assert out.note_of("elbow_cutoff")["resorted"] is True


def test_elbow_stage_empty_candidates():
    out = ElbowCutoff().run(candidates=Candidates())
    assert len(out) == 0 and out.note_of("elbow_cutoff")["reason"] == "no candidates to cut"


def test_cutoff_rejects_nan_scores_naming_the_stage():
    with pytest.raises(StageError, match="elbow_cutoff.*NaN") as exc:
        ElbowCutoff().run(candidates=cands([0.9, math.nan, 0.1]))
    assert exc.value.exit_code == 1  # failed while running: exit 1


def test_bad_clamp_config_is_a_config_error():
    with pytest.raises(ConfigError, match="max_k"):
        ElbowCutoff(min_k=5, max_k=2)


# --- other cutoffs --------------------------------------------------------------------------
def test_largest_gap_and_search_window():
    s = [10, 7, 6.9, 6.8, 3, 2.9, 2.8, 2.7]
    out = LargestGapCutoff().run(candidates=cands(s))
    assert len(out) == 4 and out.note_of("largest_gap_cutoff")["gap"] == pytest.approx(3.8)
    out = LargestGapCutoff(search_k=3).run(candidates=cands(s))  # gaps 3, .1, .1 only
    assert len(out) == 1


def test_score_threshold_raw_and_normalised():
    s = [0.9, 0.8, 0.45, 0.2]
    assert len(ScoreThresholdCutoff(threshold=0.5).run(candidates=cands(s))) == 2
    # within 50% of the best: .9 .8 .45 (0.45/0.9 = 0.5 exactly passes)
    assert len(ScoreThresholdCutoff(threshold=0.5, normalize="max").run(candidates=cands(s))) == 3
    # min-max: 1, .857, .357, 0
    assert (
        len(ScoreThresholdCutoff(threshold=0.3, normalize="minmax").run(candidates=cands(s))) == 3
    )


def test_score_threshold_nothing_passes_is_never_silent():
    s = [0.031, 0.030, 0.029]  # RRF-sized scores against a cosine-sized threshold
    out = ScoreThresholdCutoff(threshold=0.5).run(candidates=cands(s))
    note = out.note_of("score_threshold")
    assert len(out) == 1 and "no score reaches 0.5" in note["why"] and "min_k" in note["why"]
    out = ScoreThresholdCutoff(threshold=0.5, min_k=0).run(candidates=cands(s))
    assert len(out) == 0 and out.note_of("score_threshold")["passed"] == 0


def test_top_k():
    out = TopKCutoff(k=2).run(candidates=cands([0.9, 0.8, 0.7]))
    assert out.ids == ["doc#0", "doc#1"]
    assert out.dropped[0].reason == "below the cut after rank 2 of 3 (in the top 2)"
    assert len(TopKCutoff(k=10).run(candidates=cands([0.9, 0.8]))) == 2


@pytest.mark.parametrize(
    "p,temperature,expected",
    [
        (0.6, 1.0, 1),  # softmax(2,1,0) = .665 .245 .090
        (0.9, 1.0, 2),  # cumulative .665 .910
        (0.95, 1.0, 3),
        (0.85, 0.5, 1),  # softmax(4,2,0) = .867 .117 .016
        (0.9, 0.5, 2),
    ],
)
def test_top_p_hand_computed(p, temperature, expected):
    assert top_p_index([2.0, 1.0, 0.0], p, temperature, "none")[0] == expected
    out = TopPCutoff(p=p, temperature=temperature, normalize="none").run(
        candidates=cands([2.0, 1.0, 0.0])
    )
    assert len(out) == expected


def test_top_p_zscore_default_is_scale_free():
    s = np.array([0.9, 0.85, 0.5, 0.4, 0.1])
    a = TopPCutoff(p=0.8).run(candidates=cands(s.tolist()))
    b = TopPCutoff(p=0.8).run(candidates=cands((s / 60).tolist()))
    assert len(a) == len(b) < len(s)


@pytest.mark.parametrize(
    "stage",
    [
        ElbowCutoff(z_threshold=1.5, max_k=8),
        LargestGapCutoff(search_k=3),
        TopKCutoff(k=3),
        ScoreThresholdCutoff(threshold=0.2, normalize="max"),
        TopPCutoff(p=0.7, temperature=0.3),
    ],
)
def test_cutoff_configs_round_trip(stage):
    assert Stage.from_dict(stage.to_dict()) == stage
