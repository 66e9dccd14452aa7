"""What a pipeline returns: rationales, an answer and the final :class:`Selection`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ragsel.types.candidates import Candidates, StageNote
from ragsel.types.values import (
    _EMPTY,
    Dropped,
    Event,
    Query,
    ScoredChunk,
    _frozen_mapping,
    _reduce_with_plain_mappings,
)


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
        """A JSON-ready dict: chunks with provenance, drops with reasons, stage notes
        (:func:`ragsel.codec.selection_to_dict`)."""
        from ragsel.codec import selection_to_dict

        return selection_to_dict(self)

    def history(self, chunk_id: str) -> list[Event]:
        """Every event recorded for ``chunk_id``, including its drop if it was dropped."""
        for sc in self.chunks:
            if sc.chunk.id == chunk_id:
                return list(sc.events)
        for d in self.dropped:
            if d.id == chunk_id:
                return list(d.item.events) + [Event(d.stage, "dropped", d.reason)]
        raise KeyError(chunk_id)
