"""Dataset loaders on tiny hand-made fixtures, plus checks on the shared benchmark data."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from ragsel_eval.datasets import (
    DatasetWarning,
    EvalQuery,
    GoldSpan,
    detect_format,
    gold_chunk_ids,
    load_dataset,
    load_jsonl,
    poisoned_chunk_ids,
    save_jsonl,
)

from ragsel.errors import InputError
from ragsel.types import Chunk

FIX = Path(__file__).parent / "fixtures" / "eval"


def test_beir_loader_splits_titles_and_unknown_qrels():
    with pytest.warns(DatasetWarning, match="1 qrels rows"):
        ds = load_dataset(FIX / "beir_tiny")
    assert ds.split == "test" and [q.id for q in ds.queries] == ["q1", "q2"]
    assert dict(ds.query("q1").qrels) == {"d1": 2, "d3": 1}
    assert ds.stats["unknown_qrels"] == 1 and dict(ds.query("q2").qrels) == {"d2": 1}
    assert ds.documents["d1"].text == "Cats\nCats purr when they are content."
    assert ds.documents["d3"].text == "Birds sing at dawn."  # no title, nothing prepended
    train = load_dataset(f"{FIX / 'beir_tiny'}", split="train")
    assert [q.id for q in train.queries] == ["q3"]
    with pytest.raises(InputError, match="available splits: test, train"):
        load_dataset(FIX / "beir_tiny", split="dev")


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGSEL_DATA_DIR", str(tmp_path))
    with pytest.raises(InputError) as ei:
        load_dataset("scifact")
    msg = str(ei.value)
    assert str(tmp_path / "scifact") in msg and "RAGSEL_DATA_DIR" in msg


def test_name_resolves_under_data_dir(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(FIX / "beir_tiny", tmp_path / "mybeir")
    monkeypatch.setenv("RAGSEL_DATA_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        ds = load_dataset("mybeir:train")
    assert ds.name == "mybeir" and ds.split == "train"


def test_legalbench_spans_and_gold_chunks_for_any_chunker():
    ds = load_dataset(FIX / "legal_tiny")
    assert detect_format(FIX / "legal_tiny") == "legalbench"
    q = ds.query("l1")
    (span,) = q.spans
    text = ds.documents["policies/A.txt"].text
    assert text[span.start : span.end].startswith("We share data")
    assert set(ds.documents) == {"policies/A.txt", "policies/B.txt"}
    # line chunker: only the second line overlaps the span
    lines, chunks, pos = text.split("\n"), [], 0
    for i, line in enumerate(lines):
        chunks.append(Chunk(f"A#{i}", line, "policies/A.txt", i, (pos, pos + len(line))))
        pos += len(line) + 1
    assert gold_chunk_ids(q, chunks) == {"A#1"}
    # a chunker with one big chunk: it overlaps, so it is gold
    big = Chunk("A#all", text, "policies/A.txt", 0, (0, len(text)))
    assert gold_chunk_ids(q, [big]) == {"A#all"}
    # a chunk touching the span boundary only (end == start) is not gold
    edge = Chunk("A#edge", "x", "policies/A.txt", 0, (span.start - 3, span.start))
    assert gold_chunk_ids(q, [edge]) == set()
    # same offsets but another document: not gold
    other = Chunk("B#0", "x", "policies/B.txt", 0, (span.start, span.end))
    assert gold_chunk_ids(q, [other]) == set()


def test_gold_chunks_from_doc_qrels_when_no_spans():
    q = EvalQuery("q", "t", qrels={"d1": 2, "d2": 0})
    chunks = [Chunk("d1#0", "a", "d1"), Chunk("d1#1", "b", "d1"), Chunk("d2#0", "c", "d2")]
    assert gold_chunk_ids(q, chunks) == {"d1#0", "d1#1"}
    assert gold_chunk_ids(q, [{"id": "x", "doc_id": "d1"}]) == {"x"}


def test_hotpotqa_paragraph_and_sentence_gold():
    ds = load_dataset(FIX / "hotpot_tiny.jsonl")
    q = ds.queries[0]
    assert q.corpus == ("h1/p0", "h1/p1", "h1/p2") and q.answers == ("Amsterdam",)
    assert set(q.qrels) == {"h1/p0", "h1/p1"}
    texts = [ds.documents[s.doc_id].text[s.start : s.end] for s in q.spans]
    assert texts == ["It ends in the Netherlands.", "Amsterdam is the capital of the Netherlands."]
    # sentence chunks built from the stored sentence offsets: exactly the supporting ones
    sent_chunks = [
        Chunk(f"{d}#{i}", ds.documents[d].text[s:e], d, i, (s, e))
        for d in q.corpus
        for i, (s, e) in enumerate(ds.documents[d].metadata["sentence_spans"])
    ]
    assert gold_chunk_ids(q, sent_chunks) == {"h1/p0#1", "h1/p1#0"}
    para_chunks = [
        Chunk(d, ds.documents[d].text, d, 0, (0, len(ds.documents[d].text))) for d in q.corpus
    ]
    assert gold_chunk_ids(q, para_chunks) == {"h1/p0", "h1/p1"}


def test_poisonedrag_context_labels_and_determinism():
    a = load_dataset(FIX / "poisoned_tiny.jsonl", n_distractors=2, seed=3)
    b = load_dataset(FIX / "poisoned_tiny.jsonl", n_distractors=2, seed=3)
    assert [q.corpus for q in a.queries] == [q.corpus for q in b.queries]
    q = a.query("t0")
    assert len(q.corpus) == 1 + 5 + 2 and q.poisoned == {f"t0/adv{i}" for i in range(5)}
    assert dict(q.qrels) == {"t0/gold0": 1} and q.answers == ("Shakespeare",)
    assert q.metadata["incorrect_answer"] == "Marlowe"
    distractors = [d for d in q.corpus if not d.startswith("t0/")]
    assert all(d.endswith("gold0") for d in distractors)  # pool 'auto' = other gold passages
    chunks = [Chunk(d, a.documents[d].text, d) for d in q.corpus]
    assert poisoned_chunk_ids(q, chunks) == q.poisoned
    with pytest.raises(InputError, match="distractor_pool"):
        load_dataset(FIX / "poisoned_tiny.jsonl", distractor_pool="nope")


def test_generic_jsonl_roundtrip_and_errors(tmp_path):
    with pytest.warns(DatasetWarning, match="1 qrels"):
        ds = load_jsonl(FIX / "generic_tiny.jsonl")
    q = ds.queries[0]
    assert ds.stats["unknown_qrels"] == 1 and q.poisoned == {"p"} and q.corpus == ("a", "b", "p")
    assert q.spans == (GoldSpan("a", 0, 5, "Alpha"),)
    out = save_jsonl(ds, tmp_path / "rt.jsonl")
    again = load_jsonl(out)
    assert again.queries == ds.queries and again.documents == ds.documents
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"type": "document", "id": "a", "text": "x"}\n'
        '{"type": "query", "id": "q", "text": "t", "spans": '
        '[{"doc_id": "a", "start": 0, "end": 9}]}\n'
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: span \[0, 9\) is outside"):
        load_jsonl(bad)
    bad.write_text('{"type": "doc", "id": "a", "text": "x"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        load_jsonl(bad)


def test_subset_limit_and_ids():
    ds = load_dataset(FIX / "hotpot_tiny.jsonl")
    assert len(ds.subset(limit=1)) == 1
    with pytest.raises(InputError):
        ds.subset(ids=["nope"])
    with pytest.raises(InputError):
        ds.subset(limit=0)


# --- the shared benchmark data ------------------------------------------------------------------
@pytest.mark.needs_data
def test_shared_scifact(data_dir):
    ds = load_dataset(data_dir / "scifact")
    assert len(ds.documents) == 5183 and len(ds.queries) == 300
    assert sum(len(q.qrels) for q in ds.queries) == 339 and ds.stats["unknown_qrels"] == 0


@pytest.mark.needs_data
def test_shared_privacyqa_spans_match_text(data_dir):
    ds = load_dataset(data_dir / "privacyqa_spans")
    assert len(ds.queries) == 56 and ds.stats["gold_spans"] == 100
    assert ds.stats["span_text_mismatch"] == 0


@pytest.mark.needs_data
def test_shared_poisonedrag_and_others(data_dir):
    nq = load_dataset(data_dir / "poisonedrag", n_distractors=10)
    assert len(nq.queries) == 85
    assert all(len(q.corpus) == len(q.qrels) + 5 + 10 for q in nq.queries)
    ms = load_dataset(f"{data_dir / 'poisonedrag'}:msmarco")
    assert len(ms.queries) == 100 and not any(q.qrels for q in ms.queries)
    hp = load_dataset(data_dir / "hotpotqa_hard")
    assert len(hp.queries) == 100 and all(len(q.corpus) == 10 for q in hp.queries)
    assert hp.stats["missing_supporting_facts"] == 0
    fb = load_dataset(data_dir / "financebench")
    assert len(fb.queries) == 150 and fb.stats["evidence_not_located"] == 0
