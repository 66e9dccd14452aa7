"""Adapting the MiniLM embedder to SciFact (issue 18), and what it costs.

Fine-tunes the packaged all-MiniLM-L6-v2 with ``ragsel tune-embedder``'s code
(:mod:`ragsel.backends.embedders.tuning`: in-batch negatives, one epoch, AdamW lr 2e-5, batch
16, seeded) on one of two sources of pairs:

- ``--source labelled``: the (train claim, cited abstract) pairs;
- ``--source pseudo``: no labels, ``--pseudo-queries`` pairs made from the abstracts alone
  (titles, and key sentences taken out of their abstract).

Then re-embeds the 5,183 abstracts and reports, on the 300 TEST claims: dense nDCG@10 /
Recall@100 before and after; the hybrid of ``local.yaml`` (BM25 from the index + the dense
list, RRF k=5, BM25 weight 1.5) with the tuned dense list, paired against today's hybrid; the
same with the RRF k and BM25 weight re-chosen on the TRAIN claims; and calibrated fusion
(``ragsel fit-fusion``'s model) fitted on the TRAIN claims for the base and the tuned list.
Training, re-embedding and query times are recorded (2 CPU cores, torch threads 2). The tuned
model is a sentence-transformers folder that ``ragsel index --embedder DIR`` and a pipeline's
``embedder: DIR`` can name.

Run (~10-20 min here; nothing else should run; ``--reuse`` re-scores a saved model)::

    python -m eval.benchmarks.studies.embedder_finetune --index "$RAGSEL_INDEX" \\
        --source labelled --save .ragsel/minilm-scifact

Writes ``eval/benchmarks/studies/results/embedder_finetune.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir
from ragsel_eval.metrics.ranking import ndcg_at_k, recall_at_k
from ragsel_eval.metrics.stats import paired_test, summarize

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json
from ragsel.backends.embedders import tuning
from ragsel.index import open_index
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.stages.retrieve.fusion_calibration import fit_calibration
from ragsel.types import Candidates

RESULTS = results_dir("studies") / "embedder_finetune.json"
SEED, BATCH, LR, SCALE, MAX_LEN = 0, 16, 2e-5, 20.0, 256


def make_pairs(source: str, train, chunks, n_pseudo: int, title_share: float) -> list:
    """The training pairs: SciFact train claims with their cited abstracts, or pseudo-queries
    made from the abstracts alone (no labels)."""
    if source == "pseudo":
        return tuning.pseudo_pairs(chunks, n_pseudo, seed=SEED, title_share=title_share)
    ids = {c.doc_id: c.id for c in chunks}
    return tuning.labelled_pairs(
        [
            (q.text, [ids[d] for d, g in q.qrels.items() if g > 0 and d in ids])
            for q in train.queries
        ],
        chunks,
    )


def dense_lists(qv: np.ndarray, dv: np.ndarray, chunks, queries, k: int = 100) -> dict:
    sims = qv @ dv.T
    out = {}
    for i, q in enumerate(queries):
        top = np.argsort(-sims[i], kind="stable")[:k]
        out[q.id] = Candidates.retrieved("dense", [(chunks[j], float(sims[i, j])) for j in top])
    return out


def docs(c: Candidates) -> list[str]:
    return list(dict.fromkeys(sc.chunk.doc_id for sc in c.items))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(data_root() / "scifact"))
    ap.add_argument("--save", default=str(REPO / ".ragsel" / "minilm-scifact"))
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument(
        "--source",
        choices=("labelled", "pseudo"),
        default="labelled",
        help="train claims with their cited abstracts, or pseudo-queries from the abstracts",
    )
    ap.add_argument("--pseudo-queries", type=int, default=2000)
    ap.add_argument("--title-share", type=float, default=0.3, help="pseudo: share of titles")
    ap.add_argument("--smoke", action="store_true", help="train on 32 pairs, stop after")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the model and abstract vectors an earlier run saved in --save",
    )
    args = ap.parse_args()
    train, test = load_beir(args.data, split="train"), load_beir(args.data, split="test")
    index = open_index(args.index).load()
    chunks, base_vecs = index.chunks, index.matrix
    pairs = make_pairs(args.source, train, chunks, args.pseudo_queries, args.title_share)
    saved = Path(args.save)
    from sentence_transformers import SentenceTransformer

    if args.reuse:
        earlier = json.loads((saved / tuning.MANIFEST).read_text())
        tuned_vecs = np.load(saved / "abstract-vectors.npy")
        train_s, embed_s = earlier["train_seconds"], earlier["extra"]["embed_seconds"]
        losses = [earlier["loss_first"], earlier["loss_last"]]
    else:
        settings = tuning.TuneSettings(
            batch_size=BATCH, lr=LR, scale=SCALE, max_length=MAX_LEN, seed=SEED, threads=2
        )
        rep = tuning.tune_embedder(
            pairs[:32] if args.smoke else pairs, saved, settings=settings, source=args.source
        )
        train_s, losses = rep.train_seconds, [rep.loss_first, rep.loss_last]
        if args.smoke:
            print(f"  smoke: 32 pairs in {train_s:.1f} s, loss {losses}")
            return
        print(f"  trained on {len(pairs)} pairs in {train_s:.0f} s", flush=True)
    model = SentenceTransformer(str(saved), device="cpu", local_files_only=True)
    if not args.reuse:
        t0 = time.perf_counter()
        tuned_vecs = model.encode(
            [c.text for c in chunks],
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        embed_s = time.perf_counter() - t0
        print(f"  re-embedded {len(chunks)} abstracts in {embed_s:.0f} s", flush=True)
        np.save(saved / "abstract-vectors.npy", tuned_vecs)
        manifest = json.loads((saved / tuning.MANIFEST).read_text())
        manifest["extra"]["embed_seconds"] = round(embed_s, 1)
        (saved / tuning.MANIFEST).write_text(json.dumps(manifest, indent=2))
    from ragsel.backends.embedders import load_embedder

    base_model = load_embedder("minilm")
    tq = test.queries
    qtexts = [q.text for q in tq]
    base_q = np.asarray(base_model.embed(qtexts))
    t0 = time.perf_counter()
    tuned_q = model.encode(qtexts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    query_ms = (time.perf_counter() - t0) * 1000 / len(qtexts)
    fuse = RankFusion(method="rrf", k=5, weights={"bm25": 1.5, "dense": 1.0}, top_k=100)
    hits = index.bm25_search(qtexts, 100)
    bm25 = {q.id: Candidates.retrieved("bm25", h) for q, h in zip(tq, hits)}
    # the fusion re-chosen for the tuned dense list, on TRAIN claims only (a stronger dense
    # list may want another BM25 weight than 1.5)
    trq = [q for q in train.queries if any(g > 0 for g in q.qrels.values())]
    tr_q = model.encode([q.text for q in trq], normalize_embeddings=True, convert_to_numpy=True)
    tr_dense = dense_lists(tr_q, tuned_vecs, chunks, trq)
    tr_bm25 = {
        q.id: Candidates.retrieved("bm25", h)
        for q, h in zip(trq, index.bm25_search([q.text for q in trq], 100))
    }
    grid = {}
    for k, w in itertools.product((5, 20, 60), (0.5, 0.75, 1.0, 1.5, 2.0)):
        f = RankFusion(method="rrf", k=k, weights={"bm25": w, "dense": 1.0}, top_k=100)
        grid[(k, w)] = float(
            np.mean(
                [
                    ndcg_at_k(docs(f.run(candidates=[tr_bm25[q.id], tr_dense[q.id]])), q.qrels, 10)
                    for q in trq
                ]
            )
        )
    k_best, w_best = max(grid, key=lambda kw: (round(grid[kw], 4), -kw[0]))
    refused = RankFusion(method="rrf", k=k_best, weights={"bm25": w_best, "dense": 1.0}, top_k=100)
    print(f"  fusion for the tuned list chosen on train: k={k_best} w_bm25={w_best}", flush=True)
    # calibrated fusion (``ragsel fit-fusion``) fitted on the TRAIN claims for each dense list
    tr_base = dense_lists(
        np.asarray(base_model.embed([q.text for q in trq])), np.asarray(base_vecs), chunks, trq
    )
    calibrated = {}
    for name, trd in (("MiniLM", tr_base), ("MiniLM tuned", tr_dense)):
        samples = [[tr_bm25[q.id], trd[q.id]] for q in trq]
        golds = [
            {sc.chunk.id for c in pair for sc in c.items if q.qrels.get(sc.chunk.doc_id, 0) > 0}
            for q, pair in zip(trq, samples)
        ]
        cal = fit_calibration(samples, golds, ["bm25", "dense"])
        calibrated[name] = RankFusion(method="calibrated", calibration=cal, top_k=100)
        print(f"  calibration for {name} fitted on train: {cal}", flush=True)
    report: dict = {}
    per: dict = {}
    for name, qv, dv in (("MiniLM", base_q, base_vecs), ("MiniLM tuned", tuned_q, tuned_vecs)):
        dense = dense_lists(qv, np.asarray(dv), chunks, tq)
        hybrid = {q.id: fuse.run(candidates=[bm25[q.id], dense[q.id]]) for q in tq}
        cal_hybrid = {q.id: calibrated[name].run(candidates=[bm25[q.id], dense[q.id]]) for q in tq}
        kinds = [("dense", dense), ("hybrid", hybrid), ("hybrid calibrated", cal_hybrid)]
        if name == "MiniLM tuned":
            kinds.append(
                (
                    "hybrid re-fused",
                    {q.id: refused.run(candidates=[bm25[q.id], dense[q.id]]) for q in tq},
                )
            )
        for kind, lists in kinds:
            nd = [ndcg_at_k(docs(lists[q.id]), q.qrels, 10) for q in tq]
            rc = [recall_at_k(docs(lists[q.id]), q.qrels, 100) for q in tq]
            per[f"{name} {kind}"] = nd
            report[f"{kind}, {name}"] = {
                "ndcg@10": summarize(nd, seed=SEED),
                "recall@100": round(float(np.mean(rc)), 4),
            }
            print(f"  {kind}, {name}: nDCG@10 {np.mean(nd):.4f} R@100 {np.mean(rc):.4f}")
    write_json(
        args.out,
        {
            "command": "python -m eval.benchmarks.studies.embedder_finetune "
            + " ".join(sys.argv[1:]),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "source": args.source,
            "pseudo": {"n": args.pseudo_queries, "title_share": args.title_share},
            "train_pairs": len(pairs),
            "settings": {"batch": BATCH, "lr": LR, "epochs": 1, "scale": SCALE, "seed": SEED},
            "train_seconds": round(train_s, 1),
            "reembed_seconds": round(embed_s, 1),
            "tuned_query_ms": round(query_ms, 2),
            "loss_first_last": losses,
            "test": report,
            "dense_tuned_vs_base": paired_test(
                per["MiniLM dense"], per["MiniLM tuned dense"], seed=SEED
            ).as_dict(),
            "hybrid_tuned_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM tuned hybrid"], seed=SEED
            ).as_dict(),
            "fusion_chosen_on_train": {"k": k_best, "w_bm25": w_best},
            "fusion_train_grid": {f"k={k} w={w}": round(v, 4) for (k, w), v in grid.items()},
            "calibrated_base_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM hybrid calibrated"], seed=SEED
            ).as_dict(),
            "calibrated_tuned_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM tuned hybrid calibrated"], seed=SEED
            ).as_dict(),
            "hybrid_refused_tuned_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM tuned hybrid re-fused"], seed=SEED
            ).as_dict(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
