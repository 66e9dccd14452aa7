"""Helpers shared by the retriever stages (plain functions, not a base class)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ragsel.errors import ConfigError, InputError
from ragsel.stages.retrieve._rank_fusion import reciprocal_rank_fusion
from ragsel.types import Candidates, Chunk, Query, StageNote, new_event, new_scored_chunk, rank_data

Hits = list[tuple[Chunk, float]]


@functools.cache
def _rank_reasons(kind: str) -> tuple[str, ...]:
    return tuple(f"{kind} rank {r}" for r in range(1025))  # index 0 unused


def rank_reason(kind: str, rank: int) -> str:
    """``"<kind> rank <rank>"``, formatted once per kind for ranks up to 1024: every hit of
    every query carries one."""
    reasons = _rank_reasons(kind)
    return reasons[rank] if rank < len(reasons) else f"{kind} rank {rank}"


def query_texts(query: Query, use_rewrites: bool) -> list[str]:
    """The query text, then its rewrites (blank and duplicate rewrites dropped)."""
    texts = [query.text]
    if use_rewrites:
        for r in query.rewrites:
            if r and r.strip() and r not in texts:
                texts.append(r)
    return texts


def to_candidates(
    stage: str,
    kind: str,
    texts: Sequence[str],
    hits: Sequence[Hits],
    *,
    top_k: int,
    rrf_k: float,
    note: Mapping[str, Any],
) -> Candidates:
    """Candidates from one hit list per query text, fused by RRF when there are several.

    Every chunk gets a ``retrieved`` event with its rank and raw score; after fusion the
    event also holds the rank under each query text and the score becomes the RRF score.
    """
    info: dict[str, Any] = {"retriever": kind, "top_k": top_k, **note}
    if len(hits) == 1:
        # the hot path of every query: one event and one scored chunk per hit, nothing more
        items = []
        for rank, (c, s) in enumerate(hits[0][:top_k], 1):
            ev = new_event(stage, "retrieved", rank_reason(kind, rank), s, rank_data(rank))
            items.append(new_scored_chunk(c, s, stage, (ev,), (), None, ()))
        if not items:
            info["empty"] = "no chunk matched the query" + (" filter" if note.get("where") else "")
        return Candidates(tuple(items), notes=(StageNote(stage, info),))
    rankings = [[c.id for c, _ in h] for h in hits]
    by_id: dict[str, Chunk] = {}
    raw: dict[str, dict[int, tuple[int, float]]] = {}
    for qi, h in enumerate(hits):
        for rank, (c, s) in enumerate(h, 1):
            by_id.setdefault(c.id, c)
            raw.setdefault(c.id, {}).setdefault(qi, (rank, s))
    fused = reciprocal_rank_fusion(rankings, k=rrf_k)[:top_k]
    items = []
    for rank, (cid, score) in enumerate(fused, 1):
        per = raw[cid]
        data = {
            "rank": rank,
            "fusion": "rrf",
            "rrf_k": rrf_k,
            "ranks": {
                ("query" if qi == 0 else f"rewrite {qi}"): r for qi, (r, _) in sorted(per.items())
            },
            "scores": {
                ("query" if qi == 0 else f"rewrite {qi}"): s for qi, (_, s) in sorted(per.items())
            },
        }
        ev = new_event(
            stage,
            "retrieved",
            f"{kind} rank {rank} (RRF over {len(texts)} queries)",
            score,
            MappingProxyType(data),
        )
        items.append(new_scored_chunk(by_id[cid], score, stage, (ev,), (), None, ()))
    info.update(queries=list(texts), fusion="rrf", rrf_k=rrf_k)
    if not items:
        info["empty"] = "no chunk matched any query text"
    return Candidates(tuple(items), notes=(StageNote(stage, info),))


def load_memory_chunks(
    documents: Sequence[Any],
    path: str | None,
    chunker: str,
    chunk_size: int,
    overlap: int | None,
    stage: str,
) -> list[Chunk]:
    """Chunks for an in-memory retriever from inline documents and/or a corpus path."""
    from ragsel.ingest import ChunkerConfig, Document, iter_documents, make_chunker

    docs: list[Document] = []
    for i, d in enumerate(documents):
        if isinstance(d, str):
            docs.append(Document(f"doc{i}", d))
        else:
            docs.append(
                Document(
                    str(d.get("id") or f"doc{i}"),
                    d["text"],
                    d.get("title") or "",
                    dict(d.get("metadata") or {}),
                )
            )
    if path:
        if not Path(path).expanduser().exists():
            raise InputError(f"stage '{stage}': corpus path {path} does not exist")
        docs.extend(iter_documents(path))
    if not docs:
        raise ConfigError(
            "no documents: set 'documents' (a list of texts or "
            "{id, text, title, metadata} objects) or 'path'",
            stage=stage,
        )
    mk = make_chunker(ChunkerConfig(chunker, chunk_size, overlap))  # type: ignore[arg-type]
    chunks = [c for d in docs for c in mk.chunk(d)]
    ids = [c.id for c in chunks]
    if len(set(ids)) != len(ids):
        raise InputError(f"stage '{stage}': two documents share an id; give each a unique id")
    return chunks


_FILTER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda v, a: v == a,
    "$ne": lambda v, a: v != a,
    "$in": lambda v, a: v in a,
    "$nin": lambda v, a: v not in a,
    "$gt": lambda v, a: v is not None and v > a,
    "$gte": lambda v, a: v is not None and v >= a,
    "$lt": lambda v, a: v is not None and v < a,
    "$lte": lambda v, a: v is not None and v <= a,
}


def matches(chunk: Chunk, where: Mapping[str, Any]) -> bool:
    """A small subset of chroma's ``where`` for in-memory retrievers: equality, ``$eq``,
    ``$ne``, ``$in``, ``$nin``, ``$gt/$gte/$lt/$lte``, ``$and``, ``$or``."""
    for key, cond in where.items():
        if key == "$and":
            if not all(matches(chunk, c) for c in cond):
                return False
            continue
        if key == "$or":
            if not any(matches(chunk, c) for c in cond):
                return False
            continue
        value = chunk.doc_id if key == "doc_id" else chunk.metadata.get(key)
        if not isinstance(cond, Mapping):
            cond = {"$eq": cond}
        for op, arg in cond.items():
            test = _FILTER_OPS.get(op)
            if test is None:
                raise ConfigError(
                    f"unsupported filter operator {op!r} (in-memory retrievers "
                    "support $eq $ne $in $nin $gt $gte $lt $lte $and $or)",
                    field="where",
                )
            if not test(value, arg):
                return False
    return True
