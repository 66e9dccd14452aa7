"""LangChain models as ragsel backends, and ragsel embedders as LangChain ``Embeddings``."""

from __future__ import annotations

import time
from typing import Any

import ragsel_connect as interop
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseLanguageModel

from ragsel.backends.llm.base import BaseLLM, Completion, GenParams
from ragsel.errors import BackendError


def _text_of(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        return "".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, (str, dict))
        )
    return str(content)


class LangChainChatLLM(BaseLLM):
    """A LangChain chat model (or any ``BaseLanguageModel``) as a ragsel LLM backend.

    ``LangChainChatLLM(ChatOpenAI(model="gpt-4o-mini"))``; in YAML,
    ``llm: "component:my_chat"`` with ``load_pipeline(components={"my_chat": chat})``.
    JSON output is validated (with one repair turn) by :class:`BaseLLM`. The model's own
    settings apply; ``forward_params=True`` also passes ragsel's per-call ``temperature`` and
    ``max_tokens`` to ``invoke`` (only for models that accept them).
    """

    backend = "langchain"

    def __init__(
        self,
        model: Any,
        *,
        forward_params: bool = False,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> None:
        if not isinstance(model, BaseLanguageModel):
            raise interop.component_type_error(
                "LangChainChatLLM",
                type(model).__name__,
                "a LangChain chat model",
                "pass a langchain_core BaseChatModel such as ChatOpenAI(...)",
            )
        super().__init__(temperature=temperature, max_tokens=max_tokens)
        self.chat, self.forward_params = model, forward_params
        self.model = str(
            getattr(model, "model_name", None)
            or getattr(model, "model", None)
            or type(model).__name__
        )
        self.name = f"langchain:{self.model}"

    def _kwargs(self, params: GenParams) -> dict[str, Any]:
        if not self.forward_params:
            return {}
        return {"temperature": params.temperature, "max_tokens": params.max_tokens}

    def _completion(self, out: Any, t0: float) -> Completion:
        usage = getattr(out, "usage_metadata", None) or {}
        meta = getattr(out, "response_metadata", None) or {}
        return Completion(
            text=_text_of(out),
            model=self.model,
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            latency_ms=(time.perf_counter() - t0) * 1e3,
            finish_reason=meta.get("finish_reason"),
        )

    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        t0 = time.perf_counter()
        try:
            out = self.chat.invoke(messages, **self._kwargs(params))
        except Exception as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}", backend=self.name) from exc
        return self._completion(out, t0)

    async def _agenerate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        t0 = time.perf_counter()
        try:
            out = await self.chat.ainvoke(messages, **self._kwargs(params))
        except Exception as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}", backend=self.name) from exc
        return self._completion(out, t0)


class LangChainEmbedder(interop.BatchEmbedder):
    """A LangChain ``Embeddings`` object as a ragsel embedder (rows L2-normalised).

    ``LangChainEmbedder(OllamaEmbeddings(model="nomic-embed-text"), name="ollama:nomic")``.
    ``name`` identifies the vector space for indexes: give a stable one.
    """

    def __init__(self, embeddings: Any, *, name: str | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise interop.component_type_error(
                "LangChainEmbedder",
                type(embeddings).__name__,
                "LangChain Embeddings",
                "pass a langchain_core.embeddings.Embeddings instance",
            )
        self.embeddings = embeddings
        super().__init__(
            name or f"langchain:{type(embeddings).__name__}", embeddings.embed_documents
        )


class RagselEmbeddings(Embeddings):
    """A ragsel embedder as LangChain ``Embeddings`` (e.g. for ``InMemoryVectorStore``).

    ``RagselEmbeddings(load_embedder("minilm"))`` or ``RagselEmbeddings("minilm")``.
    """

    def __init__(self, embedder: Any = "minilm") -> None:
        if isinstance(embedder, str):
            from ragsel.backends.embedders import load_embedder

            embedder = load_embedder(embedder)
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()
