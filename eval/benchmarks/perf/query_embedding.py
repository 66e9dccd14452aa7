"""One-query embedding latency and fidelity of the MiniLM embedders on SciFact claims.

For each embedder (``minilm`` = sentence-transformers fp32, ``minilm-onnx``, ``minilm-onnx-q8``)
it embeds the test claims one at a time, round-robin across the embedders so that machine
noise hits all of them alike, and reports p50/p95 per query. Fidelity: the cosine of each
embedder's vector to the fp32 sentence-transformers vector (min and mean), which is what the
index stores, so it bounds how much a query embedder can move the dense ranking.

Run::

    python -m eval.benchmarks.perf.query_embedding [--queries 300] [--threads N]

Writes ``eval/benchmarks/perf/results/query_embedding.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir

from eval.benchmarks._common import machine, summary_ms, write_json
from ragsel.backends.embedders import load_embedder

EMBEDDERS = ("minilm", "minilm-onnx", "minilm-onnx-q8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads of every embedder (default: the library's)",
    )
    args = ap.parse_args()

    texts = [q.text for q in load_beir(data_root() / "scifact", split="test").queries]
    texts = texts[: args.queries]
    embs = {name: load_embedder(name, threads=args.threads) for name in EMBEDDERS}
    for e in embs.values():
        e.warm_up()
        e.embed(texts[:5])  # first runs pay allocation and graph set-up
    times: dict[str, list[float]] = {name: [] for name in embs}
    vecs: dict[str, list[np.ndarray]] = {name: [] for name in embs}
    for text in texts:
        for name, e in embs.items():
            t0 = time.perf_counter()
            v = e.embed([text])[0]
            times[name].append((time.perf_counter() - t0) * 1e3)
            vecs[name].append(v)
    ref = np.stack(vecs["minilm"])
    result = {"queries": len(texts), "threads": args.threads, "machine": machine(), "embedders": {}}
    print(
        f"{len(texts)} SciFact test claims, one at a time, threads {args.threads or 'default'}"
        f", load avg {result['machine']['load_avg'][0]:.1f}"
    )
    for name in embs:
        cos = (np.stack(vecs[name]) * ref).sum(axis=1)
        row = {
            **summary_ms(times[name]),
            "cosine_to_fp32_min": round(float(cos.min()), 4),
            "cosine_to_fp32_mean": round(float(cos.mean()), 4),
        }
        result["embedders"][name] = row
        print(
            f"  {name:16s} p50 {row['p50_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms  "
            f"cosine to fp32 min {row['cosine_to_fp32_min']:.4f} "
            f"mean {row['cosine_to_fp32_mean']:.4f}"
        )
    print(f"wrote {write_json('query_embedding.json', result)}")


if __name__ == "__main__":
    main()
