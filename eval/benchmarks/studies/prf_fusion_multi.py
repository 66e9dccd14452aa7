"""Follow-up to prf_fusion.py: PRF lists *added* to the hybrid instead of replacing a
retriever. BM25, dense, BM25+RM3 (20 docs / 20 terms / 0.7) and dense+Rocchio (1 doc, beta
0.25) -- the settings prf_fusion.py chose on train -- fused by ``zscore`` with BM25 1.25 and
dense 1.0 (also chosen there) and a small grid of weights for the two PRF lists, chosen on
SciFact TRAIN, reported on TEST against today's RRF(k=5, bm25 1.5).

Run::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.prf_fusion_multi --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/prf_fusion_multi.json``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir
from ragsel_eval.metrics.stats import paired_test, summarize

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json
from eval.benchmarks._vectors import use_precomputed
from eval.benchmarks.studies.prf_fusion import per_query, run_lists, score
from eval.benchmarks.studies.scifact_quality import docs_of
from ragsel.index import open_index
from ragsel.spec import load_pipeline
from ragsel.stages.retrieve.bm25_rm3 import BM25RM3Retriever
from ragsel.stages.retrieve.dense_rocchio import DenseRocchioRetriever
from ragsel.stages.retrieve.fusion import RankFusion

GRID = list(itertools.product([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]))  # (rm3, rocchio) weights


def fuse(lists: dict, names: list[str], method: str, k: int, weights: dict) -> dict:
    f = RankFusion(method=method, k=k, weights=weights, top_k=100)
    qids = lists[names[0]].keys()
    return {q: docs_of(f.run(candidates=[lists[n][q] for n in names])) for q in qids}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--out", default=str(results_dir("studies") / "prf_fusion_multi.json"))
    args = ap.parse_args()
    os.environ["RAGSEL_INDEX"] = args.index
    splits = {s: load_beir(args.data, split=s).queries for s in ("train", "test")}
    pipe = load_pipeline(REPO / "pipelines" / "local.yaml")
    pipe.warm_up()
    use_precomputed(pipe, [q.text for qs in splits.values() for q in qs])
    ix = open_index(args.index)
    rm3 = BM25RM3Retriever(
        index=args.index, top_k=100, fb_docs=20, fb_terms=20, original_weight=0.7
    )
    rm3.warm_up()
    roc = DenseRocchioRetriever(index=args.index, top_k=100, fb_docs=1, beta=0.25)
    roc._index, roc._embedder = ix, pipe.stages["dense"]._embedder
    stages = {"bm25": pipe.stages["bm25"], "dense": pipe.stages["dense"], "rm3": rm3}
    stages["rocchio"] = roc
    for n, st in stages.items():
        st.name = n
    lists = {s: {n: run_lists(st, qs)[0] for n, st in stages.items()} for s, qs in splits.items()}
    names = list(stages)
    train = {}
    for wr, wc in GRID:
        w = {"bm25": 1.25, "dense": 1.0, "rm3": wr, "rocchio": wc}
        train[f"rm3={wr} rocchio={wc}"] = {
            **score(fuse(lists["train"], names, "zscore", 0, w), splits["train"]),
            "weights": w,
        }
        print(f"  train rm3={wr} rocchio={wc}: {train[f'rm3={wr} rocchio={wc}']}", flush=True)
    pick = max(train, key=lambda n: train[n]["ndcg@10"])
    tq = splits["test"]
    today = fuse(lists["test"], ["bm25", "dense"], "rrf", 5, {"bm25": 1.5, "dense": 1.0})
    chosen = fuse(lists["test"], names, "zscore", 0, train[pick]["weights"])
    base, nd = per_query(today, tq), per_query(chosen, tq)
    test = {
        "today rrf k=5 bm25 1.5": score(today, tq),
        f"chosen on train: {pick}": {
            **score(chosen, tq),
            "ndcg@10_ci": summarize(nd, seed=0),
            "vs_today": paired_test(base, nd, seed=0).as_dict(),
        },
    }
    print(test)
    write_json(
        args.out,
        {
            "command": "python -m eval.benchmarks.studies.prf_fusion_multi "
            + " ".join(sys.argv[1:]),
            "train_grid": train,
            "chosen_on_train": pick,
            "test": test,
        },
    )


if __name__ == "__main__":
    main()
