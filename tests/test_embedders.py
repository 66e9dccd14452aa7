"""Embedders: real MiniLM (fp32 ONNX, the default) and its int8 ONNX twin, and the cache."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ragsel.backends.embedders import (
    EmbedderSpec,
    cached_embedders,
    clear_embedder_cache,
    load_embedder,
)
from ragsel.errors import ConfigError, MissingExtraError

SENTENCES = [
    "The cat sat on the mat.",
    "Aspirin lowers the risk of a second heart attack in adults.",
    "The tenant may not assign this lease without the landlord's written consent.",
    "Quantum computers use qubits, which can be in superposition.",
    "ok",
]


@pytest.fixture(scope="module")
def onnx_embedder():
    emb = load_embedder("minilm-onnx")
    emb.warm_up()
    return emb


def test_minilm_gives_384d_unit_float32_vectors(minilm_embedder):
    v = minilm_embedder.embed(SENTENCES)
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert minilm_embedder.dim == 384
    # semantically close texts are closer than unrelated ones
    q = minilm_embedder.embed(["Can I transfer my lease to someone else?"])[0]
    sims = v @ q
    assert int(np.argmax(sims)) == 2


def test_onnx_matches_sentence_transformers(minilm_embedder, onnx_embedder):
    a = minilm_embedder.embed(SENTENCES)
    b = onnx_embedder.embed(SENTENCES)
    assert b.shape == (len(SENTENCES), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.99, cos
    assert onnx_embedder.space == minilm_embedder.space
    assert onnx_embedder.name != minilm_embedder.name


def test_onnx_keeps_input_order_with_length_sorting(onnx_embedder):
    texts = ["a much longer sentence about contracts and leases and consent", "short"]
    both = onnx_embedder.embed(texts)
    np.testing.assert_allclose(both[1], onnx_embedder.embed(["short"])[0], atol=1e-5)


def test_empty_input_gives_empty_matrix(minilm_embedder, onnx_embedder):
    assert minilm_embedder.embed([]).shape == (0, 384)
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_cache_shares_one_instance_per_spec():
    a = load_embedder("minilm")
    assert load_embedder("minilm") is a
    assert load_embedder(EmbedderSpec("minilm")) is a
    other = load_embedder("minilm", batch_size=8)
    assert other is not a and other.batch_size == 8
    assert EmbedderSpec("minilm", batch_size=8) in cached_embedders()


def test_clear_cache_gives_fresh_instances(minilm_embedder):
    before = load_embedder("minilm-onnx", threads=1)
    clear_embedder_cache()
    try:
        assert load_embedder("minilm-onnx", threads=1) is not before
    finally:
        # put the session-wide instance back so later tests share it
        from ragsel.backends import embedders as mod

        mod._cache[EmbedderSpec("minilm")] = minilm_embedder


def test_unknown_name_and_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="minilm"):
        load_embedder("sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(ConfigError, match="threads"):
        load_embedder("minilm", threads=0)
    with pytest.raises(ConfigError, match="batch_size"):
        EmbedderSpec("minilm", batch_size=0)


def test_missing_package_names_the_extra(monkeypatch):
    from ragsel.backends.embedders.onnx_minilm import OnnxMiniLMEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r"ragsel\[local\]"):
        OnnxMiniLMEmbedder().warm_up()


def test_local_directory_path(tmp_path, minilm_embedder):
    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    emb = load_embedder(str(minilm_model_dir()))
    assert emb is not minilm_embedder  # a different spec, its own cache entry
    # the packaged MiniLM by path is the same model (on torch): same space, equal vectors
    from ragsel.backends.embedders import same_vectors

    assert emb.space == minilm_embedder.space and same_vectors(emb.name, minilm_embedder.name)
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    other = load_embedder(str(empty))
    assert other.name == "sentence-transformers:not-a-model"
    assert other.space.startswith("not-a-model:") and other.space != minilm_embedder.space
    from ragsel.errors import BackendError

    with pytest.raises(BackendError, match="not-a-model"):
        other.warm_up()
