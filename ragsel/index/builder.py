"""Writing a :class:`~ragsel.index.LocalIndex`: chunk, embed in batches, store, rebuild BM25.

One run, in four steps (each a function below):

1. :func:`plan` compares the documents with the ledger: new or changed documents (by content
   hash) are *pending*, documents the ledger holds but the corpus no longer has are *removed*
   (when the corpus is the whole truth, as for ``ragsel index FOLDER``).
2. :func:`remove_documents` deletes the removed documents' chunks from chroma and the ledger.
3. :class:`_Writer` chunks the pending documents, embeds them (sorted by length within a
   write batch, so forward passes pad little) and upserts each batch into chroma; a document
   enters the ledger once all its chunks are stored, so a killed run resumes where it stopped.
4. :func:`finalize` rewrites what readers load (the chunk/vector snapshot and BM25) from chroma,
   records their checksums, and marks the manifest complete.

Re-running on the same corpus adds nothing; adding files indexes only those; an edited file
has its old chunks replaced; a deleted file's chunks are removed.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import InputError, RagselIndexError
from ragsel.index.bm25 import BM25Store
from ragsel.index.progress import IndexProgress
from ragsel.index.store import Ledger, read_ledger
from ragsel.ingest.chunkers import make_chunker
from ragsel.ingest.documents import Document, iter_documents
from ragsel.types import Chunk

#: Chunks per chroma write (and per ledger commit): large, since each upsert has a fixed cost.
WRITE_BATCH = 1024


@dataclass
class IndexReport:
    """What one indexing run did."""

    documents: int = 0  # seen in the corpus
    added: int = 0  # new documents indexed
    updated: int = 0  # changed documents re-indexed
    unchanged: int = 0  # skipped: already indexed with the same content
    removed: int = 0  # documents no longer in the corpus, taken out of the index
    chunks_added: int = 0
    chunks_removed: int = 0
    total_chunks: int = 0  # in the index after the run
    seconds: float = 0.0
    embed_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds else 0.0


@dataclass
class Plan:
    pending: list[Document]  # new or changed
    removed: list[str]  # doc ids in the index but no longer in the corpus
    ledger: dict[str, dict[str, Any]]  # doc id -> ledger record, before this run


def read_corpus(corpus: str | Path) -> tuple[list[Document], list[str]]:
    """Every document under ``corpus`` and the ingestion warnings (raises ``InputError`` for a
    missing or empty corpus, before anything is written)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(iter_documents(corpus))
    return docs, [str(w.message) for w in caught]


def add_corpus(index: Any, corpus: str | Path, *, prune: bool = True, **kw: Any) -> IndexReport:
    """Make the index equal the files under ``corpus``: add new, replace changed and (with
    ``prune``, the default) remove documents no longer there. Warnings go into the report."""
    docs, warns = read_corpus(corpus)
    report = add_documents(index, docs, prune=prune, **kw)
    report.warnings[:0] = warns
    return report


def add_documents(
    index: Any,
    docs: Iterable[Document],
    *,
    progress: bool | IndexProgress = False,
    batch_size: int = WRITE_BATCH,
    on_batch: Callable[[int], None] | None = None,
    prune: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
) -> IndexReport:
    """Index ``docs`` into ``index`` (opened with ``LocalIndex.create``).

    ``batch_size`` chunks are embedded and stored at a time; after each batch the documents
    it completed are recorded in the ledger. ``prune`` removes indexed documents that are not
    in ``docs``. ``on_batch(n_done)`` is called after each stored batch (tests, benchmarks).
    ``engine="ray"`` chunks and embeds on a Ray cluster (``ray_address``; a local one when
    ``None``) and stores here, once (see ray_engine.py).
    """
    if engine not in ("local", "ray"):
        raise InputError(f"engine must be 'local' or 'ray', got {engine!r}")
    if not index.writable:
        raise RagselIndexError(
            f"the index at {index.path} was opened read-only; use "
            "LocalIndex.create(path, ...) to add documents"
        )
    t0 = time.perf_counter()
    docs = _unique(docs)
    work = plan(index, docs, prune)
    report = IndexReport(documents=len(docs), unchanged=len(docs) - len(work.pending))
    was_complete = bool(index.manifest.get("complete"))
    if (work.pending or work.removed) and was_complete:
        index._save_manifest(complete=False)  # readers of a half-updated index get a warning
    prog = (
        progress if isinstance(progress, IndexProgress) else IndexProgress() if progress else None
    )
    ledger = Ledger(index.path)
    try:
        remove_documents(index, work, ledger, report)
        writer = _Writer(index, work, ledger, report, prog, on_batch)
        if engine == "ray":
            from ragsel.index.ray_engine import embed_on_ray

            writer.run_remote(embed_on_ray(index, work.pending, ray_address, batch_size))
        else:
            writer.run(batch_size)
    finally:
        ledger.close()
    finalize(index, report, was_complete)
    report.seconds = time.perf_counter() - t0
    return report


