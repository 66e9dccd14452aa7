"""Label-free embedder adaptation (``ragsel tune-embedder`` without ``--dataset``) on every
other ranking setting built from ../shared/data (issue 18's "no loss on unseen corpora").

For each setting of :mod:`_lodo_data` (PrivacyQA, HotpotQA, FinanceBench, PoisonedRAG; SciFact
has its own study, ``embedder_finetune.py --source pseudo``): the setting's corpus is the union
of the chunks its queries' retrievers returned (for per-query corpora, every query's whole
context); pseudo-queries are made from it exactly as the command makes them
(:func:`ragsel.backends.embedders.tuning.pseudo_pairs`, seed 0) and MiniLM is fine-tuned on them
with the command's defaults. Then each query's dense list is re-scored by the tuned model over
its candidate pool (the base dense top-100 plus BM25 top-100: exact for per-query corpora, a
pool for the shared ones), fused with the unchanged BM25 list as ``local.yaml`` fuses
(RRF k=5, BM25 1.5), and chunk-level nDCG@10 is paired against today's hybrid. Settings that
share a corpus (same chunks) share one tuned model.

Run (needs the cached lists: ``python -m eval.benchmarks.studies._lodo_data``)::

    python -m eval.benchmarks.studies.embedder_pseudo_multi [--settings NAME ...]

Writes ``eval/benchmarks/studies/results/embedder_pseudo_multi.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import numpy as np
from ragsel_eval.metrics.ranking import ndcg_at_k
from ragsel_eval.metrics.stats import paired_test, summarize

from eval.benchmarks._common import results_dir, write_json
from eval.benchmarks.studies import _lodo_data as lodo
from ragsel.backends.embedders import load_embedder, tuning
from ragsel.types import Candidates

RESULTS = results_dir("studies") / "embedder_pseudo_multi.json"
SETTINGS = [s for s in lodo.BUILDERS if s != "scifact"]


def _rows(name: str) -> list[dict]:
    with gzip.open(lodo.cache_path(name), "rt", encoding="utf-8") as f:
        return json.load(f)["rows"]


def _ids(ranked: Candidates) -> list[str]:
    return [sc.chunk.id for sc in ranked.items]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", nargs="*", default=SETTINGS)
    ap.add_argument("--pseudo-queries", type=int, default=1000)
    ap.add_argument("--models", default=str(lodo.CACHE / "tuned-embedders"))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    lodo.build(args.settings)
    report = json.loads(open(args.out).read()) if os.path.exists(args.out) else {}
    report.setdefault("settings", {})
    for name in args.settings:
        rows = _rows(name)
        cases = lodo.load(name)
        corpus = {}
        for r in rows:
            for c in r["chunks"]:
                corpus.setdefault(c["id"], lodo._chunk(c))
        chunks = list(corpus.values())
        key = hashlib.blake2b("".join(sorted(corpus)).encode(), digest_size=6).hexdigest()
        folder = os.path.join(args.models, key)
        made = not os.path.isdir(folder)
        if made:
            pairs = tuning.pseudo_pairs(chunks, args.pseudo_queries, seed=0)
            rep = tuning.tune_embedder(pairs, folder, source=f"pseudo-queries:{name}")
            print(f"{name}: tuned on {rep.pairs} pairs in {rep.train_seconds:.0f} s", flush=True)
        manifest = json.loads(open(os.path.join(folder, tuning.MANIFEST)).read())
        emb = load_embedder(folder)
        t0 = time.perf_counter()
        vecs = dict(zip(corpus, emb.embed([c.text for c in chunks])))
        embed_s = time.perf_counter() - t0
        qvecs = emb.embed([r["query"] for r in rows])
        base, tuned = [], []
        for r, case, qv in zip(rows, cases, qvecs):
            pool = [c["id"] for c in r["chunks"]]
            sims = np.stack([vecs[i] for i in pool]) @ qv
            order = np.argsort(-sims, kind="stable")[: lodo.TOP]
            dense = Candidates.retrieved(
                "dense", [(corpus[pool[i]], float(sims[i])) for i in order]
            )
            bm25 = case.raw[0]
            gold = {g: 1 for g in case.gold}
            base.append(ndcg_at_k(_ids(case.hybrid), gold, 10))
            tuned.append(ndcg_at_k(_ids(lodo.fuse(dense, bm25)), gold, 10))
        test = paired_test(base, tuned, seed=0).as_dict()
        report["settings"][name] = {
            "queries": len(rows),
            "corpus_chunks": len(chunks),
            "model": key,
            "pairs": manifest["pairs"],
            "pair_kinds": manifest["pair_kinds"],
            "train_seconds": manifest["train_seconds"],
            "embed_seconds": round(embed_s, 1),
            "hybrid_ndcg@10": summarize(base, seed=0),
            "tuned_hybrid_ndcg@10": summarize(tuned, seed=0),
            "tuned_minus_today": test,
        }
        print(
            f"{name}: hybrid {np.mean(base):.4f} -> tuned {np.mean(tuned):.4f} "
            f"(diff CI {test.get('ci_low')}..{test.get('ci_high')})",
            flush=True,
        )
        cmd = "python -m eval.benchmarks.studies.embedder_pseudo_multi " + " ".join(sys.argv[1:])
        report.setdefault("commands", [])
        if cmd not in report["commands"]:  # runs on different settings add up in one file
            report["commands"].append(cmd)
        write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
