"""Declared pipeline inputs: ``Pipeline(inputs=["stage.input"])`` / YAML ``inputs:`` and
``run(query, inputs={...})`` (used by the connectors to feed in documents retrieved
elsewhere)."""

from __future__ import annotations

import asyncio

import pytest

from ragsel import InputError, Pipeline, PipelineSpecError, WiringError, load_pipeline
from ragsel.spec import dump_pipeline
from ragsel.testing import FakeRetriever, NoOpStage, RecordingStage, make_chunks
from ragsel.types import Candidates


def _cands(texts=("a", "b", "c")) -> Candidates:
    return Candidates.retrieved("outside", zip(make_chunks(list(texts)), (0.9, 0.5, 0.1)))


def test_linear_first_open_input_is_the_entry_and_graph_errors_show_the_inputs_line():
    p = Pipeline.linear([RecordingStage(), NoOpStage()])
    assert p.inputs == ["recording_stage.candidates"] and p.problems() == []
    assert p.run("q", inputs={"recording_stage.candidates": _cands()}).selection.ids == (
        _cands().ids
    )
    g = Pipeline()
    g.add("n", RecordingStage())
    with pytest.raises(WiringError, match=r"inputs: \[n.candidates\]"):
        g.validate()
    # a list YAML whose first stage takes candidates (the compressor shape) loads as is
    lp = load_pipeline("version: 1\nstages:\n  - {type: recording_stage}\n  - {type: noop}\n")
    assert lp.inputs == ["recording_stage.candidates"]


def test_run_and_arun_with_inputs():
    rec = RecordingStage()
    p = Pipeline.linear([("rec", rec)], inputs=["rec.candidates"])
    cands = _cands()
    res = p.run("q", inputs={"rec.candidates": cands})
    assert rec.calls == [cands] and res.selection.ids == cands.ids
    ares = asyncio.run(p.arun("q", inputs={"rec.candidates": _cands(("x",))}))
    assert ares.selection.ids == ["doc#0"] and len(rec.calls) == 2


def test_input_errors_name_the_fix():
    p = Pipeline.linear([("rec", RecordingStage())], inputs=["rec.candidates"])
    with pytest.raises(InputError, match=r"missing value\(s\) for input\(s\) \['rec.candidates"):
        p.run("q")
    with pytest.raises(InputError, match=r"no declared input\(s\) \['other.x'\]"):
        p.run("q", inputs={"rec.candidates": _cands(), "other.x": 1})
    plain = Pipeline.linear([FakeRetriever(texts=["a"])])
    with pytest.raises(InputError, match="no declared input"):
        plain.run("a", inputs={"fake_retriever.query": 1})


def test_bad_declarations_are_problems():
    p = Pipeline.linear(
        [FakeRetriever(texts=["a"]), ("rec", RecordingStage())],
        inputs=["rec.candidates", "ghost.candidates"],
    )
    probs = p.problems()
    assert any("'rec.candidates' is also connected" in m for m in probs)
    assert any("'ghost.candidates' is not a stage input" in m for m in probs)


def test_yaml_inputs_round_trip(tmp_path):
    text = (
        "version: 1\ninputs: [guard.candidates]\nstages:\n"
        "  guard: {type: recording_stage}\n  cut: {type: noop}\n"
        "connections: [guard -> cut]\n"
    )
    p = load_pipeline(text)
    assert p.inputs == ["guard.candidates"]
    assert p.run("q", inputs={"guard.candidates": _cands()}).selection.ids == _cands().ids
    again = load_pipeline(dump_pipeline(p))
    assert again.inputs == ["guard.candidates"]
    with pytest.raises(PipelineSpecError, match="'inputs' must be a list"):
        load_pipeline(text.replace("[guard.candidates]", "guard.candidates"))
    with pytest.raises(PipelineSpecError, match="missing required input"):
        load_pipeline(text.replace("inputs: [guard.candidates]\n", ""))
