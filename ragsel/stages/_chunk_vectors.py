"""Vectors of candidate chunks for stages that compare chunks in embedding space.

The rationale selector and the poison cluster guard need a vector per candidate chunk. Chunks
retrieved from a :class:`~ragsel.index.LocalIndex` already have one, stored when the corpus was
indexed, so re-embedding them (seconds for 50-100 chunks on a CPU) is wasted work.
:class:`ChunkVectors` resolves each chunk in this order:

1. the index (when the stage names one with ``index:``): a chunk whose id is in the index
   *and* whose text equals the stored text takes the stored vector. The index must hold
   vectors of the stage's embedder's vector space (``LocalIndex.check_embedder``; the fp32
   and int8 MiniLM share one), else an :class:`~ragsel.errors.RagselIndexError` names the fix;
2. a bounded per-stage LRU cache keyed by (embedder, chunk id, text hash) -- a documented
   cache, ``cache_size`` entries;
3. the embedder, in one batch for everything still missing.

Example::

    vecs = ChunkVectors("select", get_embedder, index=".ragsel/index", cache_size=50_000)
    matrix, counts = vecs.get([sc.chunk for sc in candidates])
    counts  # {"index": 48, "cache": 0, "embedded": 2}
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ragsel.errors import InputError
from ragsel.types import Chunk


class ChunkVectors:
    """Index lookup, then LRU cache, then embedding (see the module docstring)."""

    def __init__(
        self,
        stage: str | Callable[[], str],
        embedder: Callable[[], Any],
        *,
        index: str | None = None,
        cache_size: int = 50_000,
    ) -> None:
        # a callable: the owning stage learns its node name only when added to a pipeline
        self._stage = stage
        self._get_embedder = embedder
        self.index_path = index
        self.cache_size = cache_size
        self._index: Any = None
        self._cache: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def stage(self) -> str:
        return self._stage() if callable(self._stage) else self._stage

    def clear(self) -> None:
        """Forget every cached vector (the index is not affected)."""
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def index(self) -> Any:
        """The opened, embedder-checked index, or ``None`` when the stage names none."""
        if self.index_path is None:
            return None
        if self._index is None:
            from ragsel.index import open_index

            ix = open_index(self.index_path)
            ix.check_embedder(self._get_embedder(), self.stage)
            ix.load()
            self._index = ix
        return self._index

    def _from_index(self, chunks: Sequence[Chunk]) -> dict[int, np.ndarray]:
        ix = self.index()
        if ix is None:
            return {}
        ids = [c.id for c in chunks]
        stored = ix.get(ids)
        # the id alone is not enough: a stage upstream may have rewritten the text
        usable = [
            i
            for i, (c, s) in enumerate(zip(chunks, stored))
            if s is not None and (s is c or s.text == c.text)
        ]
        if not usable:
            return {}
        vecs, found = ix.vectors([ids[i] for i in usable])
        return {i: v for i, v in zip(np.asarray(usable)[found].tolist(), vecs)}

    def get(self, chunks: Sequence[Chunk]) -> tuple[np.ndarray, dict[str, int]]:
        """``(vectors, counts)``: one row per chunk, and how many came from the index, the
        cache and the embedder."""
        out = self._from_index(chunks)
        emb = self._get_embedder()
        ename = getattr(emb, "name", "embedder")
        rest = [i for i in range(len(chunks)) if i not in out]
        keys = {i: (ename, chunks[i].id, hash(chunks[i].text)) for i in rest}
        n_cached = 0
        with self._lock:
            for i in rest:
                v = self._cache.get(keys[i])
                if v is not None:
                    self._cache.move_to_end(keys[i])
                    out[i] = v
                    n_cached += 1
        missing = [i for i in rest if i not in out]
        if missing:
            new = np.asarray(emb.embed([chunks[i].text for i in missing]), dtype=np.float32)
            if new.ndim != 2 or new.shape[0] != len(missing):
                raise InputError(
                    f"stage '{self.stage}': the embedder returned shape "
                    f"{new.shape} for {len(missing)} texts (embedder {ename!r}; "
                    "it must return one row per text)"
                )
            with self._lock:
                for i, vec in zip(missing, new):
                    out[i] = vec
                    if self.cache_size:
                        self._cache[keys[i]] = vec
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        counts = {"index": len(chunks) - len(rest), "cache": n_cached, "embedded": len(missing)}
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32), counts
        dims = {out[i].shape[0] for i in out}
        if len(dims) > 1:
            raise InputError(
                f"stage '{self.stage}': chunk vectors have mixed dimensions "
                f"{sorted(dims)} (index vs embedder); embed with the model the "
                "index was built with"
            )
        return np.stack([out[i] for i in range(len(chunks))]).astype(np.float32, copy=False), counts
