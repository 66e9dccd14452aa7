"""Re-ranking by the learned relevance model, without a cross-encoder (issue 18).

The learned cutoff predicts a relevance probability for each of the first 30 candidates;
ordering them by it (``order: probability``, what the shipped general model does before it
cuts) is a re-ranker. Measured on SciFact with the fused list of ``pipelines/local.yaml``
(BM25 + MiniLM, RRF k=5, BM25 weight 1.5), re-ordering the first 30 and leaving the rest:

- ``general, SciFact never seen``: the general model fitted leave-one-dataset-out without
  SciFact (``selection_lodo``'s fold model; label-free for SciFact);
- ``general, shipped``: the shipped model (its training included 80 SciFact *train* claims);
- ``fitted on SciFact train``: a corpus model (``fit_cutoff_model`` with list, query-term and
  corpus-prior features, as ``ragsel fit --max-rank 30`` fits one) on the SciFact train
  claims, and the same without corpus priors (``--no-priors``). The priors are what the
  training claims found in this corpus (which abstracts answered them, and answered the most
  similar ones); the study also counts the test claims that cite an abstract some train claim
  cites, the share of the test set such priors can help directly.

nDCG@10 on the 300 test claims, with 95% bootstrap intervals and the paired difference to
today's hybrid (bootstrap interval, randomisation p). Then the same re-ranking, with each fold
model, on every other labelled setting of the leave-one-dataset-out study (``_lodo_data``; the
gold chunks as binary relevance): where it must not lose.

Run (after ``selection_lodo`` wrote its fold models; a few minutes)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.rerank_learned --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/rerank_learned.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir
from ragsel_eval.metrics.ranking import ndcg_at_k
from ragsel_eval.metrics.stats import paired_test, summarize

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json
from eval.benchmarks._vectors import use_precomputed
from eval.benchmarks.studies import _lodo_data as data
from eval.benchmarks.studies.scifact_quality import docs_of
from ragsel.spec import load_pipeline
from ragsel.types import Candidates, Query

RESULTS = results_dir("studies") / "rerank_learned.json"
HEAD = 30  # the candidates a model re-orders (the general model's horizon)
FOLD = str(data.CACHE / "models" / "general-without-{group}.npz")


def reranked(model, cands: Candidates, query: str) -> Candidates:
    """The first HEAD candidates ordered by the model's probability, the rest as ranked."""
    p = model.probabilities(cands, query)[:HEAD]
    order = np.argsort(-p, kind="stable")
    items = [cands.items[i] for i in order] + list(cands.items[HEAD:])
    return Candidates(tuple(items))


def fused_lists(pipe, queries) -> dict[str, Candidates]:
    """local.yaml's fused list (before the cut) per query id."""
    out = {}
    for q in queries:
        query = Query(q.text, id=q.id)
        lists = [pipe.stages[n].run(query=query) for n in ("bm25", "dense")]
        out[q.id] = pipe.stages["fuse"].run(candidates=lists)
    return out


def fit_scifact(pipe_lists: dict, queries, priors: bool = True):
    from ragsel.stages.cutoff._learned_fit import fit_cutoff_model

    by_doc = [
        {sc.chunk.id for sc in pipe_lists[q.id].items if q.qrels.get(sc.chunk.doc_id, 0) > 0}
        for q in queries
    ]
    t0 = time.perf_counter()
    model = fit_cutoff_model(
        [pipe_lists[q.id] for q in queries],
        by_doc,
        queries=[q.text for q in queries],
        max_rank=HEAD,
        priors=priors,
        inner_repeats=1,
        seed=0,
    )
    return model, time.perf_counter() - t0


def scifact_part(args) -> dict:
    from ragsel.stages.cutoff.learned import CutoffModel

    os.environ["RAGSEL_INDEX"] = args.index
    train, test = load_beir(args.data, split="train"), load_beir(args.data, split="test")
    pipe = load_pipeline(str(REPO / "pipelines" / "local.yaml"))
    pipe.warm_up()
    use_precomputed(pipe, [q.text for q in [*train.queries, *test.queries]])
    tr = [q for q in train.queries if any(g > 0 for g in q.qrels.values())]
    lists = {"train": fused_lists(pipe, tr), "test": fused_lists(pipe, test.queries)}
    print(f"  lists: {len(tr)} train, {len(test.queries)} test claims", flush=True)
    corpus, secs = fit_scifact(lists["train"], tr)
    plain, secs_plain = fit_scifact(lists["train"], tr, priors=False)
    print(f"  fitted the SciFact-train models in {secs:.0f} s / {secs_plain:.0f} s", flush=True)
    seen = {d for q in tr for d, g in q.qrels.items() if g > 0}
    shared = sum(any(g > 0 and d in seen for d, g in q.qrels.items()) for q in test.queries)
    models = {
        "general, SciFact never seen": CutoffModel.load(FOLD.format(group="scifact")),
        "general, shipped": CutoffModel.load("general"),
        "fitted on SciFact train (ragsel fit: list, query-term and corpus-prior features)": corpus,
        "fitted on SciFact train without corpus priors (ragsel fit --no-priors)": plain,
    }
    tq = test.queries
    base = [ndcg_at_k(docs_of(lists["test"][q.id]), q.qrels, 10) for q in tq]
    rows = {"hybrid (local.yaml ranking)": {"ndcg@10": summarize(base, seed=0)}}
    for name, m in models.items():
        t0 = time.perf_counter()
        ranked = {q.id: reranked(m, lists["test"][q.id], q.text) for q in tq}
        ms = (time.perf_counter() - t0) * 1000 / len(tq)
        nd = [ndcg_at_k(docs_of(ranked[q.id]), q.qrels, 10) for q in tq]
        rows[name] = {
            "ndcg@10": summarize(nd, seed=0),
            "vs_hybrid": paired_test(base, nd, seed=0).as_dict(),
            "ms_per_query": round(ms, 2),
        }
        print(f"  {name}: {rows[name]['ndcg@10']} vs hybrid {rows[name]['vs_hybrid']}")
    return {
        "test_queries": len(tq),
        "test_claims_citing_an_abstract_a_train_claim_cites": shared,
        "corpus_fit_seconds": {"with priors": round(secs, 1), "without": round(secs_plain, 1)},
        "methods": rows,
    }


def ndcg_chunks(ids: list[str], gold: set[str], k: int = 10) -> float:
    gains = [1.0 if i in gold else 0.0 for i in ids[:k]]
    dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(gold))))
    return dcg / ideal if ideal else 0.0


def lodo_part() -> dict:
    from ragsel.stages.cutoff.learned import CutoffModel

    out = {}
    for name in data.BUILDERS:
        if not data.cache_path(name).is_file():
            continue
        model = CutoffModel.load(FOLD.format(group=data.GROUPS[name]))
        cases = data.load(name)
        base = [ndcg_chunks(c.hybrid.ids, c.gold) for c in cases]
        nd = [ndcg_chunks(reranked(model, c.hybrid, c.query.text).ids, c.gold) for c in cases]
        out[name] = {
            "queries": len(cases),
            "hybrid": round(float(np.mean(base)), 4),
            "reranked by the fold model": round(float(np.mean(nd)), 4),
            "difference": paired_test(base, nd, seed=0).as_dict(),
        }
        print(f"  {name}: {out[name]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    load = os.getloadavg()
    report = {
        "command": "python -m eval.benchmarks.studies.rerank_learned " + " ".join(sys.argv[1:]),
        "load_average_at_start": [round(x, 2) for x in load],
        "scifact_test": scifact_part(args),
        "other_datasets_ndcg@10_of_gold_chunks": lodo_part(),
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
