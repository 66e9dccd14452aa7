"""OpenAI-compatible chat-completions client (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio).

Plain httpx, sync and async. Every request goes through the endpoint's concurrency
:class:`~ragsel.backends.llm.limits.Limiter`; failures that a retry may fix (429, 5xx, timeouts,
connection errors, a truncated or non-JSON body) are retried with exponential backoff and
jitter, honouring ``Retry-After``; then one :class:`~ragsel.errors.BackendError` (or
:class:`~ragsel.errors.BackendTimeout`) names the endpoint, what happened and what to do.

Time limits are totals, not per read: one attempt may take ``timeout`` seconds from sending to
the last byte of the answer (a server trickling its body a byte at a time is cut off), and the
whole request, retries and waits included, ``deadline`` seconds (default: no limit beyond the
attempts' own) or less when a stage's ``stage_timeout`` runs out first
(:data:`~ragsel.backends.llm.base.REQUEST_DEADLINE`). A retry is never started, and a backoff
never slept, past the deadline.

The API key lives in a private holder that never prints; error texts quoted from the server
are scrubbed of it too. ``name`` (used in traces and cache keys) is ``openai:<model>``.

This module holds the client (HTTP plumbing, the retry loop, ``json_mode`` downgrades);
request bodies and the meaning of failures are in :mod:`._openai_outcomes`, response parsing
in :mod:`._openai_wire`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ragsel import progress
from ragsel.backends.llm._openai_outcomes import (
    exception_outcome,
    final_error,
    request_body,
    status_outcome,
)
from ragsel.backends.llm._openai_wire import (
    Outcome,
    Secret,
    parse_payload,
    server_message,
    too_slow,
    with_attempts,
)
from ragsel.backends.llm.base import (
    REQUEST_DEADLINE,
    BaseLLM,
    Completion,
    GenParams,
)
from ragsel.backends.llm.limits import (
    Limiter,
    backoff_delay,
    endpoint_limiter,
)
from ragsel.errors import BackendError, BackendTimeout, require
from ragsel.redact import redact_url

log = logging.getLogger("ragsel.llm")

_JSON_MODES = ("json_schema", "json_object", "off")


class OpenAICompatLLM(BaseLLM):
    """Chat completions against any OpenAI-compatible endpoint.

    ``OpenAICompatLLM(base_url="http://localhost:8000/v1", model="qwen2.5-7b-instruct",
    api_key=os.environ.get("RAGSEL_LLM_API_KEY"))``; usually built by
    ``load_llm(LLMSpec(backend="openai", ...))``.

    ``stats`` counts ``requests``, ``retries``, ``errors`` and ``json_downgrades`` made by
    this instance.
    """

    backend = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        top_logprobs: int = 5,
        json_mode: str = "auto",
        context_window: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        deadline: float | None = None,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        concurrency: int = 4,
        rng_seed: int = 0,
    ) -> None:
        super().__init__(temperature=temperature, max_tokens=max_tokens)
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got {redact_url(base_url)!r}"
            )
        parts = urlsplit(base_url)
        self.base_url = base_url
        # a query (e.g. Azure's ?api-version=...) stays after the path
        self.url = urlunsplit(
            (
                parts.scheme,
                parts.netloc,
                parts.path.rstrip("/") + "/chat/completions",
                parts.query,
                "",
            )
        )
        self.model = model
        self.name = f"openai:{model}"
        self._api_key = Secret(api_key)
        self.api_key_header = api_key_header
        self.seed, self.top_logprobs = seed, top_logprobs
        if json_mode not in ("auto", *_JSON_MODES):
            raise ValueError(f"json_mode must be auto, {', '.join(_JSON_MODES)}")
        self.json_mode = json_mode
        self._json_mode_now = "json_schema" if json_mode == "auto" else json_mode
        self.context_window = context_window
        self.extra_body = dict(extra_body or {})
        self.headers = dict(headers or {})
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.deadline = None if deadline is None else float(deadline)
        self.max_retries = int(max_retries)
        self.backoff_initial, self.backoff_max = float(backoff_initial), float(backoff_max)
        self.retry_after_max = float(retry_after_max)
        self.limiter: Limiter = endpoint_limiter(f"openai:{redact_url(self.base_url)}", concurrency)
        self._rng = random.Random(rng_seed)
        self._lock = threading.Lock()
        self._client: Any = None
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.stats = {"requests": 0, "retries": 0, "errors": 0, "json_downgrades": 0}
        self._where = redact_url(self.base_url)

    def __repr__(self) -> str:
        return (
            f"OpenAICompatLLM(base_url={self._where!r}, model={self.model!r}, "
            f"api_key={self._api_key!r})"
        )

    def cache_identity(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "seed": self.seed,
            "top_logprobs": self.top_logprobs,
            "extra_body": self.extra_body,
        }

    def has_api_key(self) -> bool:
        return self._api_key.get() is not None

    def _same_key(self, key: str | None) -> bool:
        import hmac

        mine = self._api_key.get() or ""
        return hmac.compare_digest(mine.encode(), (key or "").encode())

    # --- HTTP plumbing ------------------------------------------------------------------
    def _timeout(self) -> Any:
        httpx = require("httpx", "llm", "the OpenAI-compatible LLM client")
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = require("httpx", "llm", "the OpenAI-compatible LLM client")
                self._client = httpx.Client(timeout=self._timeout())
            return self._client

    def _async_client(self) -> Any:
        # an AsyncClient's connection pool belongs to one event loop
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                httpx = require("httpx", "llm", "the OpenAI-compatible LLM client")
                client = self._aclients[loop] = httpx.AsyncClient(timeout=self._timeout())
            return client

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.headers}
        key = self._api_key.get()
        if key:
            bearer = self.api_key_header.lower() == "authorization"
            headers[self.api_key_header] = f"Bearer {key}" if bearer else key
        return headers

    def _body(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        return request_body(
            self.model,
            messages,
            params,
            extra_body=self.extra_body,
            seed=self.seed,
            top_logprobs=self.top_logprobs,
            json_mode=self._json_mode_now,
        )

    def _scrub(self, text: str) -> str:
        key = self._api_key.get()
        return text.replace(key, "<secret>") if key else text

    def _error(self, message: str, *, retryable: bool = False) -> BackendError:
        return BackendError(self._scrub(message), backend=self.name, retryable=retryable)

    # --- one attempt, whatever the transport ------------------------------------------------
    def _classify_exception(self, exc: Exception, budget: float) -> Outcome:
        return exception_outcome(
            exc, budget, where=self._where, backend=self.name, scrub=self._scrub
        )

    def _classify_response(
        self,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        elapsed_ms: float,
        params: GenParams,
    ) -> Outcome:
        text = content.decode("utf-8", "replace")
        if status == 200:
            try:
                payload = json.loads(text)
                return Outcome(completion=self._parse(payload, elapsed_ms))
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return Outcome(
                    retry=True,
                    error=self._error(
                        f"{self._where} returned a malformed response ({type(exc).__name__}: "
                        f"{exc}); body starts {text[:200]!r}.",
                        retryable=True,
                    ),
                )
        snippet = server_message(text)
        low = snippet.lower()
        if (
            status in (400, 422)
            and params.json_schema is not None
            and self.json_mode == "auto"
            and self._json_mode_now != "off"
            and ("response_format" in low or "json_schema" in low or "json" in low)
        ):
            with self._lock:
                nxt = _JSON_MODES[_JSON_MODES.index(self._json_mode_now) + 1]
                log.info(
                    "%s rejected response_format=%s; using %s",
                    self._where,
                    self._json_mode_now,
                    nxt,
                )
                self._json_mode_now = nxt
                self.stats["json_downgrades"] += 1
            return Outcome(again_now=True)
        return status_outcome(
            status,
            headers,
            snippet,
            where=self._where,
            model=self.model,
            backend=self.name,
            scrub=self._scrub,
        )

    def _parse(self, payload: Mapping[str, Any], elapsed_ms: float) -> Completion:
        return parse_payload(payload, self.model, elapsed_ms)

    def _next_delay(self, retry: int, outcome: Outcome) -> float:
        if outcome.wait is not None:
            return min(outcome.wait, self.retry_after_max)
        with self._lock:
            return backoff_delay(retry, self.backoff_initial, self.backoff_max, self._rng)

    def _give_up(self, outcome: Outcome, attempts: int) -> BackendError:
        return final_error(outcome, attempts, self._error("request failed"), backend=self.name)

    def _end_time(self, start: float) -> tuple[float, str]:
        """When this request must be over, and which limit decides it."""
        end, why = math.inf, ""
        if self.deadline is not None:
            end, why = start + self.deadline, f"llm.deadline of {self.deadline:g}s"
        outer = REQUEST_DEADLINE.get()
        if outer is not None and outer < end:
            end, why = outer, "the stage's stage_timeout"
        return end, why

    def _out_of_time(self, why: str, attempts: int, outcome: Outcome | None) -> BackendTimeout:
        self._count("errors")
        last = ""
        if outcome is not None and outcome.error is not None:
            last = "; last error: " + str(outcome.error.args[0]).removeprefix(f"{self.name}: ")
        return BackendTimeout(
            f"no answer from {self._where} within {why} ({attempts} attempt(s){last}). "
            "Raise the limit or check the server.",
            backend=self.name,
        )

    # --- the retry loop, written once; sync and async drivers perform its actions ------------
    def _plan(
        self, messages: list[dict[str, str]], params: GenParams
    ) -> Generator[tuple[str, Any], Outcome | None, Completion]:
        """Yields ``("send", (body, seconds))`` (receives the attempt's outcome) or
        ``("sleep", s)``; returns the completion or raises the final error."""
        attempts = retries = 0
        end, why = self._end_time(time.monotonic())
        outcome: Outcome | None = None
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise self._out_of_time(why, attempts, outcome)
            attempts += 1
            self._count("requests")
            outcome = yield ("send", (self._body(messages, params), min(self.timeout, left)))
            assert outcome is not None
            if outcome.completion is not None:
                return with_attempts(outcome.completion, attempts)
            if outcome.again_now:
                continue
            if not outcome.retry or retries >= self.max_retries:
                self._count("errors")
                raise self._give_up(outcome, attempts)
            retries += 1
            self._count("retries")
            delay = self._next_delay(retries, outcome)
            if time.monotonic() + delay >= end:
                raise self._out_of_time(why, attempts, outcome)
            log.debug("%s: retry %d in %.2fs (%s)", self.name, retries, delay, outcome.error)
            progress.emit(
                progress.ProgressEvent(
                    self.name, "retry", f"retry {retries} in {delay:.1f}s: {outcome.error}"
                )
            )
            yield ("sleep", delay)

    def _stream_args(self, body: dict[str, Any], budget: float) -> dict[str, Any]:
        """``client.stream(**...)`` arguments of one attempt limited to ``budget`` seconds."""
        httpx = require("httpx", "llm", "the OpenAI-compatible LLM client")
        timeout = httpx.Timeout(budget, connect=min(self.connect_timeout, budget))
        return {
            "method": "POST",
            "url": self.url,
            "json": body,
            "headers": self._request_headers(),
            "timeout": timeout,
        }

    def _send(self, client: Any, body: dict[str, Any], params: GenParams, budget: float) -> Outcome:
        try:
            with self.limiter.hold():
                t0 = time.perf_counter()
                with client.stream(**self._stream_args(body, budget)) as resp:
                    chunks = []
                    for chunk in resp.iter_bytes():
                        chunks.append(chunk)
                        if time.perf_counter() - t0 > budget:
                            raise too_slow(budget)
                return self._classify_response(
                    resp.status_code,
                    resp.headers,
                    b"".join(chunks),
                    (time.perf_counter() - t0) * 1000,
                    params,
                )
        except Exception as exc:  # noqa: BLE001 - _classify_exception re-raises the rest
            return self._classify_exception(exc, budget)

    async def _asend(
        self, client: Any, body: dict[str, Any], params: GenParams, budget: float
    ) -> Outcome:
        async def attempt() -> tuple[int, Any, bytes]:
            async with client.stream(**self._stream_args(body, budget)) as resp:
                chunks = [chunk async for chunk in resp.aiter_bytes()]
                return resp.status_code, resp.headers, b"".join(chunks)

        try:
            async with self.limiter.ahold():
                t0 = time.perf_counter()
                try:
                    status, headers, content = await asyncio.wait_for(attempt(), budget)
                except TimeoutError:
                    raise too_slow(budget) from None
                return self._classify_response(
                    status, headers, content, (time.perf_counter() - t0) * 1000, params
                )
        except Exception as exc:  # noqa: BLE001 - _classify_exception re-raises the rest
            return self._classify_exception(exc, budget)

    def _generate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        client, plan = self._sync_client(), self._plan(messages, params)
        result: Outcome | None = None
        try:
            while True:
                action, arg = plan.send(result)
                if action == "sleep":
                    time.sleep(arg)
                    result = None
                else:
                    result = self._send(client, arg[0], params, arg[1])
        except StopIteration as stop:
            return stop.value

    async def _agenerate(self, messages: list[dict[str, str]], params: GenParams) -> Completion:
        client, plan = self._async_client(), self._plan(messages, params)
        result: Outcome | None = None
        try:
            while True:
                action, arg = plan.send(result)
                if action == "sleep":
                    await asyncio.sleep(arg)
                    result = None
                else:
                    result = await self._asend(client, arg[0], params, arg[1])
        except StopIteration as stop:
            return stop.value

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._aclients.pop(loop, None)
        if client is not None:
            await client.aclose()
