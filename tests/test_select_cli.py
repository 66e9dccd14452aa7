"""``ragsel select`` and the shipped local pipeline, end to end on a real index of
``examples/corpus`` (real MiniLM, real chroma and bm25s), built once for this module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragsel.cli.main import app
from ragsel.spec import check_pipeline, load_pipeline

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / "pipelines" / "local.yaml"
CORPUS = REPO / "examples" / "corpus"
runner = CliRunner()

pytestmark = pytest.mark.slow


# ``example_index`` (tests/conftest.py): examples/corpus indexed once per session.


def test_local_pipeline_validates_without_an_index():
    assert LOCAL.read_text().startswith("# yaml-language-server: $schema=ragsel.schema.json")
    assert check_pipeline(LOCAL) == []
    res = runner.invoke(app, ["validate", str(LOCAL)])
    assert res.exit_code == 0, res.output


# Each question is answered in exactly one document of the example corpus.
QUESTIONS = [
    (
        "How many days of notice does the buyer have to give to terminate the supply agreement "
        "for convenience?",
        "supply_agreement.md",
        "one hundred and twenty (120) days",
    ),
    (
        "Within how many hours must the processor notify the customer of a personal data breach?",
        "data_processing_addendum.txt",
        "forty-eight (48) hours",
    ),
    (
        "How many weeks of fully paid parental leave do birth parents get?",
        "employee_handbook_leave.md",
        "first sixteen (16)",
    ),
]


@pytest.mark.parametrize("question,doc,answer", QUESTIONS)
def test_local_pipeline_selects_the_clause_that_answers(example_index, question, doc, answer):
    pipe = load_pipeline(LOCAL, variables={"RAGSEL_INDEX": str(example_index)})
    result = pipe.run(question)
    sel = result.selection
    assert sel.chunks, "the pipeline selected nothing"
    assert sel.chunks[0].chunk.doc_id == doc  # the best evidence comes from the right document
    holding = [sc for sc in sel.chunks if answer in sc.chunk.text]
    assert holding and holding[0].chunk.doc_id == doc
    # the trace explains the cut and the selection is smaller than what was retrieved
    cut = sel.notes and next(n for n in sel.notes if n.stage == "cut").data
    assert cut["method"] == "learned" and "expects" in cut["why"] and cut["kept"] >= 1
    assert len(result["fuse"]) > len(result["cut"])


def test_select_json(example_index):
    q, doc, answer = QUESTIONS[1]
    res = runner.invoke(
        app, ["select", str(LOCAL), "--index", str(example_index), "--query", q, "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["query"]["text"] == q
    first = data["chunks"][0]
    assert first["rank"] == 1 and first["doc_id"] == doc and first["position"] is not None
    touched = {e["stage"] for e in first["events"]}
    assert {"fuse", "cut"} <= touched and touched & {"bm25", "dense"}
    assert any(answer in c["text"] for c in data["chunks"])
    stages = [t["stage"] for t in data["trace"]]
    assert stages[-1] == "expand" and {"bm25", "dense", "fuse", "cut"} <= set(stages)
    assert any(n["stage"] == "cut" and "why" in n for n in data["notes"])
    assert all(d["reason"] for d in data["dropped"])


def test_select_table(example_index):
    q = QUESTIONS[0][0]
    res = runner.invoke(
        app,
        [
            "select",
            str(LOCAL),
            "--index",
            str(example_index),
            "--query",
            q,
            "--dropped",
            "--trace",
            "--max-text",
            "60",
        ],
    )
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "Evidence for" in out and "supply_agreement.md" in out
    assert "kept by cut" in out and "cut: kept" in out  # provenance column and cut note
    assert "Dropped" in out and "Trace" in out


def test_select_missing_index_is_exit_2(tmp_path):
    res = runner.invoke(
        app,
        ["select", str(LOCAL), "--index", str(tmp_path / "nope"), "--query", "termination notice"],
    )
    assert res.exit_code == 2
    assert "no index at" in res.output and "ragsel index" in res.output
    assert "Traceback" not in res.output
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    res = runner.invoke(
        app,
        ["select", str(LOCAL), "--index", str(tmp_path / "junk"), "--query", "termination notice"],
    )
    assert res.exit_code == 2 and "not a ragsel index" in res.output


def test_select_empty_query_is_exit_2(example_index):
    res = runner.invoke(
        app, ["select", str(LOCAL), "--index", str(example_index), "--query", "   "]
    )
    assert res.exit_code == 2 and "empty" in res.output and "Traceback" not in res.output


def test_select_missing_pipeline_is_exit_2(example_index, tmp_path):
    res = runner.invoke(
        app, ["select", str(tmp_path / "none.yaml"), "--index", str(example_index), "--query", "x"]
    )
    assert res.exit_code == 2 and "not found" in res.output


def test_neighbours_come_from_the_local_index(example_index):
    from ragsel.index import open_index
    from ragsel.stages.expand.neighbors import NeighborExpander
    from ragsel.types import Candidates

    ix = open_index(example_index)
    doc = [c for c in ix.chunks if c.doc_id == "supply_agreement.md"]
    assert len(doc) >= 3 and [c.position for c in doc] == list(range(len(doc)))
    anchor = doc[1]
    out = NeighborExpander(index=str(example_index), window=1).run(
        candidates=Candidates.retrieved("r", [(anchor, 0.5)])
    )
    assert out.ids == [anchor.id, doc[0].id, doc[2].id]
    assert out.note_of("neighbor_expansion")["source"] == "store"
    merged = NeighborExpander(
        index=str(example_index), window=1, order="document", merge_adjacent=True
    ).run(candidates=Candidates.retrieved("r", [(anchor, 0.5)]))
    (passage,) = merged.items
    source = (CORPUS / "supply_agreement.md").read_text()
    start, end = passage.chunk.span
    # overlapping word windows are joined without repeating the overlap: the passage is the
    # exact source text its span covers
    assert passage.chunk.text == source[start:end]


@pytest.mark.parametrize("pipeline", ["local.yaml", "meteora-local.yaml"])
def test_select_a_word_absent_from_the_corpus(example_index, pipeline):
    """Issue 14: 'zoloft' has no BM25 hit; the dense list alone is fused, exit 0."""
    res = runner.invoke(
        app,
        [
            "select",
            str(REPO / "pipelines" / pipeline),
            "--index",
            str(example_index),
            "--query",
            "zoloft",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["chunks"]


def test_long_passage_shows_where_it_answers():
    from ragsel.cli.render import snippet

    assert snippet("short text", "anything", 50) == "short text"
    text = "Preamble words here. " * 40 + "The parental leave lasts sixteen weeks. " + "Tail. " * 40
    out = snippet(text, "How long is parental leave?", 120)
    assert "parental leave" in out and out.startswith("…") and out.endswith("…")
    assert len(out) <= 120
    # no query word in the text: the start, as before
    assert snippet(text, "zoloft", 60).startswith("Preamble")
