"""Per-chunk values: the query, chunks, what stages did to them (events, verdicts), scored
chunks and drops (see :mod:`ragsel.types` for the whole picture)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ragsel.errors import InputError

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_new = object.__new__


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


# ``{"rank": r}`` event data, built once per rank: retrievers attach it to every chunk they
# return, and sharing the read-only mapping halves the cost of those events.
_RANK_DATA: tuple[Mapping[str, Any], ...] = tuple(
    MappingProxyType({"rank": r}) for r in range(1025)
)


def rank_data(rank: int) -> Mapping[str, Any]:
    """The read-only event data ``{"rank": rank}`` (shared instances for ranks up to 1024)."""
    return _RANK_DATA[rank] if 0 <= rank < len(_RANK_DATA) else MappingProxyType({"rank": rank})


def _reduce_with_plain_mappings(self: Any) -> tuple[Any, tuple[Any, ...]]:
    """``__reduce__`` of the values holding read-only mappings: ``MappingProxyType`` cannot be
    pickled or deep-copied, so those fields travel as plain dicts and the constructor freezes
    them again. Makes results picklable (multiprocessing, caches) and ``copy.deepcopy``-able."""
    return type(self), tuple(
        dict(v) if type(v) is MappingProxyType else v
        for v in (getattr(self, n) for n in self.__slots__)
    )


def content_id(text: str, *parts: object) -> str:
    """A stable id from content (used when a document or chunk has none)."""
    h = hashlib.blake2b(digest_size=10)
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\x1f")
    h.update(text.encode("utf-8", "replace"))
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Query:
    """A user query. ``rewrites`` holds alternative phrasings added by rewrite stages."""

    text: str
    id: str | None = None
    rewrites: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InputError(f"query text must be a string, got {type(self.text).__name__}")
        if not self.text.strip():
            raise InputError("the query is empty: pass a non-blank query text")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes from argv/files
            raise InputError(
                f"the query is not valid UTF-8 (undecodable byte at character {exc.start}); "
                "pass the query as UTF-8 text"
            ) from None
        if not isinstance(self.rewrites, tuple):
            object.__setattr__(self, "rewrites", tuple(self.rewrites))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    @classmethod
    def coerce(cls, value: Query | str) -> Query:
        return value if isinstance(value, Query) else cls(value)

    def with_rewrites(self, rewrites: Iterable[str]) -> Query:
        return replace(self, rewrites=tuple(rewrites))


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document. ``position`` is its index within the document (for neighbour
    expansion), ``span`` its ``[start, end)`` character offsets in the source text."""

    id: str
    text: str
    doc_id: str = ""
    position: int | None = None
    span: tuple[int, int] | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InputError(
                f"chunk {self.id!r}: text must be a string, got {type(self.text).__name__}"
            )
        if not self.id:
            raise InputError("a chunk needs a non-empty id (use ragsel.types.content_id)")
        if self.position is not None and self.position < 0:
            raise InputError(f"chunk {self.id!r}: position must be >= 0, got {self.position}")
        if self.span is not None:
            start, end = self.span
            if not 0 <= start <= end:
                raise InputError(f"chunk {self.id!r}: invalid span {self.span}")
            if not isinstance(self.span, tuple):
                object.__setattr__(self, "span", (start, end))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def unchecked(
        cls,
        id: str,
        text: str,
        doc_id: str,
        position: int | None,
        span: tuple[int, int] | None,
        metadata: Mapping[str, Any],
    ) -> Chunk:
        """A chunk from values already known to be valid, without ``__post_init__``: the
        caller guarantees what it checks (``text`` a str, ``id`` non-empty, ``position >= 0``,
        ``span`` an ordered tuple) and passes ``metadata`` read-only (a ``MappingProxyType``).
        For converters that check these themselves (``ragsel_connect``)."""
        obj, set_ = _new(cls), object.__setattr__  # frozen: fields are stored this way
        set_(obj, "id", id)
        set_(obj, "text", text)
        set_(obj, "doc_id", doc_id)
        set_(obj, "position", position)
        set_(obj, "span", span)
        set_(obj, "metadata", metadata)
        return obj


