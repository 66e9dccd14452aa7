"""Query vectors computed once and served from memory (shared by the local-pipeline
benchmarks).

Quality benchmarks embed the same ~1,100 SciFact claims on every run; caching their vectors on
disk (keyed by model and text) saves minutes on a busy machine without changing a single
number, since a dense retriever given these vectors searches exactly as if it had embedded
the text itself. The latency benchmark uses :class:`PrecomputedEmbedder` to time the pipeline
without the model.
"""

from __future__ import annotations

import hashlib

import numpy as np

from eval.benchmarks._common import CACHE


class PrecomputedEmbedder:
    """An embedder that returns vectors computed beforehand (texts it has not seen are
    embedded by the real model and remembered)."""

    def __init__(self, real, vectors: dict[str, np.ndarray]) -> None:
        self.real = real
        self.name, self.dim = real.name, real.dim
        self.space = getattr(real, "space", real.name)
        self._vec = dict(vectors)

    def embed(self, texts):
        missing = [t for t in texts if t not in self._vec]
        if missing:
            self._vec.update(zip(missing, self.real.embed(missing)))
        return np.stack([self._vec[t] for t in texts])

    def warm_up(self) -> None:
        pass


def cached_vectors(embedder, texts: list[str]) -> dict[str, np.ndarray]:
    """``text -> vector`` from ``embedder``, read from / written to the bench cache."""
    key = hashlib.blake2b("\x1f".join([embedder.name, *texts]).encode(), digest_size=12)
    path = CACHE / f"queries-{key.hexdigest()}.npy"
    if path.is_file():
        mat = np.load(path)
    else:
        mat = np.asarray(embedder.embed(texts), dtype=np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, mat)
    return dict(zip(texts, mat))


def use_precomputed(pipe, texts: list[str]) -> None:
    """Give every dense retriever of ``pipe`` precomputed vectors for ``texts`` (after
    ``pipe.warm_up()``, which loads the real embedder)."""
    for stage in pipe.stages.values():
        if stage.type_name == "dense_retriever":
            real = stage._embedder  # the retriever's loaded embedder (set by warm_up)
            base = getattr(real, "real", real)
            stage._embedder = PrecomputedEmbedder(base, cached_vectors(base, texts))
