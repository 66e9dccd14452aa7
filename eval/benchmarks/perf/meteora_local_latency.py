"""Per-query latency of ``pipelines/meteora-local.yaml`` on the SciFact index, with the
rationale selector's and the poison guard's cost split into embedding and the rest.

The pipeline's selector and poison guard read candidate vectors from the index they name
(``index:``), so only texts not in the index are embedded: the rationales (the query and its
sub-phrases) and any chunk a stage rewrote. ``--vectors embed`` ignores the index in both
stages (the behaviour before, every candidate embedded) for comparison.

Two passes over the same queries: *cold* (the stages' per-chunk vector caches start empty:
the honest first-query cost) and *warm* (the same queries again: chunks not in the index come
from the caches). p50/p95 in milliseconds. "embedding" is wall time inside the embedder's
``embed``; "selection only" is the stage's time minus that. The machine is shared by several
jobs (the load average is recorded): read the figures as upper bounds.

Run::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.meteora_local_latency \
        --index "$RAGSEL_INDEX" --queries 100

Writes ``eval/benchmarks/perf/results/meteora_local_latency.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json


class TimedEmbedder:
    """Delegates to an embedder and adds up the time spent in ``embed``."""

    def __init__(self, base) -> None:
        self.base, self.name, self.seconds = base, base.name, 0.0
        self.space = getattr(base, "space", base.name)  # the index checks the vector space

    @property
    def dim(self) -> int:
        return self.base.dim

    def warm_up(self) -> None:
        self.base.warm_up()

    def embed(self, texts):
        t0 = time.perf_counter()
        try:
            return self.base.embed(texts)
        finally:
            self.seconds += time.perf_counter() - t0


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "mean": round(float(a.mean()), 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "meteora-local.yaml"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument(
        "--vectors",
        choices=("index", "embed"),
        default="index",
        help="index: candidate vectors from the index (the pipeline as shipped); "
        "embed: embed every candidate (the old behaviour)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=results_dir("perf") / "meteora_local_latency.json",
    )
    args = ap.parse_args(argv)
    from ragsel_eval.datasets import load_dataset

    from ragsel.backends.embedders import load_embedder
    from ragsel.spec import load_pipeline

    queries = [q.text for q in load_dataset("scifact").queries[: args.queries]]
    pipe = load_pipeline(args.pipeline, variables={"RAGSEL_INDEX": args.index})
    sel, guard = pipe.stages["select"], pipe.stages["poison"]
    timed = TimedEmbedder(load_embedder(sel.config.embedder))
    sel.bind_components({sel.config.embedder: timed})
    guard_timed = TimedEmbedder(load_embedder(guard.config.embedder))
    guard.use_embedder(guard_timed)
    if args.vectors == "embed":  # ablation: forget the index, embed every candidate
        sel.vectors.index_path = guard.vectors.index_path = None
    pipe.warm_up()
    pipe.run("warm-up query about cells")  # load models and indexes outside the timing
    sel.vectors.clear()  # cold pass: no chunk vector cached
    guard.vectors.clear()
    report = {
        "pipeline": args.pipeline,
        "index": args.index,
        "queries": len(queries),
        "vectors": args.vectors,
        "load_average_before": os.getloadavg(),
    }
    for label in ("cold", "warm"):
        rows: dict[str, list[float]] = {}
        n_sel, sources = [], {"index": 0, "cache": 0, "embedded": 0}
        for q in queries:
            timed.seconds = guard_timed.seconds = 0.0
            res = pipe.run(q)
            st = {s.stage: s.ms for s in res.trace.stages}
            emb_ms, gemb_ms = timed.seconds * 1000, guard_timed.seconds * 1000
            row = {
                "total": res.trace.total_ms,
                "retrieval (bm25+dense+fuse, incl. query embedding)": st["bm25"]
                + st["dense"]
                + st["fuse"],
                "rationales": st["rationales"],
                "selector total": st["select"],
                "selector embedding (rationales + chunks not in the index)": emb_ms,
                "selector selection only": st["select"] - emb_ms,
                "expansion": st["expand"],
                "injection guard": st["injection"],
                "poison guard total": st["poison"],
                "poison guard embedding": gemb_ms,
                "poison guard clustering only": st["poison"] - gemb_ms,
                "selection + expansion + guards (no embedding)": st["select"]
                - emb_ms
                + st["expand"]
                + st["injection"]
                + st["poison"]
                - gemb_ms,
                "total minus selector/guard embedding (still incl. query embedding)": res.trace.total_ms
                - emb_ms
                - gemb_ms,
            }
            for k, v in row.items():
                rows.setdefault(k, []).append(v)
            n_sel.append(len(res.selection.chunks))
            for n in res.selection.notes:
                if n.stage in ("select", "poison"):
                    for k, v in (n.data.get("vectors") or {}).items():
                        sources[k] += v
        report[label] = {k: pct(v) for k, v in rows.items()}
        report[label]["chunks selected (mean)"] = round(float(np.mean(n_sel)), 2)
        report[label]["chunk vectors (select + poison) from"] = sources
        print(f"== {label} pass ({len(queries)} SciFact queries, vectors: {args.vectors})")
        for k, v in report[label].items():
            print(f"  {k:66s} {v}")
    report["load_average_after"] = os.getloadavg()
    print(
        f"load average before/after: {report['load_average_before']} {report['load_average_after']}"
    )
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
