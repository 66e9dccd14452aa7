"""``ragsel serve`` end to end: the shipped local pipeline on a real index of examples/corpus
served by a real uvicorn server on 127.0.0.1, and the ``ragsel serve`` command itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")

from ragsel.cli.main import app  # noqa: E402
from ragsel.serve import ServeSettings, create_app, load_served  # noqa: E402
from ragsel.serve.server import background_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / "pipelines" / "local.yaml"
FAKE_YAML = """\
version: 1
description: A fake retriever over four sentences.
stages:
  ret: {type: fake_retriever, texts: ["alpha beta", "gamma delta", "beta gamma", "epsilon"]}
  cut: {type: top_k, k: 2}
connections: [ret -> cut]
"""
# each question is answered in exactly one document of examples/corpus
QUESTIONS = [
    (
        "Within how many hours must the processor notify the customer of a personal data breach?",
        "data_processing_addendum.txt",
    ),
    (
        "How many weeks of fully paid parental leave do birth parents get?",
        "employee_handbook_leave.md",
    ),
]


@pytest.mark.slow
def test_local_pipeline_served_on_the_example_index(example_index):
    served = load_served([LOCAL], variables={"RAGSEL_INDEX": str(example_index)})
    assert [s.name for s in served] == ["local"] and served[0].aliases == ()
    pipe = served[0].pipeline
    with (
        background_server(create_app(served, ServeSettings(timeout_s=60))) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        assert pipe._warm  # models were loaded at start-up, before the first request
        for question, doc in QUESTIONS:
            r = http.post("/v1/pipelines/local/select", json={"query": question})
            assert r.status_code == 200, r.text
            data = r.json()
            assert data["chunks"][0]["doc_id"].endswith(doc)
            assert [c["id"] for c in data["chunks"]] == pipe.run(question).selection.ids
            assert [t["stage"] for t in data["trace"]] == ["bm25", "dense", "fuse", "cut", "expand"]
            assert data["dropped"] and all(d["reason"] for d in data["dropped"])
        listing = http.get("/v1/pipelines").json()["pipelines"]
        assert listing[0]["description"].startswith("Hybrid BM25")


def test_cli_serves_a_pipeline_named_by_its_file_stem_with_a_key(tmp_path):
    yaml_file = tmp_path / "tiny.yaml"  # no `name:` in the YAML: served as "tiny"
    yaml_file.write_text(FAKE_YAML)
    key = "cli-key-7f3a9c"
    env = {**os.environ, "MY_SERVE_KEY": key}
    cmd = [
        sys.executable,
        "-m",
        "ragsel.cli.main",
        "serve",
        str(yaml_file),
        "--port",
        "0",
        "--api-key-env",
        "MY_SERVE_KEY",
        "--access-log",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, "ragsel serve exited early:\n" + "".join(lines)
            lines.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        with httpx.Client(base_url=url, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:  # the port listens once the app has started
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.1)
            r = http.post(
                "/v1/pipelines/tiny/select", json={"query": "beta"}, headers={"X-API-Key": key}
            )
            assert r.status_code == 200, r.text
            assert [c["text"] for c in r.json()["chunks"]] == ["alpha beta", "beta gamma"]
            assert http.post("/v1/pipelines/tiny/select", json={"query": "beta"}).status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    text = "".join(lines) + out
    assert "POST /v1/pipelines/tiny/select" in text  # the access log ran ...
    assert key not in text  # ... and never shows the key


runner = CliRunner()


def test_cli_refuses_to_start_without_the_key_it_was_told_to_use(tmp_path, monkeypatch):
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text(FAKE_YAML)
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    res = runner.invoke(app, ["serve", str(yaml_file), "--api-key-env", "NO_SUCH_KEY_VAR"])
    assert res.exit_code == 2 and "NO_SUCH_KEY_VAR is not set" in res.output


def test_cli_names_bad_pipelines_and_indexes_before_loading_models(tmp_path):
    res = runner.invoke(app, ["serve", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "pipeline file not found" in res.output
    res = runner.invoke(app, ["serve", str(LOCAL), "--index", str(tmp_path / "no-index")])
    assert res.exit_code == 2 and "no-index" in res.output
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text(FAKE_YAML)
    res = runner.invoke(app, ["serve", f"a={yaml_file}", f"a={yaml_file}"])
    assert res.exit_code == 2 and "two pipelines are named 'a'" in res.output


def test_load_benchmark_runs_and_records_its_figures(data_dir, tmp_path, monkeypatch):
    """eval/benchmarks/perf/serve_load.py on the model-free pipeline, a few requests: the
    script does not rot, and every served request succeeds at every concurrency."""
    from eval.benchmarks import _common
    from eval.benchmarks.perf import serve_load

    monkeypatch.setattr(_common, "DATA", data_dir)
    pipeline = REPO / "eval" / "benchmarks" / "pipelines" / "serve_fixed_cost.yaml"
    res = serve_load.main(
        ["--pipeline", str(pipeline), "--requests", "8", "--rounds", "1", "--out", str(tmp_path)]
    )
    assert [r["concurrency"] for r in res["levels"]] == [1, 4, 16]
    for row in res["levels"]:
        for mode in ("in_process", "in_process_arun", "http"):
            assert row[mode]["requests"] == 8 and row[mode]["errors"] == 0
        assert row["client_minus_pipeline_ms"]["p50_ms"] > 0
    written = (tmp_path / "serve_load.json").read_text()
    assert '"command"' in written and '"load_avg_per_round"' in written
