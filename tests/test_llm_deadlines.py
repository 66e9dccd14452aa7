"""Total deadlines on the LLM path, against a real slow server on 127.0.0.1: one request
(``llm.timeout`` is a total per attempt, ``llm.deadline`` per request) and one stage run
(``stage_timeout``); and the progress events the CLI prints."""

from __future__ import annotations

import asyncio
import time

import pytest
from llm_server import Ok, ScriptedLLMServer, Status, Trickle

from ragsel import progress
from ragsel.backends.llm import LLMSpec
from ragsel.errors import StageError
from ragsel.stages.rationale.llm_generator import LLMRationaleGenerator
from ragsel.stages.verify.llm_verifier import LLMVerifier
from ragsel.testing import FakeLLM, make_chunks
from ragsel.types import Candidates, Query

Q = Query("Is the sky blue?")


def spec(srv, **kw) -> LLMSpec:
    # the setting: a 3 s timeout and 2 retries
    return LLMSpec(
        backend="openai",
        base_url=srv.base_url,
        model="m",
        timeout=3,
        max_retries=2,
        cache=False,
        backoff_initial=0.05,
        backoff_max=0.1,
        **kw,
    )


def cands(n: int) -> Candidates:
    texts = [f"The sky is blue, says source {i}." for i in range(n)]
    return Candidates.retrieved("r", [(c, 1.0 - i / 10) for i, c in enumerate(make_chunks(texts))])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stage_timeout_stops_a_server_sending_one_byte_at_a_time(mode):
    with ScriptedLLMServer() as srv:
        srv.responder = lambda body: Trickle(0.1)
        v = LLMVerifier(llm=spec(srv), checks=["factual"], stage_timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(StageError) as ei:
            if mode == "sync":
                v.run(candidates=cands(3), query=Q)
            else:
                asyncio.run(v.arun(candidates=cands(3), query=Q))
        elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed  # without a total limit: 3 attempts x ~30 s of trickle
    assert "stage_timeout" in str(ei.value)


def test_no_new_call_starts_after_the_stage_deadline():
    class SlowFake(FakeLLM):
        def complete(self, messages, **kw):
            time.sleep(0.3)
            return super().complete(messages, **kw)

    llm = SlowFake(['{"FACTUAL": {"flagged": false, "confidence": 0.9, "reason": "ok"}}'])
    v = LLMVerifier(checks=["factual"], max_concurrency=1, stage_timeout=0.5).use_llm(llm)
    with pytest.raises(StageError, match="used up its stage_timeout of 0.5s after 2 LLM call"):
        v.run(candidates=cands(5), query=Q)
    assert len(llm.prompts) == 2


def test_a_stage_without_a_limit_is_unaffected_and_runs_have_their_own_clock():
    llm = FakeLLM(['{"FACTUAL": {"flagged": false, "confidence": 0.9, "reason": "ok"}}'])
    v = LLMVerifier(checks=["factual"], stage_timeout=5).use_llm(llm)
    for _ in range(2):  # the second run gets a fresh deadline
        assert len(v.run(candidates=cands(2), query=Q)) == 2


def test_progress_events_for_calls_retries_and_timeouts():
    events: list[progress.ProgressEvent] = []
    with ScriptedLLMServer() as srv, progress.listening(events.append):
        srv.script(Status(503), Ok('<rationale label="a">look for a<flag>f</flag></rationale>'))
        gen = LLMRationaleGenerator(llm=spec(srv), n=1)
        assert len(gen.run(query=Q)) == 1
        srv.responder = lambda body: Trickle(0.1)
        with pytest.raises(StageError):
            LLMRationaleGenerator(llm=spec(srv), stage_timeout=0.5).run(query=Q)
    kinds = [(e.stage, e.kind) for e in events]
    assert ("openai:m", "retry") in kinds
    assert ("rationale_generator", "call") in kinds
    assert ("rationale_generator", "timeout") in kinds
    retry = next(e for e in events if e.kind == "retry")
    assert "retry 1 in" in retry.message and "HTTP 503" in retry.message
    # a listener that raises never breaks a run
    with progress.listening(lambda ev: 1 / 0):
        LLMVerifier(checks=["factual"]).use_llm(FakeLLM(["{}"])).run(candidates=cands(1), query=Q)


def test_the_stderr_reporter_prints_retries_at_once_and_throttles_call_counts(capsys):
    rep = progress.StderrReporter(every=60)
    rep(progress.ProgressEvent("verify", "call", "1 LLM call(s) so far", 1, 0.1))
    rep(progress.ProgressEvent("openai:m", "retry", "retry 1 in 0.5s: HTTP 503\x1b]0;x\x07"))
    err = capsys.readouterr().err
    assert err == "[openai:m] retry 1 in 0.5s: HTTP 503\\x1b]0;x\\x07\n"
