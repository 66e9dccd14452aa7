"""Loading a corpus: files and folders of plain text, Markdown, JSONL and BEIR ``corpus.jsonl``.

A :class:`Document` has an id, its text (the *source* every chunk span refers to), a title and
metadata. ``iter_documents(path)`` walks a file or folder::

    for doc in iter_documents("my_corpus/"):
        print(doc.id, doc.title, len(doc.text or ""))

- ``*.txt``, ``*.text``, ``*.rst``, files without a suffix: plain text; ``*.md``/``*.markdown``:
  Markdown (the first ``#`` heading becomes the title). The document id is the path relative
  to the corpus folder.
- ``*.jsonl``: one JSON object per line with ``id`` (or ``_id``/``doc_id``), ``text`` (or
  ``contents``), optional ``title`` and ``metadata``; other scalar fields become metadata.
  A folder holding ``corpus.jsonl`` next to ``queries.jsonl`` or ``qrels/`` is a BEIR dataset:
  only ``corpus.jsonl`` is read. With ``title="prepend"`` (default) a record's text is
  ``title + "\\n\\n" + text`` (BEIR practice: title and abstract are indexed together).
- ``*.pdf``, ``*.html``/``*.htm``, ``*.docx``: text extracted by pypdf, trafilatura and
  python-docx (:mod:`ragsel.ingest.formats`, the ``ingest`` extra); PDF chunks carry their
  page numbers. A file that cannot be read is skipped with a warning naming it; the rest of
  the corpus is loaded.
- Other files (images, ...) and binary files (a NUL byte, or many control / non-UTF-8 bytes)
  are skipped with an :class:`IngestWarning`; text that is not valid UTF-8 is decoded with
  replacement characters and a warning. Symbolic links that are broken or loop, and links to
  folders, are not followed and are reported.
- Files larger than ``stream_threshold`` bytes are not read whole: ``doc.text`` is ``None``
  and :meth:`Document.blocks` streams the text in pieces (chunkers consume the stream).
- A missing, empty or unreadable corpus raises :class:`~ragsel.errors.InputError`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragsel.errors import InputError
from ragsel.ingest.formats import RICH_SUFFIXES, load_rich_file
from ragsel.types import content_id

TEXT_SUFFIXES = {".txt", ".text", ".rst", ""}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl"}
SUPPORTED = sorted(TEXT_SUFFIXES | MARKDOWN_SUFFIXES | JSONL_SUFFIXES | set(RICH_SUFFIXES) - {""})
#: Files above this size are streamed in blocks instead of read whole.
DEFAULT_STREAM_THRESHOLD = 16 * 1024 * 1024
BLOCK_BYTES = 1 << 20


class IngestWarning(UserWarning):
    """A file was skipped or read imperfectly (binary, not UTF-8, unreadable)."""


@dataclass(frozen=True)
class Document:
    """One source document. ``text`` is ``None`` for streamed (large) files: use
    :meth:`blocks`. ``fingerprint`` is a content hash (used to re-index changed files)."""

    id: str
    text: str | None
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    fingerprint: str = ""
    _stream: Callable[[], Iterator[str]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise InputError(f"a document from {self.source or '<input>'} has an empty id")
        if self.text is None and self._stream is None:
            raise InputError(f"document {self.id!r} has neither text nor a stream")
        if not self.fingerprint:
            object.__setattr__(
                self,
                "fingerprint",
                content_id(
                    self.text or "",
                    self.title,
                    json.dumps(dict(self.metadata), sort_keys=True, default=str),
                ),
            )

    @property
    def streamed(self) -> bool:
        return self.text is None

    def blocks(self) -> Iterator[str]:
        """The text in consecutive pieces (one piece when it is in memory)."""
        if self.text is not None:
            yield self.text
        else:
            assert self._stream is not None
            yield from self._stream()


# --- decoding -------------------------------------------------------------------------------
_counter = threading.local()


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    _counter.n = getattr(_counter, "n", 0) + (exc.end - exc.start)
    return "\ufffd", exc.end


codecs.register_error("ragsel.replace", _count_replace)


def _warn_bad_bytes(path: Path, n: int) -> None:
    if n:
        warnings.warn(
            f"{path}: not valid UTF-8 ({n} bad byte(s)); decoded with replacement "
            "characters (U+FFFD). Convert the file to UTF-8 for exact text.",
            IngestWarning,
            stacklevel=4,
        )


def _decode(path: Path, data: bytes) -> str:
    _counter.n = 0
    text = data.decode("utf-8", errors="ragsel.replace")
    _warn_bad_bytes(path, _counter.n)
    return text


def _stream_text(path: Path) -> Callable[[], Iterator[str]]:
    def gen() -> Iterator[str]:
        dec = codecs.getincrementaldecoder("utf-8")(errors="ragsel.replace")
        bad = 0
        with open(path, "rb") as fh:
            while True:
                raw = fh.read(BLOCK_BYTES)
                _counter.n = 0
                piece = dec.decode(raw, final=not raw)
                bad += _counter.n
                if piece:
                    yield piece
                if not raw:
                    break
        _warn_bad_bytes(path, bad)

    return gen


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as fh:
        for raw in iter(lambda: fh.read(BLOCK_BYTES), b""):
            h.update(raw)
    return h.hexdigest()


_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")


def _is_binary(head: bytes) -> str | None:
    """Why ``head`` looks like the start of a binary file, or ``None`` for text: a NUL byte,
    or (without one) more than 10% control characters or bytes that are not UTF-8."""
    if b"\x00" in head:
        return "contains NUL bytes"
    if not head:
        return None
    controls = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROLS)
    _counter.n = 0
    head.decode("utf-8", errors="ragsel.replace")
    bad = max(_counter.n - 3, 0)  # a multi-byte character cut at the end of the head
    if (controls + bad) / len(head) > 0.10:
        return f"{controls + bad} of its first {len(head)} bytes are control or non-UTF-8 bytes"
    return None


# --- loaders --------------------------------------------------------------------------------
TitleMode = Literal["prepend", "metadata"]


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def load_text_file(
    path: Path,
    doc_id: str,
    *,
    markdown: bool = False,
    stream_threshold: int = DEFAULT_STREAM_THRESHOLD,
) -> Document | None:
    """A text or Markdown file as one document (``None``, with a warning, if binary)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        warnings.warn(
            f"{path}: cannot read ({exc.strerror or exc}); skipped", IngestWarning, stacklevel=3
        )
        return None
    why = _is_binary(head)
    if why:
        warnings.warn(f"{path}: looks binary ({why}); skipped", IngestWarning, stacklevel=3)
        return None
    meta: dict[str, Any] = {"source": doc_id, "format": "markdown" if markdown else "text"}
    if size > stream_threshold:
        title = _markdown_title(head.decode("utf-8", "replace")) if markdown else ""
        meta["streamed"] = True
        return Document(
            doc_id, None, title or path.stem, meta, str(path), file_hash(path), _stream_text(path)
        )
    text = _decode(path, path.read_bytes())
    title = (_markdown_title(text) if markdown else "") or path.stem
    return Document(doc_id, text, title, meta, str(path), file_hash(path))


