"""The on-disk parts of a :class:`~ragsel.index.LocalIndex` besides chroma: manifest, writer
lock and document ledger.

Layout of an index folder::

    manifest.json     format version, ragsel version, embedder, chunker, BM25 settings, counts,
                      and the size + hash of every file a reader loads (``files``)
    documents.jsonl   ledger: one line per fully indexed (or removed) document
    chroma/           the persistent chroma collection (vectors, texts, metadata): the store of
                      record, written by ``ragsel index`` only
    chunks.jsonl      what readers load: every chunk in row order ...
    vectors.npy       ... and its vector (float32, unit rows); see snapshot.py
    bm25/             the bm25s index and the chunk id of each row
    .lock             held (flock) by the process that writes the index

The ledger is append-only and written *after* a document's chunks are stored, so a run that is
killed half-way leaves every finished document recorded; the next run skips those and redoes
the rest (chunk ids are content hashes, so redone chunks overwrite themselves, never double).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragsel.errors import RagselIndexError
from ragsel.index.bm25 import BM25Config
from ragsel.ingest.chunkers import ChunkerConfig

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


def rebuild_hint(path: Path) -> str:
    return f"rebuild it with: ragsel index CORPUS --into {path} --rebuild"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the index at ``path``; a clear :class:`RagselIndexError` when there is no
    index there or it was written by an incompatible ragsel."""
    mf = path / MANIFEST
    if not path.exists():
        raise RagselIndexError(f"no index at {path}: {build_hint(path)}")
    if not path.is_dir():
        raise RagselIndexError(f"{path} is a file, not an index folder: {build_hint(path)}")
    if not mf.is_file():
        if not any(path.iterdir()):
            raise RagselIndexError(f"the index folder {path} is empty: {build_hint(path)}")
        raise RagselIndexError(
            f"{path} is not a ragsel index (no {MANIFEST}); point to an index "
            f"folder or {build_hint(path)}"
        )
    try:
        data = json.loads(mf.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        reason = type(exc).__name__ if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise RagselIndexError(
            f"the index manifest {mf} is damaged or unreadable ({reason}); {rebuild_hint(path)}"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RagselIndexError(
            f"{path} is not a ragsel local index (manifest format "
            f"{data.get('format') if isinstance(data, dict) else '?'!r}); if it was one, "
            f"{rebuild_hint(path)}"
        )
    emb = data.get("embedder")
    if not (
        isinstance(emb, dict)
        and all(k in emb for k in ("spec", "name", "space", "dim"))
        and isinstance(data.get("chunker"), dict)
        and isinstance(data.get("bm25"), dict)
    ):
        raise RagselIndexError(
            f"the index manifest {mf} lacks its embedder, chunker or bm25 settings (damaged); "
            f"{rebuild_hint(path)}"
        )
    fv = data.get("format_version")
    if fv != FORMAT_VERSION:
        raise RagselIndexError(
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
    """doc id -> {"fp": content hash, "chunks": [ids]} (the last line for a doc wins; a
    ``{"id": ..., "deleted": true}`` line removes the document)."""
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
                if rec.get("deleted"):
                    out.pop(rec["id"], None)
                else:
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
            raise RagselIndexError(
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
    """Raise :class:`RagselIndexError` if another process holds the writer lock on ``path``."""
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
            raise RagselIndexError(
                f"the index at {path} is being written by {owner}; query it when that "
                "`ragsel index` run has finished"
            ) from None
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


#: What an index folder holds besides its .lock (see store.py).
ENTRIES = (
    "manifest.json",
    "documents.jsonl",
    "chroma",
    "bm25",
    "chunks.jsonl",
    "vectors.npy",
)


def never_held_data(p: Path, manifest: Mapping[str, Any]) -> bool:
    return not manifest.get("generation") and not read_ledger(p)


def remove_entries(p: Path) -> None:
    import shutil

    for name in ENTRIES:
        for f in (p / name, p / (name + ".tmp")):
            if f.is_dir():
                shutil.rmtree(f, ignore_errors=True)
            else:
                f.unlink(missing_ok=True)


def clear_index(p: Path) -> None:
    """Delete the index at ``p`` for ``--rebuild``: only a folder that looks like a ragsel
    index (a manifest, or a chroma store and a ledger), never anything else."""
    if not p.exists():
        return
    if not p.is_dir():
        raise RagselIndexError(f"{p} is a file; choose a folder for the index")
    names = {x.name for x in p.iterdir()} - {LOCK}
    if names and not ("manifest.json" in names or {"chroma", "documents.jsonl"} <= names):
        raise RagselIndexError(
            f"--rebuild refuses to empty {p}: it does not look like a ragsel index "
            f"(it holds {', '.join(sorted(names)[:5])}); choose the index folder"
        )
    lock = WriterLock(p)
    lock.acquire()
    try:
        remove_entries(p)
    finally:
        lock.release()


def new_manifest(
    spec: str, emb: Any, chunker: dict[str, Any], bm25: dict[str, Any]
) -> dict[str, Any]:
    """The manifest of a new, still empty index."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ragsel_version": ragsel_version(),
        "created": now(),
        "updated": now(),
        "embedder": {
            "spec": spec,
            "name": emb.name,
            "space": getattr(emb, "space", emb.name),
            "dim": int(emb.dim),
        },
        "chunker": chunker,
        "bm25": bm25,
        "complete": False,
        "generation": 0,
        "counts": {"documents": 0, "chunks": 0},
    }


def check_compatible(
    path: Path, m: dict[str, Any], emb_name: str, chunker: ChunkerConfig, bm25: BM25Config
) -> None:
    """Refuse to add to an index built with another embedder, chunker or BM25 settings."""
    have = ChunkerConfig.from_dict(m["chunker"])
    from ragsel.backends.embedders import same_vectors

    problems = []
    if not same_vectors(m["embedder"]["name"], emb_name):
        problems.append(
            f"embedder {m['embedder']['name']} (spec '{m['embedder']['spec']}'), not {emb_name}"
        )
    if have != chunker:
        problems.append(f"chunker {have.to_dict()}, not {chunker.to_dict()}")
    if BM25Config.from_dict(m["bm25"]) != bm25:
        problems.append(f"BM25 settings {m['bm25']}, not {bm25.to_dict()}")
    if problems:
        c = have
        fix = f"--embedder {m['embedder']['spec']} --chunker {c.kind}" + (
            "" if c.kind == "document" else f" --chunk-size {c.size} --overlap {c.overlap}"
        )
        raise RagselIndexError(
            f"the index at {path} was built with "
            + "; ".join(problems)
            + f". Mixing them would corrupt it. Add to it with the same settings ({fix}), "
            "index into a new folder, or rebuild this one with --rebuild"
        )
