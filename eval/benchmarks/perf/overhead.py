"""Orchestration overhead of a 6-stage ragsel pipeline of no-op stages (tracing on).

    python -m eval.benchmarks.perf.overhead [--n 3000] [--repeats 5]

Stage 1 returns a fixed candidate list, stages 2-6 pass it through; the work inside the
stages is nil, so the time is what ragsel's run loop, tracing and provenance bookkeeping
cost per query. Reported: median and p95 per query (µs) for plain Python calls (the floor),
ragsel ``run`` and ragsel ``arun``; repetitions are interleaved so drift hits all equally.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from ragsel import Pipeline, Query
from ragsel.testing import FixedCandidates, NoOpStage


def build() -> Pipeline:
    stages = [("retrieve", FixedCandidates(texts=[f"chunk {i}" for i in range(10)]))]
    stages += [(n, NoOpStage()) for n in ("rewrite", "rerank", "select", "cutoff", "verify")]
    return Pipeline.linear(stages)


def time_sync(p: Pipeline, q: Query, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        p.run(q)
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def time_async(p: Pipeline, q: Query, n: int) -> list[float]:
    async def go() -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await p.arun(q)
            out.append((time.perf_counter_ns() - t0) / 1e3)
        return out

    return asyncio.run(go())


def time_plain(p: Pipeline, q: Query, n: int) -> list[float]:
    stages = [p.stages[name] for name in p.order]
    first, rest = stages[0], stages[1:]
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c = first._run(query=q)
        for s in rest:
            c = s._run(candidates=c)
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * (len(xs) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="queries per repetition")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    p = build()
    q = Query("what does the contract say about assignment?")
    runners = {
        "plain python calls": time_plain,
        "ragsel run (sync)": time_sync,
        "ragsel arun (async)": time_async,
    }
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():  # warm-up
        fn(p, q, 200)
    for _ in range(args.repeats):  # interleaved repetitions
        for name, fn in runners.items():
            samples[name].extend(fn(p, q, args.n))
    print(f"6-stage no-op pipeline, tracing on; {args.repeats}x{args.n} queries each")
    print(f"{'runner':<24}{'median µs':>12}{'p95 µs':>10}")
    for name, xs in samples.items():
        print(f"{name:<24}{statistics.median(xs):>12.1f}{p95(xs):>10.1f}")


if __name__ == "__main__":
    main()