_ID_KEYS = ("id", "_id", "doc_id", "docid")
_TEXT_KEYS = ("text", "contents", "content", "body")


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def iter_jsonl(path: Path, *, title: TitleMode = "prepend", prefix: str = "") -> Iterator[Document]:
    """Documents from a JSONL file (streamed line by line). Bad lines raise ``InputError``
    naming ``file:line``."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(_decode(path, raw))
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{where}: not valid JSON ({exc.msg}); each line of a .jsonl "
                    "corpus must be one JSON object"
                ) from None
            if not isinstance(rec, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            body = next((rec[k] for k in _TEXT_KEYS if k in rec), None)
            if not isinstance(body, str):
                raise InputError(
                    f"{where}: the record has no 'text' string field (keys: {sorted(rec)})"
                )
            rid = next((rec[k] for k in _ID_KEYS if k in rec), None)
            doc_title = rec.get("title") or ""
            if not isinstance(doc_title, str):
                doc_title = str(doc_title)
            if not body.strip() and not doc_title.strip():
                warnings.warn(f"{where}: empty text; skipped", IngestWarning, stacklevel=2)
                continue
            meta: dict[str, Any] = {}
            extra = rec.get("metadata")
            if isinstance(extra, dict):
                meta.update(extra)
            for k, v in rec.items():
                if (
                    k not in _ID_KEYS
                    and k not in _TEXT_KEYS
                    and k not in ("title", "metadata")
                    and _scalar(v)
                ):
                    meta.setdefault(k, v)
            text = body
            if doc_title and title == "prepend":
                text = f"{doc_title}\n\n{body}" if body else doc_title
                meta["body_offset"] = len(doc_title) + 2 if body else len(doc_title)
            doc_id = prefix + (str(rid) if rid not in (None, "") else content_id(text))
            yield Document(doc_id, text, doc_title, meta, where)


def _walk(root: Path) -> list[Path]:
    """The files under ``root`` (hidden ones left out), sorted. Symbolic links to files are
    read; links that are broken or loop, and links to folders (which could loop), are not
    followed and are reported in one warning."""
    files, links = [], []
    for p in root.rglob("*"):
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.is_symlink():
            try:
                target = p.resolve(strict=True)
            except (OSError, RuntimeError):
                links.append(f"{p.relative_to(root).as_posix()} (broken or looping link)")
                continue
            if target.is_dir():
                links.append(f"{p.relative_to(root).as_posix()} (link to a folder, not followed)")
                continue
        if p.is_file():
            files.append(p)
    if links:
        shown = ", ".join(links[:5]) + (f" and {len(links) - 5} more" if len(links) > 5 else "")
        warnings.warn(
            f"skipped {len(links)} symbolic link(s): {shown}", IngestWarning, stacklevel=3
        )
    return sorted(files)


def _is_beir_dir(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() and (
        (path / "queries.jsonl").is_file() or (path / "qrels").is_dir()
    )


def iter_documents(
    path: str | os.PathLike[str],
    *,
    title: TitleMode = "prepend",
    stream_threshold: int = DEFAULT_STREAM_THRESHOLD,
) -> Iterator[Document]:
    """Every document under ``path`` (a file or a folder, walked in sorted order).

    Raises :class:`InputError` if ``path`` does not exist or yields no document at all.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"corpus path {root} does not exist")
    if root.is_dir() and _is_beir_dir(root):
        files = [root / "corpus.jsonl"]
        base = root
    elif root.is_dir():
        try:
            files = _walk(root)
        except OSError as exc:
            raise InputError(
                f"corpus folder {root} cannot be read ({exc}); check its permissions"
            ) from exc
        base = root
    else:
        files, base = [root], root.parent
    n_docs = 0
    skipped: list[str] = []
    for f in files:
        suffix = f.suffix.lower()
        rel = f.relative_to(base).as_posix()
        if suffix in JSONL_SUFFIXES:
            # several JSONL files in one folder: prefix ids with the file name to keep them apart
            prefix = (
                "" if len([x for x in files if x.suffix.lower() == ".jsonl"]) == 1 else f"{rel}:"
            )
            for doc in iter_jsonl(f, title=title, prefix=prefix):
                n_docs += 1
                yield doc
        elif suffix in RICH_SUFFIXES:
            rich = load_rich_file(f, rel)
            if rich is not None:
                n_docs += 1
                yield rich
        elif suffix in TEXT_SUFFIXES or suffix in MARKDOWN_SUFFIXES:
            text_doc = load_text_file(
                f, rel, markdown=suffix in MARKDOWN_SUFFIXES, stream_threshold=stream_threshold
            )
            if text_doc is not None:
                n_docs += 1
                yield text_doc
        else:
            skipped.append(rel)
    if skipped:
        shown = ", ".join(skipped[:5]) + (
            f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        warnings.warn(
            f"skipped {len(skipped)} file(s) of unsupported type: {shown} "
            f"(supported: {', '.join(SUPPORTED)})",
            IngestWarning,
            stacklevel=2,
        )
    if n_docs == 0:
        what = "folder" if root.is_dir() else "file"
        raise InputError(
            f"no documents found in the corpus {what} {root}: it is empty or holds "
            f"no readable files of a supported type ({', '.join(SUPPORTED)})"
        )


def load_documents(path: str | os.PathLike[str], **kw: Any) -> list[Document]:
    """``list(iter_documents(path, **kw))``."""
    return list(iter_documents(path, **kw))
