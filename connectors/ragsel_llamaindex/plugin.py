"""The LlamaIndex connector's plug-in entry (``ragsel.adapters`` group, see ragsel.plugins):
LlamaIndex LLMs and embed models as ragsel LLMs and embedders."""

from __future__ import annotations

from typing import Any


def adapt(obj: Any, kind: str) -> Any | None:
    if kind == "llm":
        from llama_index.core.base.llms.base import BaseLLM

        if isinstance(obj, BaseLLM):
            from ragsel_llamaindex.backends import LlamaIndexLLM

            return LlamaIndexLLM(obj)
    elif kind == "embedder":  # a LlamaIndex object bound as an embedder: must be an embed model
        from ragsel_llamaindex.backends import LlamaIndexEmbedder

        return LlamaIndexEmbedder(obj)  # raises a ConfigError naming the expected type
    return None
