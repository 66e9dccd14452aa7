"""The LangChain connector's plug-in entry (``ragsel.adapters`` group, see ragsel.plugins):
LangChain chat models and embeddings as ragsel LLMs and embedders."""

from __future__ import annotations

from typing import Any


def adapt(obj: Any, kind: str) -> Any | None:
    if kind == "llm":
        from langchain_core.language_models import BaseLanguageModel

        if isinstance(obj, BaseLanguageModel):
            from ragsel_langchain.backends import LangChainChatLLM

            return LangChainChatLLM(obj)
    elif kind == "embedder":  # a LangChain object bound as an embedder: it must be Embeddings
        from ragsel_langchain.backends import LangChainEmbedder

        return LangChainEmbedder(obj)  # raises a ConfigError naming the expected type
    return None
