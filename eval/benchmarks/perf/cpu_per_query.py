"""CPU time per query of a pipeline without the query embedding (query vectors precomputed),
measured as the main thread's CPU time (``time.thread_time``): far less sensitive to other
processes on a shared machine than wall-clock latency, so two code versions can be compared
on a busy machine by alternating runs.

    python -m eval.benchmarks.perf.cpu_per_query --index "$RAGSEL_INDEX" [--queries 80]

To compare with another checkout's ragsel, put it first on the path and run this module from
this repository: ``PYTHONPATH=/other/checkout:. python -m eval.benchmarks.perf.cpu_per_query``.
Prints the CPU milliseconds per query of each pass and the best pass (lower is better).
"""

from __future__ import annotations

import argparse
import time

from ragsel_eval.datasets.beir import load_beir

from eval.benchmarks._common import DATA, DEFAULT_INDEX, REPO
from eval.benchmarks._vectors import use_precomputed
from ragsel.spec import load_pipeline


def cpu_ms_per_query(pipe, texts: list[str], passes: int) -> list[float]:
    for t in texts[:10]:  # warm caches
        pipe.run(t)
    out = []
    for _ in range(passes):
        t0 = time.thread_time()
        for t in texts:
            pipe.run(t)
        out.append(round((time.thread_time() - t0) / len(texts) * 1e3, 3))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "local.yaml"))
    ap.add_argument("--queries", type=int, default=80, help="SciFact test queries")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args(argv)
    texts = [q.text for q in load_beir(DATA / "scifact", split="test").queries][: args.queries]
    pipe = load_pipeline(args.pipeline, variables={"RAGSEL_INDEX": args.index})
    pipe.warm_up()
    use_precomputed(pipe, texts)
    ms = cpu_ms_per_query(pipe, texts, args.passes)
    print(f"cpu ms/query without the query embedding: passes {ms}, best {min(ms)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
