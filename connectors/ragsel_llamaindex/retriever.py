"""ragsel inside LlamaIndex: a retriever and a node postprocessor backed by a ragsel pipeline.

Only ``llama_index.core`` is imported. Nothing here touches LlamaIndex's ``Settings`` (whose
defaults are OpenAI models): every model is passed explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ragsel_connect as interop
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from ragsel_connect import model_builder

from ragsel.errors import InputError
from ragsel.types import Candidates, Query, ScoredChunk
from ragsel_llamaindex._events import report

SOURCE = "llamaindex"
_HIDDEN = list(interop.RAGSEL_KEYS)  # kept out of LLM prompts and embedding text


# Nodes made without a second validation of values ragsel built (see model_builder). The
# hidden-key lists are copied per node: a node owns its lists, as after validation.
_text_node = model_builder(
    TextNode,
    id_="x",
    text="",
    metadata={},
    relationships={},
    excluded_llm_metadata_keys=[],
    excluded_embed_metadata_keys=[],
    start_char_idx=None,
    end_char_idx=None,
)
_related = model_builder(RelatedNodeInfo, node_id="x")
_with_score = model_builder(NodeWithScore, node=TextNode(id_="x"), score=0.0)
_SOURCE_REL = NodeRelationship.SOURCE
_PREV_REL, _NEXT_REL = NodeRelationship.PREVIOUS, NodeRelationship.NEXT


def to_nodes(items: Sequence[ScoredChunk]) -> list[NodeWithScore]:
    """``NodeWithScore``\\ s for selected chunks: ``node_id`` is the chunk id, ``ref_doc_id``
    the doc id, metadata as in :mod:`ragsel_connect` (hidden from prompts and embeddings)."""
    out = []
    meta = interop.chunk_metadata
    for rank, sc in enumerate(items, 1):
        c = sc.chunk
        span = c.span
        node = _text_node(
            id_=c.id,
            text=c.text,
            metadata=meta(sc, rank),
            relationships={_SOURCE_REL: _related(node_id=c.doc_id)} if c.doc_id else {},
            excluded_llm_metadata_keys=_HIDDEN.copy(),
            excluded_embed_metadata_keys=_HIDDEN.copy(),
            start_char_idx=span[0] if span else None,
            end_char_idx=span[1] if span else None,
        )
        out.append(_with_score(node=node, score=sc.score))
    return out


def from_nodes(nodes: Sequence[NodeWithScore], source: str = SOURCE) -> Candidates:
    """Candidates from nodes another retriever returned (ids from ``metadata["chunk_id"]`` or
    ``node_id``; doc id from metadata or ``ref_doc_id``; scores from ``NodeWithScore.score``,
    else rank-derived)."""
    records = []
    for rank, nws in enumerate(nodes, 1):
        if type(nws) is not NodeWithScore and not isinstance(nws, NodeWithScore):
            raise InputError(
                f"node {rank} is a {type(nws).__name__}, not a LlamaIndex NodeWithScore"
            )
        node = nws.node
        md = node.metadata
        ref = None  # ref_doc_id, read directly (the property costs ~2 µs a node)
        if not md.get("doc_id") and node.relationships:
            rel = node.relationships.get(_SOURCE_REL)
            if isinstance(rel, RelatedNodeInfo):
                ref = rel.node_id
        start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
        span = (start, end) if type(start) is int and type(end) is int else None
        records.append((getattr(node, "text", None), md, node.id_, ref, nws.score, span))
    return interop.candidates_from_records(_chain_positions(nodes, records), source, what="node")


def _chain_positions(nodes: Sequence[NodeWithScore], records: list[Any]) -> list[Any]:
    """Give nodes without a ``position`` one from their PREVIOUS/NEXT relationships: nodes
    linked into a chain within one document get consecutive positions (chains that do not
    touch are kept two apart, so they are never taken as neighbours)."""
    nxt: dict[str, str] = {}
    prv: dict[str, str] = {}
    for nws in nodes:
        rels = nws.node.relationships
        if not rels or "position" in nws.node.metadata:
            continue
        n, p = rels.get(_NEXT_REL), rels.get(_PREV_REL)
        if isinstance(n, RelatedNodeInfo):
            nxt[nws.node.id_], prv[n.node_id] = n.node_id, nws.node.id_
        if isinstance(p, RelatedNodeInfo):
            prv[nws.node.id_], nxt[p.node_id] = p.node_id, nws.node.id_
    if not nxt:
        return records
    given = {nws.node.id_ for nws in nodes}
    position: dict[str, int] = {}
    start = 0
    for nws in nodes:  # walk each chain from its first given node
        nid = nws.node.id_
        if nid in position or (nid not in nxt and nid not in prv):
            continue
        back = {nid}
        while prv.get(nid) in given and prv[nid] not in position and prv[nid] not in back:
            nid = prv[nid]
            back.add(nid)
        while nid is not None and nid in given and nid not in position:
            position[nid], start = start, start + 1
            nid = nxt.get(nid)
        start += 1  # a gap: the next chain is not adjacent
    out = []
    for (text, md, rid, ref, score, span), nws in zip(records, nodes):
        pos = position.get(nws.node.id_)
        if pos is not None and ref:
            md = {**md, "doc_id": ref, "position": pos}
        out.append((text, md, rid, ref, score, span))
    return out


class RagselRetriever(BaseRetriever):
    """A LlamaIndex retriever whose results are a ragsel pipeline's selection.

    >>> retriever = RagselRetriever("pipelines/local.yaml")       # doctest: +SKIP
    >>> engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

    ``pipeline`` is a :class:`ragsel.Pipeline` or a YAML path (loaded with ``variables`` and
    ``components``); ``k`` caps the number of nodes. ``aretrieve`` uses ``pipeline.arun``.
    """

    def __init__(
        self,
        pipeline: Any,
        *,
        k: int | None = None,
        variables: dict[str, str] | None = None,
        components: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        p = interop.resolve_pipeline(pipeline, variables, components, "RagselRetriever")
        self.pipeline = interop.check_selection_pipeline(p, "RagselRetriever")
        if p.inputs:
            raise InputError(
                f"RagselRetriever: pipeline '{p.name}' declares run-time inputs "
                f"{p.inputs}; use RagselPostprocessor to feed it nodes"
            )
        if k is not None and k < 1:
            raise InputError(f"RagselRetriever: k must be >= 1, got {k}")
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.pipeline.run(Query.coerce(query_bundle.query_str))
        report(result)
        return to_nodes(interop.cap(interop.selected(result, "RagselRetriever"), self.k))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = await self.pipeline.arun(Query.coerce(query_bundle.query_str))
        report(result)
        return to_nodes(interop.cap(interop.selected(result, "RagselRetriever"), self.k))


class RagselPostprocessor(BaseNodePostprocessor):
    """Runs the selection part of a ragsel pipeline over retrieved nodes, for
    ``RetrieverQueryEngine(..., node_postprocessors=[RagselPostprocessor(pipeline=p)])``.

    ``RagselPostprocessor()`` with no pipeline runs the shipped document-selection pipeline
    (:data:`ragsel.pipelines.DOCUMENTS`: score nodes that come without scores by BM25 and
    MiniLM over their texts, drop injections, cut at the elbow). The nodes enter the pipeline
    at ``input`` (``"stage.candidates"``; by default the only declared or unconnected
    Candidates input). Positions for neighbour expansion come from ``position`` metadata, or
    from the nodes' PREVIOUS/NEXT relationships within one ``ref_doc_id`` (as
    ``SentenceSplitter`` sets them; the idea of ``PrevNextNodePostprocessor``, reading the
    neighbours among the retrieved nodes). Each run is reported to LlamaIndex's
    instrumentation dispatcher as a ``RagselTraceEvent`` (trace and drops).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Any
    input: str | None = None
    k: int | None = Field(None, ge=1)

    def __init__(
        self,
        pipeline: Any = None,
        *,
        variables: dict[str, str] | None = None,
        components: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if pipeline is None:  # the shipped document-selection pipeline
            from ragsel.pipelines import document_selection

            pipeline = document_selection(variables)
        p = interop.resolve_pipeline(pipeline, variables, components, "RagselPostprocessor")
        super().__init__(pipeline=p, **kwargs)
        self.input = interop.candidates_input(p, self.input, "RagselPostprocessor")
        interop.check_selection_pipeline(p, "RagselPostprocessor")

    @classmethod
    def class_name(cls) -> str:
        return "RagselPostprocessor"

    def _prepare(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[Query, Candidates]:
        if query_bundle is None:
            raise InputError(
                "RagselPostprocessor needs the query: call "
                "postprocess_nodes(nodes, query_str=...) or use it in a query engine"
            )
        return Query.coerce(query_bundle.query_str), from_nodes(nodes)

    def _finish(self, result: Any) -> list[NodeWithScore]:
        return to_nodes(interop.cap(interop.selected(result, "RagselPostprocessor"), self.k))

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        q, cands = self._prepare(nodes, query_bundle)
        if not cands.items:
            return []
        result = self.pipeline.run(q, inputs={self.input: cands})
        report(result)
        return self._finish(result)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        q, cands = self._prepare(nodes, query_bundle)
        if not cands.items:
            return []
        result = await self.pipeline.arun(q, inputs={self.input: cands})
        report(result)
        return self._finish(result)
