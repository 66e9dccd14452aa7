"""Query latency of two pipelines, interleaved (A/B alternating per query), on SciFact test
queries with the real query embedding: p50/p95 of each and the p50 of the per-query
difference. Interleaving makes the comparison fair on a shared, busy machine (both see the
same load); absolute figures are upper bounds there. The load average is recorded.

Run::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.latency_ab --index "$RAGSEL_INDEX" \\
        pipelines/local.yaml pipelines/local-zscore.yaml --out .../latency_ab.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir

from eval.benchmarks._common import DEFAULT_INDEX, results_dir, write_json
from ragsel.spec import load_pipeline
from ragsel.types import Query


def retriever_lists(pipe, q) -> list:
    """The candidate lists of every ``*_retriever`` stage of ``pipe`` for query ``q``."""
    return [
        st.run(query=Query(q.text))
        for st in pipe.stages.values()
        if st.type_name.endswith("_retriever")
    ]


def fusion_us(pipes, qs, repeats: int = 20) -> list[float]:
    """p50 microseconds of each pipeline's ``fuse`` stage alone on its own retrievers' lists,
    interleaved: what the fusion method itself costs."""
    inputs = [[retriever_lists(p, q) for q in qs] for p in pipes]
    us: list[list[float]] = [[], []]
    for i in range(len(qs)):
        for _ in range(repeats):
            for j, p in enumerate(pipes):
                t0 = time.perf_counter()
                p.stages["fuse"].run(candidates=inputs[j][i])
                us[j].append((time.perf_counter() - t0) * 1e6)
    return [round(float(np.median(u)), 1) for u in us]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=str(results_dir("perf") / "latency_ab.json"))
    args = ap.parse_args()
    os.environ["RAGSEL_INDEX"] = args.index
    qs = load_beir(args.data, split="test").queries[: args.queries]
    pipes = [load_pipeline(p) for p in (args.a, args.b)]
    for p in pipes:
        p.warm_up()
        for q in qs[:10]:
            p.run(Query(q.text))
    load0 = os.getloadavg()
    ms: list[list[float]] = [[], []]
    for i, q in enumerate(qs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for j in order:
            t0 = time.perf_counter()
            pipes[j].run(Query(q.text))
            ms[j].append((time.perf_counter() - t0) * 1000)
    a, b = (np.asarray(m) for m in ms)
    fuse_us = fusion_us(pipes, qs[:50])

    def pct(x: np.ndarray) -> dict:
        return {"p50": round(float(np.median(x)), 2), "p95": round(float(np.quantile(x, 0.95)), 2)}

    out = {
        "command": "python -m eval.benchmarks.perf.latency_ab " + " ".join(sys.argv[1:]),
        "queries": len(qs),
        "load_average": {"start": [round(x, 2) for x in load0], "end": list(os.getloadavg())},
        "a": {"pipeline": args.a, **pct(a)},
        "b": {"pipeline": args.b, **pct(b)},
        "b_minus_a_p50_of_differences_ms": round(float(np.median(b - a)), 2),
        "fuse_stage_us_p50": {"a": fuse_us[0], "b": fuse_us[1]},
    }
    print(out)
    write_json(args.out, out)


if __name__ == "__main__":
    main()
