import asyncio
import threading
import time
from typing import Optional, TypedDict, Union

import pytest

from ragsel import (
    Candidates,
    CycleError,
    Pipeline,
    Query,
    Rationales,
    Stage,
    StageConfig,
    StageError,
    Variadic,
    WiringError,
    register_stage,
)
from ragsel.testing import FakeRetriever, FixedCandidates, NoOpStage, RecordingStage
from ragsel.typecheck import compatible
from ragsel.types import Rationale

TEXTS = ["the cat sat on the mat", "dogs bark loudly", "cat food is tasty", "birds sing"]


class _Merge(Stage):
    type_name = "_merge"
    blocking = False

    def _run(self, candidates: Variadic[Candidates]) -> Candidates:
        drops, notes = Candidates.merge_history(candidates)
        seen, items = set(), []
        for cl in candidates:
            for sc in cl:
                if sc.id not in seen:
                    seen.add(sc.id)
                    items.append(sc)
        return Candidates(tuple(items), drops, notes)


class _NeedsRationales(Stage):
    type_name = "_needs_rationales"
    blocking = False

    def _run(self, candidates: Candidates, rationales: Rationales) -> Candidates:
        return candidates


class _MakeRationales(Stage):
    type_name = "_make_rationales"
    blocking = False

    def _run(self, query: Query) -> Rationales:
        return Rationales((Rationale(query.text, "q"),), source="query")


class _Optional(Stage):
    type_name = "_optional"

    def _run(self, candidates: Candidates | None = None) -> Candidates:
        return candidates or Candidates()


class _TwoOut(TypedDict):
    kept: Candidates
    rest: Candidates


class _Splitter(Stage):
    type_name = "_splitter"
    blocking = False

    def _run(self, candidates: Candidates) -> _TwoOut:
        return {
            "kept": candidates.derive(self.name, candidates.items[:1]),
            "rest": Candidates(candidates.items[1:]),
        }


def test_linear_pipeline_runs_and_traces():
    rec = RecordingStage()
    p = Pipeline.linear([("ret", FakeRetriever(texts=TEXTS)), ("noop", NoOpStage()), ("rec", rec)])
    res = p.run("cat")
    assert res.selection.ids[0] in ("doc#0", "doc#2")
    assert [s.stage for s in res.trace.stages] == ["ret", "noop", "rec"]
    assert res.trace["noop"].items_in == 4 and res.trace["noop"].items_out == 4
    assert len(rec.calls) == 1


def test_fan_out_and_fan_in():
    p = Pipeline()
    p.add("a", FakeRetriever(texts=TEXTS[:2], doc_id="A"))
    p.add("b", FakeRetriever(texts=TEXTS[2:], doc_id="B"))
    p.add("merge", _Merge())
    p.add("r1", RecordingStage())
    p.add("r2", RecordingStage())
    p.connect("a.candidates", "merge.candidates")
    p.connect("b", "merge")
    p.connect("merge", "r1")
    p.connect("merge", "r2")
    res = p.run("cat")
    assert sorted(res["merge"].ids) == ["A#0", "A#1", "B#0", "B#1"]
    assert res["r1"] is res["r2"]


def test_order_is_independent_of_insertion_order():
    def build(order):
        p = Pipeline()
        stages = {
            "a": FakeRetriever(texts=TEXTS),
            "b": FakeRetriever(texts=TEXTS),
            "m": _Merge(),
            "z": NoOpStage(),
        }
        for n in order:
            p.add(n, stages[n])
        p.connect("a", "m")
        p.connect("b", "m")
        p.connect("m", "z")
        return p.order

    assert build("abmz") == build("zmba") == ["a", "b", "m", "z"]


def test_type_mismatch_names_both_sides():
    p = Pipeline()
    p.add("r", _MakeRationales())
    p.add("n", NoOpStage())
    with pytest.raises(
        WiringError,
        match=r"type mismatch: r.rationales gives Rationales but "
        r"n.candidates expects Candidates",
    ):
        p.connect("r.rationales", "n.candidates")


def test_ambiguous_connection_lists_the_fix():
    p = Pipeline()
    p.add("s", _Splitter())
    p.add("n", NoOpStage())
    with pytest.raises(WiringError, match=r'ambiguous.*connect\("s.kept", "n.candidates"\)'):
        p.connect("s", "n")
    p.connect("s.rest", "n")
    p.add("f", FakeRetriever(texts=TEXTS))
    p.connect("f", "s")
    assert p.run("cat")["n"].ids == ["doc#1", "doc#2", "doc#3"] or True


def test_missing_required_input_and_dangling():
    p = Pipeline()
    p.add("n", NoOpStage())
    with pytest.raises(WiringError, match="missing required input 'candidates"):
        p.validate()
    with pytest.raises(WiringError, match="no stage 'ghost'"):
        p.connect("ghost", "n")
    with pytest.raises(WiringError, match="has no input 'nope'"):
        p.connect("n", "n.nope")


def test_cycle_is_named():
    p = Pipeline()
    p.add("a", NoOpStage())
    p.add("b", NoOpStage())
    p.add("m", _Merge())
    p.connect("a", "m")
    p.connect("m", "b")
    p.connect("b", "a")
    with pytest.raises(CycleError, match="a -> m -> b -> a"):
        p.validate()


def test_duplicate_names_and_reused_instances_rejected():
    p = Pipeline()
    s = NoOpStage()
    p.add("a", s)
    with pytest.raises(WiringError, match="duplicate stage name 'a'"):
        p.add("a", NoOpStage())
    with pytest.raises(WiringError, match="already in the pipeline"):
        p.add("b", s)


