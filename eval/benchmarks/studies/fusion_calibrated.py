"""Calibrated fusion (``fusion`` with ``method: calibrated``, issue 18) against today's RRF.

The calibration (per retriever: the z-scored score, log rank and presence, weighed by one
logistic regression) is fitted on SciFact TRAIN claims exactly as ``ragsel fit-fusion
pipelines/local.yaml --dataset scifact:train`` fits it, then reported on the 300 TEST claims
(document nDCG@10 / Recall@100, paired against ``local.yaml``'s RRF k=5, BM25 1.5, with
z-score fusion for reference). The SciFact-fitted coefficients are then applied **unchanged**
to every other ranking setting of :mod:`_lodo_data` (PrivacyQA, HotpotQA, FinanceBench,
PoisonedRAG; chunk-level nDCG@10 of the fused BM25 + MiniLM lists against the RRF hybrid), the
protocol's "no loss on unseen corpora". Fusion cost per query is timed on the test lists.

Run (needs the cached lists: ``python -m eval.benchmarks.studies._lodo_data``)::

    python -m eval.benchmarks.studies.fusion_calibrated --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/fusion_calibrated.json``.
"""

from __future__ import annotations

import argparse
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
from eval.benchmarks.studies import _lodo_data as lodo
from eval.benchmarks.studies.scifact_quality import docs_of
from ragsel.spec import load_pipeline
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.stages.retrieve.fusion_calibration import fit_calibration
from ragsel.types import Query

RESULTS = results_dir("studies") / "fusion_calibrated.json"
TODAY = {"method": "rrf", "k": 5, "weights": {"bm25": 1.5, "dense": 1.0}, "top_k": 100}
ZSCORE = {"method": "zscore", "weights": {"bm25": 1.25, "dense": 1.0}, "top_k": 100}


def retrieve(pipe, queries) -> list[list]:
    bm25, dense = pipe.stages["bm25"], pipe.stages["dense"]
    return [[bm25.run(query=Query(q.text)), dense.run(query=Query(q.text))] for q in queries]


def timed(fusion: RankFusion, lists: list[list]) -> tuple[list, float]:
    out, ms = [], []
    for pair in lists:
        t0 = time.perf_counter()
        out.append(fusion.run(candidates=pair))
        ms.append((time.perf_counter() - t0) * 1000)
    return out, round(float(np.median(ms)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--settings", nargs="*", default=[s for s in lodo.BUILDERS if s != "scifact"])
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    os.environ["RAGSEL_INDEX"] = args.index
    train, test = (load_beir(args.data, split=s).queries for s in ("train", "test"))
    train = [q for q in train if any(g > 0 for g in q.qrels.values())]
    pipe = load_pipeline(REPO / "pipelines" / "local.yaml")
    pipe.warm_up()
    use_precomputed(pipe, [q.text for q in train + test])
    tr_lists = retrieve(pipe, train)
    golds = [
        {sc.chunk.id for c in pair for sc in c.items if q.qrels.get(sc.chunk.doc_id, 0) > 0}
        for q, pair in zip(train, tr_lists)
    ]
    t0 = time.perf_counter()
    cal = fit_calibration(tr_lists, golds, ["bm25", "dense"])
    fit_s = time.perf_counter() - t0
    print(f"calibration fitted on {len(train)} train claims in {fit_s:.1f} s: {cal}", flush=True)
    te_lists = retrieve(pipe, test)
    fusions = {
        "rrf (today)": RankFusion(**TODAY),
        "zscore": RankFusion(**ZSCORE),
        "calibrated": RankFusion(method="calibrated", calibration=cal, top_k=100),
    }
    scifact: dict = {}
    per: dict = {}
    for name, f in fusions.items():
        fused, ms = timed(f, te_lists)
        ranked = [docs_of(c) for c in fused]
        per[name] = [ndcg_at_k(r, q.qrels, 10) for r, q in zip(ranked, test)]
        rc = [recall_at_k(r, q.qrels, 100) for r, q in zip(ranked, test)]
        scifact[name] = {
            "ndcg@10": summarize(per[name], seed=0),
            "recall@100": round(float(np.mean(rc)), 4),
            "fusion_ms_p50": ms,
        }
        print(f"SciFact test, {name}: nDCG@10 {np.mean(per[name]):.4f} R@100 {np.mean(rc):.4f}")
    for name in ("zscore", "calibrated"):
        scifact[f"{name} minus rrf"] = paired_test(per["rrf (today)"], per[name], seed=0).as_dict()
    lodo.build(args.settings)
    others: dict = {}
    for setting in args.settings:
        cases = lodo.load(setting)
        rrf = [
            ndcg_at_k([sc.chunk.id for sc in c.hybrid.items], dict.fromkeys(c.gold, 1), 10)
            for c in cases
        ]
        calibrated = fusions["calibrated"]
        new = [
            ndcg_at_k(
                [sc.chunk.id for sc in calibrated.run(candidates=list(c.raw)).items],
                dict.fromkeys(c.gold, 1),
                10,
            )
            for c in cases
        ]
        test_ = paired_test(rrf, new, seed=0).as_dict()
        others[setting] = {"queries": len(cases), "rrf": summarize(rrf, seed=0)}
        others[setting] |= {"calibrated": summarize(new, seed=0), "calibrated minus rrf": test_}
        print(f"{setting}: rrf {np.mean(rrf):.4f} calibrated {np.mean(new):.4f} ({test_})")
    write_json(
        args.out,
        {
            "command": "python -m eval.benchmarks.studies.fusion_calibrated "
            + " ".join(sys.argv[1:]),
            "calibration_fitted_on_train": cal,
            "fit_seconds": round(fit_s, 1),
            "scifact_test": scifact,
            "other_settings_unchanged": others,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
