"""llama-cpp-python backend (optional extra ``llamacpp``): GGUF models in-process.

``pip install "ragsel[llamacpp]"`` builds llama-cpp-python from source where no wheel exists
(~8 minutes on 2 cores). Its ``create_chat_completion`` speaks the OpenAI response shape, so
parsing is shared with :mod:`ragsel.backends.llm.openai_compat`; JSON output uses llama.cpp's
grammar-constrained ``response_format`` and is still validated here. The alternative without
a build step is llama.cpp's own OpenAI-compatible server with ``backend: openai``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ragsel.backends.llm.base import BaseLLM, Completion, ContextLengthError, GenParams
from ragsel.backends.llm.local_models import LocalModel, resolve_local_model
from ragsel.errors import BackendError, require


class LlamaCppLLM(BaseLLM):
    """A GGUF model run by llama-cpp-python.

    ``LlamaCppLLM(model="smollm2", n_ctx=2048).complete("Name a colour", max_tokens=8)``.
    Token logprobs need ``logits_all=True`` (memory: n_ctx x vocabulary floats).
    """

    backend = "llama_cpp"

    def __init__(
        self,
        *,
        model: str,
        gguf_file: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
        top_logprobs: int = 5,
        threads: int | None = None,
        n_ctx: int = 4096,
        context_window: int | None = None,
        logits_all: bool = False,
    ) -> None:
        super().__init__(temperature=temperature, max_tokens=max_tokens)
        self.local: LocalModel = resolve_local_model(model, gguf_file)
        if self.local.gguf_path is None:
            raise BackendError(
                f"{self.local.folder} is not a GGUF model; llama.cpp needs a "
                ".gguf file (use backend: transformers for HF folders)",
                backend=f"llama_cpp:{self.local.label}",
            )
        self.model = self.local.label
        self.name = f"llama_cpp:{self.local.label}"
        self.seed, self.top_logprobs, self.threads = seed, top_logprobs, threads
        self.n_ctx, self.logits_all = n_ctx, logits_all
        self.context_window = context_window or n_ctx
        self._llama: Any = None
        self._lock = threading.Lock()

    def cache_identity(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "seed": self.seed,
            "top_logprobs": self.top_logprobs,
            "n_ctx": self.n_ctx,
        }

    def warm_up(self) -> None:
        self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._llama is None:
                llama_cpp = require("llama_cpp", "llamacpp", "the llama.cpp LLM backend")
                self._llama = llama_cpp.Llama(
                    model_path=str(self.local.gguf_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.threads,
                    seed=0 if self.seed is None else self.seed,
                    logits_all=self.logits_all,
                    verbose=False,
                )
            return self._llama

    def count_tokens(self, text: str) -> int:
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False))

    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        from ragsel.backends.llm._openai_wire import parse_logprobs as _parse_logprobs

        llama = self._load()
        if params.logprobs and not self.logits_all:
            raise BackendError(
                "token logprobs need LlamaCppLLM(logits_all=True)", backend=self.name
            )
        kw: dict[str, Any] = {
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.json_schema is not None:
            kw["response_format"] = {"type": "json_object", "schema": dict(params.json_schema)}
        if params.logprobs:
            kw.update(logprobs=True, top_logprobs=self.top_logprobs)
        t0 = time.perf_counter()
        with self._lock:  # one llama.cpp context: calls must not interleave
            try:
                out = llama.create_chat_completion(**kw)
            except ValueError as exc:
                if "context" in str(exc).lower() or "exceed" in str(exc).lower():
                    raise ContextLengthError(
                        f"{exc}: shorten the evidence or raise n_ctx", backend=self.name
                    ) from exc
                raise BackendError(str(exc), backend=self.name) from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            model=self.model,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=(time.perf_counter() - t0) * 1000,
            logprobs=_parse_logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
        )

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                close = getattr(self._llama, "close", None)
                if callable(close):
                    close()
                self._llama = None
