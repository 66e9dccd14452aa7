"""ragsel inside LangChain: a retriever and a document compressor backed by a ragsel pipeline.

Only ``langchain_core`` is imported (LangChain 1.0 removed ``langchain.retrievers``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import ragsel_connect as interop
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
    Callbacks,
)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ragsel_connect import model_builder

from ragsel.errors import InputError
from ragsel.pipeline import Pipeline
from ragsel.types import Candidates, Query, ScoredChunk
from ragsel_langchain._callbacks import areport, report

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

    pipeline: Any = None
    k: int | None = Field(None, ge=1)
    variables: dict[str, str] | None = Field(None, exclude=True)
    components: dict[str, Any] | None = Field(None, exclude=True)

    #: whether the shipped document-selection pipeline is used when none is given
    _default_documents: ClassVar[bool] = False

    def __init__(self, pipeline: Any = None, /, **data: Any) -> None:
        """``Cls("x.yaml")`` or ``Cls(pipeline=...)`` (positional, as in LlamaIndex)."""
        if pipeline is not None:
            if data.get("pipeline") is not None:
                raise InputError(f"{type(self).__name__}: pipeline given twice")
            data["pipeline"] = pipeline
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _load_pipeline(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        p = data.get("pipeline")
        if p is None and cls._default_documents:
            from ragsel.pipelines import document_selection

            data["pipeline"] = document_selection(data.get("variables"))
        elif isinstance(p, (str, os.PathLike)) or data.get("components"):
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
        report(result, run_manager=run_manager)
        return self._docs(interop.selected(result, "RagselRetriever"), k)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        result = await self.pipeline.arun(Query.coerce(query))
        await areport(result, run_manager=run_manager)
        return self._docs(interop.selected(result, "RagselRetriever"), k)


class RagselCompressor(_PipelineFields, BaseDocumentCompressor):
    """Runs the selection part of a ragsel pipeline over documents another retriever returned
    (the ``ContextualCompressionRetriever`` pattern, without ``langchain_classic``).

    >>> compressor = RagselCompressor()                                 # doctest: +SKIP
    >>> docs = compressor.compress_documents(vectorstore_retriever.invoke(q), q)
    >>> RagselCompressor("my-selection.yaml")   # or pipeline=Pipeline.linear([...])

    With no pipeline, the shipped document-selection pipeline
    (:data:`ragsel.pipelines.DOCUMENTS`) runs: documents without scores (a
    ``VectorStoreRetriever``, ``BM25Retriever``) are scored against the query by BM25 and
    MiniLM over their own texts (needs ``ragsel[local]``), injections are dropped and the list
    is cut at the elbow. Each returned Document's ``metadata["ragsel"]["score_source"]`` says
    which scores the cut read. Dropped documents and the trace are reported to LangChain
    callbacks (``on_custom_event`` ``ragsel_trace``, visible in ``astream_events``).

    The documents enter the pipeline at ``input`` (``"stage.candidates"``); when omitted, the
    only declared (YAML ``inputs:``) or unconnected Candidates input is used and declared.
    Documents without ids get content-hash ids; two documents with one id but different
    texts are both kept (the second under a derived id, noted in its provenance); without
    ``doc_id``/``position`` metadata they are selected normally, neighbour expansion skips
    them and their metadata says so.
    """

    input: str | None = None
    _default_documents: ClassVar[bool] = True

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
        result = self.pipeline.run(q, inputs={self.input: cands})
        report(result, callbacks=callbacks)
        return self._finish(result)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        q, cands = Query.coerce(query), from_documents(documents)
        if not cands.items:
            return []
        result = await self.pipeline.arun(q, inputs={self.input: cands})
        await areport(result, callbacks=callbacks)
        return self._finish(result)
