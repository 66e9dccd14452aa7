"""The LLM interface stages call. One small protocol; backends implement it.

Messages are OpenAI-style ``[{"role": "system"|"user"|"assistant", "content": str}]`` (a plain
string is one user message). ``complete`` returns a :class:`Completion`; with ``json_schema``
the backend asks for JSON and the caller validates (see ragsel.backends.llm.json_output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union, runtime_checkable

Message = Mapping[str, str]
Messages = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class Completion:
    text: str
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cached: bool = False
    logprobs: list[Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class LLM(Protocol):
    #: Identifies backend + model for traces and cache keys (never contains secrets).
    name: str

    def complete(self, messages: Messages, *, temperature: float | None = None,
                 max_tokens: int | None = None, json_schema: Mapping[str, Any] | None = None,
                 logprobs: bool = False) -> Completion: ...

    async def acomplete(self, messages: Messages, *, temperature: float | None = None,
                        max_tokens: int | None = None,
                        json_schema: Mapping[str, Any] | None = None,
                        logprobs: bool = False) -> Completion: ...


def as_messages(messages: Messages) -> list[dict[str, str]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]