def _unique(docs: Iterable[Document]) -> list[Document]:
    docs = list(docs)
    seen: set[str] = set()
    for d in docs:
        if d.id in seen:
            raise InputError(
                f"document id {d.id!r} occurs twice in the corpus "
                f"({d.source}); document ids must be unique"
            )
        seen.add(d.id)
    return docs


def plan(index: Any, docs: list[Document], prune: bool) -> Plan:
    """What this run must embed and remove, from the ledger of finished documents."""
    state = read_ledger(index.path)
    pending = [d for d in docs if state.get(d.id, {}).get("fp") != d.fingerprint]
    ids = {d.id for d in docs}
    removed = sorted(k for k in state if k not in ids) if prune else []
    return Plan(pending, removed, state)


def remove_documents(index: Any, work: Plan, ledger: Ledger, report: IndexReport) -> None:
    """Delete the chunks of ``work.removed`` from chroma, then their ledger entries."""
    if not work.removed:
        return
    stale = [cid for d in work.removed for cid in work.ledger[d].get("chunks", ())]
    for i in range(0, len(stale), 4096):
        index.collection.delete(ids=stale[i : i + 4096])
    ledger.record({"id": d, "deleted": True} for d in work.removed)
    report.removed = len(work.removed)
    report.chunks_removed += len(stale)


@dataclass
class _OpenDoc:
    """A pending document whose chunks are not all stored yet."""

    doc: Document
    ids: list[str] = field(default_factory=list)
    unflushed: int = 0
    chunked: bool = False


