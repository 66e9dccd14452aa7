"""ragsel inside LlamaIndex, and LlamaIndex objects inside ragsel.

One-line change in a LlamaIndex app (the pipeline selects instead of a fixed top-k)::

    from ragsel_llamaindex import RagselRetriever
    retriever = RagselRetriever("pipelines/local.yaml")   # was: index.as_retriever()
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

- :class:`RagselRetriever` - a ``BaseRetriever`` returning the pipeline's selection.
- :class:`RagselPostprocessor` - a ``BaseNodePostprocessor`` running selection over nodes
  another retriever returned (``node_postprocessors=[...]``).
- :class:`LlamaIndexRetrieverStage` (``type: llamaindex_retriever``) - a LlamaIndex retriever
  inside a ragsel pipeline.
- :class:`LlamaIndexLLM`, :class:`LlamaIndexEmbedder` - LlamaIndex models as ragsel backends;
  :class:`RagselEmbedding` - a ragsel embedder as a LlamaIndex embed model.

Only ``llama_index.core`` is imported, and only when one of these names is first used. No
LlamaIndex ``Settings`` default (OpenAI) is ever resolved.
"""

from __future__ import annotations

from ragsel_connect import lazy_exports, register_llm_class

_EXPORTS = {
    "RagselRetriever": "retriever",
    "RagselPostprocessor": "retriever",
    "to_nodes": "retriever",
    "from_nodes": "retriever",
    "LlamaIndexRetrieverStage": "stages",
    "LlamaIndexLLM": "backends",
    "LlamaIndexEmbedder": "backends",
    "RagselEmbedding": "backends",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(
    __name__, _EXPORTS, "llama_index.core", "llamaindex", "the LlamaIndex connector"
)


def __dir__() -> list[str]:
    return __all__


# llm: "component:<name>" accepts this framework's models (ragsel.backends.llm.adapt_llm)
register_llm_class(
    "llama_index",
    "llama_index.core.base.llms.base:BaseLLM",
    lambda obj: __getattr__("LlamaIndexLLM")(obj),
)
