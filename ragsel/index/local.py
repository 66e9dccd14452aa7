"""LocalIndex: an embedded, persistent chroma collection plus a BM25 index, in one folder.

Build one with ``ragsel index CORPUS --into DIR`` or :meth:`LocalIndex.build`; query it with the
``dense_retriever`` / ``bm25_retriever`` stages or directly::

    from ragsel.index import LocalIndex, open_index

    with LocalIndex.create("idx", embedder="minilm", chunker=ChunkerConfig("words", 256)) as ix:
        report = ix.add_corpus("corpus/")          # embeds, stores, rebuilds BM25
    ix = open_index("idx")                         # shared, read-only, cached per folder
    hits = ix.dense_search(query_vectors, k=10)    # [[(Chunk, cosine), ...]] per query
    hits = ix.bm25_search(["tenant assignment"], k=10, where={"title": "Lease"})

**Why vectors are served from numpy.** After the first query the index holds every vector in
one float32 matrix (5k x 384 = 7.5 MB) and answers with an exact dot product + argpartition:
~0.5 ms for 5k chunks, exact rather than HNSW-approximate, and no per-query chroma round trip.
chroma stays the store of record (what survives restarts, what other tools can open); readers
load the index's own snapshot files (``chunks.jsonl``, ``vectors.npy``, checksummed in the
manifest) and never open chroma in place, because opening chroma writes to it (snapshot.py).

**Metadata filters** (``where``, chroma's syntax: ``{"doc_id": "a.md"}``,
``{"$and": [{"year": {"$gte": 2020}}, ...]}``) are evaluated *by chroma* (so the semantics are
chroma's, not a re-implementation; a reader uses a private temporary copy of the chroma
folder) into a row mask, cached per filter; dense and BM25 search
then rank only the masked rows, still exactly. A filter chroma rejects is a ConfigError.

**Process-wide cache.** :func:`open_index` keeps one read-only ``LocalIndex`` per folder and
re-opens it when the manifest changes (a new ``ragsel index`` run), so a dense and a BM25
retriever over the same folder share the loaded chunks. :func:`clear_index_cache` empties it.

This module holds the index class; the exact top-k ranking is in :mod:`._search` and the
process-wide cache in :mod:`._shared` (both functions re-exported here).
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import ConfigError, RagselIndexError
from ragsel.index._search import similarities, top_k
from ragsel.index._shared import clear_index_cache, open_index
from ragsel.index.bm25 import BM25Config, BM25Store
from ragsel.index.store import (
    LOCK,
    WriterLock,
    build_hint,
    check_compatible,
    check_not_writing,
    clear_index,
    never_held_data,
    new_manifest,
    now,
    read_manifest,
    remove_entries,
    write_manifest,
)
from ragsel.ingest.chunkers import ChunkerConfig
from ragsel.types import Chunk

__all__ = ["IndexIncompleteWarning", "LocalIndex", "clear_index_cache", "open_index"]


class IndexIncompleteWarning(UserWarning):
    """The index was opened while its last indexing run had not finished."""


class LocalIndex:
    """One index folder (see the module docstring). Use :meth:`create` to write, :meth:`open`
    (or :func:`open_index`) to read."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        *,
        writable: bool,
        lock: WriterLock | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.writable = writable
        self._lock = lock
        self._fresh = ""  # "dir" / "files": created by this process's create()
        self._client: Any = None
        self._collection: Any = None
        self._loaded = False
        self._load_lock = threading.RLock()
        self._chunks: list[Chunk] = []
        self._row: dict[str, int] = {}
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._by_pos: dict[tuple[str, int], int] = {}
        self._bm25: BM25Store | None = None
        self._bm25_rows: np.ndarray | None = None  # bm25 row -> matrix row
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        #: (embedder spec, threads, batch size) a writer embeds with (set by create()).
        self._embedder_options: tuple[str, int | None, int] = (
            manifest["embedder"]["spec"],
            None,
            64,
        )

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, writable: bool = False) -> LocalIndex:
        """Open an existing index. Raises :class:`RagselIndexError` if it is missing, from another
        format version, or (for reading) being written by another process."""
        p = Path(path).expanduser().resolve()
        manifest = read_manifest(p)
        if writable:
            lock = WriterLock(p)
            lock.acquire()
            return cls(p, manifest, writable=True, lock=lock)
        check_not_writing(p)
        if not manifest.get("complete", False) and never_held_data(p, manifest):
            raise RagselIndexError(
                f"the index folder {p} is empty: the `ragsel index` run that created it stopped "
                f"before storing any document; {build_hint(p)}"
            )
        if not manifest.get("complete", False):
            warnings.warn(
                f"the index at {p} is incomplete (an indexing run was interrupted); "
                "re-run the same `ragsel index` command to finish it",
                IndexIncompleteWarning,
                stacklevel=2,
            )
        return cls(p, manifest, writable=False)

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        embedder: str = "minilm",
        chunker: ChunkerConfig | None = None,
        bm25: BM25Config | None = None,
        threads: int | None = None,
        batch_size: int = 64,
        rebuild: bool = False,
    ) -> LocalIndex:
        """Open ``path`` for writing, creating the index if needed. An existing index must
        have been built with the same embedder, chunker and BM25 settings. ``rebuild``
        first deletes an existing (possibly damaged) index there."""
        from ragsel.backends.embedders import load_embedder

        p = Path(path).expanduser().resolve()
        if rebuild:
            clear_index(p)
        chunker = chunker or ChunkerConfig()
        bm25 = bm25 or BM25Config()
        emb = load_embedder(embedder, threads=threads, batch_size=batch_size)
        if p.exists() and (p / "manifest.json").exists():
            ix = cls.open(p, writable=True)
            try:
                check_compatible(ix.path, ix.manifest, emb.name, chunker, bm25)
            except BaseException:
                ix.close()
                raise
            ix._embedder_options = (embedder, threads, batch_size)
            return ix
        if p.exists() and not p.is_dir():
            raise RagselIndexError(f"{p} is a file; choose a folder for the index")
        if p.exists() and any(x.name != ".lock" for x in p.iterdir()):
            raise RagselIndexError(
                f"{p} exists and is not empty but holds no ragsel index; choose "
                "a new or empty folder for --into"
            )
        made_dir = not p.exists()
        p.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(p)
        lock.acquire()
        manifest = new_manifest(embedder, emb, chunker.to_dict(), bm25.to_dict())
        write_manifest(p, manifest)
        ix = cls(p, manifest, writable=True, lock=lock)
        ix._embedder_options = (embedder, threads, batch_size)
        ix._fresh = "dir" if made_dir else "files"
        return ix

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A new index whose first run failed before storing anything is removed again, so it
        # is never mistaken for an index later.
        if exc_type is not None and self._fresh and never_held_data(self.path, self.manifest):
            remove_entries(self.path)
            self.close()
            if self._fresh == "dir":
                (self.path / LOCK).unlink(missing_ok=True)
                try:
                    self.path.rmdir()
                except OSError:
                    pass
            return
        self.close()

    def __repr__(self) -> str:
        c = self.manifest.get("counts", {})
        return (
            f"LocalIndex({str(self.path)!r}, documents={c.get('documents')}, "
            f"chunks={c.get('chunks')}, embedder={self.embedder_name!r})"
        )

    # --- facts --------------------------------------------------------------------------
    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]["name"]

    @property
    def embedder_spec(self) -> str:
        return self.manifest["embedder"]["spec"]

    @property
    def space(self) -> str:
        return self.manifest["embedder"]["space"]

    @property
    def chunker(self) -> ChunkerConfig:
        return ChunkerConfig.from_dict(self.manifest["chunker"])

    @property
    def bm25_config(self) -> BM25Config:
        return BM25Config.from_dict(self.manifest["bm25"])

    def check_embedder(self, embedder: Any, stage: str = "") -> None:
        """Refuse query vectors from a model other than the one the index was built with
        (the fp32 and int8 MiniLM share a vector space and are both accepted)."""
        space = getattr(embedder, "space", embedder.name)
        if space != self.space:
            who = f"stage '{stage}': " if stage else ""
            raise RagselIndexError(
                f"{who}the index at {self.path} holds {self.space} vectors "
                f"(embedder '{self.embedder_spec}') but the query embedder is "
                f"{embedder.name}; set embedder: {self.embedder_spec}"
            )

    # --- chroma -------------------------------------------------------------------------
    @property
    def collection(self) -> Any:
        """The chroma collection. A reader gets a private temporary copy (opening chroma
        writes to it; see snapshot.py), made on first use: only metadata filters need it."""
        if self._collection is None:
            from ragsel.index import chroma_store

            if self.writable:
                self._client = chroma_store.client(str(self.path / "chroma"))
                self._collection = chroma_store.create_collection(self._client, self.embedder_spec)
            else:
                self._client = chroma_store.client(chroma_store.read_only_copy(self.path))
                self._collection = chroma_store.get_collection(
                    self._client, str(self.path / "chroma")
                )
        return self._collection

    # --- loading for search -------------------------------------------------------------
    def load(self) -> LocalIndex:
        """Read every chunk and vector into memory (once): a reader from the snapshot files
        (checksums verified), a writer (or an index from before snapshots) from chroma."""
        if self._loaded:
            return self
        with self._load_lock:
            if self._loaded:
                return self
            from ragsel.index import snapshot

            dim = int(self.manifest["embedder"]["dim"])
            if not self.writable and snapshot.exists(self.path):
                from ragsel.index.integrity import verify

                verify(self.path, self.manifest)
                chunks, mat = snapshot.read(self.path, dim)
            else:
                chunks, mat = snapshot.read_chroma(self.collection, dim)
            self._chunks, self._matrix = chunks, mat
            self._row = {c.id: r for r, c in enumerate(self._chunks)}
            self._by_pos = {
                (c.doc_id, c.position): r
                for r, c in enumerate(self._chunks)
                if c.position is not None
            }
            self._loaded = True
        return self

    @property
    def chunks(self) -> list[Chunk]:
        return self.load()._chunks

    @property
    def matrix(self) -> np.ndarray:
        return self.load()._matrix

    def __len__(self) -> int:
        return len(self.load()._chunks)

    def get(self, ids: Iterable[str]) -> list[Chunk | None]:
        self.load()
        return [self._chunks[r] if (r := self._row.get(i)) is not None else None for i in ids]

    def vectors(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The stored (unit) vectors of chunk ``ids``, without embedding anything.

        Returns ``(vectors, found)``: ``found`` is a boolean mask over ``ids`` and ``vectors``
        holds the rows of the found ids, in order (``(found.sum(), dim)``).
        """
        self.load()
        rows = np.fromiter((self._row.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
        found = rows >= 0
        return self._matrix[rows[found]], found

    def chunk_at(self, doc_id: str, position: int) -> Chunk | None:
        """The chunk at ``position`` of ``doc_id`` (for neighbour expansion), or ``None``."""
        r = self.load()._by_pos.get((doc_id, position))
        return None if r is None else self._chunks[r]

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        """Every chunk of one document in position order."""
        return [c for c in self.chunks if c.doc_id == doc_id]

    def bm25(self) -> BM25Store:
        if self._bm25 is None:
            with self._load_lock:
                if self._bm25 is None:
                    self.load()
                    if not self.writable:
                        from ragsel.index.integrity import verify

                        verify(self.path, self.manifest)
                    store = BM25Store.load(self.path / "bm25")
                    rows = np.asarray([self._row.get(i, -1) for i in store.ids], dtype=np.int64)
                    self._bm25_rows, self._bm25 = rows, store
        return self._bm25

    def warm_up(self) -> None:
        self.load()
        self.bm25()

    def _invalidate(self) -> None:
        """Forget what was loaded (after a write), so the next search reloads."""
        with self._load_lock:
            self._loaded, self._bm25, self._bm25_rows = False, None, None
            self._masks.clear()

    # --- filters ------------------------------------------------------------------------
    def mask(self, where: Mapping[str, Any]) -> np.ndarray:
        """Boolean row mask of the chunks matching a chroma ``where`` filter (cached)."""
        key = json.dumps(where, sort_keys=True, default=str)
        with self._load_lock:
            m = self._masks.get(key)
            if m is not None:
                self._masks.move_to_end(key)
                return m
        self.load()
        try:
            got = self.collection.get(where=dict(where), include=[])
        except Exception as exc:
            raise ConfigError(
                f"invalid metadata filter {key}: {exc}. Use chroma's where "
                'syntax, e.g. {"doc_id": "a.md"} or '
                '{"year": {"$gte": 2020}}',
                field="where",
            ) from exc
        m = np.zeros(len(self._chunks), dtype=bool)
        rows = [self._row[i] for i in got["ids"] if i in self._row]
        m[rows] = True
        with self._load_lock:
            self._masks[key] = m
            while len(self._masks) > 64:
                self._masks.popitem(last=False)
        return m

    # --- search -------------------------------------------------------------------------
    def dense_search(
        self, query_vectors: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> list[list[tuple[Chunk, float]]]:
        """Exact cosine top-``k`` per query vector (rows of ``query_vectors``)."""
        mat = self.matrix
        q = np.asarray(query_vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if mat.shape[0] == 0:
            return [[] for _ in range(len(q))]
        if q.shape[1] != mat.shape[1]:
            raise RagselIndexError(
                f"query vectors have {q.shape[1]} dimensions but the index at "
                f"{self.path} holds {mat.shape[1]}-d vectors"
            )
        rows = None
        if where:
            rows = np.flatnonzero(self.mask(where))
            if rows.size == 0:
                return [[] for _ in range(len(q))]
            mat = mat[rows]
        return [top_k(s, k, rows, self._chunks) for s in similarities(mat, q)]

    def bm25_search(
        self, queries: Sequence[str], k: int, where: Mapping[str, Any] | None = None
    ) -> list[list[tuple[Chunk, float]]]:
        """BM25 top-``k`` per query (chunks with a positive score only)."""
        store = self.bm25()
        assert self._bm25_rows is not None
        weight = None
        if where:
            m = self.mask(where)
            weight = np.array([r >= 0 and m[r] for r in self._bm25_rows], dtype=np.float32)
            if not weight.any():
                return [[] for _ in queries]
        out = []
        chunks, to_row = self._chunks, self._bm25_rows
        for hits in store.search_many(queries, k, mask=weight):
            rows = to_row[[r for r, _ in hits]].tolist() if hits else []
            # a row whose chunk is gone (interrupted re-index, row -1) is skipped
            out.append([(chunks[mr], s) for mr, (_, s) in zip(rows, hits) if mr >= 0])
        return out

    # --- writing (see builder.py) -------------------------------------------------------
    def add_corpus(self, corpus: str | Path, **kw: Any) -> Any:
        """Index every document under ``corpus`` (see :func:`ragsel.index.builder.add_corpus`)."""
        from ragsel.index.builder import add_corpus

        return add_corpus(self, corpus, **kw)

    def add_documents(self, docs: Iterable[Any], **kw: Any) -> Any:
        from ragsel.index.builder import add_documents

        return add_documents(self, docs, **kw)

    def _save_manifest(self, **changes: Any) -> None:
        self.manifest.update(changes, updated=now())
        write_manifest(self.path, self.manifest)
