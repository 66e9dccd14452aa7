"""Wire-level pieces of the OpenAI-compatible client: the key holder, one attempt's outcome,
and reading response bodies (messages, logprobs, errors)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ragsel.backends.llm.base import Completion
from ragsel.errors import BackendError, require


class Secret:
    """Holds the API key; its repr/str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<secret>" if self._value else "<none>"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the key along with a client
        return (Secret, (None,))


@dataclass
class Outcome:
    """What one HTTP attempt led to: a completion, a retry (with the server's wait), or a
    final error."""

    completion: Completion | None = None
    error: BackendError | None = None
    retry: bool = False
    wait: float | None = None  # the server's Retry-After
    again_now: bool = False  # retry at once (json_mode downgrade), not counted as a retry


def parse_payload(payload: Mapping[str, Any], model: str, elapsed_ms: float) -> Completion:
    """An OpenAI chat-completions response body as a :class:`Completion`."""
    choice = payload["choices"][0]
    message = choice.get("message") or {}
    content = message.get("content")
    if content is None and "text" in choice:  # legacy completions shape
        content = choice["text"]
    usage = payload.get("usage") or {}
    return Completion(
        text=content or "",
        model=str(payload.get("model") or model),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        latency_ms=elapsed_ms,
        logprobs=parse_logprobs(choice.get("logprobs")),
        raw={"id": payload.get("id"), "finish_reason": choice.get("finish_reason")},
        finish_reason=choice.get("finish_reason"),
    )


def too_slow(budget: float) -> Exception:
    httpx = require("httpx", "llm")
    return httpx.ReadTimeout(f"the whole answer did not arrive within {budget:g}s")


def with_attempts(c: Completion, attempts: int) -> Completion:
    from dataclasses import replace

    return replace(c, attempts=attempts)


def server_message(text: str) -> str:
    """The server's error message (OpenAI ``{"error": {"message": ...}}`` or raw text)."""
    try:
        payload = json.loads(text)
        err = payload.get("error", payload) if isinstance(payload, dict) else payload
        msg = err.get("message", err) if isinstance(err, dict) else err
        text = msg if isinstance(msg, str) else json.dumps(msg)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "") if text else "no message"


def parse_logprobs(lp: Any) -> list[dict[str, Any]] | None:
    """OpenAI ``choice.logprobs.content`` -> ``[{"token", "logprob", "top": {tok: lp}}]``."""
    if not isinstance(lp, Mapping):
        return None
    content = lp.get("content")
    if isinstance(content, list):
        return [
            {
                "token": t.get("token", ""),
                "logprob": float(t.get("logprob", 0.0)),
                "top": {
                    a.get("token", ""): float(a.get("logprob", 0.0))
                    for a in t.get("top_logprobs") or []
                },
            }
            for t in content
            if isinstance(t, Mapping)
        ]
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")  # legacy completions shape
    if isinstance(tokens, list) and isinstance(values, list):
        tops = lp.get("top_logprobs") or [{}] * len(tokens)
        return [
            {"token": t, "logprob": float(v or 0.0), "top": dict(top or {})}
            for t, v, top in zip(tokens, values, tops)
        ]
    return None
