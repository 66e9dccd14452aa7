"""The values that flow between stages: small, immutable, validated in their constructor.

A retriever turns a :class:`Query` into :class:`Candidates` (ranked :class:`ScoredChunk`\\ s);
every later stage returns a *new* ``Candidates`` derived from its input, so the list carries its
own provenance: each kept chunk has the :class:`Event`\\ s of the stages that touched it, and
every chunk a stage removed is kept in ``dropped`` with the stage and the reason. The pipeline's
final answer is a :class:`Selection`.

Slotted dataclasses (not pydantic models) because these are built per chunk per stage on the
hot path; validation here is a few cheap checks. Most are frozen. The three values the hot path
builds hundreds of per query (:class:`Event`, :class:`ScoredChunk`, :class:`Dropped`) are
slotted but not frozen, because a frozen dataclass stores every field through
``object.__setattr__`` (3-4x slower, ``eval/benchmarks/perf/hot_path.py``): treat them as
immutable (stages derive new values with ``kept``/``rescored``/``with_event``; nothing in
ragsel assigns to a field). Each has a documented ``unchecked`` constructor next to it for
values the caller already knows are valid; the normal constructor always checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
        For converters that check these themselves (``ragsel.interop``)."""
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


@dataclass(frozen=True, slots=True)
class StageNote:
    """Free-form facts a stage records about the whole list (e.g. where a cutoff cut and why)."""

    stage: str
    data: Mapping[str, Any]

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen_mapping(self.data))


@dataclass(frozen=True, slots=True)
class Candidates:
    """A ranked list of scored chunks with its provenance (drops and notes so far)."""

    items: tuple[ScoredChunk, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    notes: tuple[StageNote, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple):
            object.__setattr__(self, "items", tuple(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ScoredChunk]:
        return iter(self.items)

    def __getitem__(self, i: int) -> ScoredChunk:
        return self.items[i]

    @property
    def ids(self) -> list[str]:
        return [sc.chunk.id for sc in self.items]

    @property
    def chunks(self) -> list[Chunk]:
        return [sc.chunk for sc in self.items]

    @property
    def scores(self) -> list[float]:
        return [sc.score for sc in self.items]

    @classmethod
    def retrieved(
        cls, stage: str, scored: Iterable[tuple[Chunk, float]], reason: str = ""
    ) -> Candidates:
        """A fresh list from a retriever: ``(chunk, score)`` pairs in rank order."""
        items = []
        for rank, (chunk, score) in enumerate(scored, 1):
            if not isinstance(chunk, Chunk):
                raise InputError(
                    f"stage '{stage}': expected (Chunk, score) pairs, got "
                    f"{type(chunk).__name__} at rank {rank}"
                )
            s = float(score)
            ev = new_event(stage, "retrieved", reason or f"rank {rank}", s, rank_data(rank))
            items.append(new_scored_chunk(chunk, s, stage, (ev,), (), None, ()))
        return cls(tuple(items))

    def derive(
        self,
        stage: str,
        items: Sequence[ScoredChunk],
        *,
        drop_reasons: Mapping[str, str] | None = None,
        default_reason: str | None = None,
        verdicts: Mapping[str, Verdict] | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> Candidates:
        """The list ``stage`` produced from this one.

        Every chunk of ``self`` that is not in ``items`` is recorded as dropped by ``stage``,
        with its reason from ``drop_reasons`` (or ``default_reason``) and its verdict, if any.
        """
        kept_ids = {sc.chunk.id for sc in items}
        new_drops = []
        fallback = default_reason or f"not selected by {stage}"
        for sc in self.items:
            cid = sc.chunk.id
            if cid not in kept_ids:
                reason = drop_reasons.get(cid, fallback) if drop_reasons else fallback
                verdict = verdicts.get(cid) if verdicts else None
                new_drops.append(new_dropped(sc, stage, reason, verdict))
        notes = self.notes + (StageNote(stage, note),) if note is not None else self.notes
        return Candidates(tuple(items), self.dropped + tuple(new_drops), notes)

    @staticmethod
    def merge_history(
        lists: Sequence[Candidates],
    ) -> tuple[tuple[Dropped, ...], tuple[StageNote, ...]]:
        """Drops and notes of several input lists (for fan-in stages), without duplicates."""
        seen_drop: set[tuple[str, str]] = set()
        drops: list[Dropped] = []
        notes: list[StageNote] = []
        seen_note: set[int] = set()
        for cl in lists:
            for d in cl.dropped:
                key = (d.id, d.stage)
                if key not in seen_drop:
                    seen_drop.add(key)
                    drops.append(d)
            for n in cl.notes:
                if id(n) not in seen_note:
                    seen_note.add(id(n))
                    notes.append(n)
        return tuple(drops), tuple(notes)

    def note_of(self, stage: str) -> Mapping[str, Any] | None:
        for n in reversed(self.notes):
            if n.stage == stage:
                return n.data
        return None


@dataclass(frozen=True, slots=True)
class Rationale:
    """A short statement of what evidence the query needs, with flag instructions saying when
    a chunk should be rejected (METEORA)."""

    text: str
    label: str = ""
    flags: tuple[str, ...] = ()
    source: str = ""  # "llm", "query", "subphrase", "prf", ...

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a rationale needs non-empty text")
        if not isinstance(self.flags, tuple):
            object.__setattr__(self, "flags", tuple(self.flags))


@dataclass(frozen=True, slots=True)
class Rationales:
    """The rationales for one query, and where they came from."""

    items: tuple[Rationale, ...] = ()
    source: str = ""
    notes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple):
            object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "notes", _frozen_mapping(self.notes))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Rationale]:
        return iter(self.items)


