"""Chunk stores: look a chunk up by its document and position.

Neighbour expansion needs the chunks *next to* a retrieved chunk, which the retriever did not
return. Anything with ``chunk_at(doc_id, position) -> Chunk | None`` is a :class:`ChunkStore`:
:class:`ragsel.index.LocalIndex` implements it over its on-disk chunk table, and
:class:`InMemoryChunkStore` over a list of chunks (small corpora, tests, in-memory
retrievers)::

    store = InMemoryChunkStore(chunks)
    store.chunk_at("contract.md", 3)  # the chunk at position 3 of contract.md, or None
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ragsel.errors import InputError
from ragsel.types import Chunk


@runtime_checkable
class ChunkStore(Protocol):
    """Random access to chunks by ``(doc_id, position)``; ``None`` past a document's ends."""

    def chunk_at(self, doc_id: str, position: int) -> Chunk | None: ...


class InMemoryChunkStore:
    """A :class:`ChunkStore` over chunks held in memory.

    Chunks without a ``doc_id`` or ``position`` cannot be looked up and are not stored
    (``skipped`` counts them); two chunks claiming the same ``(doc_id, position)`` are an
    :class:`~ragsel.errors.InputError`, since neighbours would be ambiguous.

    Example: ``InMemoryChunkStore(make_chunks(["a", "b", "c"])).chunk_at("doc", 1).text == "b"``
    """

    def __init__(self, chunks: Iterable[Chunk] = ()) -> None:
        self._by_pos: dict[tuple[str, int], Chunk] = {}
        self.skipped = 0
        self.add(chunks)

    def add(self, chunks: Iterable[Chunk]) -> None:
        for c in chunks:
            if not c.doc_id or c.position is None:
                self.skipped += 1
                continue
            key = (c.doc_id, c.position)
            old = self._by_pos.get(key)
            if old is not None and old.id != c.id:
                raise InputError(
                    f"chunks {old.id!r} and {c.id!r} both claim position "
                    f"{c.position} of document {c.doc_id!r}; give every chunk of "
                    "a document its own position"
                )
            self._by_pos[key] = c

    def chunk_at(self, doc_id: str, position: int) -> Chunk | None:
        return self._by_pos.get((doc_id, position))

    def __len__(self) -> int:
        return len(self._by_pos)
