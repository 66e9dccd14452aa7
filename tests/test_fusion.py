"""The fusion stage: RRF / relative-score / DBSF by hand, dedup, weights, provenance."""

from __future__ import annotations

import pytest

from ragsel.errors import StageError
from ragsel.pipeline import Pipeline
from ragsel.spec import load_pipeline
from ragsel.stage import Stage
from ragsel.stages.retrieve.fusion import Method, RankFusion
from ragsel.types import Candidates, Chunk

X, Y, Z, W = (Chunk(c, f"text {c}", "d", i) for i, c in enumerate("xyzw"))


def ranked(stage, pairs):
    return Candidates.retrieved(stage, pairs)


@pytest.fixture
def two_lists():
    a = ranked("bm25", [(X, 3.0), (Y, 2.0), (Z, 1.0)])
    b = ranked("dense", [(Y, 0.9), (W, 0.5)])
    return a, b


def test_rrf_hand_computed(two_lists):
    out = RankFusion(k=60).run(candidates=list(two_lists))
    expected = {"y": 1 / 62 + 1 / 61, "x": 1 / 61, "w": 1 / 62, "z": 1 / 63}
    assert out.ids == ["y", "x", "w", "z"]
    assert out.scores == pytest.approx([expected[i] for i in out.ids])
    fused = out.items[0].events[-1]
    assert fused.action == "fused" and fused.data["ranks"] == {"bm25": 2, "dense": 1}
    assert fused.reason == "rrf: bm25 rank 2, dense rank 1"


def test_rrf_k_and_list_weights_follow_input_order(two_lists):
    out = RankFusion(k=0, weights=[2.0, 1.0]).run(candidates=list(two_lists))
    # bm25 (first input) doubled: x = 2/1, y = 2/2 + 1/1, z = 2/3, w = 1/2
    assert dict(zip(out.ids, out.scores)) == pytest.approx(
        {"x": 2.0, "y": 2.0, "z": 2 / 3, "w": 0.5}
    )
    assert out.ids[:2] == ["x", "y"]  # tie broken by best rank (x: rank 1 in bm25)


def test_weights_by_upstream_name(two_lists):
    out = RankFusion(weights={"dense": 3.0}).run(candidates=list(two_lists))
    scores = dict(zip(out.ids, out.scores))
    assert scores["w"] == pytest.approx(3 / 62) and scores["x"] == pytest.approx(1 / 61)
    note = out.note_of("fusion")
    assert [(i["stage"], i["weight"]) for i in note["inputs"]] == [("bm25", 1.0), ("dense", 3.0)]


def test_bad_weights_are_config_errors(two_lists):
    with pytest.raises(StageError, match="3 weights for 2 inputs") as exc:
        RankFusion(weights=[1, 1, 1]).run(candidates=list(two_lists))
    assert exc.value.exit_code == 1  # a run-time failure
    with pytest.raises(StageError, match="weights name \\['sparse'\\]"):
        RankFusion(weights={"sparse": 2.0}).run(candidates=list(two_lists))
    with pytest.raises(Exception, match="weights must be >= 0"):
        RankFusion(weights=[-1.0, 1.0])


def test_duplicates_count_once_per_input():
    a = ranked("multi", [(X, 0.9), (Y, 0.8), (X, 0.7)])  # x twice in one list
    b = ranked("other", [(Z, 0.9)])
    out = RankFusion(k=60).run(candidates=[a, b])
    scores = dict(zip(out.ids, out.scores))
    assert scores["x"] == pytest.approx(1 / 61)  # not 1/61 + 1/63
    assert scores["y"] == pytest.approx(1 / 62)  # y keeps rank 2 (unique rank)
    assert out.ids.count("x") == 1


def test_relative_score_fusion(two_lists):
    out = RankFusion(method="relative_score").run(candidates=list(two_lists))
    # bm25 3,2,1 -> 1, .5, 0; dense .9,.5 -> 1, 0
    assert dict(zip(out.ids, out.scores)) == pytest.approx({"y": 1.5, "x": 1.0, "z": 0.0, "w": 0.0})
    assert out.ids[:2] == ["y", "x"]


