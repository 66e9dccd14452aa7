"""Pseudo-relevance feedback and score calibration before fusion, on SciFact (issue 18).

What it measures, on a SciFact LocalIndex (whole abstracts, MiniLM), every setting chosen on
the TRAIN qrels and reported once on TEST:

1. RM3 for BM25 (``bm25_rm3_retriever``; Anserini defaults 10 docs / 10 terms / weight 0.5,
   plus a small grid) and Rocchio for the dense query vector (``dense_rocchio_retriever``;
   feedback docs x beta), each alone, with the cost per query (ms, stage ``run`` only; query
   vectors come from the bench cache, so embedding is excluded and is the same for all).
2. Fusion of {BM25, BM25+RM3} x {dense, dense+Rocchio} with today's RRF(k=5, bm25 1.5), an
   RRF grid, and ``zscore`` fusion (each list's scores minus its minimum over its standard
   deviation: label-free per-query calibration) with a BM25 weight grid, plus a weight learned
   by logistic regression on train (per-retriever calibration ``sigmoid(a_i z_i + b)``).
3. Test: the train-chosen settings against today's pipeline, nDCG@10 with a 95% bootstrap CI
   and the paired difference (bootstrap CI, randomisation p).

Run (a few minutes on an idle machine)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.prf_fusion --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/prf_fusion.json``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir
from ragsel_eval.metrics.ranking import ndcg_at_k, recall_at_k
from ragsel_eval.metrics.stats import paired_test, summarize

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json
from eval.benchmarks._vectors import use_precomputed
from eval.benchmarks.studies.scifact_quality import docs_of
from ragsel.index import open_index
from ragsel.spec import load_pipeline
from ragsel.stages.retrieve.bm25_rm3 import BM25RM3Retriever
from ragsel.stages.retrieve.dense_rocchio import DenseRocchioRetriever
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.types import Query

RESULTS = results_dir("studies")
RM3_GRID = [(10, 10, 0.5), (5, 10, 0.5), (10, 20, 0.5), (10, 10, 0.7), (20, 20, 0.7)]
ROCCHIO_GRID = list(itertools.product([1, 3, 5, 10], [0.25, 0.5, 1.0]))
TODAY = ("rrf", 5, 1.5)


def run_lists(stage, queries) -> tuple[dict, float]:
    """Candidates per query id and the median stage time per query (ms)."""
    out, ms = {}, []
    for q in queries:
        t0 = time.perf_counter()
        out[q.id] = stage.run(query=Query(q.text, id=q.id))
        ms.append((time.perf_counter() - t0) * 1000)
    return out, float(np.median(ms))


def per_query(ranked: dict, queries, metric=ndcg_at_k, k=10) -> list[float]:
    return [metric(ranked[q.id], q.qrels, k) for q in queries]


def fused(a: dict, b: dict, method: str, k: int, wb: float) -> dict:
    f = RankFusion(method=method, k=k, weights={"bm25": wb, "dense": 1.0}, top_k=100)
    return {qid: docs_of(f.run(candidates=[a[qid], b[qid]])) for qid in a}


def learned_weight(a: dict, b: dict, queries) -> float:
    """BM25:dense weight ratio from a logistic regression of relevance on the two lists'
    zscore-normalised scores (train pairs; a chunk missing from a list gets 0)."""
    from sklearn.linear_model import LogisticRegression

    from ragsel.stages.retrieve.fusion import normalized_scores

    xs, ys = [], []
    for q in queries:
        feats: dict[str, list[float]] = {}
        for li, c in enumerate((a[q.id], b[q.id])):
            z = normalized_scores(np.asarray(c.scores, dtype=np.float64), "zscore") if c else []
            for sc, v in zip(c.items, z):
                feats.setdefault(sc.chunk.doc_id, [0.0, 0.0])[li] = float(v)
        for d, f in feats.items():
            xs.append(f)
            ys.append(1 if q.qrels.get(d, 0) > 0 else 0)
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(np.asarray(xs), np.asarray(ys))
    wb, wd = lr.coef_[0]
    return round(float(wb / wd), 3)


def score(ranked: dict, queries) -> dict:
    nd = per_query(ranked, queries)
    rc = per_query(ranked, queries, recall_at_k, 100)
    return {"ndcg@10": round(float(np.mean(nd)), 4), "recall@100": round(float(np.mean(rc)), 4)}


def make_stages(index: str, pipe, ix) -> tuple[dict, dict]:
    """BM25 and dense variants by name; every stage is named like the shipped pipeline's
    (``bm25`` / ``dense``) so fusion weights apply unchanged."""
    emb = pipe.stages["dense"]._embedder
    bm25s: dict = {"bm25": pipe.stages["bm25"]}
    for fd, ft, w in RM3_GRID:
        st = BM25RM3Retriever(index=index, top_k=100, fb_docs=fd, fb_terms=ft, original_weight=w)
        st.warm_up()
        st.name = "bm25"
        bm25s[f"rm3 docs={fd} terms={ft} w={w}"] = st
    dense: dict = {"dense": pipe.stages["dense"]}
    for fd, beta in ROCCHIO_GRID:
        st = DenseRocchioRetriever(index=index, top_k=100, fb_docs=fd, beta=beta)
        st._index, st._embedder, st.name = ix, emb, "dense"  # the pipeline's cached vectors
        dense[f"rocchio docs={fd} beta={beta}"] = st
    return bm25s, dense


def best(rows: dict, key: str = "ndcg@10") -> str:
    return max(rows, key=lambda n: (rows[n][key], -len(n)))


def fusion_grid() -> list[tuple[str, int, float]]:
    grid = [("rrf", k, wb) for k in (5, 10, 20, 60) for wb in (0.75, 1.0, 1.5, 2.0)]
    return grid + [("zscore", 0, wb) for wb in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]


def stage_costs(stages: dict, queries, out: str) -> None:
    """p50/p95 ms per query of each stage, interleaved (every stage on query i before any on
    query i+1) so that all see the same machine load; query vectors come from the cache."""
    for st in stages.values():
        st.run(query=Query(queries[0].text))
    ms: dict[str, list[float]] = {n: [] for n in stages}
    for q in queries:
        for n, st in stages.items():
            t0 = time.perf_counter()
            st.run(query=Query(q.text))
            ms[n].append((time.perf_counter() - t0) * 1000)
    rows = {
        n: {"p50": round(float(np.median(v)), 2), "p95": round(float(np.quantile(v, 0.95)), 2)}
        for n, v in ms.items()
    }
    print(rows)
    write_json(
        out,
        {
            "command": "python -m eval.benchmarks.studies.prf_fusion " + " ".join(sys.argv[1:]),
            "queries": len(queries),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "stage_ms_per_query": rows,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "local.yaml"))
    ap.add_argument("--out", default=str(RESULTS / "prf_fusion.json"))
    ap.add_argument(
        "--costs-only",
        type=int,
        metavar="N",
        help="only time the stages (interleaved) on N test queries; writes prf_costs.json",
    )
    args = ap.parse_args()
    os.environ["RAGSEL_INDEX"] = args.index
    train, test = load_beir(args.data, split="train"), load_beir(args.data, split="test")
    splits = {"train": train.queries, "test": test.queries}
    pipe = load_pipeline(args.pipeline)
    pipe.warm_up()
    use_precomputed(pipe, [q.text for qs in splits.values() for q in qs])
    ix = open_index(args.index)
    bm25s, dense = make_stages(args.index, pipe, ix)
    if args.costs_only:
        keep = ["bm25", "rm3 docs=10 terms=10 w=0.5", "rm3 docs=20 terms=20 w=0.7", "dense"]
        keep += ["rocchio docs=1 beta=0.25", "rocchio docs=3 beta=0.5"]
        every = {**bm25s, **dense}
        out = str(RESULTS / "prf_costs.json")
        stage_costs({n: every[n] for n in keep}, splits["test"][: args.costs_only], out)
        return
    load = os.getloadavg()
    lists: dict = {s: {} for s in splits}
    cost: dict = {}
    alone: dict = {s: {} for s in splits}
    for name, st in {**bm25s, **dense}.items():
        for s, qs in splits.items():
            lists[s][name], ms = run_lists(st, qs)
            alone[s][name] = score({k: docs_of(v) for k, v in lists[s][name].items()}, qs)
            cost.setdefault(name, {})[s] = round(ms, 2)
        print(f"  {name}: train {alone['train'][name]} {cost[name]} ms", flush=True)
    pick_b = best({n: alone["train"][n] for n in bm25s if n != "bm25"})
    pick_d = best({n: alone["train"][n] for n in dense if n != "dense"})
    trq = splits["train"]
    grid_rows: dict = {}
    for bn, dn in itertools.product(("bm25", pick_b), ("dense", pick_d)):
        a, b = lists["train"][bn], lists["train"][dn]
        lw = learned_weight(a, b, trq)
        for method, k, wb in [*fusion_grid(), ("zscore", 0, lw)]:
            name = f"{bn} + {dn} | {method} k={k} w_bm25={wb}"
            grid_rows[name] = {
                **score(fused(a, b, method, k, wb), trq),
                "cfg": [bn, dn, method, k, wb],
                "learned_weight": (method, wb) == ("zscore", lw),
            }
        print(f"  fused {bn} + {dn}: learned zscore weight {lw}", flush=True)
    chosen = {
        "today": "bm25 + dense | rrf k=5 w_bm25=1.5",
        "best overall (train)": best(grid_rows),
        "best without PRF (train)": best(
            {n: r for n, r in grid_rows.items() if r["cfg"][:2] == ["bm25", "dense"]}
        ),
        "best zscore (train)": best(
            {n: r for n, r in grid_rows.items() if r["cfg"][2] == "zscore"}
        ),
        "zscore, weight learned by logistic regression (train)": best(
            {
                n: r
                for n, r in grid_rows.items()
                if r["cfg"][:2] == ["bm25", "dense"] and r["learned_weight"]
            }
        ),
        "best with RM3 (train)": best(
            {n: r for n, r in grid_rows.items() if r["cfg"][0] != "bm25"}
        ),
        "best with Rocchio (train)": best(
            {n: r for n, r in grid_rows.items() if r["cfg"][1] != "dense"}
        ),
    }
    tq = splits["test"]
    base = None
    test_rows: dict = {}
    for label, name in chosen.items():
        bn, dn, method, k, wb = grid_rows[name]["cfg"]
        ranked = fused(lists["test"][bn], lists["test"][dn], method, k, wb)
        nd = per_query(ranked, tq)
        base = nd if base is None else base
        test_rows[label] = {
            "setting": name,
            "train": {k_: grid_rows[name][k_] for k_ in ("ndcg@10", "recall@100")},
            "test": score(ranked, tq),
            "test_ndcg@10_ci": summarize(nd, seed=0),
            "vs_today": paired_test(base, nd, seed=0).as_dict(),
        }
        print(f"  TEST {label}: {name}: {test_rows[label]['test']}", flush=True)
    write_json(
        args.out,
        {
            "command": "python -m eval.benchmarks.studies.prf_fusion " + " ".join(sys.argv[1:]),
            "index": args.index,
            "load_average_at_start": [round(x, 2) for x in load],
            "chosen_on_train": {"rm3": pick_b, "rocchio": pick_d},
            "retrievers_alone": alone,
            "stage_ms_p50_per_query": cost,
            "fusion_train_grid": grid_rows,
            "test": test_rows,
        },
    )


if __name__ == "__main__":
    main()
