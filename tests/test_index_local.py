"""LocalIndex on disk: build, re-index, incremental adds, edits, mismatches, bad indexes.

Real chromadb in tmp_path and real MiniLM (the session embedder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ragsel.errors import ConfigError, RagselIndexError
from ragsel.index import BM25Config, IndexIncompleteWarning, LocalIndex, open_index
from ragsel.ingest import ChunkerConfig, load_documents

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
CHUNKER = ChunkerConfig("words", 20, 4)


@pytest.fixture(scope="module")
def built(tmp_path_factory, minilm_embedder):
    root = tmp_path_factory.mktemp("ix")
    corpus = root / "corpus"
    shutil.copytree(FIXTURES, corpus)
    with LocalIndex.create(root / "index", chunker=CHUNKER) as ix:
        report = ix.add_corpus(corpus)
    return root, corpus, root / "index", report


def _expected_chunks(corpus: Path) -> dict[str, object]:
    from ragsel.ingest import make_chunker

    mk = make_chunker(CHUNKER)
    return {c.id: c for d in load_documents(corpus) for c in mk.chunk(d)}


def test_build_stores_every_chunk_with_structure(built):
    _, corpus, path, report = built
    expected = _expected_chunks(corpus)
    assert report.added == 5 and report.chunks_added == len(expected) == report.total_chunks
    ix = LocalIndex.open(path)
    assert ix.collection.count() == len(expected)
    got = {c.id: c for c in ix.chunks}
    assert got == expected  # text, doc_id, position, span and metadata survive the round trip
    docs = {d.id: d for d in load_documents(corpus)}
    for c in ix.chunks:
        assert docs[c.doc_id].text[c.span[0] : c.span[1]] == c.text
    assert ix.matrix.shape == (len(expected), 384)
    np.testing.assert_allclose(np.linalg.norm(ix.matrix, axis=1), 1.0, atol=1e-5)


def test_manifest_records_versions_and_settings(built):
    path = built[2]
    m = json.loads((path / "manifest.json").read_text())
    assert m["format"] == "ragsel-local-index" and m["format_version"] == 1
    assert m["ragsel_version"] and m["complete"] is True
    assert m["embedder"] == {
        "spec": "minilm",
        "name": "onnx-fp32:all-MiniLM-L6-v2",
        "space": "all-MiniLM-L6-v2",
        "dim": 384,
    }
    assert m["chunker"] == {"kind": "words", "size": 20, "overlap": 4}
    assert m["bm25"]["stemmer"] == "english" and m["bm25"]["stopwords"] == "en"
    assert m["counts"]["documents"] == 5


def test_neighbours_by_position(built):
    ix = LocalIndex.open(built[2])
    lease = ix.document_chunks("lease.md")
    assert [c.position for c in lease] == list(range(len(lease))) and len(lease) >= 3
    assert ix.chunk_at("lease.md", 1) == lease[1]
    assert ix.chunk_at("lease.md", 999) is None


def test_numpy_search_matches_chroma(built, minilm_embedder):
    ix = LocalIndex.open(built[2])
    q = minilm_embedder.embed(["Can the tenant sublet the apartment?"])
    ours = ix.dense_search(q, 5)[0]
    res = ix.collection.query(query_embeddings=q.tolist(), n_results=5, include=["distances"])
    assert [c.id for c, _ in ours] == res["ids"][0]
    np.testing.assert_allclose([s for _, s in ours], 1 - np.asarray(res["distances"][0]), atol=1e-4)
    assert ours[0][0].doc_id == "lease.md"


def test_where_filter_restricts_dense_and_bm25(built, minilm_embedder):
    ix = LocalIndex.open(built[2])
    q = minilm_embedder.embed(["deletion of personal data"])
    hits = ix.dense_search(q, 50, where={"doc_id": "lease.md"})[0]
    assert hits and {c.doc_id for c, _ in hits} == {"lease.md"}
    hits = ix.dense_search(q, 50, where={"year": {"$gte": 2020}})[0]
    assert {c.doc_id for c, _ in hits} == {"r2", "r3"}
    bm = ix.bm25_search(["adults"], 10, where={"topic": "medicine"})[0]
    assert {c.doc_id for c, _ in bm} == {"r1", "r2"}
    assert ix.bm25_search(["adults"], 10, where={"topic": "contracts"}) == [[]]
    with pytest.raises(ConfigError, match="invalid metadata filter"):
        ix.dense_search(q, 5, where={"year": {"$bogus": 1}})


def test_bm25_uses_stemming(built):
    ix = LocalIndex.open(built[2])
    hits = ix.bm25_search(["terminating leases"], 3)[0]  # stems: termin, leas
    assert hits[0][0].doc_id == "lease.md" and "terminate" in hits[0][0].text
    assert ix.bm25_search(["the and of"], 3) == [[]]  # stop-words only: nothing to match


def test_reindexing_same_corpus_adds_nothing(built):
    _, corpus, path, first = built
    with LocalIndex.create(path, chunker=CHUNKER) as ix:
        again = ix.add_corpus(corpus)
        assert ix.collection.count() == first.total_chunks
    assert again.added == again.updated == again.chunks_added == 0
    assert again.unchanged == 5 and again.total_chunks == first.total_chunks


def test_new_and_changed_files(tmp_path, minilm_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Alpha document about rent. " * 10)
    with LocalIndex.create(tmp_path / "ix", chunker=CHUNKER) as ix:
        ix.add_corpus(corpus)
    (corpus / "b.txt").write_text("Beta document about pets and deposits. " * 3)
    with LocalIndex.create(tmp_path / "ix", chunker=CHUNKER) as ix:
        rep = ix.add_corpus(corpus)
    assert (rep.added, rep.updated, rep.unchanged) == (1, 0, 1)
    assert rep.chunks_added == len(
        [c for c in _expected_chunks(corpus).values() if c.doc_id == "b.txt"]
    )
    (corpus / "a.txt").write_text("Alpha document, now shorter.")
    with LocalIndex.create(tmp_path / "ix", chunker=CHUNKER) as ix:
        rep = ix.add_corpus(corpus)
        assert ix.collection.count() == len(_expected_chunks(corpus))
    assert (rep.added, rep.updated, rep.unchanged) == (0, 1, 1) and rep.chunks_removed >= 1
    ix = open_index(tmp_path / "ix")
    assert {c.id for c in ix.chunks} == set(_expected_chunks(corpus))
    assert ix.bm25_search(["shorter"], 5)[0][0][0].doc_id == "a.txt"


def test_model_and_chunker_mismatch_are_refused(built):
    path = built[2]
    with pytest.raises(RagselIndexError, match=r"embedder onnx-fp32.*--embedder minilm"):
        LocalIndex.create(path, embedder="minilm-onnx", chunker=CHUNKER)
    with pytest.raises(RagselIndexError, match=r"chunker .*--chunk-size 20 --overlap 4"):
        LocalIndex.create(path, chunker=ChunkerConfig("words", 128))
    with pytest.raises(RagselIndexError, match="BM25 settings"):
        LocalIndex.create(path, chunker=CHUNKER, bm25=BM25Config(stemmer=None))
    # the refused writer released the lock: the index can still be written
    LocalIndex.create(path, chunker=CHUNKER).close()


def test_query_embedder_must_share_the_vector_space(built, minilm_embedder):
    ix = LocalIndex.open(built[2])
    ix.check_embedder(minilm_embedder)

    class Other:
        name = "sentence-transformers:other-model"
        space = "other-model"

    with pytest.raises(RagselIndexError, match="set embedder: minilm"):
        ix.check_embedder(Other(), "dense")


def test_missing_and_foreign_indexes(tmp_path):
    with pytest.raises(RagselIndexError, match=r"no index at .*ragsel index CORPUS --into"):
        LocalIndex.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RagselIndexError, match="is empty"):
        open_index(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stuff.txt").write_text("x")
    with pytest.raises(RagselIndexError, match="not a ragsel index"):
        LocalIndex.open(tmp_path / "other")
    with pytest.raises(RagselIndexError, match="not empty but holds no ragsel index"):
        LocalIndex.create(tmp_path / "other")


def test_index_from_another_format_version(built, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(built[2], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m.update(format_version=99, ragsel_version="9.9.9")
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RagselIndexError, match=r"format version 99 .*ragsel 9.9.9.*Rebuild it"):
        LocalIndex.open(copy)


def test_chroma_collection_reopens_with_registered_embedding_function(built):
    import chromadb

    from ragsel.index.chroma_store import RagselEmbeddingFunction

    client = chromadb.PersistentClient(path=str(built[2] / "chroma"))
    col = client.get_collection("ragsel")  # no embedding function passed: rebuilt from config
    assert isinstance(col.configuration["embedding_function"], RagselEmbeddingFunction)
    res = col.query(query_texts=["sublet the premises"], n_results=1)
    assert res["metadatas"][0][0]["doc_id"] == "lease.md"


def test_incomplete_index_warns_on_open(built, tmp_path):
    copy = tmp_path / "inc"
    shutil.copytree(built[2], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.warns(IndexIncompleteWarning, match="re-run the same `ragsel index`"):
        LocalIndex.open(copy)


def test_run_killed_before_bm25_rebuild_is_repaired(built, tmp_path):
    from ragsel.index.bm25 import BM25Store

    copy = tmp_path / "half"
    shutil.copytree(built[2], copy)
    # every document is in the ledger, but the run died before BM25 was rebuilt: stale BM25
    BM25Store.build(["stale"], ["x"], BM25Config()).save(copy / "bm25")
    m = json.loads((copy / "manifest.json").read_text())
    m["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(m))
    with LocalIndex.create(copy, chunker=CHUNKER) as ix:
        rep = ix.add_corpus(built[1])
    assert rep.chunks_added == 0 and rep.unchanged == 5
    ix = open_index(copy)
    assert ix.manifest["complete"] and len(ix.bm25()) == rep.total_chunks
