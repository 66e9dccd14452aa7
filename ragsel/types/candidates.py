"""The ranked list that flows between stages, carrying its own provenance."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragsel.errors import InputError
from ragsel.types.values import (
    Chunk,
    Dropped,
    ScoredChunk,
    Verdict,
    _frozen_mapping,
    _reduce_with_plain_mappings,
    new_dropped,
    new_event,
    new_scored_chunk,
    rank_data,
)


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