def test_distribution_based_score_fusion(two_lists):
    out = RankFusion(method="dbsf").run(candidates=list(two_lists))
    sd = (2 / 3) ** 0.5  # bm25: mean 2, population std .8165, range 2 ± 3 sd
    bm = {c: (s - (2 - 3 * sd)) / (6 * sd) for c, s in (("x", 3), ("y", 2), ("z", 1))}
    # dense: mean .7, std .2 -> (.9 - .1) / 1.2, (.5 - .1) / 1.2
    expected = {"x": bm["x"], "y": bm["y"] + 0.8 / 1.2, "z": bm["z"], "w": 0.4 / 1.2}
    assert dict(zip(out.ids, out.scores)) == pytest.approx(expected)


def test_provenance_is_merged(two_lists):
    a, b = two_lists
    a2 = a.derive("cut", a.items[:2], note={"cut": 2})  # z dropped upstream by "cut"
    out = RankFusion().run(candidates=[a2, b])
    y = next(sc for sc in out if sc.id == "y")
    assert [(e.stage, e.action) for e in y.events] == [
        ("bm25", "retrieved"),
        ("dense", "retrieved"),
        ("fusion", "fused"),
    ]
    assert [d.id for d in out.dropped] == ["z"] and out.dropped[0].stage == "cut"
    assert [n.stage for n in out.notes] == ["cut", "fusion"]


def test_top_k_drops_with_reason(two_lists):
    out = RankFusion(top_k=2).run(candidates=list(two_lists))
    assert out.ids == ["y", "x"]
    assert {d.id: d.reason for d in out.dropped} == {
        "w": "fused rank below top_k=2",
        "z": "fused rank below top_k=2",
    }


def test_empty_inputs():
    out = RankFusion().run(candidates=[Candidates(), Candidates()])
    assert len(out) == 0 and out.note_of("fusion")["empty"]
    out = RankFusion(weights={"dense": 2.0}).run(
        candidates=[Candidates(), ranked("dense", [(X, 1.0)])]
    )
    assert out.ids == ["x"] and out.scores[0] == pytest.approx(2 / 61)


def test_an_empty_list_is_named_by_the_retriever_that_noted_why_it_is_empty():
    from ragsel.types import StageNote

    empty_bm25 = Candidates(notes=(StageNote("bm25", {"empty_reason": "no query term"}),))
    out = RankFusion().run(candidates=[empty_bm25, ranked("dense", [(X, 1.0)])])
    assert [i["stage"] for i in out.note_of("fusion")["inputs"]] == ["bm25", "dense"]


