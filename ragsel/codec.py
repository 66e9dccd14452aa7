"""The one value codec: ragsel's result values as JSON-ready dicts, and back.

Used by :meth:`ragsel.types.Selection.to_dict` (``ragsel select --json``, the server, eval
reports) and by the connectors' document metadata (:mod:`ragsel_connect`), so an event or a
verdict has one dict shape everywhere and parses back to an equal value::

    event_from_dict(event_to_dict(e)) == e
    verdict_from_dict(verdict_to_dict(v), v.chunk_id) == v

Pure functions over :mod:`ragsel.types`; nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ragsel.types import Event, ScoredChunk, Verdict

if TYPE_CHECKING:
    from ragsel.types import Selection


def event_to_dict(e: Event) -> dict[str, Any]:
    """``{stage, action, reason, score[, data]}`` (``data`` only when there is some)."""
    out: dict[str, Any] = {"stage": e.stage, "action": e.action, "reason": e.reason}
    out["score"] = e.score
    if e.data:
        out["data"] = dict(e.data)
    return out


def event_from_dict(d: Mapping[str, Any]) -> Event:
    return Event(
        str(d["stage"]), d["action"], str(d.get("reason", "")), d.get("score"), d.get("data") or {}
    )


def events_from_dicts(raw: Iterable[Any] | None) -> tuple[Event, ...]:
    """Events from a list of dicts, skipping entries that are not event dicts."""
    return tuple(
        event_from_dict(e)
        for e in raw or ()
        if isinstance(e, Mapping) and "stage" in e and "action" in e
    )


def verdict_to_dict(v: Verdict) -> dict[str, Any]:
    """A verdict without its chunk id (it sits under its chunk)."""
    return {
        "stage": v.stage,
        "flagged": v.flagged,
        "label": v.label,
        "confidence": v.confidence,
        "reason": v.reason,
        "evidence": v.evidence,
    }


def verdict_from_dict(d: Mapping[str, Any], chunk_id: str) -> Verdict:
    return Verdict(
        chunk_id,
        str(d["stage"]),
        bool(d.get("flagged")),
        str(d.get("label", "OK")),
        float(d.get("confidence", 1.0)),
        str(d.get("reason", "")),
        str(d.get("evidence", "")),
    )


def verdicts_from_dicts(raw: Iterable[Any] | None, chunk_id: str) -> tuple[Verdict, ...]:
    """Verdicts of ``chunk_id`` from a list of dicts, skipping entries without a stage."""
    return tuple(
        verdict_from_dict(v, chunk_id) for v in raw or () if isinstance(v, Mapping) and "stage" in v
    )


def scored_chunk_to_dict(sc: ScoredChunk, rank: int) -> dict[str, Any]:
    """One selected chunk with its provenance (the ``chunks`` rows of a selection)."""
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
        "events": [event_to_dict(e) for e in sc.events],
        "verdicts": [verdict_to_dict(v) for v in sc.verdicts],
    }


def selection_to_dict(sel: Selection) -> dict[str, Any]:
    """A JSON-ready dict: chunks with provenance, drops with reasons, stage notes."""
    rats, answer = sel.rationales, sel.answer
    return {
        "query": {"text": sel.query.text, "id": sel.query.id, "rewrites": list(sel.query.rewrites)},
        "chunks": [scored_chunk_to_dict(sc, i) for i, sc in enumerate(sel.chunks, 1)],
        "dropped": [
            {
                "id": d.id,
                "doc_id": d.item.chunk.doc_id,
                "stage": d.stage,
                "reason": d.reason,
                "score": d.item.score,
                "verdict": verdict_to_dict(d.verdict) if d.verdict else None,
            }
            for d in sel.dropped
        ],
        "notes": [{"stage": n.stage, **dict(n.data)} for n in sel.notes],
        "rationales": None
        if rats is None
        else [
            {"label": r.label, "text": r.text, "flags": list(r.flags), "source": r.source}
            for r in rats
        ],
        # where the rationales came from and what went wrong (fewer than asked, fallback)
        "rationale_notes": None if rats is None else {"source": rats.source, **dict(rats.notes)},
        "answer": None
        if answer is None
        else {"text": answer.text, "citations": list(answer.citations), "model": answer.model},
    }
