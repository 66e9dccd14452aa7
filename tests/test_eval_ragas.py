"""The ragas bridge: non-LLM metrics for real; a judge that is down or answers garbage leaves
LLM metrics unmeasured (NaN, counted, excluded from means) while the rest is computed."""

from __future__ import annotations

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("ragas")

from ragsel_eval.ragas_bridge import (
    LLM_METRICS,
    JudgeConfig,
    RagasBridge,  # noqa: E402
    RagasSample,
)

GOLD = "Hamlet was written by William Shakespeare around 1600."


def _samples():
    return [
        RagasSample(
            "hit",
            "who wrote hamlet",
            [GOLD, "Paris is the capital of France."],
            ["c1", "c2"],
            reference_contexts=[GOLD],
            reference_ids=["c1"],
            response="William Shakespeare",
            reference="William Shakespeare",
        ),
        RagasSample(
            "miss",
            "who wrote hamlet",
            ["Paris is the capital of France."],
            ["c2"],
            reference_contexts=[GOLD],
            reference_ids=["c1"],
            response="Paris",
            reference="William Shakespeare",
        ),
        RagasSample("nogold", "anything", ["some text"], ["c9"]),
    ]


@pytest.fixture(scope="module")
def offline_report():
    return RagasBridge(judge=None).score(_samples())


def test_non_llm_metrics_for_real(offline_report):
    r = offline_report
    assert r.judge is None and set(r.summary) == {
        "non_llm_context_precision",
        "non_llm_context_recall",
        "id_context_precision",
        "id_context_recall",
        "rouge_l",
        "string_similarity",
    }
    hit, miss = r.per_sample["hit"], r.per_sample["miss"]
    assert hit["id_context_precision"] == 0.5 and hit["id_context_recall"] == 1.0
    assert hit["non_llm_context_recall"] == 1.0 and hit[
        "non_llm_context_precision"
    ] == pytest.approx(1.0)  # the gold passage is ranked first
    assert miss["id_context_recall"] == 0.0 and miss["non_llm_context_recall"] == 0.0
    assert hit["rouge_l"] == pytest.approx(1.0) and miss["rouge_l"] == 0.0
    # no gold for the third query: unmeasured, not zero, and excluded from the mean
    assert math.isnan(r.per_sample["nogold"]["id_context_recall"])
    assert r.summary["id_context_recall"]["mean"] == 0.5
    assert r.summary["id_context_recall"]["unmeasured"] == 1
    assert r.unmeasured["id_context_recall"] == {"no gold chunk ids": 1}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_judge_down_marks_llm_metrics_unmeasured():
    judge = JudgeConfig(f"http://127.0.0.1:{_closed_port()}/v1", "judge", timeout=5)
    bridge = RagasBridge(
        judge=judge,
        metrics=("id_context_recall", "faithfulness", "context_precision", "context_recall"),
    )
    r = bridge.score(_samples()[:2])
    assert r.judge_down
    for m in ("faithfulness", "context_precision", "context_recall"):
        assert r.summary[m]["n"] == 0 and r.summary[m]["unmeasured"] == 2
        assert math.isnan(r.summary[m]["mean"])
        assert r.unmeasured[m] == {"judge unreachable": 2}
    assert r.per_sample["hit"]["id_context_recall"] == 1.0  # the rest still computed


class _GarbageJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers every chat request with unusable text."""

    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "j",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "I cannot judge this."},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_unusable_judge_answers_are_unmeasured_not_zero():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GarbageJudge)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        judge = JudgeConfig(f"http://127.0.0.1:{server.server_port}/v1", "judge", timeout=10)
        bridge = RagasBridge(judge=judge, metrics=("faithfulness", "id_context_recall"))
        r = bridge.score(_samples()[:1])
    finally:
        server.shutdown()
    assert _GarbageJudge.calls >= 1  # the judge was really asked
    assert not r.judge_down
    assert math.isnan(r.per_sample["hit"]["faithfulness"])
    assert r.summary["faithfulness"]["unmeasured"] == 1
    (reason,) = r.unmeasured["faithfulness"]
    assert reason.startswith("judge")
    assert r.per_sample["hit"]["id_context_recall"] == 1.0


def test_llm_metrics_only_with_a_judge(monkeypatch):
    monkeypatch.delenv("RAGSEL_JUDGE_BASE_URL", raising=False)
    assert not set(LLM_METRICS) & set(RagasBridge().metrics)
    monkeypatch.setenv("RAGSEL_JUDGE_BASE_URL", "http://127.0.0.1:1/v1")
    assert set(LLM_METRICS) <= set(RagasBridge().metrics)
    from ragsel.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown ragas metric"):
        RagasBridge(metrics=("bleu_maybe",))


def test_runner_adds_ragas_metrics(tmp_path, monkeypatch):
    from pathlib import Path

    from ragsel_eval.runner import run_eval

    monkeypatch.delenv("RAGSEL_JUDGE_BASE_URL", raising=False)
    fix = Path(__file__).parent / "fixtures" / "eval"
    rep = run_eval(
        [fix / "pipelines" / "fake_top2.yaml"],
        fix / "fake_runner.jsonl",
        out_dir=tmp_path,
        chunker="sentences:7:0",
        ragas=True,
        progress=False,
    )
    r = rep.ragas["fake_top2"]
    # the gold sentences are selected verbatim for g1 and g2 (both), g3 and g4 (one of one)
    assert r["summary"]["non_llm_context_recall"]["mean"] == 1.0
    assert r["summary"]["non_llm_context_recall"]["n"] == 4 and r["judge"] is None
    assert "## ragas" in (tmp_path / "summary.md").read_text()
