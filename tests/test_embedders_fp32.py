"""The one MiniLM path for indexing and queries: the packaged fp32 weights exported to ONNX
(issue 17). Its vectors equal sentence-transformers' on torch; batching, length sorting and
the overlapped tokenizer never change a vector."""

from __future__ import annotations

import numpy as np
import pytest

from ragsel.backends.embedders import load_embedder, same_vectors

TEXTS = [
    "ok",
    "Aspirin lowers the risk of a second heart attack in adults.",
    "Résumé des études cliniques sur l'aspirine et le risque cardiovasculaire.",
    "",
    " ".join(["long text about cells and proteins and their interactions"] * 60),  # > 256 tok
    "中文句子：阿司匹林降低心脏病风险。",
] + [f"claim {i}: vitamin D {i} mg changes bone density" for i in range(70)]


@pytest.fixture(scope="module")
def torch_minilm():
    emb = load_embedder("sentence-transformers")
    emb.warm_up()
    return emb


def test_minilm_runs_on_onnxruntime_in_fp32(minilm_embedder):
    assert minilm_embedder.name == "onnx-fp32:all-MiniLM-L6-v2"
    assert minilm_embedder.space == "all-MiniLM-L6-v2"


def test_vectors_equal_sentence_transformers(minilm_embedder, torch_minilm):
    a = minilm_embedder.embed(TEXTS)  # several passes: lengths sorted, tokenizer overlapped
    b = torch_minilm.embed(TEXTS)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.9999, cos.min()
    assert same_vectors(minilm_embedder.name, torch_minilm.name)
    assert not same_vectors(minilm_embedder.name, load_embedder("minilm-onnx").name)


def test_batching_never_changes_a_vector(minilm_embedder):
    one_by_one = np.stack([minilm_embedder.embed([t])[0] for t in TEXTS[:8]])
    small = load_embedder("minilm", batch_size=3)  # many passes with a tokenizer ahead
    together = small.embed(TEXTS[:8])
    np.testing.assert_allclose(together, one_by_one, atol=2e-6)


def test_an_index_built_on_torch_accepts_the_onnx_path(tmp_path):
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Aspirin and the heart.")
    cfg = ChunkerConfig("document")
    with LocalIndex.create(tmp_path / "ix", embedder="sentence-transformers", chunker=cfg) as ix:
        ix.add_corpus(corpus)
    (corpus / "b.txt").write_text("Vitamin D and bones.")
    with LocalIndex.create(tmp_path / "ix", embedder="minilm", chunker=cfg) as ix:
        assert ix.add_corpus(corpus).added == 1
