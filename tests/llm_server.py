"""The scripted OpenAI-compatible test server (kept here so tests can ``import llm_server``);
it lives in :mod:`ragsel.backends.llm.scripted_server` so users can test with it too."""

from ragsel.backends.llm.scripted_server import (
    BadBody,
    Drop,
    Ok,
    Request,
    ScriptedLLMServer,
    Slow,
    Status,
    Trickle,
    Truncated,
    completion_payload,
)

__all__ = [
    "BadBody",
    "Drop",
    "Ok",
    "Request",
    "ScriptedLLMServer",
    "Slow",
    "Status",
    "Trickle",
    "Truncated",
    "completion_payload",
]
