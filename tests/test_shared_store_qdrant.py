"""A pipeline pointed at a vector store many machines can share, through the LangChain
connector: chunks of a ragsel index go into Qdrant (its local on-disk mode here, the same API
as a Qdrant server), and a ``langchain_retriever`` stage over that store returns the same
ranking as ragsel's own dense search. A real store, not a mock."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

pytest.importorskip("langchain_qdrant")
from langchain_qdrant import QdrantVectorStore  # noqa: E402
from qdrant_client import QdrantClient  # noqa: E402
from qdrant_client.models import Distance, VectorParams  # noqa: E402
from ragsel_langchain.backends import RagselEmbeddings  # noqa: E402

from ragsel import load_pipeline  # noqa: E402
from ragsel.index import LocalIndex, open_index  # noqa: E402
from ragsel.ingest import ChunkerConfig  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
QUERY = "Can the tenant sublet the apartment?"
YAML = (
    "version: 1\nstages:\n"
    "  - {type: langchain_retriever, component: shared, scores: vectorstore, top_k: 5}\n"
)


def _store(path: Path) -> tuple[QdrantClient, QdrantVectorStore]:
    client = QdrantClient(path=str(path))
    if not client.collection_exists("chunks"):
        client.create_collection("chunks", VectorParams(size=384, distance=Distance.COSINE))
    return client, QdrantVectorStore(client, "chunks", embedding=RagselEmbeddings("minilm"))


def test_pipeline_over_a_shared_qdrant_store_ranks_like_the_local_index(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES, corpus)
    with LocalIndex.create(tmp_path / "ix", chunker=ChunkerConfig("words", 20, 4)) as ix:
        ix.add_corpus(corpus)
    ix = open_index(tmp_path / "ix")
    client, store = _store(tmp_path / "qdrant")
    store.add_texts(
        [c.text for c in ix.chunks],
        metadatas=[{"chunk_id": c.id, "doc_id": c.doc_id} for c in ix.chunks],
        ids=[str(uuid.uuid5(uuid.NAMESPACE_URL, c.id)) for c in ix.chunks],
    )
    client.close()  # another process (or machine, with a server) opens the same store
    client, store = _store(tmp_path / "qdrant")
    pipe = load_pipeline_from(tmp_path, store)
    got = [sc.chunk.text for sc in pipe.run(QUERY).selection.chunks]
    qv = RagselEmbeddings("minilm").embedder.embed([QUERY])
    want = [c.text for c, _ in ix.dense_search(qv, 5)[0]]
    client.close()
    assert got == want and len(got) == 5


def load_pipeline_from(tmp_path: Path, store: QdrantVectorStore):
    path = tmp_path / "shared.yaml"
    path.write_text(YAML, encoding="utf-8")
    return load_pipeline(path, components={"shared": store.as_retriever(search_kwargs={"k": 5})})
