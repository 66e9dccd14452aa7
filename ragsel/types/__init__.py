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

from ragsel.types.candidates import Candidates, StageNote
from ragsel.types.selection import Answer, Rationale, Rationales, Selection
from ragsel.types.values import (
    Chunk,
    Dropped,
    Event,
    EventAction,
    Query,
    ScoredChunk,
    Verdict,
    content_id,
    new_dropped,
    new_event,
    new_scored_chunk,
    rank_data,
)

__all__ = [
    "Answer",
    "Candidates",
    "Chunk",
    "Dropped",
    "Event",
    "EventAction",
    "Query",
    "Rationale",
    "Rationales",
    "ScoredChunk",
    "Selection",
    "StageNote",
    "Verdict",
    "content_id",
    "new_dropped",
    "new_event",
    "new_scored_chunk",
    "rank_data",
]
