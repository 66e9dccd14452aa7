"""The on-disk parts of a :class:`~ragsel.index.LocalIndex` besides chroma: manifest, writer
lock and document ledger.

Layout of an index folder::

    manifest.json     format version, ragsel version, embedder, chunker, BM25 settings, counts
    documents.jsonl   ledger: one line per fully indexed document (id, content hash, chunk ids)
    chroma/           the persistent chroma collection (vectors, texts, metadata)
    bm25/             the bm25s index and the chunk id of each row
    .lock             held (flock) by the process that writes the index

The ledger is append-only and written *after* a document's chunks are stored, so a run that is
killed half-way leaves every finished document recorded; the next run skips those and redoes
the rest (chunk ids are content hashes, so redone chunks overwrite themselves, never double).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragsel.errors import IndexError_

FORMAT = "ragsel-local-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LEDGER = "documents.jsonl"
LOCK = ".lock"


def ragsel_version() -> str:
    try:
        from importlib.metadata import version

        return version("ragsel")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_hint(path: Path) -> str:
    return f"build it with: ragsel index CORPUS --into {path}"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the index at ``path``; a clear :class:`IndexError_` when there is no
    index there or it was written by an incompatible ragsel."""
    mf = path / MANIFEST
    if not path.exists():
        raise IndexError_(f"no index at {path}: {build_hint(path)}")
    if not path.is_dir():
        raise IndexError_(f"{path} is a file, not an index folder: {build_hint(path)}")
    if not mf.is_file():
        if not any(path.iterdir()):
            raise IndexError_(f"the index folder {path} is empty: {build_hint(path)}")
        raise IndexError_(
            f"{path} is not a ragsel index (no {MANIFEST}); point to an index "
            f"folder or {build_hint(path)}"
        )
    try:
        data = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexError_(
            f"the index manifest {mf} is unreadable ({exc}); delete {path} and "
            "re-run `ragsel index`"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexError_(
            f"{path} is not a ragsel local index (manifest format "
            f"{data.get('format') if isinstance(data, dict) else '?'!r})"
        )
    fv = data.get("format_version")
    if fv != FORMAT_VERSION:
        raise IndexError_(
            f"the index at {path} has format version {fv} (written by ragsel "
            f"{data.get('ragsel_version', '?')}); this ragsel ({ragsel_version()}) reads format "
            f"{FORMAT_VERSION}. Rebuild it: delete {path} and re-run `ragsel index CORPUS "
            f"--into {path}`"
        )
    return data


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path / MANIFEST)  # atomic: readers see the old or the new manifest


def read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    """doc id -> {"fp": content hash, "chunks": [ids]} (the last line for a doc wins)."""
    out: dict[str, dict[str, Any]] = {}
    f = path / LEDGER
    if not f.is_file():
        return out
    with open(f, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write: that document is simply redone
            if isinstance(rec, dict) and "id" in rec:
                out[rec["id"]] = rec
    return out


class Ledger:
    """Append-only writer of finished documents."""

    def __init__(self, path: Path):
        self._fh = open(path / LEDGER, "a", encoding="utf-8")

    def record(self, entries: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
        if lines:
            self._fh.write(lines)
            self._fh.flush()  # in the OS page cache: survives the process being killed

    def close(self) -> None:
        self._fh.close()


class WriterLock:
    """An exclusive ``flock`` on ``INDEX/.lock`` for the lifetime of a writer.

    The OS releases it when the process dies, so a killed run never leaves a stale lock.
    Readers only check that no writer holds it (:func:`check_not_writing`).
    """

    def __init__(self, path: Path):
        self.path = path / LOCK
        self._fh: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
            return
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise IndexError_(
                f"the index at {self.path.parent} is locked by {owner}, which is writing it. "
                "Wait for that `ragsel index` run to finish (or stop it), then retry"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} (since {now()})")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def check_not_writing(path: Path) -> None:
    """Raise :class:`IndexError_` if another process holds the writer lock on ``path``."""
    lock = path / LOCK
    if not lock.exists():
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise IndexError_(
                f"the index at {path} is being written by {owner}; query it when that "
                "`ragsel index` run has finished"
            ) from None
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
