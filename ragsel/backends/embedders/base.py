"""The embedder interface every embedding backend implements.

An embedder maps texts to L2-normalised float32 vectors (so cosine = dot product). Backends
load their model lazily on the first ``embed`` call (or ``warm_up``), never in ``__init__``.
``name`` identifies model + settings; an index records it and refuses vectors from another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    #: Stable identifier of model and settings, e.g. "sentence-transformers:all-MiniLM-L6-v2".
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised."""
        ...

    def warm_up(self) -> None: ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
