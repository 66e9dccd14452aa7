"""Query latency and memory of the shipped local pipeline (``pipelines/local.yaml``) on the
SciFact index: p50/p95 per query with the query embedding, and without it (query vectors
computed beforehand and served from a dict, so what remains is BM25 + exact dense search +
fusion + elbow cutoff + neighbour expansion + orchestration), plus per-stage means and peak RSS.

Targets (issue 3): p50 <= 15 ms including the query embedding, <= 3 ms excluding it.
The machine is shared: run it when it is quiet, or read the figures as upper bounds.

Run::

    python -m eval.benchmarks.perf.query_latency --index "$RAGSEL_INDEX" --gc-freeze
    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.query_latency --index ... --out ...json

``--gc-freeze`` calls ``gc.freeze()`` after warm-up (what a server does once its index and
models are loaded): Python's cyclic collector then stops re-scanning the ~millions of objects
of torch, the index and the models on every full collection, which is what the p95 pays.

Writes ``eval/benchmarks/perf/results/query_latency.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir

from eval.benchmarks._common import (
    DEFAULT_INDEX,
    REPO,
    peak_rss_mb,
    results_dir,
    summary_ms,
    write_json,
)
from eval.benchmarks._vectors import use_precomputed
from ragsel.spec import load_pipeline
from ragsel.types import Query

DATA = data_root()
RESULTS = results_dir("perf")


def measure(pipe, queries: list[str], repeats: int) -> tuple[np.ndarray, dict[str, float]]:
    times, per_stage = [], {}
    for _ in range(repeats):
        for q in queries:
            t0 = time.perf_counter_ns()
            r = pipe.run(Query(q))
            times.append((time.perf_counter_ns() - t0) / 1e6)
            for st in r.trace.stages:
                per_stage.setdefault(st.stage, []).append(st.ms)
    return np.asarray(times), {k: round(float(np.mean(v)), 3) for k, v in per_stage.items()}


def summary(t: np.ndarray) -> dict[str, float]:
    # min and p5 show what the code costs when the VM's neighbours leave it alone
    return {
        **summary_ms(t),
        "min_ms": round(float(t.min()), 2),
        "p5_ms": round(float(np.percentile(t, 5)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "local.yaml"))
    ap.add_argument(
        "--query-embedder",
        default=None,
        help="sets ${RAGSEL_QUERY_EMBEDDER} (local.yaml: minilm-onnx by default; "
        "e.g. minilm-onnx-q8)",
    )
    ap.add_argument("--queries", type=int, default=300, help="SciFact test queries to time")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="call gc.freeze() after warm-up, as a server would (see README)",
    )
    ap.add_argument("--out", default=str(RESULTS / "query_latency.json"))
    args = ap.parse_args()

    texts = [q.text for q in load_beir(DATA / "scifact", split="test").queries][: args.queries]
    rss0 = peak_rss_mb()
    variables = {"RAGSEL_INDEX": args.index}
    if args.query_embedder:
        variables["RAGSEL_QUERY_EMBEDDER"] = args.query_embedder
    pipe = load_pipeline(args.pipeline, variables=variables)
    t0 = time.perf_counter()
    pipe.warm_up()
    for q in texts[:5]:  # first queries pay lazy loads (BM25 vocab, filters, caches)
        pipe.run(Query(q))
    warm_s = time.perf_counter() - t0
    if args.gc_freeze:
        # what a long-running server does after start-up: move the loaded index and models
        # out of the collector's view so collections scan only per-query garbage
        import gc

        gc.freeze()
    with_emb, stages_with = measure(pipe, texts, args.repeats)
    rss_serving = peak_rss_mb()

    use_precomputed(pipe, texts)  # dense retrievers now look query vectors up
    without, stages_without = measure(pipe, texts, args.repeats)

    import torch

    result = {
        "index": args.index,
        "pipeline": args.pipeline,
        "queries": len(texts),
        "query_embedder": args.query_embedder or "the pipeline's",
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "gc_freeze": args.gc_freeze,
        "load_avg_1m": os.getloadavg()[0],
        "warm_up_s": round(warm_s, 2),
        "with_query_embedding": summary(with_emb),
        "stage_mean_ms_with": stages_with,
        "without_query_embedding": summary(without),
        "stage_mean_ms_without": stages_without,
        "peak_rss_mb_serving": round(rss_serving, 1),
        "rss_mb_before_load": round(rss0, 1),
    }
    w, wo = result["with_query_embedding"], result["without_query_embedding"]
    print(
        f"local pipeline on {args.index}: {len(texts)} queries x {args.repeats}, "
        f"torch threads {result['torch_threads']}, load avg {result['load_avg_1m']:.1f}"
    )
    for label, r in (("with query embedding:   ", w), ("without query embedding:", wo)):
        print(
            f"  {label} p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms  "
            f"(p5 {r['p5_ms']:.2f}, min {r['min_ms']:.2f})"
        )
    print(f"  per stage (ms, with):    {stages_with}")
    print(f"  per stage (ms, without): {stages_without}")
    print(f"  peak RSS serving: {result['peak_rss_mb_serving']:.0f} MB")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
