"""Document conversion shared by the LangChain and LlamaIndex connectors.

Both connectors turn a ragsel selection into the other framework's documents, and documents
back into :class:`Candidates`. The metadata layout is the same in both, so ids, scores and
provenance survive ragsel -> LangChain/LlamaIndex -> ragsel::

    {<the chunk's own metadata>,
     "chunk_id": "doc#3", "doc_id": "doc", "position": 3, "span": [120, 180],
     "score": 0.71, "rank": 1,
     "ragsel": {"stage": "cut", "kept_by": ["cut"], "rationales": ["R1"],
                "expanded_from": None, "events": [...], "verdicts": [...], "notes": [...]}}

The conversions run on every call of an adapter, so they are written for speed (the budget is
0.2 ms per call, ``eval/benchmarks/peers/adapter_overhead.py``): one pass per list, metadata built
once per document, framework objects and ragsel values made without validating again what
this module already checked (:func:`model_builder`, ``Chunk.unchecked``). Nothing here imports
LangChain or LlamaIndex.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ragsel.codec import event_to_dict, events_from_dicts, verdict_to_dict, verdicts_from_dicts
from ragsel.errors import InputError
from ragsel.types import (
    Candidates,
    Chunk,
    ScoredChunk,
    StageNote,
    content_id,
    new_event,
    new_scored_chunk,
)

#: Keys the connectors write; everything else in a document's metadata is the user's.
RAGSEL_KEYS = ("chunk_id", "doc_id", "position", "span", "score", "rank", "ragsel")
_RAGSEL_KEYSET = frozenset(RAGSEL_KEYS)
_SCORE_KEYS = ("score", "relevance_score", "similarity")
_WRITTEN = _RAGSEL_KEYSET - {"score"}  # "score" is common in other retrievers' metadata too
_KEEP_ACTIONS = frozenset(("kept", "added"))
_SCORE_ACTIONS = frozenset(("retrieved", "fused", "rescored"))
NO_POSITION_NOTE = "no doc_id/position in the document metadata: neighbour expansion skipped for it"
_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Chunk without __post_init__: candidates_from_records checks what it would (text is a str,
# id non-empty, position >= 0, span ordered, metadata read-only)
_chunk = Chunk.unchecked


# --- ragsel -> documents ---------------------------------------------------------------------
def provenance(sc: ScoredChunk) -> dict[str, Any]:
    """Why this chunk is in the selection: the stages that kept/added it, every event,
    the rationales that chose it and the verifiers' verdicts."""
    events, kept_by = [], []
    for e in sc.events:
        events.append(event_to_dict(e))
        if e.action in _KEEP_ACTIONS:
            kept_by.append(e.stage)
    out: dict[str, Any] = {
        "stage": sc.stage,
        "kept_by": kept_by,
        "rationales": list(sc.rationales),
        "expanded_from": sc.expanded_from,
        "events": events,
        "verdicts": [verdict_to_dict(v) for v in sc.verdicts],
    }
    scored = [e for e in sc.events if e.action in _SCORE_ACTIONS]
    if scored:  # the score the selection read (a cutoff cuts on it)
        out["score_source"] = {"stage": scored[-1].stage, "reason": scored[-1].reason}
    c = sc.chunk
    if c.position is None or not c.doc_id:
        out["notes"] = [NO_POSITION_NOTE]
    return out


def trace_event(result: Any) -> dict[str, Any]:
    """What a connector reports to the host framework's tracing for one run: the pipeline,
    each stage's trace row, and every dropped chunk with the stage and reason."""
    cands = result.candidates
    return {
        "pipeline": result.pipeline.name,
        "query": result.query.text,
        "trace": result.trace.as_dicts(),
        "selected": list(cands.ids) if cands is not None else [],
        "dropped": [
            {"id": d.id, "stage": d.stage, "reason": d.reason, "text": d.item.chunk.text[:200]}
            for d in (cands.dropped if cands is not None else ())
        ],
    }


def chunk_metadata(sc: ScoredChunk, rank: int) -> dict[str, Any]:
    """The metadata dict a connector attaches to the document made from ``sc`` (a new dict
    per call: the document owns it)."""
    c = sc.chunk
    return {
        **c.metadata,
        "chunk_id": c.id,
        "doc_id": c.doc_id,
        "position": c.position,
        "span": list(c.span) if c.span else None,
        "score": sc.score,
        "rank": rank,
        "ragsel": provenance(sc),
    }


# --- documents -> ragsel ---------------------------------------------------------------------
#: One foreign document as the connectors hand it over:
#: ``(text, metadata, id, doc_id, score, span)`` (``None`` where the framework has none).
Record = tuple[Any, Any, Any, Any, Any, Any]


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _other_score(md: Mapping[str, Any]) -> float | int | None:
    """A score under another common key (rerankers write ``relevance_score``)."""
    for key in _SCORE_KEYS[1:]:
        value = md.get(key)
        if type(value) is float or type(value) is int:  # not bool
            return value
    return None


