"""Corpus loaders: text, Markdown, JSONL, BEIR, and every bad-input case."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragsel.errors import InputError
from ragsel.ingest import IngestWarning, iter_documents, load_documents, make_chunker

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"


def test_fixture_corpus_loads_all_formats():
    docs = {d.id: d for d in load_documents(FIXTURES)}
    assert set(docs) == {"lease.md", "privacy.txt", "r1", "r2", "r3"}
    assert docs["lease.md"].title == "Residential Lease"
    assert docs["lease.md"].metadata["format"] == "markdown"
    assert docs["privacy.txt"].title == "privacy"
    # JSONL: title prepended to the text, metadata from the object and from extra fields
    r1 = docs["r1"]
    assert r1.text.startswith("Aspirin and heart attacks\n\nDaily low-dose")
    assert r1.metadata["year"] == 2019 and r1.metadata["topic"] == "medicine"
    assert r1.text[r1.metadata["body_offset"] :].startswith("Daily")
    assert docs["r2"].metadata["year"] == 2021
    assert docs["r3"].title == "" and docs["r3"].text.startswith("Warranty")


def test_title_as_metadata_only():
    docs = {d.id: d for d in iter_documents(FIXTURES / "records.jsonl", title="metadata")}
    assert docs["r1"].text.startswith("Daily") and docs["r1"].title == "Aspirin and heart attacks"


def test_beir_folder_reads_only_the_corpus(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "4983", "title": "T", "text": "An abstract."}) + "\n"
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a claim"}) + "\n")
    (tmp_path / "qrels").mkdir()
    docs = load_documents(tmp_path)
    assert [d.id for d in docs] == ["4983"] and docs[0].text == "T\n\nAn abstract."


def test_ids_are_stable_and_fingerprints_track_content(tmp_path):
    (tmp_path / "a.txt").write_text("alpha beta")
    first = load_documents(tmp_path)[0]
    assert load_documents(tmp_path)[0].fingerprint == first.fingerprint
    (tmp_path / "a.txt").write_text("alpha gamma")
    assert load_documents(tmp_path)[0].fingerprint != first.fingerprint


def test_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_documents(tmp_path / "nope")


def test_empty_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no documents found"):
        load_documents(tmp_path)


def test_folder_of_unsupported_files_warns_and_errors(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"\x89PNG ...")
    with pytest.warns(IngestWarning, match="unsupported type: scan.png"):
        with pytest.raises(InputError, match="no documents found"):
            load_documents(tmp_path)


def test_binary_file_is_skipped_with_warning(tmp_path):
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp_path / "ok.txt").write_text("fine text")
    with pytest.warns(IngestWarning, match="blob.txt: looks binary"):
        docs = load_documents(tmp_path)
    assert [d.id for d in docs] == ["ok.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file_warns_and_unreadable_corpus_errors(tmp_path):
    f = tmp_path / "secret.txt"
    f.write_text("hidden")
    f.chmod(0)
    try:
        with pytest.warns(IngestWarning, match="cannot read"):
            with pytest.raises(InputError, match="no documents found"):
                load_documents(tmp_path)
    finally:
        f.chmod(0o644)


def test_non_utf8_is_decoded_with_replacement_and_warning(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café crème brûlée".encode("latin-1"))
    with pytest.warns(IngestWarning, match=r"not valid UTF-8 \(4 bad byte"):
        (doc,) = load_documents(tmp_path)
    assert doc.text == "caf\ufffd cr\ufffdme br\ufffdl\ufffde"


def test_large_file_is_streamed_and_chunked_with_exact_spans(tmp_path):
    # 300 KB with a multi-byte character straddling block boundaries; threshold forces streaming
    words = [f"w{i}é" for i in range(40_000)]
    text = " ".join(words) + "\n"
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    import ragsel.ingest.documents as docs_mod

    old = docs_mod.BLOCK_BYTES
    docs_mod.BLOCK_BYTES = 4099  # odd size: splits words and UTF-8 sequences
    try:
        (doc,) = iter_documents(tmp_path, stream_threshold=10_000)
        assert doc.streamed and doc.text is None
        chunks = list(make_chunker("words", size=128, overlap=13).chunk(doc))
    finally:
        docs_mod.BLOCK_BYTES = old
    assert all(text[c.span[0] : c.span[1]] == c.text for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].text.split()[:2] == ["w0é", "w1é"]
    assert chunks[-1].text.split()[-1] == "w39999é"
    assert all(len(c.text.split()) == 128 for c in chunks[:-1])


def test_bad_jsonl_lines_name_file_and_line(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": \n')
    with pytest.raises(InputError, match=r"c.jsonl:2: not valid JSON"):
        load_documents(f)
    f.write_text('{"id": "a", "body_missing": 1}\n')
    with pytest.raises(InputError, match=r"c.jsonl:1: the record has no 'text'"):
        load_documents(f)
    f.write_text('["a list"]\n')
    with pytest.raises(InputError, match="expected a JSON object"):
        load_documents(f)


def test_jsonl_without_ids_gets_content_ids_and_empty_records_warn(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "one"}\n{"text": "  "}\n')
    with pytest.warns(IngestWarning, match="empty text"):
        docs = load_documents(f)
    assert len(docs) == 1 and len(docs[0].id) == 20
