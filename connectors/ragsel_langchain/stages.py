"""Any LangChain retriever as a ragsel retrieval stage (registry name ``langchain_retriever``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

import ragsel_connect as interop
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Query


def check_retriever(obj: Any, where: str) -> Any:
    """``obj`` if it is a LangChain ``BaseRetriever``, else a ConfigError saying what to pass."""
    from langchain_core.retrievers import BaseRetriever

    if isinstance(obj, BaseRetriever):
        return obj
    kind = type(obj).__name__
    if hasattr(obj, "as_retriever") and hasattr(obj, "similarity_search"):
        hint = "it is a LangChain vector store: pass store.as_retriever(search_kwargs={'k': 20})"
    elif interop.from_framework(obj, "llama_index"):
        hint = "it is a LlamaIndex object: use the llamaindex_retriever stage"
    else:
        hint = "pass a langchain_core.retrievers.BaseRetriever (e.g. store.as_retriever())"
    raise interop.component_type_error(where, kind, "a LangChain retriever", hint)


@register_stage("langchain_retriever")
class LangChainRetrieverStage(Stage):
    """A LangChain ``BaseRetriever`` (a vector store retriever, BM25, a custom one) as a
    ragsel retriever: its Documents become ranked Candidates.

    Python: ``LangChainRetrieverStage(store.as_retriever(search_kwargs={"k": 20}))``.
    YAML: ``{type: langchain_retriever, component: my_retriever}`` and
    ``load_pipeline(path, components={"my_retriever": store.as_retriever()})``.

    Scores: ``auto`` takes ``metadata["score"]`` (or ``relevance_score``) when the documents
    carry one, else a rank-derived score (1, 1-1/n, ...; noted in the stage note).
    ``vectorstore`` asks a ``VectorStoreRetriever``'s store for ``similarity_search_with_score``
    (the store's own scale: use it only when higher means more similar, as for
    ``InMemoryVectorStore``'s cosine).
    """

    config: Config

    class Config(StageConfig):
        component: str | None = Field(
            None, description="name of the retriever passed to load_pipeline(components={...})"
        )
        top_k: int | None = Field(None, ge=1, description="keep at most this many results")
        scores: Literal["auto", "vectorstore"] = Field(
            "auto", description="where scores come from (see the class docstring)"
        )

    def __init__(self, retriever: Any = None, /, config: Any = None, **kwargs: Any) -> None:
        retriever, config = interop.object_and_config(retriever, config)
        super().__init__(config, **kwargs)
        self._retriever = (
            None if retriever is None else self._accept(retriever, f"stage '{self.name}'")
        )

    def _accept(self, obj: Any, where: str) -> Any:
        from langchain_core.vectorstores import VectorStoreRetriever

        obj = check_retriever(obj, where)
        if self.config.scores == "vectorstore" and not (
            isinstance(obj, VectorStoreRetriever) and obj.search_type == "similarity"
        ):
            raise interop.component_type_error(
                where,
                type(obj).__name__,
                "a similarity VectorStoreRetriever for scores: vectorstore",
                "use store.as_retriever() or set scores: auto",
            )
        return obj

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._retriever = interop.bind_component(self, components, self._accept, self._retriever)

    def warm_up(self) -> None:
        interop.bound(self, self._retriever, "LangChainRetrieverStage(retriever)")

    def _search(self, retriever: Any, query: str) -> list[Any]:
        if self.config.scores == "vectorstore":  # checked in _accept: a VectorStoreRetriever
            pairs = retriever.vectorstore.similarity_search_with_score(
                query, **retriever.search_kwargs
            )
            return [
                d.model_copy(update={"metadata": {**d.metadata, "score": float(s)}})
                for d, s in pairs
            ]
        return retriever.invoke(query)

    def _candidates(self, docs: list[Any]) -> Candidates:
        from ragsel_langchain.retriever import from_documents

        return interop.capped(from_documents(docs, source=self.name), self.name, self.config.top_k)

    def _run(self, query: Query) -> Candidates:
        retriever = interop.bound(self, self._retriever, "LangChainRetrieverStage(retriever)")
        return self._candidates(self._search(retriever, query.text))

    async def _arun(self, query: Query) -> Candidates:
        retriever = interop.bound(self, self._retriever, "LangChainRetrieverStage(retriever)")
        if self.config.scores == "vectorstore":
            docs = await asyncio.to_thread(self._search, retriever, query.text)
        else:
            try:
                docs = await retriever.ainvoke(query.text)
            except NotImplementedError:  # a sync-only retriever: run it off the event loop
                docs = await asyncio.to_thread(retriever.invoke, query.text)
        return self._candidates(docs)
