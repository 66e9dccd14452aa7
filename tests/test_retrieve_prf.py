"""Pseudo-relevance feedback retrievers (RM3 for BM25, Rocchio for dense) over a real index of
examples/corpus, the RM3/Rocchio arithmetic by hand, and zscore fusion."""

from __future__ import annotations

import numpy as np
import pytest

from ragsel.index import open_index
from ragsel.spec import load_pipeline
from ragsel.stages.retrieve.bm25 import BM25Retriever
from ragsel.stages.retrieve.bm25_rm3 import BM25RM3Retriever, relevance_model, weighted_scores
from ragsel.stages.retrieve.dense import DenseRetriever
from ragsel.stages.retrieve.dense_rocchio import DenseRocchioRetriever, rocchio
from ragsel.stages.retrieve.fusion import RankFusion, normalized_scores
from ragsel.types import Candidates, Chunk, Query

Q = Query("how long do you keep personal data after deletion")


def test_relevance_model_by_hand():
    fb = [(["a", "b", "b", "c"], 2.0), (["b", "d"], 1.0)]
    # P(w|R) unnormalised: a 0.5, b 1.0 + 0.5, c 0.5, d 0.5 -> top 2: b 1.5, then a 0.5 (name)
    w = relevance_model(["q", "b"], fb, fb_terms=2, original_weight=0.5)
    assert w == pytest.approx({"q": 0.25, "b": 0.25 + 0.5 * 1.5 / 2.0, "a": 0.5 * 0.5 / 2.0})
    assert sum(w.values()) == pytest.approx(1.0)
    assert relevance_model(["q"], [], 10, 0.5) == {"q": 0.5}  # no feedback: query only


def test_weighted_scores_equal_bm25_for_query_counts(example_index):
    store = open_index(example_index).bm25()
    toks = ["retent", "data", "delet"]
    expected = store.retriever.get_scores(toks)
    got = weighted_scores(store, {t: 1.0 for t in toks} | {"zzznotaword": 5.0})
    assert np.allclose(got, expected, rtol=1e-5) and got.max() > 0


def test_rm3_without_feedback_weight_is_bm25(example_index):
    base = BM25Retriever(index=str(example_index), top_k=10).run(query=Q)
    same = BM25RM3Retriever(index=str(example_index), top_k=10, original_weight=1.0).run(query=Q)
    assert same.ids == base.ids
    # weights are normalised over the query's terms: scores scale by 1 / (number of terms)
    ratio = np.asarray(base.scores) / np.asarray(same.scores)
    assert np.allclose(ratio, ratio[0], rtol=1e-5)


def test_rm3_expands_from_feedback_and_is_deterministic(example_index):
    r = BM25RM3Retriever(index=str(example_index), top_k=20, fb_docs=3, fb_terms=5)
    a, b = r.run(query=Q), r.run(query=Q)
    assert a.ids == b.ids and a.scores == b.scores
    terms = a.note_of("bm25_rm3_retriever")["expansion"][0]
    assert len(terms) > 3 and sum(terms.values()) == pytest.approx(1.0, abs=1e-3)
    assert set(terms) - {"long", "keep", "person", "data", "delet"}  # new terms came in
    assert a[0].events[0].data["rank"] == 1 and a.scores == sorted(a.scores, reverse=True)


def test_rm3_no_word_in_corpus_and_filter(example_index):
    r = BM25RM3Retriever(index=str(example_index), top_k=5)
    c = r.run(query=Query("xylophone quokka"))
    assert len(c) == 0 and "no query term" in c.note_of("bm25_rm3_retriever")["empty_reason"]
    f = BM25RM3Retriever(
        index=str(example_index), top_k=50, where={"doc_id": "privacy_policy.md"}
    ).run(query=Q)
    assert len(f) > 0 and {sc.chunk.doc_id for sc in f} == {"privacy_policy.md"}


def test_rocchio_by_hand():
    q = np.array([1.0, 0.0], dtype=np.float32)
    fb = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    v = rocchio(q, fb, alpha=1.0, beta=1.0)
    assert np.allclose(v, [2**-0.5, 2**-0.5])
    assert rocchio(q, fb[:0], 1.0, 1.0) is q


def test_rocchio_zero_beta_is_dense_and_feedback_moves_the_query(example_index):
    base = DenseRetriever(index=str(example_index), top_k=10).run(query=Q)
    same = DenseRocchioRetriever(index=str(example_index), top_k=10, beta=0.0).run(query=Q)
    assert same.ids == base.ids and same.scores == pytest.approx(base.scores, abs=1e-5)
    moved = DenseRocchioRetriever(index=str(example_index), top_k=10, fb_docs=3, beta=1.0)
    out = moved.run(query=Q)
    assert out.scores != pytest.approx(base.scores, abs=1e-4)
    assert out.note_of("dense_rocchio_retriever")["rocchio"]["fb_docs"] == 3
    # the feedback centroid pulls its own chunks up: the top-3 of the first pass stay on top
    assert set(out.ids[:3]) == set(base.ids[:3])


def test_prf_stages_in_yaml(example_index, tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text(
        "version: 1\nstages:\n"
        f"  bm25: {{type: bm25_rm3_retriever, index: '{example_index}', top_k: 20}}\n"
        f"  dense: {{type: dense_rocchio_retriever, index: '{example_index}', top_k: 20}}\n"
        "  fuse: {type: fusion, method: zscore, weights: {bm25: 1.0, dense: 1.0}}\n"
        "connections: [bm25 -> fuse.candidates, dense -> fuse.candidates]\noutput: fuse\n"
    )
    out = load_pipeline(y).run(Q)
    assert len(out.candidates) > 0


C = [Chunk(c, f"text {c}", "d", i) for i, c in enumerate("xyzw")]


def test_zscore_normalisation_and_fusion_by_hand():
    s = np.array([3.0, 2.0, 1.0])
    assert normalized_scores(s, "zscore") == pytest.approx((s - 1.0) / s.std())
    assert normalized_scores(np.array([2.0, 2.0]), "zscore").tolist() == [0.0, 0.0]
    a = Candidates.retrieved("bm25", [(C[0], 3.0), (C[1], 2.0), (C[2], 1.0)])
    b = Candidates.retrieved("dense", [(C[1], 0.9), (C[3], 0.5)])
    out = RankFusion(method="zscore", weights={"bm25": 2.0}).run(candidates=[a, b])
    sd_a, sd_b = np.std([3.0, 2.0, 1.0]), np.std([0.9, 0.5])
    want = {"x": 2 * 2 / sd_a, "y": 2 * 1 / sd_a + 0.4 / sd_b, "z": 0.0, "w": 0.0}
    assert dict(zip(out.ids, out.scores)) == pytest.approx(want)
    assert out.ids[:2] == sorted(["x", "y"], key=lambda i: -want[i])
