"""The two low-level choices behind the local pipeline's per-query latency, measured side by side.

1. Building the per-chunk values: the checked constructors ``ScoredChunk(...)`` /
   ``Event(...)`` against the unchecked ones the hot path uses (``ScoredChunk.unchecked``,
   ``Event.unchecked``, also named ``new_scored_chunk`` / ``new_event``: plain slot stores).
2. One query's dense scores over the index matrix: BLAS's threaded mat-vec (``mat @ q``)
   against ``np.vecdot`` on the calling thread (what ``LocalIndex.dense_search`` does), and
   the ONNX query embedding that runs right after each (BLAS workers busy-wait after a job and
   compete with onnxruntime's threads for the cores). The two variants alternate query by
   query so machine noise hits both alike. ``--busy N`` runs N processes that spin on the
   CPU meanwhile: a loaded machine, where a threaded mat-vec waits for a descheduled worker.

Run::

    python -m eval.benchmarks.perf.hot_path --index "$RAGSEL_INDEX" [--queries 200]
    python -m eval.benchmarks.perf.hot_path --busy 1 --out hot_path_busy1.json

Prints its figures and the load average; writes ``eval/benchmarks/perf/results/hot_path.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import timeit

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir

from eval.benchmarks._common import DEFAULT_INDEX, machine, summary_ms, write_json
from ragsel.backends.embedders import load_embedder
from ragsel.index import open_index
from ragsel.types import Chunk, Event, ScoredChunk, new_event, new_scored_chunk, rank_data


def constructor_costs(number: int = 100_000) -> dict[str, float]:
    chunk = Chunk("c", "text", "d", 0)
    ev = Event("s", "retrieved", "rank 3", 1.0, rank_data(3))
    cases = {
        "ScoredChunk(...)": lambda: ScoredChunk(chunk, 1.0, "s", (ev,)),
        "new_scored_chunk(...)": lambda: new_scored_chunk(chunk, 1.0, "s", (ev,), (), None, ()),
        "Event(...)": lambda: Event("s", "retrieved", "rank 3", 1.0, rank_data(3)),
        "new_event(...)": lambda: new_event("s", "retrieved", "rank 3", 1.0, rank_data(3)),
    }
    return {
        name: round(min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6, 3)
        for name, fn in cases.items()
    }


def dense_scoring(matrix: np.ndarray, texts: list[str]) -> dict[str, dict[str, float]]:
    emb = load_embedder("minilm-onnx")
    emb.warm_up()
    emb.embed(texts[:5])
    variants = {"blas mat-vec": lambda q: matrix @ q, "np.vecdot": lambda q: np.vecdot(matrix, q)}
    score_ms: dict[str, list[float]] = {v: [] for v in variants}
    embed_ms: dict[str, list[float]] = {v: [] for v in variants}
    q = emb.embed([texts[0]])[0]
    for text in texts:
        for name, score in variants.items():
            t0 = time.perf_counter()
            score(q)
            t1 = time.perf_counter()
            q = emb.embed([text])[0]  # the next query's embedding, as in a serving loop
            t2 = time.perf_counter()
            score_ms[name].append((t1 - t0) * 1e3)
            embed_ms[name].append((t2 - t1) * 1e3)
    return {
        name: {"score": summary_ms(score_ms[name]), "embedding_after": summary_ms(embed_ms[name])}
        for name in variants
    }


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--busy", type=int, default=0, help="CPU-spinning processes meanwhile")
    ap.add_argument("--out", default="hot_path.json", help="file name under results/")
    args = ap.parse_args()

    ctor = constructor_costs()
    print("building one value (us, best of 3):")
    for name, us in ctor.items():
        print(f"  {name:24s} {us:6.3f}")
    ix = open_index(args.index)
    ix.load()
    texts = [q.text for q in load_beir(data_root() / "scifact", split="test").queries]
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    try:
        dense = dense_scoring(ix.matrix, texts[: args.queries])
        load = machine()["load_avg"][0]
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(
        f"dense scores of one query over {ix.matrix.shape[0]} x {ix.matrix.shape[1]} vectors, "
        f"{args.queries} queries, {args.busy} busy process(es), load avg {load:.1f} "
        "(p50 / p95 ms):"
    )
    for name, r in dense.items():
        print(
            f"  {name:14s} scoring {r['score']['p50_ms']:6.2f} / {r['score']['p95_ms']:6.2f}"
            f"   next query embedding {r['embedding_after']['p50_ms']:6.2f} / "
            f"{r['embedding_after']['p95_ms']:6.2f}"
        )
    out = write_json(
        args.out,
        {
            "machine": machine(),
            "constructors_us": ctor,
            "dense_scoring": dense,
            "queries": args.queries,
            "busy_processes": args.busy,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
