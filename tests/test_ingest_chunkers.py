"""Chunkers: spans reproduce the text, positions, overlap, ids, configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragsel.errors import ConfigError, InputError
from ragsel.ingest import ChunkerConfig, Document, load_documents, make_chunker

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
TEXT = (
    "Dr. Smith signed the lease on 3 May.  The tenant pays rent monthly! Is the deposit "
    "refundable? Yes, within thirty days.\n\nA new paragraph starts here. It has two "
    "sentences.\n# Heading\nBody under the heading. "
) * 5


@pytest.mark.parametrize(
    "cfg",
    [
        ChunkerConfig("words", 10, 2),
        ChunkerConfig("words", 7, 0),
        ChunkerConfig("sentences", 12, 4),
        ChunkerConfig("sentences", 5, 1),
        ChunkerConfig("document"),
    ],
)
def test_spans_reproduce_chunk_text(cfg):
    doc = Document("d", TEXT)
    chunks = list(make_chunker(cfg).chunk(doc))
    assert chunks
    for i, c in enumerate(chunks):
        assert TEXT[c.span[0] : c.span[1]] == c.text
        assert c.position == i and c.doc_id == "d" and c.text == c.text.strip()
    words_total = len(TEXT.split())
    # every word of the document is in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.span[0], c.span[1]))
    assert all(
        any(p in covered for p in range(m_s, m_s + 1))
        for m_s in [i for i in range(len(TEXT)) if not TEXT[i].isspace()]
    )
    assert words_total > 0


def test_word_windows_size_and_overlap():
    doc = Document("d", " ".join(f"w{i}" for i in range(100)))
    chunks = list(make_chunker("words", size=30, overlap=3).chunk(doc))
    assert [len(c.text.split()) for c in chunks] == [30, 30, 30, 19]
    assert chunks[1].text.split()[:3] == chunks[0].text.split()[-3:]
    assert chunks[-1].text.split()[-1] == "w99"


def test_default_overlap_is_ten_percent():
    assert ChunkerConfig("words", 256).overlap == 25
    assert ChunkerConfig("words", 128).overlap == 12


def test_no_tail_window_when_covered():
    doc = Document("d", " ".join(f"w{i}" for i in range(30)))
    chunks = list(make_chunker("words", size=30, overlap=3).chunk(doc))
    assert len(chunks) == 1


def test_sentence_chunker_keeps_sentences_whole():
    doc = Document("d", TEXT)
    chunks = list(make_chunker("sentences", size=20, overlap=0).chunk(doc))
    for c in chunks:
        assert len(c.text.split()) <= 20
        assert c.text[-1] in ".!?" or c.text.endswith("Heading")
    assert chunks[0].text.startswith("Dr. Smith")


def test_sentence_overlap_repeats_trailing_sentences():
    doc = Document("d", "One two three. Four five six. Seven eight nine. Ten eleven twelve.")
    chunks = list(make_chunker("sentences", size=6, overlap=3).chunk(doc))
    assert [c.text for c in chunks] == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",
        "Seven eight nine. Ten eleven twelve.",
    ]


def test_overlong_sentence_is_split_by_words():
    doc = Document("d", " ".join(["word"] * 25) + ".")
    chunks = list(make_chunker("sentences", size=10, overlap=0).chunk(doc))
    assert [len(c.text.split()) for c in chunks] == [10, 10, 5]


def test_ids_are_content_hashes():
    doc = Document("d", TEXT)
    a = [c.id for c in make_chunker("words", size=10).chunk(doc)]
    b = [c.id for c in make_chunker("words", size=10).chunk(doc)]
    assert a == b and len(set(a)) == len(a)
    other = [c.id for c in make_chunker("words", size=10).chunk(Document("e", TEXT))]
    assert not set(a) & set(other)


def test_chunks_carry_document_metadata():
    docs = {d.id: d for d in load_documents(FIXTURES)}
    (c,) = make_chunker("document").chunk(docs["r1"])
    assert c.metadata["year"] == 2019 and c.metadata["title"] == "Aspirin and heart attacks"
    assert docs["r1"].text[c.span[0] : c.span[1]] == c.text


def test_whitespace_only_document_gives_no_chunks():
    for kind in ("words", "sentences", "document"):
        assert list(make_chunker(kind).chunk(Document("d", "  \n "))) == []


def test_bad_configs():
    with pytest.raises(ConfigError, match="overlap"):
        ChunkerConfig("words", 10, 10)
    with pytest.raises(ConfigError, match="unknown chunker"):
        ChunkerConfig("paragraphs")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="size"):
        ChunkerConfig("words", 0)


def test_config_round_trip():
    for cfg in (ChunkerConfig("words", 128, 13), ChunkerConfig("document")):
        assert ChunkerConfig.from_dict(cfg.to_dict()) == cfg


def test_document_chunker_refuses_huge_streamed_document(tmp_path, monkeypatch):
    from ragsel.ingest import DocumentChunker, iter_documents

    (tmp_path / "big.txt").write_text("word " * 5000)
    (doc,) = iter_documents(tmp_path, stream_threshold=100)
    monkeypatch.setattr(DocumentChunker, "max_chars", 1000)
    with pytest.raises(InputError, match="too large to be one chunk"):
        list(make_chunker("document").chunk(doc))
