"""Adapting the embedder to a corpus: pair making (unit) and a real, tiny fine-tuning run of the
packaged MiniLM through ``ragsel tune-embedder``, re-indexing and querying with the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ragsel.backends.embedders import tuning
from ragsel.cli.main import app
from ragsel.errors import InputError
from ragsel.types import Chunk

runner = CliRunner()

ABSTRACT = (
    "Background sentences are common in abstracts and say little. "
    "Vitamin D supplementation reduced fracture incidence among elderly nursing home residents. "
    "The study was registered and the data are available on request from the authors. "
    "Results held after adjusting for age and sex in every subgroup that we examined."
)


def _chunk(i: int, text: str, title: str = "") -> Chunk:
    meta = {"title": title} if title else {}
    body = f"{title}\n\n{text}" if title else text
    return Chunk(f"c{i}", body, doc_id=f"d{i}", metadata=meta)


def _corpus() -> list[Chunk]:
    fillers = [
        "Background sentences are common in abstracts and say little about anything here.",
        "The study was registered and the data are available on request from the authors.",
    ]
    return [_chunk(0, ABSTRACT, "Vitamin D and fractures in the elderly")] + [
        _chunk(i, " ".join(fillers) + f" Topic {i} is about subject number {i} in detail.")
        for i in range(1, 6)
    ]


def test_pseudo_pairs_take_the_query_out_of_the_passage():
    pairs = tuning.pseudo_pairs(_corpus(), 50, seed=0)
    kinds = {p.kind for p in pairs}
    assert kinds == {"title", "sentence"}
    for p in pairs:
        assert p.query not in p.passage  # the inverse cloze task: no verbatim match to find
        assert len(p.passage.split()) >= 6
    title = next(p for p in pairs if p.kind == "title")
    assert title.query == "Vitamin D and fractures in the elderly" and title.chunk_id == "c0"


def test_key_sentence_is_the_most_specific_one():
    pairs = tuning.pseudo_pairs(_corpus(), 50, seed=0, title_share=0.0)
    key = next(p.query for p in pairs if p.chunk_id == "c0")
    assert key.startswith("Vitamin D supplementation")  # not the boilerplate shared by all


def test_pseudo_pairs_are_seeded_and_capped():
    a = tuning.pseudo_pairs(_corpus(), 3, seed=1)
    assert a == tuning.pseudo_pairs(_corpus(), 3, seed=1) and len(a) == 3


def test_a_corpus_without_sentences_gives_a_clear_error():
    with pytest.raises(InputError, match="no pseudo-query"):
        tuning.pseudo_pairs([Chunk("a", "too short"), Chunk("b", "tiny text")], 10)


def test_labelled_pairs_need_a_gold_chunk_in_the_index():
    chunks = _corpus()
    pairs = tuning.labelled_pairs([("vitamin d fractures", {"c0", "missing"})], chunks)
    assert [(p.query, p.chunk_id) for p in pairs] == [("vitamin d fractures", "c0")]
    with pytest.raises(InputError, match="no labelled query"):
        tuning.labelled_pairs([("q", {"nope"})], chunks)


@pytest.mark.parametrize("bad", [{"batch_size": 1}, {"epochs": 0}, {"lr": 0.0}, {"max_length": 4}])
def test_settings_are_checked(bad):
    with pytest.raises(InputError):
        tuning.TuneSettings(**bad)


def test_tune_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "x").write_text("keep me")
    pairs = tuning.pseudo_pairs(_corpus(), 4)
    with pytest.raises(InputError, match="not an empty folder"):
        tuning.tune_embedder(pairs, tmp_path)
    assert (tmp_path / "x").read_text() == "keep me"


def test_tune_reindex_and_query_with_the_tuned_model(example_index, tmp_path, monkeypatch):
    """The real MiniLM, a few steps: the folder loads as an embedder, its vectors moved, the
    corpus re-indexes with it, and the shipped pipeline runs on that index when told to embed
    queries with it."""
    from ragsel.backends.embedders import load_embedder
    from ragsel.cli.main import app as _app  # noqa: F401 - the CLI under test
    from tests.conftest import REPO

    model, new_index = tmp_path / "tuned", tmp_path / "index"
    args = ["tune-embedder", "--index", str(example_index), "--out", str(model)]
    args += ["--pseudo-queries", "8", "--batch-size", "4", "--max-length", "48", "--lr", "1e-4"]
    args += ["--corpus", str(REPO / "examples" / "corpus"), "--into", str(new_index), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["pairs"] == 8 and out["source"] == "pseudo-queries"
    manifest = json.loads((model / tuning.MANIFEST).read_text())
    assert manifest["pair_kinds"] and manifest["settings"]["batch_size"] == 4
    text = ["Can the supplier assign the agreement?"]
    tuned = load_embedder(str(model)).embed(text)
    base = load_embedder("minilm").embed(text)
    assert tuned.shape == base.shape and np.isclose(np.linalg.norm(tuned), 1.0, atol=1e-4)
    assert float(tuned[0] @ base[0]) < 0.99999  # training changed the model
    monkeypatch.setenv("RAGSEL_QUERY_EMBEDDER", str(model))
    sel = runner.invoke(
        app,
        ["select", str(REPO / "pipelines" / "local.yaml"), "--index", str(new_index), "--json"]
        + ["--query", text[0]],
    )
    assert sel.exit_code == 0, sel.output
    assert "supply" in sel.stdout.lower()


def test_tune_without_into_is_refused(example_index, tmp_path):
    res = runner.invoke(
        app,
        ["tune-embedder", "--index", str(example_index), "--out", str(tmp_path / "m")]
        + ["--corpus", "examples/corpus"],
    )
    assert res.exit_code == 2 and "--into" in res.output


def test_a_non_empty_into_is_refused_before_training(example_index, tmp_path):
    into = tmp_path / "taken"
    into.mkdir()
    (into / "x").write_text("keep")
    res = runner.invoke(
        app,
        ["tune-embedder", "--index", str(example_index), "--out", str(tmp_path / "m")]
        + ["--corpus", "examples/corpus", "--into", str(into)],
    )
    assert res.exit_code == 2 and "not empty" in res.output
    assert not (tmp_path / "m").exists()
