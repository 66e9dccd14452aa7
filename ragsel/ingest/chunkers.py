"""Chunkers: documents -> :class:`~ragsel.types.Chunk`\\ s with positions and character spans.

Every chunk keeps ``doc_id``, ``position`` (0, 1, 2... within its document, for neighbour
expansion) and ``span`` = ``[start, end)`` in the document's source text, so
``doc.text[start:end] == chunk.text`` (span-level gold labels map onto chunks). Chunk ids are
content hashes of ``(text, doc_id, position)``: re-chunking the same text gives the same ids.

- :class:`WordChunker` -- windows of ``size`` whitespace-separated words overlapping by
  ``overlap`` words (METEORA: 128/256/512 words, 10% overlap).
- :class:`SentenceChunker` -- whole sentences (and paragraphs) packed up to ``size`` words,
  carrying whole trailing sentences of up to ``overlap`` words into the next chunk; a sentence
  longer than ``size`` is split into word windows.
- :class:`DocumentChunker` -- one chunk per document (BEIR-style abstracts).

All chunkers consume :meth:`Document.blocks`, so a streamed (large) file is never held in
memory whole::

    chunker = make_chunker(ChunkerConfig("words", size=256))   # overlap defaults to 10%
    chunks = list(chunker.chunk(doc))
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ragsel.errors import ConfigError, InputError
from ragsel.ingest.documents import Document
from ragsel.types import Chunk, content_id

ChunkerKind = Literal["words", "sentences", "document"]
_WORD = re.compile(r"\S+")
# A sentence ends after . ! or ? (plus closing quotes/brackets) and whitespace before an
# upper-case letter, digit or opening quote; blank lines and Markdown headings also split.
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[A-Z0-9\"'\u201c\u2018(\[])"
    r"|\n[ \t]*\n\s*|\n(?=#)"
)
#: Longest span without a boundary kept waiting in a stream before it is force-split.
_MAX_PENDING_CHARS = 1 << 20


@dataclass(frozen=True)
class ChunkerConfig:
    """How documents are cut. ``overlap=None`` means 10% of ``size``. Recorded in the index
    manifest: an index refuses chunks made with another config."""

    kind: ChunkerKind = "words"
    size: int = 256
    overlap: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("words", "sentences", "document"):
            raise ConfigError(f"unknown chunker {self.kind!r}: use words, sentences or document")
        if self.size < 1:
            raise ConfigError(f"chunk size must be >= 1 word, got {self.size}")
        if self.overlap is None:
            object.__setattr__(self, "overlap", self.size // 10)
        assert self.overlap is not None
        if not 0 <= self.overlap < self.size:
            raise ConfigError(
                f"chunk overlap must be in [0, size), got {self.overlap} for size {self.size}"
            )

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "document":
            return {"kind": "document"}
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkerConfig:
        return cls(**dict(data))


def _make_chunk(doc: Document, position: int, start: int, text: str) -> Chunk:
    meta = dict(doc.metadata)
    if doc.title:
        meta.setdefault("title", doc.title)
    starts = meta.pop("page_starts", None)
    if starts:  # a paged source (PDF): the 1-based pages the chunk's span lies on
        meta["page"] = bisect.bisect_right(starts, start)
        meta["page_end"] = bisect.bisect_right(starts, max(start, start + len(text) - 1))
    return Chunk(
        id=content_id(text, doc.id, position),
        text=text,
        doc_id=doc.id,
        position=position,
        span=(start, start + len(text)),
        metadata=meta,
    )


class _Segmenter:
    """Turns a stream of text blocks into contiguous ``(start, text)`` segments that end at a
    boundary, keeping only the unfinished tail in memory."""

    def __init__(self, pattern: re.Pattern[str] | None):
        self.pattern = pattern

    def segments(self, blocks: Iterable[str]) -> Iterator[tuple[int, str]]:
        buf, base = "", 0
        for block in blocks:
            buf += block
            cut = 0
            if self.pattern is not None:
                for m in self.pattern.finditer(buf):
                    if m.end() == len(buf):
                        break  # the boundary may continue in the next block
                    yield base + cut, buf[cut : m.end()]
                    cut = m.end()
            if len(buf) - cut > _MAX_PENDING_CHARS:  # no boundary for a long time: split
                ws = buf.rfind(" ", cut, len(buf) - 1)
                cut_at = ws + 1 if ws > cut else len(buf)
                yield base + cut, buf[cut:cut_at]
                cut = cut_at
            buf, base = buf[cut:], base + cut
        if buf:
            yield base, buf


class WordChunker:
    """Windows of ``size`` words with ``overlap`` words shared between neighbours.

    ``WordChunker(ChunkerConfig("words", size=128, overlap=13))``. A chunk's text is the exact
    source text from its first word to its last (original whitespace kept).
    """

    def __init__(self, config: ChunkerConfig | None = None):
        self.config = config or ChunkerConfig("words")

    def chunk(self, doc: Document) -> Iterator[Chunk]:
        size, overlap = self.config.size, self.config.overlap or 0
        step = size - overlap
        buf, base = "", 0  # buf holds source text from absolute offset `base`
        scan = 0  # where in buf to look for the next word
        words: list[tuple[int, int]] = []  # absolute spans of words not yet fully consumed
        position = 0
        emitted_to = 0  # global index one past the last word emitted
        first = 0  # global index of words[0]

        def emit(ws: list[tuple[int, int]]) -> Chunk:
            nonlocal position
            s, e = ws[0][0], ws[-1][1]
            c = _make_chunk(doc, position, s, buf[s - base : e - base])
            position += 1
            return c

        blocks = list_or_iter(doc.blocks())
        for block, final in blocks:
            buf += block
            for m in _WORD.finditer(buf, scan):
                if m.end() == len(buf) and not final:
                    break  # the word may continue in the next block
                words.append((base + m.start(), base + m.end()))
                scan = m.end()
            while len(words) >= size:
                yield emit(words[:size])
                emitted_to = first + size
                words, first = words[step:], first + step
            # forget text before the first word still needed
            cut = (words[0][0] - base) if words else scan
            buf, base, scan = buf[cut:], base + cut, scan - cut
        if words and (position == 0 or first + len(words) > emitted_to):
            yield emit(words)


def list_or_iter(blocks: Iterator[str]) -> Iterator[tuple[str, bool]]:
    """``(block, is_last)`` pairs, looking one block ahead."""
    prev: str | None = None
    for b in blocks:
        if prev is not None:
            yield prev, False
        prev = b
    yield (prev if prev is not None else ""), True


class SentenceChunker:
    """Sentences packed into chunks of at most ``size`` words; up to ``overlap`` words of whole
    trailing sentences are repeated at the start of the next chunk.

    ``SentenceChunker(ChunkerConfig("sentences", size=128, overlap=20))``
    """

    def __init__(self, config: ChunkerConfig | None = None):
        self.config = config or ChunkerConfig("sentences")

    def _pieces(self, doc: Document) -> Iterator[tuple[int, str, int]]:
        """Sentence segments ``(start, text, n_words)``; over-long ones split by words."""
        size = self.config.size
        for start, seg in _Segmenter(_BOUNDARY).segments(doc.blocks()):
            spans = [m.span() for m in _WORD.finditer(seg)]
            if len(spans) <= size:
                yield start, seg, len(spans)
                continue
            cut = 0
            for i in range(size, len(spans), size):
                nxt = spans[i][0]
                yield start + cut, seg[cut:nxt], size
                cut = nxt
            yield start + cut, seg[cut:], len(spans) - (len(spans) - 1) // size * size

    def chunk(self, doc: Document) -> Iterator[Chunk]:
        size, overlap = self.config.size, self.config.overlap or 0
        cur: list[tuple[int, str, int]] = []
        n_words = 0
        position = 0
        fresh = False  # does `cur` hold a piece not yet emitted?

        def flush() -> Chunk | None:
            nonlocal position
            raw = "".join(t for _, t, _ in cur)
            lead = len(raw) - len(raw.lstrip())
            text = raw.strip()
            if not text:
                return None
            c = _make_chunk(doc, position, cur[0][0] + lead, text)
            position += 1
            return c

        for piece in self._pieces(doc):
            if piece[2] == 0 and not cur:
                continue  # leading whitespace
            if cur and fresh and n_words + piece[2] > size:
                c = flush()
                if c is not None:
                    yield c
                # carry whole trailing sentences (<= overlap words) into the next chunk
                carry: list[tuple[int, str, int]] = []
                carried = 0
                for p in reversed(cur[1:] if len(cur) > 1 else []):
                    if carried + p[2] > overlap or carried + p[2] + piece[2] > size:
                        break
                    carry.insert(0, p)
                    carried += p[2]
                cur, n_words, fresh = carry, carried, False
            cur.append(piece)
            n_words += piece[2]
            fresh = fresh or piece[2] > 0
        if cur and fresh:
            c = flush()
            if c is not None:
                yield c


class DocumentChunker:
    """One chunk per document (stripped of surrounding whitespace). For short documents such
    as BEIR abstracts: ``DocumentChunker()``."""

    #: A streamed document above this many characters is refused (use a window chunker).
    max_chars = 4 * 1024 * 1024

    def __init__(self, config: ChunkerConfig | None = None):
        self.config = config or ChunkerConfig("document")

    def chunk(self, doc: Document) -> Iterator[Chunk]:
        if doc.text is not None:
            text = doc.text
        else:
            parts, n = [], 0
            for b in doc.blocks():
                parts.append(b)
                n += len(b)
                if n > self.max_chars:
                    raise InputError(
                        f"document {doc.id!r} is too large to be one chunk (over "
                        f"{self.max_chars:,} characters): use the 'words' or 'sentences' "
                        "chunker for long documents"
                    )
            text = "".join(parts)
        stripped = text.strip()
        if stripped:
            yield _make_chunk(doc, 0, len(text) - len(text.lstrip()), stripped)


Chunker = WordChunker | SentenceChunker | DocumentChunker


def make_chunker(
    config: ChunkerConfig | str | Mapping[str, Any] | None = None, **kw: Any
) -> Chunker:
    """A chunker from a config, a kind name (``"words"``...) plus options, or a dict."""
    if config is None or isinstance(config, str):
        config = ChunkerConfig(config or "words", **kw)  # type: ignore[arg-type]
    elif isinstance(config, Mapping):
        config = ChunkerConfig.from_dict({**config, **kw})
    classes: dict[str, type[WordChunker | SentenceChunker | DocumentChunker]] = {
        "words": WordChunker,
        "sentences": SentenceChunker,
        "document": DocumentChunker,
    }
    return classes[config.kind](config)


def chunk_documents(
    docs: Iterable[Document], config: ChunkerConfig | str | None = None, **kw: Any
) -> Iterator[Chunk]:
    """Every chunk of every document, in order."""
    chunker = make_chunker(config, **kw)
    for doc in docs:
        yield from chunker.chunk(doc)