def test_fusion_in_a_yaml_graph_feeds_inputs_by_upstream_name(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("""
version: 1
stages:
  zeta:  {type: fake_retriever, texts: ["alpha beta", "gamma"], doc_id: z}
  alpha: {type: fake_retriever, texts: ["alpha", "beta gamma"], doc_id: a}
  fuse:  {type: fusion, method: rrf, k: 1, weights: [3.0, 1.0]}
connections:
  - zeta -> fuse.candidates
  - alpha -> fuse.candidates
""")
    pipe = load_pipeline(f)
    out = pipe.run("alpha").selection
    # inputs arrive sorted by upstream name: alpha (weight 3) before zeta (weight 1)
    assert out.chunks[0].chunk.id == "a#0"
    assert out.chunks[0].score == pytest.approx(3 / 2)
    inputs = [i["stage"] for i in out.notes[-1].data["inputs"]]
    assert inputs == ["alpha", "zeta"]


def test_round_trip_and_linear_wiring():
    s = RankFusion(method="dbsf", k=10, weights={"bm25": 2.0}, top_k=50)
    assert Stage.from_dict(s.to_dict()) == s
    p = Pipeline()
    p.add("fuse", RankFusion())
    assert "candidates" in p.stages["fuse"].input_specs()
    assert p.stages["fuse"].input_specs()["candidates"].variadic


def test_score_fusion_rejects_non_finite_scores_but_rrf_does_not_care():
    a = ranked("bm25", [(X, float("nan")), (Y, 1.0)])
    b = ranked("dense", [(Y, 0.9)])
    with pytest.raises(StageError, match="'bm25' has NaN/inf scores") as exc:
        RankFusion(method="dbsf").run(candidates=[a, b])
    assert exc.value.exit_code == 1
    assert RankFusion().run(candidates=[a, b]).ids == ["y", "x"]


def test_rrf_stage_matches_the_reference_function_on_random_lists():
    """The stage ranks and scores exactly like reciprocal_rank_fusion over each list with its
    duplicates removed (a duplicate does not push later chunks down), ties included."""
    import random

    from ragsel.stages.retrieve._rank_fusion import reciprocal_rank_fusion

    rng = random.Random(7)
    pool = [Chunk(f"c{i}", f"text {i}", "d", i) for i in range(30)]
    for trial in range(50):
        lists = [[rng.choice(pool) for _ in range(rng.randint(0, 25))] for _ in range(3)]
        weights = [rng.choice([0.5, 1.0, 1.5]) for _ in lists]
        k = rng.choice([0, 1, 5, 60])
        cands = [ranked(f"r{i}", [(c, 1.0) for c in lst]) for i, lst in enumerate(lists)]
        out = RankFusion(k=k, weights=weights).run(candidates=cands)
        deduped = [list(dict.fromkeys(c.id for c in lst)) for lst in lists]
        ref = reciprocal_rank_fusion(deduped, k=k, weights=weights)
        assert out.ids == [cid for cid, _ in ref], trial
        assert out.scores == pytest.approx([s for _, s in ref])


# --- an empty input list changes nothing (issue 14) -------------------------------------------
import typing  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CHUNKS = [Chunk(f"c{i}", f"text {i}", "d", i) for i in range(8)]


@st.composite
def fusion_case(draw):
    """Non-empty ranked lists from distinct upstream stages, the positions where empty lists
    are inserted, a method and a weighting (none, a list, a mapping naming every upstream)."""
    n = draw(st.integers(1, 3))
    names = [f"s{i}" for i in range(n)]
    lists = []
    for name in names:
        ids = draw(st.lists(st.sampled_from(range(8)), min_size=1, max_size=6))
        scores = draw(st.lists(st.floats(-5, 5), min_size=len(ids), max_size=len(ids)))
        lists.append(ranked(name, [(CHUNKS[i], s) for i, s in zip(ids, scores)]))
    empties = draw(st.lists(st.integers(0, n), min_size=1, max_size=2))
    method = draw(st.sampled_from(typing.get_args(Method)))  # every method, new ones too
    weighting = draw(st.sampled_from(["none", "list", "map"]))
    weights = [draw(st.floats(0, 3)) for _ in range(n + len(empties))]
    return names, lists, sorted(empties), method, weighting, weights


@settings(max_examples=150, deadline=None)
@given(fusion_case())
def test_fusing_an_empty_list_equals_fusing_without_it(case):
    names, lists, empties, method, weighting, weights = case
    with_empty: list = list(lists)
    is_empty = [False] * len(lists)
    for pos in reversed(empties):
        with_empty.insert(pos, Candidates())
        is_empty.insert(pos, True)
    if weighting == "none":
        w_with = w_without = None
    elif weighting == "list":
        w_with = weights
        w_without = [w for w, e in zip(weights, is_empty) if not e]
    else:  # the empty lists' upstream names are in the mapping too (e.g. bm25 found nothing)
        w_without = dict(zip(names, weights))
        w_with = {**w_without, **{f"empty{i}": 2.0 for i in range(len(empties))}}
    if method == "calibrated":  # learned coefficients instead of weights
        cal = {n: {"z": w, "log_rank": -w / 2, "present": w} for n, w in zip(names, weights)}
        a = RankFusion(method=method, calibration=cal).run(candidates=with_empty)
        b = RankFusion(method=method, calibration=cal).run(candidates=lists)
    else:
        a = RankFusion(method=method, k=5, weights=w_with).run(candidates=with_empty)
        b = RankFusion(method=method, k=5, weights=w_without).run(candidates=lists)
    assert a.ids == b.ids
    assert a.scores == pytest.approx(b.scores)
    assert [it.events for it in a.items] == [it.events for it in b.items]


def test_default_pipeline_answers_a_query_bm25_cannot_match(tmp_path):
    """local.yaml's fusion weights name bm25; a query with no BM25 hit used to fail."""
    a = Candidates()  # bm25: no term of the query is in the corpus
    b = ranked("dense", [(X, 0.4), (Y, 0.3)])
    out = RankFusion(k=5, weights={"bm25": 1.5, "dense": 1.0}).run(candidates=[a, b])
    assert out.ids == ["x", "y"] and out.scores == pytest.approx([1 / 6, 1 / 7])
    # a name that matches no input is still an error when no input is empty
    with pytest.raises(StageError, match="weights name \\['bm25s'\\]"):
        RankFusion(weights={"bm25s": 1.5}).run(candidates=[b, ranked("bm25", [(Z, 1.0)])])