EventAction = Literal["retrieved", "fused", "rescored", "kept", "added", "flagged", "dropped"]


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """What one stage did to one chunk, and why. Treat as immutable (see the module doc)."""

    stage: str
    action: EventAction
    reason: str = ""
    score: float | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        self.data = _frozen_mapping(self.data)

    @classmethod
    def unchecked(
        cls,
        stage: str,
        action: EventAction,
        reason: str,
        score: float | None,
        data: Mapping[str, Any],
    ) -> Event:
        """An event without ``__post_init__``: ``data`` must already be read-only (a
        ``MappingProxyType``, e.g. :func:`rank_data`, or the shared empty mapping)."""
        obj = _new(cls)
        obj.stage = stage
        obj.action = action
        obj.reason = reason
        obj.score = score
        obj.data = data
        return obj


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's or guard's judgement of one chunk."""

    chunk_id: str
    stage: str
    flagged: bool
    label: str = "OK"  # e.g. CONTRADICTION, INSTRUCTION, FACTUAL, INJECTION, POISON, PARSE_ERROR
    confidence: float = 1.0
    reason: str = ""
    evidence: str = ""  # the text that triggered the verdict, when there is one

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"verdict confidence must be in [0, 1], got {self.confidence}")


@dataclass(slots=True, unsafe_hash=True)
class ScoredChunk:
    """A chunk with the score the latest scoring stage gave it and its provenance. Treat as
    immutable: stages derive new ones (``kept``, ``rescored``, ``with_event``)."""

    chunk: Chunk
    score: float
    stage: str = ""
    events: tuple[Event, ...] = ()
    rationales: tuple[str, ...] = ()  # labels of the rationales that chose this chunk
    expanded_from: str | None = None  # anchor chunk id when added by neighbour expansion
    verdicts: tuple[Verdict, ...] = ()

    @property
    def id(self) -> str:
        return self.chunk.id

    @classmethod
    def unchecked(
        cls,
        chunk: Chunk,
        score: float,
        stage: str,
        events: tuple[Event, ...],
        rationales: tuple[str, ...],
        expanded_from: str | None,
        verdicts: tuple[Verdict, ...],
    ) -> ScoredChunk:
        """A scored chunk from one value per field, in field order, already valid (``score`` a
        float, the sequences tuples): what the hot path (retrievers, fusion, cutoffs) uses,
        without keyword handling or defaults."""
        obj = _new(cls)
        obj.chunk = chunk
        obj.score = score
        obj.stage = stage
        obj.events = events
        obj.rationales = rationales
        obj.expanded_from = expanded_from
        obj.verdicts = verdicts
        return obj

    def with_event(self, event: Event, **changes: Any) -> ScoredChunk:
        return replace(self, events=self.events + (event,), **changes)

    def rescored(self, stage: str, score: float, reason: str = "") -> ScoredChunk:
        s = float(score)
        ev = Event.unchecked(stage, "rescored", reason, s, _EMPTY)
        return type(self).unchecked(
            self.chunk,
            s,
            stage,
            self.events + (ev,),
            self.rationales,
            self.expanded_from,
            self.verdicts,
        )

    def kept(self, stage: str, reason: str = "", **data: Any) -> ScoredChunk:
        # unchecked construction, not dataclasses.replace: cutoffs call this per kept chunk
        ev = Event.unchecked(
            stage, "kept", reason, self.score, MappingProxyType(data) if data else _EMPTY
        )
        return type(self).unchecked(
            self.chunk,
            self.score,
            self.stage,
            self.events + (ev,),
            self.rationales,
            self.expanded_from,
            self.verdicts,
        )


@dataclass(slots=True, unsafe_hash=True)
class Dropped:
    """A chunk a stage removed, kept whole so nothing is lost. Treat as immutable."""

    item: ScoredChunk
    stage: str
    reason: str
    verdict: Verdict | None = None

    @property
    def id(self) -> str:
        return self.item.chunk.id

    @classmethod
    def unchecked(
        cls, item: ScoredChunk, stage: str, reason: str, verdict: Verdict | None
    ) -> Dropped:
        """A drop record from one already valid value per field (for ``Candidates.derive``)."""
        obj = _new(cls)
        obj.item = item
        obj.stage = stage
        obj.reason = reason
        obj.verdict = verdict
        return obj


# The unchecked constructors under their earlier names (positional, one value per field).
new_event = Event.unchecked
new_scored_chunk = ScoredChunk.unchecked
new_dropped = Dropped.unchecked
