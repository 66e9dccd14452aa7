"""ragsel inside LangChain: a retriever and a document compressor backed by a ragsel pipeline.

Only ``langchain_core`` is imported (LangChain 1.0 removed ``langchain.retrievers``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
    Callbacks,
)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragsel import interop
from ragsel._prebuilt import model_builder
from ragsel.errors import InputError
from ragsel.pipeline import Pipeline
from ragsel.types import Candidates, Query, ScoredChunk

SOURCE = "langchain"


#: Documents made without a second validation of values ragsel built (see model_builder)
_document = model_builder(Document, page_content="", id="x", metadata={})


def to_documents(items: Sequence[ScoredChunk]) -> list[Document]:
    """LangChain Documents for selected chunks: ``id`` is the chunk id, metadata carries
    chunk id, doc id, position, span, score, rank and provenance (``metadata["ragsel"]``)."""
    make, meta = _document, interop.chunk_metadata
    return [
        make(page_content=sc.chunk.text, id=sc.chunk.id, metadata=meta(sc, rank))
        for rank, sc in enumerate(items, 1)
    ]


def from_documents(documents: Sequence[Document], source: str = SOURCE) -> Candidates:
    """Candidates from Documents another retriever returned (ids from ``metadata["chunk_id"]``
    or ``Document.id``, else a content hash; scores from metadata, else rank-derived)."""
    if isinstance(documents, (str, Document)):
        raise InputError(f"expected a list of Documents, got one {type(documents).__name__}")
    documents = list(documents)
    for rank, doc in enumerate(documents, 1):
        if type(doc) is not Document and not isinstance(doc, Document):
            raise InputError(f"document {rank} is a {type(doc).__name__}, not a LangChain Document")
    records = [(d.page_content, d.metadata, d.id, None, None, None) for d in documents]
    return interop.candidates_from_records(records, source)


class _PipelineFields(BaseModel):
    """The fields both adapters share: a YAML path in ``pipeline`` is loaded (with
    ``variables`` and ``components``); components given with a Pipeline object are bound."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Any
    k: int | None = Field(None, ge=1)
    variables: dict[str, str] | None = Field(None, exclude=True)
    components: dict[str, Any] | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _load_pipeline(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        p = data.get("pipeline")
        if isinstance(p, (str, os.PathLike)) or data.get("components"):
            data["pipeline"] = interop.resolve_pipeline(
                p, data.get("variables"), data.get("components"), cls.__name__
            )
        return data


class RagselRetriever(_PipelineFields, BaseRetriever):
    """A LangChain retriever whose results are a ragsel pipeline's selection.

    >>> retriever = RagselRetriever(pipeline="pipelines/local.yaml",   # doctest: +SKIP
    ...                             variables={"RAGSEL_INDEX": "idx"})
    >>> chain = {"context": retriever, "question": RunnablePassthrough()} | prompt | llm

    ``pipeline`` is a :class:`ragsel.Pipeline` or a YAML path (loaded with ``variables`` and
    ``components``). ``k`` caps how many documents are returned (``None``: all the pipeline
    selected); ``invoke(q, k=3)`` overrides it per call. Each Document's metadata carries
    ``chunk_id, doc_id, position, span, score, rank`` and ``ragsel`` (provenance: events,
    rationales, verdicts). ``ainvoke`` uses the pipeline's native ``arun``.
    """

    def model_post_init(self, __context: Any) -> None:
        p = interop.check_selection_pipeline(self.pipeline, "RagselRetriever")
        if p.inputs:
            raise InputError(
                f"RagselRetriever: pipeline '{p.name}' declares run-time inputs "
                f"{p.inputs}; use RagselCompressor to feed it documents"
            )

    def _docs(self, cands: Candidates, k: int | None) -> list[Document]:
        return to_documents(interop.cap(cands.items, self.k if k is None else k))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        result = self.pipeline.run(Query.coerce(query))
        return self._docs(interop.selected(result, "RagselRetriever"), k)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        result = await self.pipeline.arun(Query.coerce(query))
        return self._docs(interop.selected(result, "RagselRetriever"), k)


class RagselCompressor(_PipelineFields, BaseDocumentCompressor):
    """Runs the selection part of a ragsel pipeline over documents another retriever returned
    (the ``ContextualCompressionRetriever`` pattern, without ``langchain_classic``).

    >>> compressor = RagselCompressor(pipeline=Pipeline.linear(        # doctest: +SKIP
    ...     [ElbowCutoff(), InjectionGuard()]))
    >>> docs = compressor.compress_documents(vectorstore_retriever.invoke(q), q)

    The documents enter the pipeline at ``input`` (``"stage.candidates"``); when omitted, the
    only declared (YAML ``inputs:``) or unconnected Candidates input is used and declared.
    Documents without ids get content-hash ids; without ``doc_id``/``position`` metadata they
    are selected normally, neighbour expansion skips them and their metadata says so.
    """

    input: str | None = None

    def model_post_init(self, __context: Any) -> None:
        if isinstance(self.pipeline, Pipeline):  # declare the input before validating
            self.input = interop.candidates_input(self.pipeline, self.input, "RagselCompressor")
        interop.check_selection_pipeline(self.pipeline, "RagselCompressor")

    def _finish(self, result: Any) -> list[Document]:
        return to_documents(interop.cap(interop.selected(result, "RagselCompressor"), self.k))

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        q, cands = Query.coerce(query), from_documents(documents)
        if not cands.items:
            return []
        return self._finish(self.pipeline.run(q, inputs={self.input: cands}))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        q, cands = Query.coerce(query), from_documents(documents)
        if not cands.items:
            return []
        return self._finish(await self.pipeline.arun(q, inputs={self.input: cands}))
