"""Adapting the MiniLM embedder to SciFact from its train claims (issue 18), and what it costs.

Fine-tunes the packaged all-MiniLM-L6-v2 on (train claim, cited abstract) pairs with in-batch
negatives (the multiple-negatives ranking loss: cross-entropy over scaled cosine similarities
of each claim against every abstract of its batch), one epoch, AdamW lr 2e-5, batch 16,
seeded; then re-embeds the 5,183 abstracts and the claims with the tuned model and reports,
on the 300 TEST claims: dense nDCG@10 / Recall@100 before and after; the hybrid of
``local.yaml`` (BM25 from the index + the dense list, RRF k=5, BM25 weight 1.5) with the tuned
dense list, paired against today's hybrid; and the same with the RRF k and BM25 weight
re-chosen for the tuned list on the TRAIN claims. Training, re-embedding and query times are
recorded (2 CPU cores, torch threads 2). The tuned model is saved as a sentence-transformers
folder that ``ragsel index --embedder DIR`` and a pipeline's ``embedder: DIR`` can name.

Run (~10-15 min here; nothing else should run; ``--reuse`` re-scores a saved model)::

    python -m eval.benchmarks.studies.embedder_finetune --index "$RAGSEL_INDEX" \\
        --save .ragsel/minilm-scifact

Writes ``eval/benchmarks/studies/results/embedder_finetune.json``.
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
from ragsel.index import open_index
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.types import Candidates

RESULTS = results_dir("studies") / "embedder_finetune.json"
SEED, BATCH, LR, SCALE, MAX_LEN = 0, 16, 2e-5, 20.0, 256


def train_pairs(train, texts: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (q.text, texts[d])
        for q in train.queries
        for d, g in sorted(q.qrels.items())
        if g > 0 and d in texts
    ]


def finetune(pairs: list[tuple[str, str]]):
    import torch
    from sentence_transformers import SentenceTransformer

    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    model = SentenceTransformer(str(minilm_model_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = MAX_LEN
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    order = np.random.default_rng(SEED).permutation(len(pairs))
    model.train()
    losses = []
    for start in range(0, len(order), BATCH):
        batch = [pairs[i] for i in order[start : start + BATCH]]
        if len(batch) < 2:
            continue
        emb = []
        for side in (0, 1):
            feats = model.preprocess([b[side] for b in batch])
            emb.append(model(feats)["sentence_embedding"])
        q = torch.nn.functional.normalize(emb[0], dim=-1)
        d = torch.nn.functional.normalize(emb[1], dim=-1)
        logits = SCALE * q @ d.T
        # a claim citing two abstracts of the same batch: the other one is no negative
        same = torch.tensor([[a[1] == b[1] for b in batch] for a in batch])
        logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), -1e4)
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return model, losses


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
    texts = {c.doc_id: c.text for c in chunks}
    pairs = train_pairs(train, texts)
    saved = Path(args.save)
    earlier = json.loads((saved / "ragsel-finetune.json").read_text()) if args.reuse else {}
    if earlier:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(saved), device="cpu", local_files_only=True)
        tuned_vecs = np.load(saved / "abstract-vectors.npy")
        losses, train_s, embed_s = earlier["losses"], earlier["train_s"], earlier["embed_s"]
    else:
        t0 = time.perf_counter()
        model, losses = finetune(pairs[:32] if args.smoke else pairs)
        train_s = time.perf_counter() - t0
        if args.smoke:
            print(f"  smoke: 32 pairs in {train_s:.1f} s, losses {losses}")
            return
        model.save(str(saved))
        print(f"  trained on {len(pairs)} pairs in {train_s:.0f} s", flush=True)
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
        record = {"losses": losses, "train_s": train_s, "embed_s": embed_s}
        (saved / "ragsel-finetune.json").write_text(json.dumps(record))
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
    report: dict = {}
    per: dict = {}
    for name, qv, dv in (("MiniLM", base_q, base_vecs), ("MiniLM tuned", tuned_q, tuned_vecs)):
        dense = dense_lists(qv, np.asarray(dv), chunks, tq)
        hybrid = {q.id: fuse.run(candidates=[bm25[q.id], dense[q.id]]) for q in tq}
        kinds = [("dense", dense), ("hybrid", hybrid)]
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
            "train_pairs": len(pairs),
            "settings": {"batch": BATCH, "lr": LR, "epochs": 1, "scale": SCALE, "seed": SEED},
            "train_seconds": round(train_s, 1),
            "reembed_seconds": round(embed_s, 1),
            "tuned_query_ms": round(query_ms, 2),
            "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
            "test": report,
            "dense_tuned_vs_base": paired_test(
                per["MiniLM dense"], per["MiniLM tuned dense"], seed=SEED
            ).as_dict(),
            "hybrid_tuned_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM tuned hybrid"], seed=SEED
            ).as_dict(),
            "fusion_chosen_on_train": {"k": k_best, "w_bm25": w_best},
            "fusion_train_grid": {f"k={k} w={w}": round(v, 4) for (k, w), v in grid.items()},
            "hybrid_refused_tuned_vs_today": paired_test(
                per["MiniLM hybrid"], per["MiniLM tuned hybrid re-fused"], seed=SEED
            ).as_dict(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
