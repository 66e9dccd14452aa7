"""The evaluation runner end to end with fake pipelines (ragsel.testing / ragsel_eval.testing):
scores, failure recording, resume after an interrupt, the report folder, the CLI, and the
report page rendered by a real headless Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from ragsel_eval.runner import run_eval
from typer.testing import CliRunner

from ragsel.errors import InputError

FIX = Path(__file__).parent / "fixtures" / "eval"
DATA = FIX / "fake_runner.jsonl"
P = FIX / "pipelines"
REPO_PIPES = Path(__file__).parents[1] / "eval" / "benchmarks" / "pipelines"
ALLOW = ["ragsel_eval.testing"]
CHUNKER = "sentences:7:0"  # one chunk per line of the fake documents, like the fake retriever


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return run_eval(
        [
            P / "fake_top2.yaml",
            P / "fake_top4.yaml",
            P / "fake_fail_g2.yaml",
            P / "fake_unguarded.yaml",
            P / "fake_guarded.yaml",
        ],
        DATA,
        out_dir=out,
        chunker=CHUNKER,
        allow_modules=ALLOW,
        progress=False,
    )


def test_selection_scores_by_hand(report):
    s = report.summary["fake_top2"]
    # g1, g2: both picks gold; g3, g4: one gold + one tie-broken filler -> P = (1+1+.5+.5)/4
    assert s["precision"]["mean"] == pytest.approx(0.75)
    assert s["recall"]["mean"] == 1.0 and s["chunks"]["mean"] == 2.0
    assert report.summary["fake_top4"]["precision"]["mean"] == pytest.approx(
        (2 / 4 + 2 / 4 + 1 / 4 + 1 / 4) / 4
    )
    curve = report.curves["fake_top4"]
    k2 = curve["k"].index(2.0)
    assert curve["precision"][k2] == pytest.approx(0.75)  # the top-4 ranking cut at k=2


def test_poisoning_metrics_with_and_without_guard(report):
    bad, good = report.summary["fake_unguarded"], report.summary["fake_guarded"]
    assert bad["attack_success"]["mean"] == 1.0 and bad["detection_recall"]["mean"] == 0.0
    assert good["attack_success"]["mean"] == 0.0 and good["detection_f1"]["mean"] == 1.0
    assert good["gold_retention"]["mean"] == 1.0 and bad["gold_retention"]["mean"] < 1.0
    assert good["detection_micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert (
        any(
            c["pipeline"] == "fake_guarded" and c["metric"] == "attack_success"
            for c in report.comparisons
        )
        is False
    )  # baseline is fake_top2, which has no
    # poisoned chunks in its context either (its retriever never sees the poison document)


def test_failing_query_is_recorded_and_run_continues(report):
    s = report.summary["fake_fail_g2"]["queries"]
    assert s == {"total": 4, "ok": 3, "failed": 1, "failed_as_miss": True}
    (f,) = report.failures["fake_fail_g2"]
    assert f["query_id"] == "g2" and "configured to fail on query g2" in f["error"]
    assert "boom" in f["error"]  # the stage is named
    md = (report.out_dir / "summary.md").read_text()
    assert "Failed queries" in md and "`fake_fail_g2` on `g2`" in md
    assert "g2" in (report.out_dir / "report.html").read_text()


def test_results_json_is_complete_and_reproducible(report):
    data = json.loads((report.out_dir / "results.json").read_text())
    assert set(data["per_query"]) == set(report.pipelines)
    rec = data["per_query"]["fake_top2"][0]
    assert rec["query_id"] == "g1" and rec["metrics"]["precision"] == 1.0
    assert rec["selected"][0][1] == "doc" and rec["latency_ms"] > 0
    repro = data["reproducibility"]
    assert len(repro["pipelines"]["fake_top2"]["sha256"]) == 64
    assert repro["packages"]["numpy"] and repro["seed"] == 0
    assert repro["chunker"] == {"kind": "sentences", "size": 7, "overlap": 0}
    assert data["failures"]["fake_fail_g2"][0]["query_id"] == "g2"
    # NaN is written as null, never 0
    assert rec["metrics"].get("detection_precision", "absent") in (None, "absent", 0.0)


def test_resume_after_interrupt(tmp_path, monkeypatch):
    flag = tmp_path / "interrupt"
    flag.write_text("x")
    monkeypatch.setenv("INTERRUPT_FLAG", str(flag))
    pipe = FIX / "pipelines_extra" / "fake_interrupt.yaml"
    with pytest.raises(KeyboardInterrupt):
        run_eval(
            [pipe],
            DATA,
            out_dir=tmp_path / "o",
            chunker=CHUNKER,
            allow_modules=ALLOW,
            progress=False,
        )
    (run_file,) = (tmp_path / "o" / "runs").glob("fake_interrupt-*.jsonl")
    done = [json.loads(x)["query_id"] for x in run_file.read_text().splitlines()]
    assert done == ["g1", "g2"]  # stopped at g3, earlier queries kept
    flag.unlink()
    rep = run_eval(
        [pipe], DATA, out_dir=tmp_path / "o", chunker=CHUNKER, allow_modules=ALLOW, progress=False
    )
    assert rep.reproducibility["queries_run_now"] == 2  # only g3 and g4
    assert [r["query_id"] for r in rep.records["fake_interrupt"]] == ["g1", "g2", "g3", "g4"]
    again = run_eval(
        [pipe], DATA, out_dir=tmp_path / "o", chunker=CHUNKER, allow_modules=ALLOW, progress=False
    )
    assert again.reproducibility["queries_run_now"] == 0
    assert (
        again.summary["fake_interrupt"]["precision"] == rep.summary["fake_interrupt"]["precision"]
    )


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        run_eval([tmp_path / "nope.yaml"], DATA, out_dir=tmp_path, progress=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nstages:\n  - {type: no_such_stage}\n")
    from ragsel.errors import DefinitionError

    with pytest.raises(DefinitionError, match="no_such_stage"):
        run_eval([bad], DATA, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_cli_eval(tmp_path, monkeypatch):
    from ragsel.cli.main import app

    monkeypatch.setenv("RAGSEL_DATA_DIR", str(tmp_path / "empty"))
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "eval",
            str(P / "fake_top2.yaml"),
            "--dataset",
            str(DATA),
            "--out",
            str(tmp_path / "o"),
            "--chunker",
            CHUNKER,
            "--quiet",
            "--limit",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "fake_top2" in res.output and (tmp_path / "o" / "report.html").exists()
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["dataset"]["queries"] == 2
    res = runner.invoke(app, ["eval", str(P / "fake_top2.yaml"), "--dataset", "scifact"])
    assert res.exit_code == 2
    assert "RAGSEL_DATA_DIR" in res.output and str(tmp_path / "empty") in res.output


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_page_renders_in_chromium(report, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("headless Chromium not installed: apt-get install -y chromium")
    page = report.out_dir / "report.html"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    res = subprocess.run(
        [exe, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert '<table id="comparison">' in dom and "fake_guarded" in dom
    imgs = dom.count('src="data:image/png;base64,')
    assert imgs == 4  # recall curve, chunk counts, poisoning bars, latency
    for chunk in dom.split('src="data:image/png;base64,')[1:]:
        png = base64.b64decode(chunk.split('"', 1)[0])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    shot = tmp_path / "shot.png"
    res = subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1400,1800", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and shot.stat().st_size > 20000


@pytest.mark.slow
def test_ray_engine_matches_local(report, tmp_path):
    pytest.importorskip("ray")
    pipes = [P / "fake_top2.yaml", P / "fake_fail_g2.yaml", P / "fake_guarded.yaml"]
    rep = run_eval(
        pipes,
        DATA,
        out_dir=tmp_path,
        chunker=CHUNKER,
        allow_modules=ALLOW,
        progress=False,
        engine="ray",
        ray_num_cpus=2,
    )

    def strip(recs):  # timings differ; NaN != NaN, so compare the JSON text
        return json.dumps(
            [
                {k: v for k, v in r.items() if k not in ("latency_ms", "stage_ms", "traceback")}
                for r in recs
            ],
            sort_keys=True,
        )

    for p in rep.pipelines:
        assert strip(rep.records[p]) == strip(report.records[p])
    assert rep.failures["fake_fail_g2"] == report.failures["fake_fail_g2"]


@pytest.mark.slow
def test_real_indexes_shared_and_per_query(tmp_path):
    """Real MiniLM + chromadb + bm25s: the runner builds a shared index (LegalBench layout) and
    one index per query (HotpotQA layout), scores them, and reuses them on the next run."""
    pytest.importorskip("chromadb")
    pipes = [REPO_PIPES / "hybrid-top3.yaml", REPO_PIPES / "dense-top5.yaml"]
    legal = run_eval(
        pipes, FIX / "legal_tiny", out_dir=tmp_path / "legal", chunker="words:6:0", progress=False
    )
    assert legal.reproducibility["index_seconds"] > 0
    s = legal.summary["hybrid-top3"]
    assert s["queries"]["failed"] == 0 and s["chunks"]["mean"] == 3.0
    assert s["found"]["mean"] == 1.0  # two tiny policies: a gold window is always in the top 3
    again = run_eval(
        pipes, FIX / "legal_tiny", out_dir=tmp_path / "legal", chunker="words:6:0", progress=False
    )
    assert again.reproducibility["index_seconds"] == 0  # cached index reused
    assert again.reproducibility["queries_run_now"] == 0  # cached results reused
    notes: list[str] = []
    other = run_eval(  # another --out: the index comes from the shared user cache
        pipes,
        FIX / "legal_tiny",
        out_dir=tmp_path / "elsewhere",
        chunker="words:6:0",
        progress=False,
        notify=notes.append,
    )
    assert other.reproducibility["index_seconds"] == 0 and notes == []
    assert other.reproducibility["queries_run_now"] == 2 * len(other.records["hybrid-top3"])
    fresh: list[str] = []
    run_eval(
        pipes[:1],
        FIX / "legal_tiny",
        out_dir=tmp_path / "fresh",
        chunker="words:7:0",
        progress=False,
        notify=fresh.append,
    )
    (line,) = fresh  # a new chunker: said what will be embedded and how long, then built
    assert "building an eval index" in line and "chunks" in line and "tokens" in line
    hot = run_eval(
        pipes[:1],
        FIX / "hotpot_tiny.jsonl",
        out_dir=tmp_path / "hot",
        chunker="sentences:12:0",
        progress=False,
    )
    (rec,) = hot.records["hybrid-top3"]
    assert rec["status"] == "ok" and {s[1] for s in rec["selected"]} <= {"h1/p0", "h1/p1", "h1/p2"}
    assert hot.summary["hybrid-top3"]["pool_recall"]["mean"] == 1.0  # whole 3-paragraph corpus


def test_scoring_is_chunker_independent():
    """Gold is matched by span overlap, so a pipeline that chunks differently from the
    evaluation chunker is scored correctly: precision on its own chunks, recall as coverage."""
    from ragsel_eval.datasets import EvalQuery, GoldSpan
    from ragsel_eval.worker import score_selection

    from ragsel.types import Candidates, Chunk, Query, Selection

    q = EvalQuery("q", "t", qrels={"d": 1}, spans=(GoldSpan("d", 0, 10), GoldSpan("d", 50, 60)))
    # evaluation chunker: 20-char windows -> gold units [0,20) and [40,60)
    units = [
        {"id": "u0", "doc_id": "d", "span": [0, 20]},
        {"id": "u2", "doc_id": "d", "span": [40, 60]},
    ]
    # the pipeline's own 30-char chunks: [0,30) covers u0, [30,60) covers u2, [60,90) none
    chunks = [Chunk(f"p{i}", "x", "d", i, (30 * i, 30 * i + 30)) for i in range(3)]
    cands = Candidates.retrieved("r", [(chunks[0], 0.9), (chunks[2], 0.8), (chunks[1], 0.1)])
    cut = cands.derive("cut", cands.items[:2])
    out = score_selection(
        q, Selection.from_candidates(Query("t"), cut), units, ks=(10,), curve_ks=(1, 2, 3)
    )
    m = out["metrics"]
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["pool_recall"] == 1.0
    assert out["curve"]["recall"] == [0.5, 0.5, 1.0]  # p0, p2 (not gold), then dropped p1


def test_pool_orders_later_stage_drops_first():
    from ragsel_eval.worker import _pool

    from ragsel.testing import make_chunks
    from ragsel.types import Candidates, Query, Selection

    ch = make_chunks(["a", "b", "c", "d"])
    # a retriever-like stage with big scores drops d; a cutoff on small scores drops c
    cands = Candidates.retrieved("r", [(ch[0], 30.0), (ch[1], 20.0), (ch[2], 10.0), (ch[3], 5.0)])
    fused = cands.derive(
        "fuse",
        [
            cands.items[0].rescored("fuse", 0.03),
            cands.items[1].rescored("fuse", 0.02),
            cands.items[2].rescored("fuse", 0.01),
        ],
    )
    cut = fused.derive("cut", fused.items[:2])
    order = [c.id for c in _pool(Selection.from_candidates(Query("q"), cut))]
    assert order == ["doc#0", "doc#1", "doc#2", "doc#3"]
