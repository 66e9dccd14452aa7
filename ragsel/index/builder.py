"""Writing a :class:`~ragsel.index.LocalIndex`: chunk, embed in batches, store, rebuild BM25.

Only documents that are new or changed (by content hash) are processed: re-running on the same
corpus adds nothing, adding files indexes only those, and an edited file has its old chunks
replaced. Progress is a rich bar on stderr (chunks, rate, ETA).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import IndexError_, InputError
from ragsel.index.bm25 import BM25Store
from ragsel.index.store import Ledger, read_ledger
from ragsel.ingest.chunkers import make_chunker
from ragsel.ingest.documents import Document, iter_documents
from ragsel.types import Chunk


@dataclass
class IndexReport:
    """What one indexing run did."""

    documents: int = 0  # seen in the corpus
    added: int = 0  # new documents indexed
    updated: int = 0  # changed documents re-indexed
    unchanged: int = 0  # skipped: already indexed with the same content
    chunks_added: int = 0
    chunks_removed: int = 0
    total_chunks: int = 0  # in the index after the run
    seconds: float = 0.0
    embed_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds else 0.0


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            # average since the start: steadier than rich's windowed speed for big batches
            rate = task.completed / task.elapsed if task.elapsed else 0.0
            return Text(
                f"{rate:,.1f} chunks/s" if rate else "-- chunks/s", style="progress.data.speed"
            )

    return Progress(
        TextColumn("[bold]embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def add_corpus(index: Any, corpus: str | Path, **kw: Any) -> IndexReport:
    """Index the files under ``corpus``; ingestion warnings go into the report."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(iter_documents(corpus))
    report = add_documents(index, docs, **kw)
    report.warnings[:0] = [str(w.message) for w in caught]
    return report


def add_documents(
    index: Any,
    docs: Iterable[Document],
    *,
    progress: bool = False,
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> IndexReport:
    """Index ``docs`` into ``index`` (opened with ``LocalIndex.create``).

    ``batch_size`` chunks are embedded and stored at a time; after each batch the documents
    it completed are recorded in the ledger, so a killed run resumes where it stopped.
    ``on_batch(n_done)`` is called after each stored batch (used by tests and benchmarks).
    """
    from ragsel.backends.embedders import load_embedder

    if not index.writable:
        raise IndexError_(
            f"the index at {index.path} was opened read-only; use "
            "LocalIndex.create(path, ...) to add documents"
        )
    t0 = time.perf_counter()
    report = IndexReport()
    docs = list(docs)
    seen: set[str] = set()
    for d in docs:
        if d.id in seen:
            raise InputError(
                f"document id {d.id!r} occurs twice in the corpus "
                f"({d.source}); document ids must be unique"
            )
        seen.add(d.id)
    report.documents = len(docs)
    ledger_state = read_ledger(index.path)
    pending = [d for d in docs if ledger_state.get(d.id, {}).get("fp") != d.fingerprint]
    report.unchanged = len(docs) - len(pending)
    was_complete = bool(index.manifest.get("complete"))
    if pending and was_complete:  # readers of a half-updated index get a warning
        index._save_manifest(complete=False)
    chunker = make_chunker(index.chunker)
    spec, threads, emb_batch = index._embedder_options
    embedder = load_embedder(spec, threads=threads, batch_size=emb_batch)
    col = index.collection
    total = sum(sum(1 for _ in chunker.chunk(d)) for d in pending) if progress else 0

    ledger = Ledger(index.path)
    bar = _progress(progress, total)
    task = bar.add_task("embed", total=total) if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        batch: list[Chunk] = []
        # doc id -> (doc, chunk ids so far, chunks still unflushed)
        open_docs: dict[str, list[Any]] = {}
        done = 0

        def flush() -> None:
            nonlocal batch, done
            if not batch:
                return
            te = time.perf_counter()
            vecs = embedder.embed([c.text for c in batch])
            report.embed_seconds += time.perf_counter() - te
            col.upsert(
                ids=[c.id for c in batch],
                embeddings=np.asarray(vecs),
                documents=[c.text for c in batch],
                metadatas=[_metadata(c) for c in batch],
            )
            for c in batch:
                open_docs[c.doc_id][2] -= 1
            report.chunks_added += len(batch)
            done += len(batch)
            if bar is not None:
                bar.update(task, advance=len(batch))
            batch = []
            _finish_docs(index, col, open_docs, ledger_state, ledger, report)
            if on_batch is not None:
                on_batch(done)

        for d in pending:
            entry = open_docs[d.id] = [d, [], 0, False]  # doc, ids, unflushed, all chunked
            for c in chunker.chunk(d):
                entry[1].append(c.id)
                entry[2] += 1
                batch.append(c)
                if len(batch) >= batch_size:
                    flush()
            entry[3] = True
            if not entry[1]:
                report.warnings.append(f"document {d.id!r} has no text; nothing indexed")
        flush()
        _finish_docs(index, col, open_docs, ledger_state, ledger, report)
    finally:
        if bar is not None:
            bar.stop()
        ledger.close()

    # BM25 is rebuilt over every chunk (bm25s has no incremental add; a few seconds per 5k
    # chunks). Also after an interrupted run, which may have died before this step.
    index._invalidate()
    index.load()
    if (
        report.chunks_added
        or report.chunks_removed
        or not was_complete
        or not (index.path / "bm25" / "ids.json").exists()
    ):
        chunks = index.chunks
        BM25Store.build([c.text for c in chunks], [c.id for c in chunks], index.bm25_config).save(
            index.path / "bm25"
        )
    n_docs = len(read_ledger(index.path))
    report.total_chunks = len(index.chunks)
    index._save_manifest(
        complete=True,
        generation=index.manifest.get("generation", 0) + 1,
        counts={"documents": n_docs, "chunks": report.total_chunks},
    )
    report.seconds = time.perf_counter() - t0
    return report


def _metadata(c: Chunk) -> dict[str, Any]:
    from ragsel.index.chroma_store import to_chroma_metadata

    meta = to_chroma_metadata(dict(c.metadata))
    meta["doc_id"] = c.doc_id
    if c.position is not None:
        meta["position"] = c.position
    if c.span is not None:
        meta["span_start"], meta["span_end"] = c.span
    return meta


def _finish_docs(
    index: Any,
    col: Any,
    open_docs: dict[str, list[Any]],
    ledger_state: dict[str, dict[str, Any]],
    ledger: Ledger,
    report: IndexReport,
) -> None:
    """Record documents whose chunks are all stored; drop chunks an edit made stale."""
    finished = [
        k for k, (_, _, unflushed, chunked) in open_docs.items() if chunked and unflushed == 0
    ]
    entries = []
    for k in finished:
        d, ids, _, _ = open_docs.pop(k)
        old = ledger_state.get(d.id)
        if old is not None:
            stale = sorted(set(old.get("chunks", ())) - set(ids))
            if stale:
                col.delete(ids=stale)
                report.chunks_removed += len(stale)
            report.updated += 1
        else:
            report.added += 1
        entries.append({"id": d.id, "fp": d.fingerprint, "chunks": ids})
    ledger.record(entries)
