"""The reader's copy of an index: every chunk (``chunks.jsonl``) and its vector
(``vectors.npy``), in row order, written by ``ragsel index`` after each run.

Readers load these two files and never open chroma for a query: opening a chroma store writes
to it (chromadb 1.x records a write lease in ``chroma.sqlite3`` and re-persists the HNSW files on
every open), and a query must not change the index. Loading them is also faster than paging
through chroma (one ``np.load`` and one JSON line per chunk). chroma stays the store of
record; :func:`read_chroma` rebuilds the snapshot from it::

    chunks, matrix = read_chroma(collection, dim=384)
    write(path, chunks, matrix)           # chunks.jsonl + vectors.npy, atomically each
    chunks, matrix = read(path)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import InputError, RagselIndexError
from ragsel.index.store import rebuild_hint
from ragsel.types import Chunk

CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
_PAGE = 5000


def chunk_from_chroma(cid: str, text: str, meta: Mapping[str, Any] | None) -> Chunk:
    from ragsel.index.chroma_store import RESERVED

    m = dict(meta or {})
    doc_id = str(m.pop("doc_id", ""))
    pos = m.pop("position", None)
    s, e = m.pop("span_start", None), m.pop("span_end", None)
    for k in RESERVED:
        if f"meta_{k}" in m:
            m[k] = m.pop(f"meta_{k}")
    return Chunk(
        cid,
        text,
        doc_id,
        None if pos is None else int(pos),
        None if s is None or e is None else (int(s), int(e)),
        m,
    )


def read_chroma(col: Any, dim: int) -> tuple[list[Chunk], np.ndarray]:
    """Every chunk and vector of a chroma collection, in the index's row order."""
    total = col.count()
    chunks: list[Chunk] = []
    vecs: list[np.ndarray] = []
    for off in range(0, total, _PAGE):
        got = col.get(include=["documents", "metadatas", "embeddings"], limit=_PAGE, offset=off)
        chunks.extend(
            chunk_from_chroma(i, d, m)
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])
        )
        vecs.append(np.asarray(got["embeddings"], dtype=np.float32))
    # a deterministic row order, independent of chroma's storage order
    order = sorted(
        range(len(chunks)), key=lambda i: (chunks[i].doc_id, chunks[i].position or 0, chunks[i].id)
    )
    mat = np.concatenate(vecs) if vecs else np.zeros((0, dim), dtype=np.float32)
    mat = np.ascontiguousarray(mat[order]) if order else mat.reshape(0, dim)
    return [chunks[i] for i in order], mat


def _record(c: Chunk) -> dict[str, Any]:
    return {
        "id": c.id,
        "text": c.text,
        "doc_id": c.doc_id,
        "position": c.position,
        "span": list(c.span) if c.span is not None else None,
        "metadata": dict(c.metadata),
    }


def write(path: Path, chunks: Sequence[Chunk], matrix: np.ndarray) -> None:
    tmp = path / (CHUNKS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(_record(c), ensure_ascii=False, separators=(",", ":")) + "\n")
    os.replace(tmp, path / CHUNKS)
    tmp = path / (VECTORS + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, path / VECTORS)


def exists(path: Path) -> bool:
    return (path / CHUNKS).is_file() and (path / VECTORS).is_file()


def read(path: Path, dim: int) -> tuple[list[Chunk], np.ndarray]:
    """The snapshot; any damage is an :class:`RagselIndexError` naming the file and the fix."""
    f = path / CHUNKS
    try:
        chunks = []
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                span = r["span"]
                chunks.append(
                    Chunk(
                        r["id"],
                        r["text"],
                        r["doc_id"],
                        r["position"],
                        None if span is None else (int(span[0]), int(span[1])),
                        r["metadata"],
                    )
                )
        f = path / VECTORS
        mat = np.load(f, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, InputError) as exc:
        raise RagselIndexError(
            f"the index file {f} is damaged ({type(exc).__name__}); {rebuild_hint(path)}"
        ) from exc
    if mat.dtype != np.float32 or mat.ndim != 2 or mat.shape != (len(chunks), dim):
        raise RagselIndexError(
            f"the index file {f} holds vectors of shape {mat.shape} ({mat.dtype}) for "
            f"{len(chunks)} chunks of dimension {dim}; {rebuild_hint(path)}"
        )
    return chunks, mat
