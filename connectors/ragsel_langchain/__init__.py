"""ragsel inside LangChain, and LangChain objects inside ragsel.

One-line change in a LangChain app (the pipeline selects instead of a fixed top-k)::

    from ragsel_langchain import RagselRetriever
    retriever = RagselRetriever(pipeline="pipelines/local.yaml")   # was: store.as_retriever()
    chain = {"context": retriever, "question": RunnablePassthrough()} | prompt | llm

- :class:`RagselRetriever` - a ``BaseRetriever`` returning the pipeline's selection.
- :class:`RagselCompressor` - a ``BaseDocumentCompressor`` running selection over documents
  another retriever returned.
- :class:`LangChainRetrieverStage` (``type: langchain_retriever``) - a LangChain retriever
  inside a ragsel pipeline.
- :class:`LangChainChatLLM`, :class:`LangChainEmbedder` - LangChain models as ragsel backends;
  :class:`RagselEmbeddings` - a ragsel embedder as LangChain ``Embeddings``.

Only ``langchain_core`` is imported, and only when one of these names is first used.
"""

from __future__ import annotations

from ragsel_connect import lazy_exports, register_llm_class

_EXPORTS = {
    "RagselRetriever": "retriever",
    "RagselCompressor": "retriever",
    "to_documents": "retriever",
    "from_documents": "retriever",
    "LangChainRetrieverStage": "stages",
    "LangChainChatLLM": "backends",
    "LangChainEmbedder": "backends",
    "RagselEmbeddings": "backends",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(
    __name__, _EXPORTS, "langchain_core", "langchain", "the LangChain connector"
)


def __dir__() -> list[str]:
    return __all__


# llm: "component:<name>" accepts this framework's models (ragsel.backends.llm.adapt_llm)
register_llm_class(
    "langchain_core",
    "langchain_core.language_models:BaseLanguageModel",
    lambda obj: __getattr__("LangChainChatLLM")(obj),
)
