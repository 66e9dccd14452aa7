"""The LLM interface stages call. One small protocol; backends implement it.

Messages are OpenAI-style ``[{"role": "system"|"user"|"assistant", "content": str}]`` (a plain
string is one user message). ``complete`` returns a :class:`Completion`; with ``json_schema``
the backend asks for JSON, validates it against the schema (one repair retry, see
:mod:`ragsel.backends.llm.json_output`) and puts the parsed value in ``Completion.data``.

Backends in this package derive from :class:`BaseLLM`, which does the JSON handling once for
all of them; any object with ``name``, ``complete`` and ``acomplete`` is accepted by stages.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ragsel.errors import ContextLengthError as ContextLengthError  # re-exported
from ragsel.errors import LLMOutputError as LLMOutputError  # re-exported

Message = Mapping[str, str]
Messages = str | Sequence[Message]

#: The latest ``time.monotonic()`` the LLM request being made may end at, or None. Set by
#: stages with a ``stage_timeout`` (see :mod:`ragsel.stages._llm`); backends that can stop a
#: request early honour it (the OpenAI-compatible client caps its attempts and retries).
REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("ragsel_llm_deadline", default=None)


@dataclass(frozen=True)
class Completion:
    """One model answer with its cost. ``logprobs`` (when asked for and available) is a list
    of ``{"token": str, "logprob": float, "top": {token: logprob}}``, one per output token.
    ``data`` is the parsed JSON value when a ``json_schema`` was given. ``attempts`` counts the
    requests made (retries + JSON repair), 1 for a plain success or a cache hit."""

    text: str
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cached: bool = False
    logprobs: list[Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    data: Any = None
    attempts: int = 1
    finish_reason: str | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@runtime_checkable
class LLM(Protocol):
    #: Identifies backend + model for traces and cache keys (never contains secrets).
    name: str

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion: ...

    async def acomplete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion: ...


def as_messages(messages: Messages) -> list[dict[str, str]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) for backends without a tokenizer."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def count_tokens(llm: Any, text: str) -> int:
    """Tokens of ``text`` for ``llm``: its own tokenizer when it has ``count_tokens``, else an
    estimate. Stages use it to keep prompts inside ``context_window(llm)``."""
    fn = getattr(llm, "count_tokens", None)
    return int(fn(text)) if callable(fn) else estimate_tokens(text)


def context_window(llm: Any) -> int | None:
    """The model's context size in tokens when the backend knows or was told it, else None."""
    value = getattr(llm, "context_window", None)
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def usage_summary(completions: Iterable[Completion | None]) -> dict[str, Any]:
    """Totals for a stage note / trace: calls, cache hits, tokens, latency, attempts."""
    out: dict[str, Any] = {
        "llm_calls": 0,
        "cache_hits": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_ms": 0.0,
        "attempts": 0,
    }
    for c in completions:
        if c is None:
            continue
        out["llm_calls"] += 1
        out["cache_hits"] += int(c.cached)
        out["prompt_tokens"] += c.prompt_tokens or 0
        out["completion_tokens"] += c.completion_tokens or 0
        out["latency_ms"] += c.latency_ms or 0.0
        out["attempts"] += c.attempts
    out["latency_ms"] = round(out["latency_ms"], 3)
    return out


@dataclass(frozen=True)
class GenParams:
    """Resolved per-call generation parameters handed to a backend's ``_generate``."""

    temperature: float
    max_tokens: int
    logprobs: bool = False
    json_schema: Mapping[str, Any] | None = None
    json_repair: bool = False  # this call is the repair retry

    def with_(self, **kw: Any) -> GenParams:
        return replace(self, **kw)


class BaseLLM:
    """Shared behaviour of the bundled backends: message normalisation, per-call defaults, JSON
    output with one repair retry. Subclasses implement ``_generate`` (and ``_agenerate`` when
    they have native async; the default runs ``_generate`` in a thread).

    ``name`` is ``"<backend>:<model>"``; it never contains secrets.
    """

    backend: str = "base"
    name: str = "base"
    model: str = ""
    context_window: int | None = None

    def __init__(self, *, temperature: float = 0.0, max_tokens: int = 512) -> None:
        self.temperature, self.max_tokens = float(temperature), int(max_tokens)

    # --- to implement -------------------------------------------------------------------
    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        raise NotImplementedError

    async def _agenerate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        return await asyncio.to_thread(self._generate, messages, params)

    #: Settings that change outputs, part of the disk-cache key (never secrets).
    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model}

    # --- public -------------------------------------------------------------------------
    def _params(
        self,
        temperature: float | None,
        max_tokens: int | None,
        logprobs: bool,
        json_schema: Mapping[str, Any] | None,
    ) -> GenParams:
        return GenParams(
            temperature=self.temperature if temperature is None else float(temperature),
            max_tokens=self.max_tokens if max_tokens is None else int(max_tokens),
            logprobs=bool(logprobs),
            json_schema=json_schema,
        )

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion:
        from ragsel.backends.llm.json_output import complete_with_schema

        msgs = as_messages(messages)
        params = self._params(temperature, max_tokens, logprobs, json_schema)
        if json_schema is None:
            return self._generate(msgs, params)
        return complete_with_schema(self._generate, msgs, params, backend=self.name)

    async def acomplete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion:
        from ragsel.backends.llm.json_output import acomplete_with_schema

        msgs = as_messages(messages)
        params = self._params(temperature, max_tokens, logprobs, json_schema)
        if json_schema is None:
            return await self._agenerate(msgs, params)
        return await acomplete_with_schema(self._agenerate, msgs, params, backend=self.name)

    def close(self) -> None:
        """Release connections/models (optional)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