def candidates_from_records(
    records: Sequence[Record], source: str, what: str = "document"
) -> Candidates:
    """Candidates from foreign documents (see :data:`Record`), in their order, with a note
    saying where they came from; a chunk id seen twice is kept once (its first, best-ranked
    occurrence); a chunk id naming two different texts keeps both, the later one under the id
    ``"<id>~<content hash>"`` (its ``retrieved`` event says so).

    Ids come from ``metadata["chunk_id"]``, then the record's id, then a content hash; the doc
    id from ``metadata["doc_id"]``, the record's doc id or ``metadata["source"]``; the position
    from ``metadata["position"]``; the score from the record, then ``metadata["score"]`` (or
    ``relevance_score``/``similarity``), else it is derived from the rank (descending, so
    score-sorting stages keep the order). Provenance written by a connector
    (``metadata["ragsel"]``) is restored, so earlier events and verdicts carry over.
    """
    items, derived, no_pos, n_renamed = _convert_records(records, source, what)
    n = len(records)
    note = {
        "source": source,
        "documents": n,
        "duplicates": n - len(items),
        "renamed_duplicate_ids": n_renamed,
        "rank_derived_scores": derived,
        "without_position": no_pos,
    }
    return Candidates(tuple(items), (), (StageNote(source, note),))


def _convert_records(
    records: Sequence[Record], source: str, what: str
) -> tuple[list[ScoredChunk], int, int, int]:
    """The loop of :func:`candidates_from_records`: scored chunks and the counts of rank-derived
    scores, chunks without position and renamed ids. The common path calls no helper."""
    n = len(records)
    items: list[ScoredChunk] = []
    seen: dict[str, str] = {}  # id -> text
    derived = no_pos = n_renamed = 0
    suffix = f" from {source}"
    chunk_, event_, scored_ = _chunk, new_event, new_scored_chunk
    proxy, written = MappingProxyType, _WRITTEN
    for rank, (text, md, rid, rdoc, score, span) in enumerate(records, 1):
        if type(text) is not str and not isinstance(text, str):
            raise _not_text(what, rank, text)
        if type(md) is not dict:
            md = dict(md or {})
        pos = prov = None
        if written.isdisjoint(md):  # another retriever's metadata: the fast path
            did = rdoc or md.get("source") or ""
            cid = rid or content_id(text, did)
            user_md = md.copy()  # the document keeps its dict; the chunk gets its own
            md_score = user_md.pop("score", None)  # becomes the chunk's score
        else:  # metadata a connector wrote: ids, position, span and provenance come back
            did, cid, pos, span, prov, user_md, md_score = _connector_fields(
                text, md, rid, rdoc, span
            )
        did = did if type(did) is str else str(did)
        cid = cid if type(cid) is str else str(cid)
        first = seen.get(cid)
        renamed = None
        if first is not None:
            if first == text:  # the same document twice: keep its best-ranked occurrence
                continue
            renamed, cid = cid, f"{cid}~{content_id(text, did)[:12]}"
            if cid in seen:
                continue
        seen[cid] = text
        if span is not None and not 0 <= span[0] <= span[1]:
            raise _bad_span(what, rank, cid, span)
        if score is None:
            score = (
                md_score if type(md_score) is float or type(md_score) is int else _other_score(md)
            )  # not bool
        if score is None:  # descending in rank, so score-sorting stages keep the order
            score = 1.0 - (rank - 1) / n
            derived += 1
            reason = f"rank {rank}{suffix} (rank-derived score)"
        else:
            score = float(score)
            reason = f"rank {rank}{suffix}"
        if renamed is not None:
            n_renamed += 1
            reason += f"; id {renamed!r} also names another text: kept as {cid!r}"
        chunk = chunk_(cid, text, did, pos, span, proxy(user_md) if user_md else _EMPTY)
        if pos is None or not did:
            no_pos += 1
        event = event_(source, "retrieved", reason, score, _EMPTY)
        if not prov or not isinstance(prov, dict):
            items.append(scored_(chunk, score, source, (event,), (), None, ()))
        else:
            items.append(_restored(chunk, score, source, event, prov))
    return items, derived, no_pos, n_renamed


def _connector_fields(
    text: str, md: dict[str, Any], rid: Any, rdoc: Any, span: Any
) -> tuple[Any, Any, int | None, Any, Any, dict[str, Any], Any]:
    """Doc id, chunk id, position, span, provenance, user metadata and metadata score of a
    document whose metadata a connector wrote."""
    did = md.get("doc_id") or rdoc or md.get("source") or ""
    cid = md.get("chunk_id") or rid or content_id(text, did)
    raw_span = md.get("span")
    if isinstance(raw_span, (list, tuple)) and len(raw_span) == 2:
        span = (int(raw_span[0]), int(raw_span[1]))
    pos = md.get("position")
    if pos is not None:
        pos = _int_or_none(pos)
    user_md = {k: v for k, v in md.items() if k not in _RAGSEL_KEYSET}
    return did, cid, pos, span, md.get("ragsel"), user_md, md.get("score")