@dataclass(frozen=True, slots=True)
class Answer:
    """A generated answer with the chunk ids it cites."""

    text: str
    citations: tuple[str, ...] = ()
    model: str = ""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    __reduce__ = _reduce_with_plain_mappings

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))


@dataclass(frozen=True)
class Selection:
    """What a pipeline selected for a query, with full provenance.

    ``chunks`` are the final evidence in order; ``dropped`` every chunk some stage removed
    (which stage and why); ``notes`` what stages recorded about the whole list.
    """

    query: Query
    chunks: tuple[ScoredChunk, ...]
    dropped: tuple[Dropped, ...] = ()
    notes: tuple[StageNote, ...] = ()
    rationales: Rationales | None = None
    answer: Answer | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_candidates(cls, query: Query, candidates: Candidates, **kw: Any) -> Selection:
        return cls(query, candidates.items, candidates.dropped, candidates.notes, **kw)

    @property
    def ids(self) -> list[str]:
        return [sc.chunk.id for sc in self.chunks]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: chunks with provenance, drops with reasons, stage notes."""

        def chunk(sc: ScoredChunk, rank: int) -> dict[str, Any]:
            c = sc.chunk
            return {
                "rank": rank,
                "id": c.id,
                "doc_id": c.doc_id,
                "position": c.position,
                "span": list(c.span) if c.span else None,
                "score": sc.score,
                "stage": sc.stage,
                "rationales": list(sc.rationales),
                "expanded_from": sc.expanded_from,
                "text": c.text,
                "metadata": dict(c.metadata),
                "events": [
                    {
                        "stage": e.stage,
                        "action": e.action,
                        "reason": e.reason,
                        "score": e.score,
                        **({"data": dict(e.data)} if e.data else {}),
                    }
                    for e in sc.events
                ],
                "verdicts": [_verdict(v) for v in sc.verdicts],
            }

        def _verdict(v: Verdict) -> dict[str, Any]:
            return {
                "stage": v.stage,
                "flagged": v.flagged,
                "label": v.label,
                "confidence": v.confidence,
                "reason": v.reason,
                "evidence": v.evidence,
            }

        return {
            "query": {
                "text": self.query.text,
                "id": self.query.id,
                "rewrites": list(self.query.rewrites),
            },
            "chunks": [chunk(sc, i) for i, sc in enumerate(self.chunks, 1)],
            "dropped": [
                {
                    "id": d.id,
                    "doc_id": d.item.chunk.doc_id,
                    "stage": d.stage,
                    "reason": d.reason,
                    "score": d.item.score,
                    "verdict": _verdict(d.verdict) if d.verdict else None,
                }
                for d in self.dropped
            ],
            "notes": [{"stage": n.stage, **dict(n.data)} for n in self.notes],
            "rationales": None
            if self.rationales is None
            else [
                {"label": r.label, "text": r.text, "flags": list(r.flags), "source": r.source}
                for r in self.rationales
            ],
            # where the rationales came from and what went wrong (fewer than asked, fallback)
            "rationale_notes": None
            if self.rationales is None
            else {"source": self.rationales.source, **dict(self.rationales.notes)},
            "answer": None
            if self.answer is None
            else {
                "text": self.answer.text,
                "citations": list(self.answer.citations),
                "model": self.answer.model,
            },
        }

    def history(self, chunk_id: str) -> list[Event]:
        """Every event recorded for ``chunk_id``, including its drop if it was dropped."""
        for sc in self.chunks:
            if sc.chunk.id == chunk_id:
                return list(sc.events)
        for d in self.dropped:
            if d.id == chunk_id:
                return list(d.item.events) + [Event(d.stage, "dropped", d.reason)]
        raise KeyError(chunk_id)