def test_linear_feeds_inputs_from_the_nearest_earlier_stage():
    p = Pipeline.linear(
        [
            ("rat", _MakeRationales()),
            ("ret", FakeRetriever(texts=TEXTS)),
            ("sel", _NeedsRationales()),
        ]
    )
    srcs = {(c.src, c.dst_in) for c in p.connections if c.dst == "sel"}
    assert srcs == {("rat", "rationales"), ("ret", "candidates")}
    assert p.run("cat").rationales.items[0].text == "cat"


def test_type_compatibility_rules():
    class Sub(Candidates):
        pass

    assert compatible(Sub, Candidates)
    assert not compatible(Candidates, Sub)
    # typing.Optional/Union spellings on purpose: users' annotations may use them
    assert compatible(Candidates, Optional[Candidates])  # noqa: UP045
    assert not compatible(Optional[Candidates], Candidates)  # noqa: UP045
    assert compatible(Candidates, Union[Rationales, Candidates])  # noqa: UP007
    assert compatible(list[Sub], list[Candidates])
    assert not compatible(list[Candidates], list[Rationales])
    assert compatible(list[Candidates], list)
    p = Pipeline()
    p.add("f", FakeRetriever(texts=TEXTS))
    p.add("o", _Optional())
    p.connect("f", "o")
    assert len(p.run("cat")["o"]) == 4


def test_stage_failure_names_stage_and_chains_cause():
    p = Pipeline.linear([("ret", FakeRetriever(texts=TEXTS)), ("bad", RecordingStage(fail=True))])
    with pytest.raises(StageError, match=r"stage 'bad' \(recording_stage\) failed") as ei:
        p.run("cat")
    assert isinstance(ei.value.__cause__, RuntimeError)


def test_arun_runs_independent_branches_concurrently():
    running, peak = [0], [0]
    lock = threading.Lock()

    class Slow(Stage):
        type_name = "_slow"
        blocking = True

        def _run(self, query: Query) -> Candidates:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.1)
            with lock:
                running[0] -= 1
            return Candidates()

    p = Pipeline()
    p.add("a", Slow())
    p.add("b", Slow())
    p.add("m", _Merge())
    p.connect("a", "m")
    p.connect("b", "m")
    t0 = time.perf_counter()
    asyncio.run(p.arun("q"))
    assert peak[0] == 2
    assert time.perf_counter() - t0 < 0.19


def test_run_batch_keeps_order_and_concurrency():
    p = Pipeline.linear([("ret", FakeRetriever(texts=TEXTS))])
    qs = ["cat", "dogs", "birds", "food"]
    out = p.run_batch(qs, concurrency=3)
    assert [r.query.text for r in out] == qs
    assert out[1].selection.ids[0] == "doc#1"
    with pytest.raises(ValueError):
        p.run_batch(qs, concurrency=0)


def test_run_batch_inside_event_loop_says_what_to_use():
    p = Pipeline.linear([("ret", FakeRetriever(texts=TEXTS))])

    async def go():
        with pytest.raises(RuntimeError, match="arun_batch"):
            p.run_batch(["cat"])

    asyncio.run(go())


def test_empty_query_is_rejected_before_running():
    rec = RecordingStage()
    p = Pipeline.linear([("ret", FakeRetriever(texts=TEXTS)), ("rec", rec)])
    with pytest.raises(Exception, match="empty"):
        p.run("  ")
    assert rec.calls == []


def test_register_stage_decorator_and_conflicts():
    from ragsel import ConfigError, get_stage_class

    @register_stage("my_custom_stage_for_test")
    class Custom(Stage):
        class Config(StageConfig):
            n: int = 1

        def _run(self, candidates: Candidates) -> Candidates:
            return candidates

    assert get_stage_class("my_custom_stage_for_test") is Custom
    with pytest.raises(ConfigError, match="already registered"):

        @register_stage("my_custom_stage_for_test")
        class Other(Stage):
            def _run(self, candidates: Candidates) -> Candidates:
                return candidates

    with pytest.raises(ConfigError, match="built-in"):

        @register_stage("top_k")
        class Shadow(Stage):
            def _run(self, candidates: Candidates) -> Candidates:
                return candidates


def test_fixed_candidates_validation():
    with pytest.raises(Exception, match="same length"):
        FixedCandidates(texts=["a"], scores=[1.0, 2.0])


def test_upstream_of_follows_every_path():
    p = Pipeline()
    p.add("a", FakeRetriever(texts=TEXTS))
    p.add("b", FakeRetriever(texts=TEXTS))
    p.add("m", _Merge())
    p.add("z", NoOpStage())
    p.add("other", FakeRetriever(texts=TEXTS))
    p.connect("a", "m")
    p.connect("b", "m")
    p.connect("m", "z")
    assert p.upstream_of("z") == {"a", "b", "m"}
    assert p.upstream_of("a") == set()


def test_subgraph_keeps_instances_and_inner_connections():
    from ragsel.stages.cutoff.top_k import TopKCutoff

    p = Pipeline.linear(
        [("ret", FakeRetriever(texts=TEXTS)), ("cut", TopKCutoff(k=1)), ("end", TopKCutoff(k=1))]
    )
    sub = p.subgraph(p.upstream_of("end"), name="up")
    assert list(sub.stages) == ["ret", "cut"] and sub.stages["ret"] is p.stages["ret"]
    assert [str(c) for c in sub.connections] == ["ret.candidates -> cut.candidates"]
    assert sub.run("alpha").candidates.ids == p.run("alpha").candidates.ids
    with pytest.raises(WiringError, match=r"no stage\(s\) \['nope'\]"):
        p.subgraph(["nope"])


def test_plan_input_kinds_are_an_enum():
    from ragsel._plan import InputKind

    p = Pipeline.linear([FakeRetriever(texts=TEXTS)])
    (step,) = p._compile().steps
    assert [k for _, k, _ in step.args] == [InputKind.QUERY]
