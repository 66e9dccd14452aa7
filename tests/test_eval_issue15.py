"""Evaluation as users meet it (issue 15): ranking before the cutoff beside the selection,
failed queries as misses (or excluded, with differing n marked), the exit code of
``ragsel eval``, pooled detection, ragas with unmeasured reasons in report.html, plain-ms
latency ticks, and the EvalConfig object."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragsel_eval.report import _table_rows, report_html, summary_markdown
from ragsel_eval.runner import EvalConfig, run_eval
from typer.testing import CliRunner

from ragsel.errors import ConfigError

FIX = Path(__file__).parent / "fixtures" / "eval"
DATA = FIX / "fake_runner.jsonl"
P = FIX / "pipelines"
ALLOW = ["ragsel_eval.testing"]
CHUNKER = "sentences:7:0"


def _cfg(out: Path, **kw) -> EvalConfig:
    return EvalConfig(out_dir=out, chunker=CHUNKER, allow_modules=ALLOW, progress=False, **kw)


@pytest.fixture(scope="module")
def rep(tmp_path_factory):
    pipes = [P / "fake_top2.yaml", P / "fake_fail_g2.yaml", P / "fake_guarded.yaml"]
    return run_eval(pipes, DATA, _cfg(tmp_path_factory.mktemp("e15")))


def test_ranking_before_the_cut_is_reported_beside_the_selection(rep):
    rec = rep.records["fake_top2"][0]
    assert rec["ranked_before"] == "cut"  # the top_k stage's input list
    m = rec["metrics"]
    assert m["ranked_ndcg@10"] == m["ranked_ndcg@10"]  # measured
    s = rep.summary["fake_top2"]
    assert "ranked_recall@100" in s and s["ranked_recall@100"]["mean"] >= s["recall@100"]["mean"]
    md = summary_markdown(rep)
    assert "ndcg@10 (ranking before cut)" in md and "`fake_top2`: cut" in md


def test_failed_query_counts_as_a_miss_by_default(rep, tmp_path):
    s = rep.summary["fake_fail_g2"]
    assert s["precision"]["n"] == 4 == rep.summary["fake_top2"]["precision"]["n"]
    ok = [r["metrics"]["precision"] for r in rep.records["fake_fail_g2"] if r["status"] == "ok"]
    assert s["precision"]["mean"] == pytest.approx(sum(ok) / 4)  # g2 scored 0
    assert s["detection_f1"]["n"] == 0 or s["detection_f1"]["n"] < 4  # robustness: not a miss
    assert "count as misses" in summary_markdown(rep)
    header, rows = _table_rows(rep)
    col = header.index("precision")
    assert all("†" not in r[col] for r in rows)  # every row covers the same 4 queries
    excl = run_eval(
        [P / "fake_top2.yaml", P / "fake_fail_g2.yaml"],
        DATA,
        _cfg(tmp_path, failed_as_miss=False, write=False),
    )
    assert excl.summary["fake_fail_g2"]["precision"]["n"] == 3
    header, rows = _table_rows(excl)
    assert rows[1][header.index("precision")].endswith(" †")
    assert "excluded from means" in summary_markdown(excl)


def test_eval_exits_1_when_a_pipeline_failed_every_query(tmp_path, monkeypatch):
    from ragsel.cli.main import app

    dead = tmp_path / "dead.yaml"
    dead.write_text(
        "version: 1\nstages:\n  - {type: fake_retriever, texts: [a b], doc_id: doc}\n"
        "  - {type: 'ragsel_eval.testing:FailOnQuery', query_ids: [g1, g2, g3, g4]}\n"
    )
    args = ["eval", str(P / "fake_top2.yaml"), str(dead), "--dataset", str(DATA)]
    args += ["--out", str(tmp_path / "o"), "--chunker", CHUNKER, "--quiet"]
    args += ["--allow-module", "ragsel_eval.testing"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    last = res.output.strip().splitlines()[-1]
    assert "4 of 8 query runs failed" in last and "dead" in last


def test_pooled_detection_beside_per_question_means(rep):
    md = summary_markdown(rep)
    assert "## Poisoning detection" in md and "F1 (pooled)" in md
    section = md.split("## Poisoning detection", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| fake_guarded |"))
    assert row.count("1.000") == 6


def test_ragas_results_and_unmeasured_reasons_reach_report_html(rep):
    rep.ragas = {
        "fake_top2": {
            "summary": {
                "id_context_recall": {"mean": 0.75, "n": 4, "unmeasured": 0},
                "rouge_l": {"mean": float("nan"), "n": 0, "unmeasured": 4},
            },
            "unmeasured": {"rouge_l": {"no generated answer": 4}},
            "judge": None,
        }
    }
    try:
        page = report_html(rep)
        md = summary_markdown(rep)
    finally:
        rep.ragas = {}
    assert "<h2>ragas</h2>" in page and "id_context_recall" in page and "0.750" in page
    assert "no generated answer: 4" in page and "no generated answer: 4" in md


def test_latency_axis_reads_plain_milliseconds():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ragsel_eval.report import _plain_ms_axis

    fig, ax = plt.subplots()
    ax.plot([2, 20, 300], [1, 2, 3])
    _plain_ms_axis(ax, [2, 20, 300])
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert "20" in labels and not any("times" in x or "^" in x or "×" in x for x in labels)


def test_eval_config_object_and_keyword_overrides(tmp_path):
    with pytest.raises(ConfigError, match="engine"):
        EvalConfig(engine="spark")
    base = _cfg(tmp_path, write=False)
    one = run_eval([P / "fake_top2.yaml"], DATA, base, limit=1)
    assert one.dataset["queries"] == 1


# --- an LLM-judged ragas run, end to end -----------------------------------------------------
def _judge_reply(body: dict) -> str:
    """What a cooperative judge model answers to each ragas prompt (JSON mode)."""
    import json

    prompt = " ".join(m.get("content", "") for m in body["messages"])
    if "Break down each sentence" in prompt:
        return json.dumps({"statements": ["Cats purr when they are content."]})
    if "judge the faithfulness" in prompt:
        st = {"statement": "Cats purr when they are content.", "reason": "stated", "verdict": 1}
        return json.dumps({"statements": [st]})
    if "Generate a question for the given answer" in prompt:
        return json.dumps({"question": "why do cats purr", "noncommittal": 0})
    if "verify if the context was useful" in prompt:
        return json.dumps({"reason": "it says so", "verdict": 1})
    if "attributed to the given context" in prompt:
        cl = {"statement": "content", "reason": "in the context", "attributed": 1}
        return json.dumps({"classifications": [cl]})
    return json.dumps({"error": "unexpected prompt"})


@pytest.mark.slow
def test_llm_judged_ragas_run_end_to_end(tmp_path, monkeypatch):
    """Reference answers in the dataset, answer_generator in the pipeline, the ragas judge on
    the loopback scripted server: every LLM-judged metric is measured, through run_eval."""
    from ragsel.backends.llm.scripted_server import Ok, ScriptedLLMServer

    with ScriptedLLMServer() as srv:

        def respond(body: dict) -> Ok:
            if body.get("model") == "judge":
                return Ok(_judge_reply(body))
            return Ok("Cats purr when they are content [doc#0].")  # the pipeline's answer

        srv.responder = respond
        pipe = tmp_path / "answering.yaml"
        texts = [line.strip() for line in (P / "fake_top2.yaml").read_text().splitlines()]
        lines = [t[2:] for t in texts if t.startswith("- ") and t.endswith(".")]
        pipe.write_text(
            "version: 1\nstages:\n"
            f"  retrieve: {{type: fake_retriever, texts: {lines}, doc_id: doc, top_k: 6}}\n"
            "  cut: {type: top_k, k: 2}\n"
            f"  answer: {{type: answer_generator, llm: {{backend: openai, base_url: "
            f"'{srv.base_url}', model: gen, cache: false}}}}\n"
            "connections: [retrieve -> cut, cut -> answer]\noutput: cut\n"
        )
        monkeypatch.setenv("RAGSEL_JUDGE_BASE_URL", srv.base_url)
        monkeypatch.setenv("RAGSEL_JUDGE_MODEL", "judge")
        rep = run_eval([pipe], DATA, _cfg(tmp_path / "o", ragas=True, limit=1))
        judged = [r for r in srv.requests if r.body.get("model") == "judge"]
    rec = rep.records["answering"][0]
    assert rec["answer"].startswith("Cats purr") and rec["metrics"]["answer_contains"] == 1.0
    r = rep.ragas["answering"]
    assert r["judge"].startswith("judge @ http://127.0.0.1")
    for m in ("faithfulness", "answer_relevancy", "context_precision", "context_recall"):
        assert r["summary"][m]["n"] == 1, (m, r["unmeasured"])
    assert r["summary"]["faithfulness"]["mean"] == 1.0
    assert len(judged) >= 4  # the judge was really asked, over HTTP
    page = (rep.out_dir / "report.html").read_text()
    assert "faithfulness" in page and "LLM judge: judge @" in page


def test_progress_prints_plain_lines_when_not_on_a_terminal(capsys):
    from ragsel_eval.progress import Progress

    bar = Progress(True, 4, "evaluating 1 pipeline(s) on x", every=0.0)
    for _ in range(4):
        bar.advance()
    bar.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("evaluating 1 pipeline(s) on x: 1/4 (25.0%) in ")
    assert "s left" in lines[0] and lines[-1].startswith("evaluating 1 pipeline(s) on x: 4/4")


def test_ranking_before_cut_of_a_pipeline_fed_through_a_declared_input():
    from ragsel_eval.worker import ranked_before_cut

    from ragsel import Pipeline
    from ragsel.stages.cutoff.top_k import TopKCutoff
    from ragsel.testing import make_chunks
    from ragsel.types import Candidates

    p = Pipeline.linear([TopKCutoff(k=1)])
    cands = Candidates.retrieved("outside", zip(make_chunks(["a", "b", "c"]), (0.9, 0.5, 0.1)))
    res = p.run("q", inputs={p.inputs[0]: cands})
    stage, chunks = ranked_before_cut(res)
    assert stage == "top_k" and [c.text for c in chunks] == ["a", "b", "c"]
