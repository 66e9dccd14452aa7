"""Request bodies and failure outcomes of the OpenAI-compatible client
(:mod:`ragsel.backends.llm.openai_compat`): the chat-completions body for one call, what a
transport exception means (timeout, refused connection, dropped connection), and what an
HTTP error status means (rate limit, server error, prompt too long, bad key, unknown model),
each as an :class:`~ragsel.backends.llm._openai_wire.Outcome` with a message naming the
endpoint and the fix, and the error raised when retrying stops. The client's state (retries, ``json_mode`` downgrades) stays there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ragsel.backends.llm._openai_wire import Outcome
from ragsel.backends.llm.base import ContextLengthError, GenParams
from ragsel.backends.llm.config import ENV_API_KEY, ENV_BASE_URL
from ragsel.backends.llm.limits import parse_retry_after
from ragsel.errors import BackendError, BackendTimeout, require

CONTEXT_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "exceeds the context",
    "n_ctx",
)


def request_body(
    model: str,
    messages: list[dict[str, str]],
    params: GenParams,
    *,
    extra_body: Mapping[str, Any],
    seed: int | None,
    top_logprobs: int,
    json_mode: str,
) -> dict[str, Any]:
    """The chat-completions request body; ``json_mode`` is the mode in use now."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "stream": False,
        **extra_body,
    }
    if seed is not None:
        body["seed"] = seed
    if params.logprobs:
        body["logprobs"] = True
        if top_logprobs:
            body["top_logprobs"] = top_logprobs
    if params.json_schema is not None and json_mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "output",
                "schema": dict(params.json_schema),
                "strict": False,
            },
        }
    elif params.json_schema is not None and json_mode == "json_object":
        body["response_format"] = {"type": "json_object"}
    return body


def exception_outcome(
    exc: Exception, budget: float, *, where: str, backend: str, scrub: Callable[[str], str]
) -> Outcome:
    """A retryable outcome for a transport failure; any other exception is re-raised."""
    httpx = require("httpx", "llm")
    what = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, httpx.TimeoutException):
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting"
        return Outcome(
            retry=True,
            error=BackendTimeout(
                f"timed out {kind} for {where} ({what}) after "
                f"{budget:g}s. Raise the timeout (llm.timeout) or check the server load.",
                backend=backend,
            ),
        )
    if isinstance(exc, httpx.ConnectError):
        msg = (
            f"cannot connect to {where} ({what}). Is the server running? Set "
            f"{ENV_BASE_URL} (or llm.base_url) to its address ending in /v1."
        )
    elif isinstance(exc, httpx.TransportError):  # dropped connection, truncated body
        msg = f"the connection to {where} failed mid-request ({what})."
    else:
        raise exc
    return Outcome(retry=True, error=BackendError(scrub(msg), backend=backend, retryable=True))


def status_outcome(
    status: int,
    headers: Mapping[str, str],
    snippet: str,
    *,
    where: str,
    model: str,
    backend: str,
    scrub: Callable[[str], str],
) -> Outcome:
    """The outcome of an HTTP error ``status`` (``snippet``: the server's message)."""

    def error(message: str, retryable: bool = False) -> BackendError:
        return BackendError(scrub(message), backend=backend, retryable=retryable)

    if status == 429:
        return Outcome(
            retry=True,
            wait=parse_retry_after(headers.get("retry-after")),
            error=error(
                f"rate limited by {where} (HTTP 429: {snippet}). Lower llm.concurrency or wait.",
                retryable=True,
            ),
        )
    if status >= 500 or status in (408, 409):
        return Outcome(
            retry=True,
            wait=parse_retry_after(headers.get("retry-after")),
            error=error(f"server error from {where} (HTTP {status}: {snippet}).", retryable=True),
        )
    if status in (400, 413, 422) and any(h in snippet.lower() for h in CONTEXT_HINTS):
        return Outcome(
            error=ContextLengthError(
                scrub(
                    f"the prompt is too long for model '{model}' at "
                    f"{where} (HTTP {status}: {snippet}). Shorten the evidence "
                    "or set llm.context_window so stages truncate it."
                ),
                backend=backend,
            )
        )
    if status in (401, 403):
        return Outcome(
            error=error(
                f"{where} refused the credentials (HTTP {status}: {snippet}). Set the "
                f"API key in ${ENV_API_KEY} (or the variable named by llm.api_key_env)."
            )
        )
    if status == 404:
        return Outcome(
            error=error(
                f"{where}/chat/completions or model '{model}' was not found "
                f"(HTTP 404: {snippet}). Check that the base URL ends in /v1 and the model name is served there."
            )
        )
    return Outcome(error=error(f"{where} rejected the request (HTTP {status}: {snippet})."))


def final_error(
    outcome: Outcome, attempts: int, fallback: BackendError, *, backend: str
) -> BackendError:
    """The error raised when retrying stops: the outcome's own error when it was final, else
    one naming the attempts and the last error (``fallback`` when the outcome had none)."""
    err = outcome.error or fallback
    if not outcome.retry:
        return err
    last = str(err.args[0]).removeprefix(f"{backend}: ")
    msg = f"gave up after {attempts} attempts; last error: {last}"
    if isinstance(err, BackendTimeout):
        return BackendTimeout(msg, backend=backend)
    return BackendError(
        msg + " Check the server, or raise llm.max_retries.", backend=backend, retryable=True
    )
