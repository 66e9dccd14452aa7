"""Any LlamaIndex retriever as a ragsel retrieval stage (registry name
``llamaindex_retriever``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ragsel_connect as interop
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Query


def check_retriever(obj: Any, where: str) -> Any:
    """``obj`` if it is a LlamaIndex ``BaseRetriever``, else a ConfigError saying what to pass."""
    from llama_index.core.base.base_retriever import BaseRetriever

    if isinstance(obj, BaseRetriever):
        return obj
    kind = type(obj).__name__
    if hasattr(obj, "as_retriever"):
        hint = "it is a LlamaIndex index: pass index.as_retriever(similarity_top_k=20)"
    elif interop.from_framework(obj, "langchain_core"):
        hint = "it is a LangChain object: use the langchain_retriever stage"
    else:
        hint = "pass a llama_index.core BaseRetriever (e.g. index.as_retriever())"
    raise interop.component_type_error(where, kind, "a LlamaIndex retriever", hint)


def _native_async(retriever: Any) -> bool:
    from llama_index.core.base.base_retriever import BaseRetriever

    return type(retriever)._aretrieve is not BaseRetriever._aretrieve


@register_stage("llamaindex_retriever")
class LlamaIndexRetrieverStage(Stage):
    """A LlamaIndex ``BaseRetriever`` (``index.as_retriever()``, BM25, a custom one) as a
    ragsel retriever: its scored nodes become ranked Candidates.

    Python: ``LlamaIndexRetrieverStage(index.as_retriever(similarity_top_k=20))``.
    YAML: ``{type: llamaindex_retriever, component: my_retriever}`` and
    ``load_pipeline(path, components={"my_retriever": index.as_retriever()})``.

    A retriever without native async (LlamaIndex's default ``_aretrieve`` calls the sync one
    inline, blocking the event loop) runs in a worker thread under ``arun``.
    """

    config: Config

    class Config(StageConfig):
        component: str | None = Field(
            None, description="name of the retriever passed to load_pipeline(components={...})"
        )
        top_k: int | None = Field(None, ge=1, description="keep at most this many results")

    def __init__(self, retriever: Any = None, /, config: Any = None, **kwargs: Any) -> None:
        retriever, config = interop.object_and_config(retriever, config)
        super().__init__(config, **kwargs)
        self._retriever = (
            None if retriever is None else check_retriever(retriever, f"stage '{self.name}'")
        )

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._retriever = interop.bind_component(self, components, check_retriever, self._retriever)

    def warm_up(self) -> None:
        interop.bound(self, self._retriever, "LlamaIndexRetrieverStage(retriever)")

    def _candidates(self, nodes: list[Any]) -> Candidates:
        from ragsel_llamaindex.retriever import from_nodes

        return interop.capped(from_nodes(nodes, source=self.name), self.name, self.config.top_k)

    def _run(self, query: Query) -> Candidates:
        retriever = interop.bound(self, self._retriever, "LlamaIndexRetrieverStage(retriever)")
        return self._candidates(retriever.retrieve(query.text))

    async def _arun(self, query: Query) -> Candidates:
        retriever = interop.bound(self, self._retriever, "LlamaIndexRetrieverStage(retriever)")
        if not _native_async(retriever):
            return self._candidates(await asyncio.to_thread(retriever.retrieve, query.text))
        try:
            nodes = await retriever.aretrieve(query.text)
        except NotImplementedError:  # declared async but not implemented: use the sync path
            nodes = await asyncio.to_thread(retriever.retrieve, query.text)
        return self._candidates(nodes)
