"""The OpenAI-compatible client, the disk cache and load_llm over real HTTP on 127.0.0.1.

A scripted server (ragsel.backends.llm.scripted_server) answers each request as the test says: success, a
slow answer past the timeout, 5xx, 429 with Retry-After, a truncated or non-JSON body, bad
JSON content, a dropped connection. Delays are tiny so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
import traceback

import pytest
from pydantic import Field

from ragsel.backends.llm import (
    ContextLengthError,
    LLMOutputError,
    LLMSpec,
    clear_llm_cache,
    load_llm,
    usage_summary,
)
from ragsel.backends.llm.cache import CachedLLM, LLMCache
from ragsel.backends.llm.json_output import JSONProblem, _small_validate, parse_json
from ragsel.backends.llm.limits import Limiter, parse_retry_after
from ragsel.backends.llm.openai_compat import OpenAICompatLLM
from ragsel.backends.llm.scripted_server import (
    BadBody,
    Drop,
    Ok,
    ScriptedLLMServer,
    Slow,
    Status,
    Trickle,
    Truncated,
)
from ragsel.errors import BackendError, BackendTimeout, ConfigError
from ragsel.stage import StageConfig
from ragsel.testing import FakeLLM

KEY = "sk-test-LEAKCHECK-9f8e7d6c5b4a"
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["yes", "no"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
FAST = {"backoff_initial": 0.02, "backoff_max": 0.1, "timeout": 2.0}


@pytest.fixture(scope="module")
def server():
    with ScriptedLLMServer() as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in (
        "RAGSEL_LLM_BASE_URL",
        "RAGSEL_LLM_MODEL",
        "RAGSEL_LLM_API_KEY",
        "RAGSEL_LLM_CACHE",
        "RAGSEL_LLM_CACHE_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAGSEL_LLM_CACHE_DIR", str(tmp_path / "llm-cache"))
    clear_llm_cache()
    yield
    clear_llm_cache()


_MADE: list[OpenAICompatLLM] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _MADE:
        _MADE.pop().close()


def make(srv, **kw) -> OpenAICompatLLM:
    args = {"base_url": srv.base_url, "model": "test-model", "api_key": KEY, **FAST}
    args.update(kw)
    llm = OpenAICompatLLM(**args)
    _MADE.append(llm)
    return llm


async def acall(llm, *args, **kw):
    try:
        return await llm.acomplete(*args, **kw)
    finally:  # this event loop ends with the call: close its connection pool
        await llm.aclose()


def call(llm, mode, *args, **kw):
    """Run the sync or the async path of the same client."""
    if mode == "sync":
        return llm.complete(*args, **kw)
    return asyncio.run(acall(llm, *args, **kw))


MODES = ["sync", "async"]


# --- success and request shape ------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_success_records_usage_latency_and_sends_the_request(srv, mode):
    srv.script(Ok("Paris", usage=(11, 2)))
    llm = make(srv)
    c = call(
        llm,
        mode,
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "capital of France?"},
        ],
        temperature=0.3,
        max_tokens=7,
    )
    assert (c.text, c.model, c.prompt_tokens, c.completion_tokens) == ("Paris", "test-model", 11, 2)
    assert c.total_tokens == 13 and c.latency_ms > 0 and c.attempts == 1 and not c.cached
    req = srv.requests[-1]
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "test-model" and req.body["max_tokens"] == 7
    assert req.body["temperature"] == 0.3 and req.body["messages"][1]["content"].startswith("cap")
    assert "response_format" not in req.body


def test_defaults_string_prompt_and_usage_summary(srv):
    llm = make(srv, temperature=0.0, max_tokens=33, seed=5, extra_body={"top_p": 0.5})
    c = llm.complete("hi")
    body = srv.requests[-1].body
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"], body["seed"], body["top_p"]) == (
        33,
        0.0,
        5,
        0.5,
    )
    s = usage_summary([c, c, None])
    assert s["llm_calls"] == 2 and s["prompt_tokens"] == 14 and s["attempts"] == 2


# --- retries ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_5xx_then_success_backs_off_exponentially(srv, mode):
    srv.script(Status(500), Status(503), Ok("fine"))
    llm = make(srv, backoff_initial=0.1, backoff_max=1.0)
    c = call(llm, mode, "q")
    assert c.text == "fine" and c.attempts == 3
    assert llm.stats["retries"] == 2 and len(srv.requests) == 3
    gaps = [b.at - a.at for a, b in zip(srv.requests, srv.requests[1:])]
    # jitter keeps each wait in [50%, 100%] of 0.1 s, then of 0.2 s
    assert 0.05 <= gaps[0] < 0.5 and 0.1 <= gaps[1] < 0.7


@pytest.mark.parametrize("mode", MODES)
def test_429_honours_retry_after(srv, mode):
    srv.script(Status(429, headers={"Retry-After": "0.4"}), Ok("after wait"))
    llm = make(srv, backoff_initial=0.01)
    c = call(llm, mode, "q")
    assert c.text == "after wait" and c.attempts == 2
    gap = srv.requests[1].at - srv.requests[0].at
    assert 0.38 <= gap < 1.5  # the server's wait, not the 0.01 s backoff


def test_retry_after_is_capped(srv):
    srv.script(Status(429, headers={"Retry-After": "120"}), Ok("ok"))
    t0 = time.monotonic()
    assert make(srv, retry_after_max=0.1).complete("q").text == "ok"
    assert time.monotonic() - t0 < 2.0


def test_parse_retry_after_forms():
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("mode", MODES)
def test_retries_are_bounded_then_one_clear_error(srv, mode):
    srv.script(*[Status(502)] * 5)
    llm = make(srv, max_retries=2)
    with pytest.raises(BackendError) as ei:
        call(llm, mode, "q")
    msg = str(ei.value)
    assert ei.value.retryable and not isinstance(ei.value, BackendTimeout)
    assert "openai:test-model" in msg and "gave up after 3 attempts" in msg and "HTTP 502" in msg
    assert "max_retries" in msg
    assert len(srv.requests) == 3 and llm.stats["errors"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_slow_response_past_timeout(srv, mode):
    srv.script(Slow(1.5))
    llm = make(srv, timeout=0.3, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout) as ei:
        call(llm, mode, "q")
    assert time.monotonic() - t0 < 1.2
    assert "timed out" in str(ei.value) and "llm.timeout" in str(ei.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_trickling_server_cannot_outlast_the_total_timeout(srv, mode):
    """A body sent a byte at a time never trips a read timeout; the attempt's total limit
    stops it, and retries stay within timeout x attempts."""
    srv.script(Trickle(0.05), Trickle(0.05), Trickle(0.05))
    llm = make(srv, timeout=0.4, max_retries=2, backoff_initial=0.01, backoff_max=0.02)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout) as ei:
        call(llm, mode, "q")
    assert time.monotonic() - t0 < 3 * 0.4 + 1.0
    assert "gave up after 3 attempts" in str(ei.value) and "did not arrive" in str(ei.value)


@pytest.mark.parametrize("mode", MODES)
def test_the_request_deadline_covers_retries_and_backoff(srv, mode):
    srv.script(Status(503), Status(503), Status(503), Status(503))
    llm = make(srv, timeout=2.0, max_retries=3, backoff_initial=0.5, backoff_max=0.5, deadline=0.7)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout) as ei:
        call(llm, mode, "q")
    assert time.monotonic() - t0 < 0.7 + 0.3
    assert "llm.deadline of 0.7s" in str(ei.value) and "HTTP 503" in str(ei.value)
    assert len(srv.requests) <= 2  # no retry is started, or backoff slept, past the deadline


@pytest.mark.parametrize("mode", MODES)
def test_timeout_is_retried(srv, mode):
    srv.script(Slow(1.0), Ok("second try"))
    c = call(make(srv, timeout=0.3, max_retries=1), mode, "q")
    assert c.text == "second try" and c.attempts == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "fault",
    [Truncated(), BadBody(), Drop()],
    ids=["truncated-body", "non-json-body", "dropped-connection"],
)
def test_broken_responses_are_retried(srv, mode, fault):
    srv.script(fault, Ok("recovered"))
    llm = make(srv)
    c = call(llm, mode, "q")
    assert c.text == "recovered" and c.attempts == 2 and llm.stats["retries"] == 1


@pytest.mark.parametrize(
    "fault,words",
    [
        (Truncated(), "failed mid-request"),
        (BadBody(), "malformed response"),
        (Drop(), "failed mid-request"),
    ],
)
def test_broken_responses_exhausted(srv, fault, words):
    srv.script(fault, fault)
    with pytest.raises(BackendError) as ei:
        make(srv, max_retries=1).complete("q")
    assert words in str(ei.value) and "gave up after 2 attempts" in str(ei.value)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("mode", MODES)
def test_connection_refused_names_the_env_variable(mode):
    llm = OpenAICompatLLM(
        base_url=f"http://127.0.0.1:{_free_port()}/v1",
        model="m",
        max_retries=1,
        backoff_initial=0.01,
    )
    with pytest.raises(BackendError) as ei:
        call(llm, mode, "q")
    assert "cannot connect" in str(ei.value) and "RAGSEL_LLM_BASE_URL" in str(ei.value)
    assert llm.stats["requests"] == 2


# --- non-retryable statuses ---------------------------------------------------------------
def test_auth_error_is_not_retried_and_names_the_key_variable(srv):
    srv.script(Status(401, '{"error": {"message": "Incorrect API key provided: ' + KEY + '"}}'))
    with pytest.raises(BackendError) as ei:
        make(srv).complete("q")
    assert not ei.value.retryable and len(srv.requests) == 1
    assert "RAGSEL_LLM_API_KEY" in str(ei.value) and "HTTP 401" in str(ei.value)
    assert KEY not in str(ei.value)  # the server echoed it; we scrub it


def test_not_found_hints_at_the_base_url(srv):
    srv.script(Status(404, '{"error": {"message": "model not found"}}'))
    with pytest.raises(BackendError, match="ends in /v1"):
        make(srv).complete("q")


def test_context_length_error_is_typed(srv):
    srv.script(
        Status(
            400,
            '{"error": {"message": "This model\'s maximum context length is '
            '2048 tokens", "code": "context_length_exceeded"}}',
        )
    )
    with pytest.raises(ContextLengthError, match="too long"):
        make(srv).complete("q")
    assert len(srv.requests) == 1


# --- JSON output --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_json_schema_requested_parsed_and_validated(srv, mode):
    srv.script(Ok('Sure! ```json\n{"label": "yes", "confidence": 0.9}\n``` done'))
    c = call(make(srv), mode, "verify", json_schema=SCHEMA)
    assert c.data == {"label": "yes", "confidence": 0.9} and c.attempts == 1
    rf = srv.requests[-1].body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == SCHEMA


@pytest.mark.parametrize("mode", MODES)
def test_malformed_json_is_repaired_once_with_the_error_fed_back(srv, mode):
    srv.script(
        Ok('{"label": "maybe", "confidence": 0.9}', usage=(10, 5)),
        Ok('{"label": "no", "confidence": 0.2}', usage=(30, 6)),
    )
    c = call(make(srv), mode, "verify", json_schema=SCHEMA)
    assert c.data == {"label": "no", "confidence": 0.2}
    assert c.attempts == 2 and c.prompt_tokens == 40 and c.completion_tokens == 11
    repair = srv.requests[-1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"label": "maybe", "confidence": 0.9}'}
    assert "maybe" in repair[-1]["content"] and "schema" in repair[-1]["content"]


@pytest.mark.parametrize("mode", MODES)
def test_json_invalid_twice_is_a_clear_error(srv, mode):
    srv.script(Ok('{"label": "yes", "confidence": 0.9'), Ok("I cannot answer in JSON."))
    with pytest.raises(LLMOutputError) as ei:
        call(make(srv), mode, "verify", json_schema=SCHEMA)
    assert "invalid twice" in str(ei.value) and "not valid JSON" in str(ei.value)
    assert ei.value.text == "I cannot answer in JSON." and len(srv.requests) == 2


def test_json_mode_falls_back_when_the_server_rejects_response_format(srv):
    reject = Status(400, '{"error": {"message": "response_format json_schema is not supported"}}')
    srv.script(
        reject, Ok('{"label": "yes", "confidence": 1}'), Ok('{"label": "no", "confidence": 0}')
    )
    llm = make(srv)
    c = llm.complete("v", json_schema=SCHEMA)
    assert c.data["label"] == "yes" and llm.stats["json_downgrades"] == 1
    assert srv.requests[1].body["response_format"] == {"type": "json_object"}
    llm.complete("v2", json_schema=SCHEMA)  # remembered: no second rejection
    assert srv.requests[2].body["response_format"] == {"type": "json_object"}


def test_json_mode_off_sends_no_response_format(srv):
    srv.script(Ok('{"label": "no", "confidence": 0}'))
    assert make(srv, json_mode="off").complete("v", json_schema=SCHEMA).data["label"] == "no"
    assert "response_format" not in srv.requests[-1].body


def test_parse_json_and_fallback_validator():
    assert parse_json("[1, 2]") == [1, 2]
    assert parse_json('The answer: {"a": {"b": [1]}} hope it helps') == {"a": {"b": [1]}}
    with pytest.raises(JSONProblem, match="empty"):
        parse_json("  ")
    with pytest.raises(JSONProblem, match="not valid JSON"):
        parse_json('{"a": ')
    assert _small_validate({"label": "yes", "confidence": 0.5}, SCHEMA, "") is None
    assert "required property 'confidence'" in _small_validate({"label": "yes"}, SCHEMA, "")
    assert "one of" in _small_validate({"label": "x", "confidence": 0}, SCHEMA, "")
    assert "<= 1" in _small_validate({"label": "no", "confidence": 2}, SCHEMA, "")
    assert "unexpected property" in _small_validate(
        {"label": "no", "confidence": 0, "z": 1}, SCHEMA, ""
    )
    arr = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    assert "[1] must be of type integer" in _small_validate([1, "2"], arr, "")
    assert "at least 1" in _small_validate([], arr, "")


# --- logprobs -----------------------------------------------------------------------------
def test_logprobs_requested_and_parsed(srv):
    srv.script(Ok("Yes", logprobs=[("Yes", -0.1, {"Yes": -0.1, "No": -2.4})]))
    c = make(srv, top_logprobs=2).complete("relevant?", logprobs=True, max_tokens=1)
    body = srv.requests[-1].body
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert c.logprobs == [{"token": "Yes", "logprob": -0.1, "top": {"Yes": -0.1, "No": -2.4}}]


# --- concurrency --------------------------------------------------------------------------
def test_concurrency_limit_across_threads(srv):
    srv.responder = lambda body: Ok("slow", delay=0.15)
    llm = make(srv, concurrency=2)
    threads = [threading.Thread(target=llm.complete, args=(f"q{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(srv.requests) == 6 and srv.peak == 2 and llm.limiter.peak == 2


def test_concurrency_limit_async_and_threads_together(srv):
    srv.responder = lambda body: Ok("slow", delay=0.15)
    llm = make(srv, concurrency=3)

    async def main():
        try:
            return await asyncio.gather(*(llm.acomplete(f"a{i}") for i in range(5)))
        finally:
            await llm.aclose()

    threads = [threading.Thread(target=llm.complete, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    results = asyncio.run(main())
    for t in threads:
        t.join()
    assert len(results) == 5 and len(srv.requests) == 8
    assert srv.peak == 3 and llm.limiter.active == 0


def test_same_endpoint_shares_its_limiter(srv):
    a, b = make(srv, concurrency=2, temperature=0.0), make(srv, concurrency=2, temperature=1)
    assert a.limiter is b.limiter


def test_limiter_cancelled_waiters_do_not_leak_slots():
    lim = Limiter(1)

    async def main():
        await lim.aacquire()
        waiter = asyncio.create_task(lim.aacquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lim.release()
        await asyncio.wait_for(lim.aacquire(), 1.0)  # the slot is free again
        lim.release()

    asyncio.run(main())
    assert lim.active == 0 and lim._free == 1


# --- disk cache ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_cache_makes_reruns_free(srv, tmp_path, mode):
    srv.responder = lambda body: Ok('{"label": "yes", "confidence": 0.7}', usage=(9, 4))
    spec = LLMSpec(base_url=srv.base_url, model="test-model", cache_dir=str(tmp_path / "c"))
    llm = load_llm(spec)
    assert isinstance(llm, CachedLLM)
    first = call(llm, mode, "verify this", json_schema=SCHEMA)
    again = call(llm, mode, "verify this", json_schema=SCHEMA)
    assert not first.cached and again.cached and len(srv.requests) == 1
    assert again.data == first.data and again.text == first.text and again.attempts == 0
    assert again.prompt_tokens == 9 and llm.cache.hits == 1
    # a fresh process (new cache object, same folder) hits too
    clear_llm_cache()
    assert load_llm(spec).complete("verify this", json_schema=SCHEMA).cached
    # different parameters or prompt miss
    call(load_llm(spec), mode, "verify this", json_schema=SCHEMA, temperature=0.5)
    call(load_llm(spec), mode, "verify that", json_schema=SCHEMA)
    assert len(srv.requests) == 3


def test_cache_key_treats_explicit_default_like_unset(srv, tmp_path):
    llm = CachedLLM(make(srv, temperature=0.0, max_tokens=20), LLMCache(tmp_path))
    llm.complete("x")
    assert llm.complete("x", temperature=0.0, max_tokens=20).cached
    assert len(srv.requests) == 1


def test_errors_are_not_cached(srv, tmp_path):
    srv.script(Status(500), Ok("later"))
    llm = CachedLLM(make(srv, max_retries=0), LLMCache(tmp_path))
    with pytest.raises(BackendError):
        llm.complete("x")
    assert llm.complete("x").text == "later" and len(llm.cache) == 1


def test_cache_can_be_disabled(srv, tmp_path, monkeypatch):
    spec = LLMSpec(base_url=srv.base_url, model="m", cache=False)
    assert isinstance(load_llm(spec), OpenAICompatLLM)
    monkeypatch.setenv("RAGSEL_LLM_CACHE", "0")
    llm = load_llm(LLMSpec(base_url=srv.base_url, model="m"))
    llm.complete("x")
    llm.complete("x")
    assert isinstance(llm, OpenAICompatLLM) and len(srv.requests) == 2


# --- secrets ------------------------------------------------------------------------------
def test_api_key_never_leaks(srv, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RAGSEL_LLM_API_KEY", KEY)
    spec = LLMSpec(
        base_url=srv.base_url,
        model="test-model",
        cache_dir=str(tmp_path / "c"),
        max_retries=1,
        backoff_initial=0.01,
        timeout=0.3,
    )
    llm = load_llm(spec)
    seen = [
        repr(llm),
        str(llm),
        repr(llm.inner),
        repr(spec),
        spec.model_dump_json(),
        llm.name,
        repr(llm.inner.__dict__),
    ]
    srv.script(Ok("fine"))
    seen.append(repr(llm.complete("hello")))
    assert srv.requests[-1].headers["Authorization"] == f"Bearer {KEY}"  # it is really used
    faults = [
        [Status(500), Status(500)],
        [Slow(1.0), Slow(1.0)],
        [Status(401, f'{{"error": {{"message": "bad key {KEY}"}}}}')],
        [Status(400, f"echo {KEY}")],
    ]
    for script in faults:
        srv.script(*script)
        with pytest.raises(BackendError) as ei:
            llm.complete(f"q{len(seen)}")
        seen += [
            str(ei.value),
            repr(ei.value),
            "".join(traceback.format_exception(ei.type, ei.value, ei.tb)),
        ]
        srv.reset()
    seen += [r.getMessage() for r in caplog.records]
    for path in (tmp_path / "c").iterdir():
        seen.append(path.read_bytes().decode("latin-1"))
    leaks = [s[:120] for s in seen if KEY in s]
    assert not leaks


def test_credentials_in_the_url_are_redacted(srv):
    url = srv.base_url.replace("http://", "http://user:hunter2pw@") + "?api-key=qs-secret"
    srv.script(Status(404, '{"error": {"message": "no such model"}}'))
    llm = make(srv, base_url=url, api_key=None)
    with pytest.raises(BackendError) as ei:
        llm.complete("x")
    text = str(ei.value) + repr(llm) + llm.name
    assert "ends in /v1" in str(ei.value)
    assert "hunter2pw" not in text and "qs-secret" not in text
    assert srv.requests[-1].path == "/v1/chat/completions?api-key=qs-secret"
    assert srv.requests[-1].headers["Authorization"].startswith("Basic ")  # httpx used userinfo


# --- load_llm and LLMSpec -----------------------------------------------------------------
class _StageLikeConfig(StageConfig):
    llm: LLMSpec = Field(default_factory=LLMSpec)
    k: int = 3


def test_missing_endpoint_is_one_config_error_naming_the_variable():
    with pytest.raises(ConfigError) as ei:
        load_llm(LLMSpec(model="m"), stage="verifier")
    msg = str(ei.value)
    assert msg.startswith("stage 'verifier'") and "RAGSEL_LLM_BASE_URL" in msg
    assert "RAGSEL_LLM_MODEL" not in msg  # only what is actually missing
    with pytest.raises(ConfigError, match="RAGSEL_LLM_BASE_URL.*RAGSEL_LLM_MODEL"):
        load_llm("openai")


def test_env_defaults_and_shared_instances(srv, monkeypatch):
    monkeypatch.setenv("RAGSEL_LLM_BASE_URL", srv.base_url)
    monkeypatch.setenv("RAGSEL_LLM_MODEL", "env-model")
    a, b = load_llm({"backend": "openai"}), load_llm("openai")
    assert a is b and a.name == "openai:env-model"
    assert load_llm(LLMSpec(temperature=0.5)) is not a
    assert load_llm("openai", shared=False) is not a
    a.complete("x")
    assert "Authorization" not in srv.requests[-1].headers  # no key set: none sent
    monkeypatch.setenv("RAGSEL_LLM_API_KEY", KEY)  # a new key gives a new client
    c = load_llm("openai")
    assert c is not a and c.inner.has_api_key()


def test_spec_roundtrips_as_a_nested_stage_config():
    cfg = _StageLikeConfig(
        llm={
            "backend": "openai",
            "model": "qwen",
            "temperature": 0.2,
            "extra_body": {"top_p": 0.9},
            "max_retries": 5,
        }
    )
    data = cfg.model_dump(mode="json", exclude_defaults=True)
    assert data == {
        "llm": {"model": "qwen", "temperature": 0.2, "extra_body": {"top_p": 0.9}, "max_retries": 5}
    }
    assert _StageLikeConfig.model_validate(data) == cfg
    assert _StageLikeConfig().model_dump(exclude_defaults=True) == {}
    short = _StageLikeConfig(llm="transformers:smollm2")
    assert short.llm.backend == "transformers" and short.llm.model == "smollm2"
    assert _StageLikeConfig(llm="component:chat").llm.component == "chat"
    assert "api_key" not in LLMSpec.model_fields  # secrets never live in a config


@pytest.mark.parametrize(
    "bad,words",
    [
        ({"backend": "gpt"}, "backend"),
        ({"base_url": "localhost:8000"}, "http://"),
        ({"temperature": 5}, "temperature"),
        ("claude:x", "unknown LLM backend"),
        ({"headers": {"Authorization": "Bearer x"}}, "api_key_env"),
    ],
)
def test_bad_specs_are_config_errors(bad, words):
    with pytest.raises(ConfigError, match=words):
        load_llm(bad)


def test_component_backend(tmp_path):
    fake = FakeLLM(["hello"])
    llm = load_llm("component:chat", components={"chat": fake})
    assert llm is fake and llm.complete("x").text == "hello"
    cached = load_llm(
        LLMSpec(backend="component", component="chat", cache=True, cache_dir=str(tmp_path)),
        components={"chat": fake},
    )
    cached.complete("y")
    assert cached.complete("y").cached and fake.prompts.count("y") == 1
    with pytest.raises(ConfigError, match="'other' was not provided.*chat"):
        load_llm("component:other", components={"chat": fake})
    with pytest.raises(ConfigError, match="not an LLM"):
        load_llm("component:x", components={"x": object()})
    assert load_llm(fake) is fake  # an LLM object passes through


def test_api_key_in_another_header(srv, monkeypatch):
    monkeypatch.setenv("AZURE_KEY", KEY)
    llm = load_llm(
        LLMSpec(
            base_url=srv.base_url,
            model="m",
            api_key_env="AZURE_KEY",
            api_key_header="api-key",
            headers={"X-Team": "search"},
            cache=False,
        )
    )
    llm.complete("x")
    headers = srv.requests[-1].headers
    assert headers["api-key"] == KEY and headers["X-Team"] == "search"
    assert "Authorization" not in headers


def test_llama_cpp_without_the_extra_names_the_install():
    pytest.importorskip("ragsel.backends.llm.llama_cpp")
    try:
        import llama_cpp  # noqa: F401

        pytest.skip("llama-cpp-python is installed")
    except ImportError:
        pass
    from ragsel.errors import MissingExtraError

    llm = load_llm("llama_cpp:smollm2")  # constructing is cheap; the import happens on use
    with pytest.raises(MissingExtraError, match=r'pip install "ragsel\[llamacpp\]"'):
        llm.complete("x")


def test_local_model_resolution_errors(tmp_path):
    from ragsel.backends.llm.local_models import resolve_local_model

    with pytest.raises(ConfigError, match="not found.*smollm2"):
        resolve_local_model("HuggingFaceTB/SmolLM2-135M")  # hub names are not downloaded
    with pytest.raises(ConfigError, match="neither config.json nor a .gguf"):
        resolve_local_model(str(tmp_path))
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ConfigError, match="several .gguf"):
        resolve_local_model(str(tmp_path))
    assert resolve_local_model(str(tmp_path), "b.gguf").gguf_file == "b.gguf"
    assert resolve_local_model(str(tmp_path / "a.gguf")).label == "a"
    with pytest.raises(ConfigError, match="llm.model"):
        load_llm(LLMSpec(backend="transformers"))


def test_importing_the_package_stays_light():
    import subprocess

    code = (
        "import sys, ragsel.backends.llm, ragsel.backends.llm.config; "
        "print([m for m in ('httpx', 'torch', 'transformers', 'jsonschema') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the shared contract ------------------------------------------------------------------
@pytest.mark.parametrize("wrap", ["plain", "cached"])
def test_openai_client_passes_the_llm_contract(srv, tmp_path, wrap):
    from ragsel.backends.llm.contract import check_llm_contract

    srv.responder = lambda body: Ok('{"answer": "Paris"}')
    llm = make(srv)
    check_llm_contract(llm if wrap == "plain" else CachedLLM(llm, LLMCache(tmp_path)))


def test_contract_catches_a_backend_without_json_support():
    from ragsel.backends.llm.contract import check_llm_contract

    check_llm_contract(FakeLLM(['{"answer": "Paris"}']), json=False)
    with pytest.raises(AssertionError, match="Completion.data"):
        check_llm_contract(FakeLLM(['{"answer": "Paris"}']))
