"""Throughput at batch: queries/second of ``Pipeline.run_batch`` at concurrency 1, 4 and 16 on
the shipped local pipeline (``pipelines/local.yaml``) over the SciFact index, and ragsel's
embedding throughput during indexing against raw sentence-transformers ``encode`` on the same
texts (target: >= 0.95x of raw).

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.throughput --index "$RAGSEL_INDEX"

Concurrency levels are interleaved (1, 4, 16, 1, 4, 16, ...) so drift hits all equally; each
level is run with the query embedded live (what a user gets) and with query vectors served
from memory (the pipeline without the model). The embedding comparison is
``index_scifact.raw_vs_ragsel`` (alternating raw ``SentenceTransformer.encode`` and ragsel's
``load_embedder("minilm").embed`` on the same SciFact abstracts, batch 64). On a 2-core
machine, concurrency can only overlap the parts that release the GIL (the model's matmuls,
numpy search, bm25s scoring). Writes ``results/throughput.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks import _common

LEVELS = (1, 4, 16)


def batch_throughput(
    pipe, queries: Sequence[str], levels: Sequence[int] = LEVELS, repeats: int = 3
) -> list[dict]:
    """Queries/second of ``pipe.run_batch`` at each concurrency (median of ``repeats``
    interleaved runs over all ``queries``)."""
    from ragsel.types import Query

    qs = [Query(q) for q in queries]
    pipe.run_batch(qs[: max(levels)], concurrency=max(levels))  # warm-up: lazy loads, pools
    secs: dict[int, list[float]] = {c: [] for c in levels}
    for r in range(repeats):
        for c in levels if r % 2 == 0 else list(reversed(levels)):
            t0 = time.perf_counter()
            out = pipe.run_batch(qs, concurrency=c, return_exceptions=True)
            secs[c].append(time.perf_counter() - t0)
            errors = [o for o in out if isinstance(o, BaseException)]
            if errors:
                raise RuntimeError(
                    f"run_batch at concurrency {c}: {len(errors)} queries "
                    f"failed, first: {errors[0]!r}"
                )
    base = len(qs) / statistics.median(secs[levels[0]])
    rows = []
    for c in levels:
        qps = len(qs) / statistics.median(secs[c])
        rows.append(
            {
                "concurrency": c,
                "queries": len(qs),
                "repeats": repeats,
                "qps": round(qps, 1),
                "x_concurrency_1": round(qps / base, 2),
                "seconds": [round(s, 2) for s in secs[c]],
            }
        )
    return rows


def load_local(index: str | Path):
    from ragsel.spec import load_pipeline

    pipe = load_pipeline(
        _common.REPO / "pipelines" / "local.yaml", variables={"RAGSEL_INDEX": str(index)}
    )
    pipe.warm_up()
    return pipe


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=_common.DEFAULT_INDEX)
    ap.add_argument("--limit", type=int, default=None, help="first N test queries")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--raw-texts", type=int, default=512, help="abstracts for raw vs ragsel")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=_common.results_dir("perf"))
    args = ap.parse_args(argv)

    from ragsel_eval.datasets import data_root
    from ragsel_eval.datasets.beir import load_beir

    from eval.benchmarks._vectors import use_precomputed

    queries = [q.text for q in load_beir(data_root() / "scifact", split="test").queries]
    queries = queries[: args.limit] if args.limit else queries
    res: dict = {
        "index": args.index,
        "machine_start": _common.machine(),
        "versions": _common.versions(),
    }
    pipe = load_local(args.index)
    res["run_batch_live_embedding"] = batch_throughput(pipe, queries, repeats=args.repeats)
    use_precomputed(pipe, queries)
    res["run_batch_precomputed_query_vectors"] = batch_throughput(
        pipe, queries, repeats=args.repeats
    )
    for key in ("run_batch_live_embedding", "run_batch_precomputed_query_vectors"):
        print(key)
        for r in res[key]:
            print(
                f"  concurrency {r['concurrency']:>2}: {r['qps']:8.1f} q/s "
                f"({r['x_concurrency_1']:.2f}x of concurrency 1)"
            )
    if args.raw_texts:
        import index_scifact

        res["embedding_vs_raw"] = index_scifact.raw_vs_ragsel(args.raw_texts, None, args.rounds)
        e = res["embedding_vs_raw"]
        print(
            f"embedding {e['texts']} abstracts: raw encode {e['raw_docs_per_s']} docs/s, "
            f"ragsel {e['ragsel_docs_per_s']} docs/s, ratio {e['ratio_ragsel_over_raw']} "
            "(target >= 0.95)"
        )
    res["machine_end"] = _common.machine()
    res["command"] = "python -m eval.benchmarks.perf.throughput" + (
        f" --limit {args.limit}" if args.limit else ""
    )
    _common.write_json("throughput.json", res, args.out)
    return res


if __name__ == "__main__":
    main()
