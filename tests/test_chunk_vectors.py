"""Candidate vectors from a real LocalIndex (rationale selector, poison guard): no re-embedding,
the same selections as embedding, and clear errors for an incompatible index."""

from __future__ import annotations

import numpy as np
import pytest

from ragsel.errors import RagselIndexError, StageError
from ragsel.ingest.chunkers import ChunkerConfig
from ragsel.stages._chunk_vectors import ChunkVectors
from ragsel.stages.select.rationale_selector import RationaleSelector
from ragsel.stages.verify.poison_cluster import PoisonClusterGuard
from ragsel.testing import FakeEmbedder
from ragsel.types import Candidates, Chunk, Query, Rationale, Rationales

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


class CountingEmbedder:
    """The real MiniLM, counting the texts it embeds (keeps its vector space)."""

    def __init__(self, base):
        self.base, self.name, self.space = base, base.name, base.space
        self.texts = 0

    @property
    def dim(self):
        return self.base.dim

    def warm_up(self):
        self.base.warm_up()

    def embed(self, texts):
        self.texts += len(texts)
        return self.base.embed(texts)


@pytest.fixture(scope="module")
def index(tmp_path_factory, minilm_embedder):
    from ragsel.index import LocalIndex

    path = tmp_path_factory.mktemp("vec") / "index"
    with LocalIndex.create(path, chunker=ChunkerConfig("words", 40, 8)) as ix:
        ix.add_corpus(REPO / "tests" / "fixtures" / "corpus_small")
    return path


def _retrieved(index, query, k=12):
    """BM25 hits first, then other indexed chunks: ``k`` candidates from the index."""
    from ragsel.index import open_index

    ix = open_index(index)
    hits = ix.bm25_search([query], k)[0]
    seen = {c.id for c, _ in hits}
    hits += [(c, 0.0) for c in ix.chunks if c.id not in seen][: k - len(hits)]
    return Candidates.retrieved("r", hits)


def test_local_index_vectors_returns_stored_rows(index):
    from ragsel.index import open_index

    ix = open_index(index)
    ids = [ix.chunks[3].id, "no-such-id", ix.chunks[0].id]
    vecs, found = ix.vectors(ids)
    assert found.tolist() == [True, False, True]
    assert np.array_equal(vecs, ix.matrix[[3, 0]])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_selector_reads_candidate_vectors_from_the_index(index, minilm_embedder):
    cands = _retrieved(index, "Who may assign the lease without consent?")
    rats = Rationales(
        (
            Rationale("Who may assign the lease without consent?", label="query"),
            Rationale("landlord consent", label="entity1"),
        ),
        source="test",
    )
    results = []
    for ix in (str(index), None):
        emb = CountingEmbedder(minilm_embedder)
        s = RationaleSelector(index=ix)
        s.bind_components({"minilm": emb})
        out = s.run(candidates=cands, rationales=rats)
        results.append((out, emb.texts, out.note_of("rationale_selector")["vectors"]))
    (with_ix, n_ix, src_ix), (plain, n_plain, src_plain) = results
    assert n_ix == 2 and src_ix == {"index": len(cands), "cache": 0, "embedded": 0}
    assert n_plain == 2 + len(cands) and src_plain["embedded"] == len(cands)
    # the same decisions as embedding the chunks again (stored vectors = same model)
    assert with_ix.ids == plain.ids
    assert np.allclose([sc.score for sc in with_ix], [sc.score for sc in plain], atol=1e-4)


def test_chunks_not_in_the_index_or_rewritten_are_embedded_and_cached(index, minilm_embedder):
    base = _retrieved(index, "tenant landlord lease rent", k=4)
    assert len(base) == 4
    first = base.items[0]
    edited = Chunk(first.chunk.id, first.chunk.text + " (edited)", first.chunk.doc_id)
    extra = Chunk("outside", "A chunk that was never indexed.", "elsewhere")
    cands = Candidates.retrieved(
        "r", [(edited, 1.0), (extra, 0.9)] + [(sc.chunk, sc.score) for sc in base.items[1:]]
    )
    emb = CountingEmbedder(minilm_embedder)
    vecs = ChunkVectors("t", lambda: emb, index=str(index), cache_size=10)
    m, counts = vecs.get([sc.chunk for sc in cands])
    assert counts == {"index": 3, "cache": 0, "embedded": 2} and emb.texts == 2
    assert np.allclose(m[0], minilm_embedder.embed([edited.text])[0], atol=1e-5)
    _, counts = vecs.get([sc.chunk for sc in cands])
    assert counts == {"index": 3, "cache": 2, "embedded": 0} and emb.texts == 2
    small = ChunkVectors("t", lambda: emb, cache_size=1)
    small.get([edited, extra])
    assert len(small) == 1  # bounded


def test_an_index_of_another_vector_space_is_refused(index):
    s = RationaleSelector(embedder="bow", index=str(index))
    s.bind_components({"bow": FakeEmbedder(dim=384)})
    with pytest.raises(StageError, match="stage 'rationale_selector'.*set embedder: minilm") as ei:
        s.run(candidates=_retrieved(index, "lease"), rationales=Rationales((Rationale("lease"),)))
    assert isinstance(ei.value.__cause__, RagselIndexError)
    g = PoisonClusterGuard(index=str(index)).use_embedder(FakeEmbedder(dim=384))
    with pytest.raises(StageError, match="set embedder: minilm"):
        g.run(candidates=_retrieved(index, "lease"))


def test_a_missing_index_folder_is_a_clear_error(tmp_path):
    s = RationaleSelector(embedder="bow", index=str(tmp_path / "nope"))
    s.bind_components({"bow": FakeEmbedder()})
    with pytest.raises(StageError, match="nope") as ei:
        s.run(
            candidates=Candidates.retrieved("r", [(Chunk("a", "x y", "d"), 1.0)]),
            rationales=Rationales((Rationale("x"),)),
        )
    assert isinstance(ei.value.__cause__, RagselIndexError)


def test_poison_guard_uses_index_vectors_with_the_same_decisions(index, minilm_embedder):
    cands = _retrieved(index, "tenant landlord lease rent", k=15)
    outs = []
    for ix in (str(index), None):
        emb = CountingEmbedder(minilm_embedder)
        g = PoisonClusterGuard(index=ix, mode="collapse", cosine_threshold=0.6).use_embedder(emb)
        out = g.run(candidates=cands, query=Query("lease"))
        outs.append((out, emb.texts))
    (a, na), (b, nb) = outs
    assert na == 0 and nb == len(cands)
    assert a.note_of("poison_cluster_guard")["vectors"]["index"] == len(cands)
    ca = [c["members"] for c in a.note_of("poison_cluster_guard")["clusters"]]
    cb = [c["members"] for c in b.note_of("poison_cluster_guard")["clusters"]]
    assert ca == cb and a.ids == b.ids
