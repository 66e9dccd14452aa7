"""The int8-compute ONNX MiniLM ("minilm-onnx-q8"): built once from the packaged model by
dynamic quantisation, cached on disk, close to the fp32 vectors, and clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ragsel.backends.embedders._onnx_quantize import ENV_MODEL_CACHE_DIR, dynamic_int8_model
from ragsel.backends.embedders.onnx_minilm import OnnxMiniLMEmbedder, minilm_onnx_path
from ragsel.errors import BackendError, MissingExtraError

SENTENCES = [
    "The cat sat on the mat.",
    "Aspirin lowers the risk of a second heart attack in adults.",
    "The tenant may not assign this lease without the landlord's written consent.",
    "0-dimensional biomaterials show inductive properties.",
    "ok",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One real build into a fresh cache folder (a few seconds), shared by the tests."""
    cache = tmp_path_factory.mktemp("model-cache")
    return cache, dynamic_int8_model(minilm_onnx_path(), cache)


def test_build_quantises_the_weight_products_only(built):
    onnx = pytest.importorskip("onnx")
    _, path = built
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    # weight products run as int8 (quantised activations x int8 weights) ...
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") >= 30
    # ... attention's activation x activation products stay fp32
    assert ops.count("MatMul") >= 12


def test_second_call_reuses_the_cached_file(built):
    cache, path = built
    mtime = path.stat().st_mtime_ns
    assert dynamic_int8_model(minilm_onnx_path(), cache) == path
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary build left over


def test_vectors_stay_close_to_fp32(built, monkeypatch, minilm_embedder):
    cache, _ = built
    monkeypatch.setenv(ENV_MODEL_CACHE_DIR, str(cache))
    q8 = OnnxMiniLMEmbedder(int8_compute=True)
    v = q8.embed(SENTENCES)
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cos = (v * minilm_embedder.embed(SENTENCES)).sum(axis=1)
    assert cos[:-1].min() >= 0.985 and cos[-1] >= 0.95, cos  # one-word texts drift most
    assert q8.space == minilm_embedder.space and q8.name != minilm_embedder.name
    assert "int8-dynamic" in q8.name


def test_missing_onnx_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r"ragsel\[local\]"):
        dynamic_int8_model(minilm_onnx_path(), tmp_path)


def test_unwritable_cache_is_a_backend_error_naming_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BackendError, match=ENV_MODEL_CACHE_DIR):
        dynamic_int8_model(minilm_onnx_path(), blocker / "cache")
