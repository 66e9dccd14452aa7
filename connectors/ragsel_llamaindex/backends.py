"""LlamaIndex models as ragsel backends, and ragsel embedders as a LlamaIndex embed model."""

from __future__ import annotations

import time
from typing import Any

import ragsel_connect as interop
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.base import BaseLLM as LlamaBaseLLM
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import PrivateAttr

from ragsel.backends.llm.base import BaseLLM, Completion, GenParams
from ragsel.errors import BackendError


class LlamaIndexLLM(BaseLLM):
    """A LlamaIndex LLM as a ragsel LLM backend.

    ``LlamaIndexLLM(Ollama(model="qwen2.5"))``; in YAML ``llm: "component:my_llm"`` with
    ``load_pipeline(components={"my_llm": llm})``. Calls ``chat``/``achat``; JSON output is
    validated (one repair turn) by :class:`BaseLLM`. The LLM's own settings apply.
    """

    backend = "llamaindex"

    def __init__(self, llm: Any, *, temperature: float = 0.0, max_tokens: int = 512) -> None:
        if not isinstance(llm, LlamaBaseLLM):
            raise interop.component_type_error(
                "LlamaIndexLLM",
                type(llm).__name__,
                "a LlamaIndex LLM",
                "pass a llama_index.core LLM such as Ollama(...) or MockLLM()",
            )
        super().__init__(temperature=temperature, max_tokens=max_tokens)
        self.llm = llm
        self.model = str(getattr(llm.metadata, "model_name", "") or type(llm).__name__)
        self.name = f"llamaindex:{self.model}"

    @staticmethod
    def _messages(messages: list[dict[str, str]]) -> list[ChatMessage]:
        return [ChatMessage(role=m["role"], content=m["content"]) for m in messages]

    def _completion(self, resp: Any, t0: float) -> Completion:
        return Completion(
            text=resp.message.content or "",
            model=self.model,
            latency_ms=(time.perf_counter() - t0) * 1e3,
        )

    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        t0 = time.perf_counter()
        try:
            resp = self.llm.chat(self._messages(messages))
        except Exception as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}", backend=self.name) from exc
        return self._completion(resp, t0)

    async def _agenerate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        t0 = time.perf_counter()
        try:
            resp = await self.llm.achat(self._messages(messages))
        except Exception as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}", backend=self.name) from exc
        return self._completion(resp, t0)


class LlamaIndexEmbedder(interop.BatchEmbedder):
    """A LlamaIndex embed model as a ragsel embedder (rows L2-normalised).

    ``LlamaIndexEmbedder(HuggingFaceEmbedding(model_name="/models/bge"), name="bge-small")``.
    """

    def __init__(self, embed_model: Any, *, name: str | None = None) -> None:
        if not isinstance(embed_model, BaseEmbedding):
            raise interop.component_type_error(
                "LlamaIndexEmbedder",
                type(embed_model).__name__,
                "a LlamaIndex embed model",
                "pass a llama_index.core BaseEmbedding instance",
            )
        self.embed_model = embed_model
        super().__init__(
            name or f"llamaindex:{embed_model.model_name}", embed_model.get_text_embedding_batch
        )


class RagselEmbedding(BaseEmbedding):
    """A ragsel embedder as a LlamaIndex embed model, e.g.
    ``VectorStoreIndex(nodes, embed_model=RagselEmbedding("minilm"))`` (never the OpenAI
    default)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Any = "minilm", **kwargs: Any) -> None:
        if isinstance(embedder, str):
            from ragsel.backends.embedders import load_embedder

            embedder = load_embedder(embedder)
        kwargs.setdefault("model_name", getattr(embedder, "name", "ragsel"))
        super().__init__(**kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "RagselEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts).tolist()