class _Writer:
    """Chunks pending documents, embeds and stores them in write batches, commits finished
    documents to the ledger (dropping chunks an edit made stale)."""

    def __init__(
        self,
        index: Any,
        work: Plan,
        ledger: Ledger,
        report: IndexReport,
        prog: IndexProgress | None,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        from ragsel.backends.embedders import load_embedder

        spec, threads, emb_batch = index._embedder_options
        self.embedder = load_embedder(spec, threads=threads, batch_size=emb_batch)
        self.pass_size = emb_batch
        self.index, self.work, self.ledger, self.report = index, work, ledger, report
        self.prog, self.on_batch = prog, on_batch
        self.chunker = make_chunker(index.chunker)
        self.open: dict[str, _OpenDoc] = {}
        self.batch: list[Chunk] = []
        self.done = 0

    def _plan_progress(self) -> None:
        if self.prog is None:
            return
        total = chars = 0
        for d in self.work.pending:
            for c in self.chunker.chunk(d):
                total += 1
                chars += len(c.text)
        self.prog.plan(total, len(self.work.pending), chars, self.index.embedder_spec)
        self.prog.start(total)

    def run(self, batch_size: int) -> None:
        if not self.work.pending:
            return
        self._plan_progress()
        try:
            for d in self.work.pending:
                entry = self.open[d.id] = _OpenDoc(d)
                for c in self.chunker.chunk(d):
                    entry.ids.append(c.id)
                    entry.unflushed += 1
                    self.batch.append(c)
                    if len(self.batch) >= batch_size:
                        self.flush()
                entry.chunked = True
                if not entry.ids:
                    self.report.warnings.append(f"document {d.id!r} has no text; nothing indexed")
            self.flush()
            self.commit()
        finally:
            if self.prog is not None:
                self.prog.close()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` in forward passes of similar length (less padding)."""
        out = np.zeros((len(texts), int(self.embedder.dim)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for s in range(0, len(order), self.pass_size):
            idx = order[s : s + self.pass_size]
            out[idx] = self.embedder.embed([texts[i] for i in idx])
            if self.prog is not None:
                self.prog.advance(len(idx))
        return out

    def run_remote(self, batches: Iterable[tuple[list[Chunk], np.ndarray, dict[str, int]]]) -> None:
        """Store chunks embedded elsewhere: ``(chunks, vectors, {doc id: its chunk count})``
        per batch; a document is committed once all its chunks are stored."""
        if not self.work.pending:
            return
        for d in self.work.pending:
            self.open[d.id] = _OpenDoc(d)
        self._plan_progress()
        te = time.perf_counter()
        for chunks, vecs, counts in batches:
            self.report.embed_seconds += time.perf_counter() - te
            for doc_id, n in counts.items():
                e = self.open[doc_id]
                if not e.chunked:
                    e.chunked, e.unflushed = True, e.unflushed + n
            for c in chunks:
                self.open[c.doc_id].ids.append(c.id)
            self.store(chunks, vecs)
            if self.prog is not None:
                self.prog.advance(len(chunks))
            te = time.perf_counter()
        for k, e in self.open.items():
            if not e.chunked:  # no chunk came back: a document without text
                e.chunked = True
                self.report.warnings.append(f"document {k!r} has no text; nothing indexed")
        self.commit()

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        te = time.perf_counter()
        vecs = self.embed([c.text for c in batch])
        self.report.embed_seconds += time.perf_counter() - te
        self.store(batch, vecs)

    def store(self, batch: list[Chunk], vecs: np.ndarray) -> None:
        self.index.collection.upsert(
            ids=[c.id for c in batch],
            embeddings=vecs,
            documents=[c.text for c in batch],
            metadatas=[_metadata(c) for c in batch],
        )
        for c in batch:
            self.open[c.doc_id].unflushed -= 1
        self.report.chunks_added += len(batch)
        self.done += len(batch)
        self.commit()
        if self.on_batch is not None:
            self.on_batch(self.done)

    def commit(self) -> None:
        """Record documents whose chunks are all stored; drop chunks an edit made stale."""
        finished = [k for k, e in self.open.items() if e.chunked and e.unflushed == 0]
        entries = []
        for k in finished:
            e = self.open.pop(k)
            old = self.work.ledger.get(k)
            if old is not None:
                stale = sorted(set(old.get("chunks", ())) - set(e.ids))
                if stale:
                    self.index.collection.delete(ids=stale)
                    self.report.chunks_removed += len(stale)
                self.report.updated += 1
            else:
                self.report.added += 1
            entries.append({"id": k, "fp": e.doc.fingerprint, "chunks": e.ids})
        self.ledger.record(entries)


def finalize(index: Any, report: IndexReport, was_complete: bool) -> None:
    """Rewrite the reader's files from chroma when anything changed (also after an
    interrupted run, which may have died before this step), then mark the index complete."""
    from ragsel.index import snapshot
    from ragsel.index.integrity import checksum

    index._invalidate()
    changed = report.chunks_added or report.chunks_removed or not was_complete
    derived_ok = (
        snapshot.exists(index.path)
        and (index.path / "bm25" / "ids.json").exists()
        and isinstance(index.manifest.get("files"), dict)
    )
    if changed or not derived_ok:
        if index.manifest.get("complete"):
            index._save_manifest(complete=False)
        chunks, matrix = index.chunks, index.matrix  # loads from chroma
        snapshot.write(index.path, chunks, matrix)
        # bm25s has no incremental add: rebuilt over every chunk (seconds per 5k chunks)
        BM25Store.build([c.text for c in chunks], [c.id for c in chunks], index.bm25_config).save(
            index.path / "bm25"
        )
        files = checksum(index.path, [snapshot.CHUNKS, snapshot.VECTORS, "bm25"])
        report.total_chunks = len(chunks)
    else:
        files = index.manifest["files"]
        report.total_chunks = int(index.manifest.get("counts", {}).get("chunks", 0))
    index._save_manifest(
        complete=True,
        generation=index.manifest.get("generation", 0) + 1,
        counts={"documents": len(read_ledger(index.path)), "chunks": report.total_chunks},
        files=files,
    )


def _metadata(c: Chunk) -> dict[str, Any]:
    from ragsel.index.chroma_store import to_chroma_metadata

    meta = to_chroma_metadata(dict(c.metadata))
    meta["doc_id"] = c.doc_id
    if c.position is not None:
        meta["position"] = c.position
    if c.span is not None:
        meta["span_start"], meta["span_end"] = c.span
    return meta
