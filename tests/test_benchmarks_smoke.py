"""One fast smoke test per benchmark script of eval/benchmarks (issue 8), on a 6-document index
(not SciFact), so the scripts do not rot. Peers that are not installed (Haystack is only in the
``bench`` extra) are skipped by the scripts themselves; these tests check that too."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

DOCS = {
    "d1": "Aspirin reduces the risk of heart attack in adults.",
    "d2": "Vitamin D deficiency is linked to bone fractures in older women.",
    "d3": "Smoking causes lung cancer and heart disease.",
    "d4": "Regular exercise lowers blood pressure.",
    "d5": "Antibiotics do not cure viral infections such as influenza.",
    "d6": "Sleep deprivation impairs memory consolidation.",
}
QUERIES = [
    ("q1", "does aspirin prevent heart attacks?"),
    ("q2", "antibiotics for influenza virus infection"),
    ("q3", "vitamin D and bone fractures"),
]
QRELS = {"q1": {"d1": 1}, "q2": {"d5": 1}, "q3": {"d2": 1}}


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, minilm_embedder) -> Path:
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig
    from ragsel.ingest.documents import Document

    path = tmp_path_factory.mktemp("bench") / "ix"
    with LocalIndex.create(path, embedder="minilm", chunker=ChunkerConfig("document")) as ix:
        ix.add_documents([Document(id=k, text=v) for k, v in DOCS.items()])
    return path


def test_frameworks_hybrid_scores_every_installed_framework(tiny_index, minilm_embedder, tmp_path):
    from eval.benchmarks.peers import _report
    from eval.benchmarks.peers import frameworks_hybrid as fh

    task = fh.task_from_index(tiny_index, QUERIES, QRELS)
    assert len(task.texts) == 6 and task.vectors.shape == (6, 384)
    res = fh.compare(task, minilm_embedder, warmup=1)
    names = [r["system"] for r in res["rows"]]
    assert names[0].startswith("ragsel")
    assert set(names) | set(res["skipped"]) == set(fh.SYSTEMS)
    for r in res["rows"]:  # each query has one obvious answer: every framework finds it
        assert r["ndcg@10"] > 0.9, r
        assert r["recall@100"] == 1.0, r
        assert r["p50_ms"] > r["no_embed_p50_ms"] > 0
    # the report renders the hybrid row of the headline from the files the script writes
    (tmp_path / "frameworks_hybrid.json").write_text(
        json.dumps(
            {
                **res,
                "command": "x",
                "machine_start": {"load_avg": [0]},
                "machine_end": {"load_avg": [0]},
            }
        )
    )
    (tmp_path / "frameworks_hybrid.md").write_text(fh.markdown(res))
    readme = _report.write_report(tmp_path, {}).read_text()
    assert "| ragsel (pipelines/local.yaml retrieval) |" in readme
    if len(names) > 1:  # the headline compares with the best peer, when any peer is installed
        assert "SciFact hybrid" in readme


def test_frameworks_hybrid_reports_missing_peers(monkeypatch):
    from eval.benchmarks import _common
    from eval.benchmarks.peers import frameworks_hybrid as fh

    monkeypatch.setattr(_common, "has", lambda m: m != "haystack")
    ok, skipped = fh.available()
    assert "Haystack DocumentJoiner (RRF)" in skipped and "haystack" in next(iter(skipped.values()))
    assert not any("Haystack" in n for n in ok)


def test_throughput_run_batch_levels(tiny_index, minilm_embedder):
    from eval.benchmarks.perf import throughput

    pipe = throughput.load_local(tiny_index)
    rows = throughput.batch_throughput(pipe, [q for _, q in QUERIES], levels=(1, 2), repeats=1)
    assert [r["concurrency"] for r in rows] == [1, 2]
    assert rows[0]["x_concurrency_1"] == 1.0 and all(r["qps"] > 0 for r in rows)


def test_scaling_builds_a_repeated_corpus_with_reused_vectors(
    tiny_index, minilm_embedder, tmp_path
):
    from eval.benchmarks.perf import scaling
    from ragsel.backends.embedders import load_embedder
    from ragsel.index import open_index

    source = tmp_path / "source"
    assert scaling.export_source(tiny_index, source) == 6
    docs, vectors = scaling.synth_corpus(source, 14)
    assert len({d for d, _ in docs}) == 14 and docs[6][0].endswith("~r1")
    calls = []
    real_embed = minilm_embedder.embed
    minilm_embedder.embed = lambda texts: calls.append(list(texts)) or real_embed(texts)
    try:
        info = scaling.build(source, 14, tmp_path / "n14")
    finally:
        del minilm_embedder.embed
    assert info["chunks"] == 14 and calls == []  # reused, not re-embedded
    assert load_embedder("minilm") is minilm_embedder  # the real embedder is back
    ix = open_index(tmp_path / "n14")
    row = {c.text: v for c, v in zip(ix.chunks, ix.matrix)}
    # the index re-normalises vectors (a unit vector may move by ~1e-8 in float32)
    assert all(np.allclose(row[t], vectors[t], rtol=0, atol=1e-6) for t in DOCS.values())
    m = scaling.measure(tmp_path / "n14", [q for _, q in QUERIES])
    assert len(m["live"]) == len(m["precomputed"]) == 3 and m["peak_rss_mb"] > 0
    assert scaling.disk(tmp_path / "n14")["total_mb"] > 0


def test_startup_times_fresh_processes():
    from eval.benchmarks.peers import startup

    secs = startup.time_commands({"floor": [sys.executable, "-c", "pass"]}, n=2, warmup=0)
    assert len(secs["floor"]) == 2 and all(s > 0 for s in secs["floor"])
    heavy = dict(startup.heaviest_imports("ragsel"))
    assert heavy and "torch" not in heavy  # import ragsel must stay light


def test_run_all_knows_every_step_and_report_renders_empty(tmp_path):
    from eval.benchmarks.peers import run_all

    plan = run_all.steps("/idx", tmp_path, quick=True)
    assert {
        "startup",
        "overhead",
        "frameworks_overhead",
        "hybrid",
        "throughput",
        "scaling",
        "latency",
        "quality",
    } == set(plan)
    for argv in plan.values():
        assert importlib.util.find_spec(argv[0]) is not None
    assert run_all.main(["--report-only", "--out", str(tmp_path)]) == 0
    assert "_not run_" in (tmp_path / "README.md").read_text()
