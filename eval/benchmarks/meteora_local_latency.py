"""Per-query latency of ``pipelines/meteora-local.yaml`` on the SciFact index, with the
rationale selector's cost split into embedding (chunk + rationale vectors) and selection
proper (pairing, pooling, elbow, provenance).

Two passes over the same queries: *cold* (the selector's per-chunk vector cache starts empty,
so every candidate chunk is embedded: the honest first-query cost) and *warm* (the same
queries again: chunk vectors come from the cache, only rationales are embedded). p50/p95 in
milliseconds. The machine is shared by several jobs: read the figures as upper bounds.

Run::

    OMP_NUM_THREADS=1 python eval/benchmarks/meteora_local_latency.py \
        --index /work/cache/scifact-index --queries 100

Writes ``eval/benchmarks/results/meteora_local_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "eval"))

from ragsel.cli._common import set_offline_env  # noqa: E402

set_offline_env()


class TimedEmbedder:
    """Delegates to an embedder and adds up the time spent in ``embed``."""

    def __init__(self, base) -> None:
        self.base, self.name, self.seconds = base, base.name, 0.0

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
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p95": round(float(np.percentile(a, 95)), 2), "mean": round(float(a.mean()), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="/work/cache/scifact-index")
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "meteora-local.yaml"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--out", type=Path,
                    default=REPO / "eval" / "benchmarks" / "results" /
                    "meteora_local_latency.json")
    args = ap.parse_args(argv)
    from ragsel.backends.embedders import load_embedder
    from ragsel.spec import load_pipeline
    from ragsel_eval.datasets import load_dataset

    queries = [q.text for q in load_dataset("scifact").queries[: args.queries]]
    pipe = load_pipeline(args.pipeline, variables={"RAGSEL_INDEX": args.index})
    sel = pipe.stages["select"]
    timed = TimedEmbedder(load_embedder(sel.config.embedder))
    sel.bind_components({sel.config.embedder: timed})
    pipe.warm_up()
    pipe.run("warm-up query about cells")  # load models and indexes outside the timing
    sel._cache.clear()  # cold pass: no chunk vector cached
    report = {"pipeline": args.pipeline, "index": args.index, "queries": len(queries)}
    for label in ("cold", "warm"):
        rows: dict[str, list[float]] = {}
        n_sel = []
        for q in queries:
            timed.seconds = 0.0
            res = pipe.run(q)
            st = {s.stage: s.ms for s in res.trace.stages}
            emb_ms = timed.seconds * 1000
            row = {"total": res.trace.total_ms,
                   "retrieval (bm25+dense+fuse, incl. query embedding)":
                       st["bm25"] + st["dense"] + st["fuse"],
                   "rationales": st["rationales"],
                   "selector total": st["select"],
                   "selector embedding": emb_ms,
                   "selector selection only": st["select"] - emb_ms,
                   "expansion": st["expand"],
                   "guards": st["injection"] + st["poison"]}
            for k, v in row.items():
                rows.setdefault(k, []).append(v)
            n_sel.append(len(res.selection.chunks))
        report[label] = {k: pct(v) for k, v in rows.items()}
        report[label]["chunks selected (mean)"] = round(float(np.mean(n_sel)), 2)
        print(f"== {label} pass ({len(queries)} SciFact queries)")
        for k, v in report[label].items():
            print(f"  {k:55s} {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