def _restored(
    chunk: Chunk, score: float, source: str, event: Any, prov: dict[str, Any]
) -> ScoredChunk:
    """The scored chunk with the provenance a connector wrote: earlier events (then this
    retrieval's), rationales, expansion origin and verdicts."""
    return new_scored_chunk(
        chunk,
        score,
        source,
        events_from_dicts(prov.get("events")) + (event,),
        tuple(str(r) for r in prov.get("rationales") or ()),
        prov.get("expanded_from"),
        verdicts_from_dicts(prov.get("verdicts"), chunk.id),
    )


def _not_text(what: str, rank: int, text: Any) -> InputError:
    return InputError(
        f"{what} {rank} has {type(text).__name__} content; ragsel selects "
        "text: convert it to a string first (e.g. "
        "Document(page_content=str(x)))"
    )


def _bad_span(what: str, rank: int, cid: str, span: Any) -> InputError:
    return InputError(
        f"{what} {rank} ({cid!r}) has an invalid character span {span}: "
        "start and end must satisfy 0 <= start <= end"
    )


_ATOMS = (str, bytes, int, float, complex, bool, frozenset)  # defaults instances may share


def _prebuildable_defaults(
    cls: type, validated: Any, sample: Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, type]]] | None:
    """Every field's value in declaration order (dict order = repr order) and the fields that
    need a new empty container per instance; None when instances cannot be prebuilt safely
    (post-init hooks, private or extra attributes, a mutable non-empty default)."""
    if (
        getattr(cls, "__pydantic_post_init__", "?") is not None
        or getattr(cls, "__private_attributes__", True)
        or validated.__pydantic_extra__ is not None
        or validated.__pydantic_private__ is not None
    ):
        return None
    template: dict[str, Any] = {}
    fresh: list[tuple[str, type]] = []
    for name, default in validated.__dict__.items():
        template[name] = default
        if name in sample:
            continue
        if isinstance(default, (list, dict, set)) and not default:
            fresh.append((name, type(default)))
        elif not (default is None or isinstance(default, _ATOMS)):
            return None  # a default instances could share and mutate: let pydantic make it
    return template, fresh


def model_builder(cls: type, **sample: Any) -> Callable[..., Any]:
    """A function ``build(**values)`` making instances of the pydantic model ``cls`` from
    values that are already valid, for the fields named in ``sample`` (pass all of them):
    what ``cls.model_construct(**values)`` does, at a fraction of its cost (pydantic resolves
    every default on each ``model_construct`` call, which makes it slower than validating).

    >>> make = model_builder(Document, page_content="", id="x", metadata={})  # doctest: +SKIP
    >>> doc = make(page_content="text", id="c1", metadata={"score": 0.5})

    The other fields' defaults are taken once from ``cls(**sample)``: they must be immutable,
    or empty lists/dicts/sets (a new one per instance). The result is a real ``cls`` instance
    equal to ``cls(**values)``; that is checked on ``sample`` now, and for a model with
    post-init hooks, private or extra attributes, other defaults, or a failed check, ``cls``
    itself is returned (with a warning for the failed check) so callers simply validate.
    Values are not copied: pass objects the new instance may own.
    """
    validated = cls(**sample)
    defaults = _prebuildable_defaults(cls, validated, sample)
    if defaults is None:
        return cls
    template, fresh = defaults
    fields_set, new, set_ = frozenset(sample), object.__new__, object.__setattr__

    n_fields = len(fields_set)

    def build(**values: Any) -> Any:
        if len(values) != n_fields or not values.keys() <= fields_set:
            raise TypeError(f"build {cls.__name__} takes exactly {sorted(fields_set)}")
        state = template.copy()
        state.update(values)
        for name, kind in fresh:
            state[name] = kind()
        obj: Any = new(cls)
        set_(obj, "__dict__", state)
        set_(obj, "__pydantic_fields_set__", set(fields_set))
        set_(obj, "__pydantic_extra__", None)
        set_(obj, "__pydantic_private__", None)
        return obj

    probe = build(**sample)
    if (
        probe == validated
        and probe.model_fields_set == validated.model_fields_set
        and probe.model_dump() == validated.model_dump()
    ):
        return build
    import warnings

    warnings.warn(
        f"ragsel: {cls.__name__} built without validation differs from a validated one "
        "(a newer pydantic or framework?); conversions validate instead (slower)",
        RuntimeWarning,
        stacklevel=2,
    )
    return cls
