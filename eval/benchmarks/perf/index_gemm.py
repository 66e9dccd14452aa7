"""Indexing throughput against the machine's float32 GEMM limit (issue 17).

The limit: float32 matrix products of MiniLM's shapes (``tokens x 384 @ 384 x 384`` four
times, ``384 x 1536`` and ``1536 x 384``; ``tokens`` = one forward pass, 4,096 by default) on
the runtime the embedder runs on (onnxruntime, same thread settings), and on torch for
reference; the limit is the faster of the two. Throughput: useful work of a real
``LocalIndex`` build (chunk, embed, write chroma, BM25, snapshot) over a SciFact slice, in
GFLOP/s: per text, 6 layers x (3.54 MFLOP per token of weight products + 4 x 384 x n^2 of
attention), on the tokens actually embedded (no padding counted). Ratio = throughput / limit.

The machine is shared, so each round measures GEMM, builds the index, and measures GEMM again
in the same process; the ratio uses the mean of the two GEMM figures around the build. Rounds
alternate the embedders. Every round's load average is recorded; report ranges, not one number::

    python -m eval.benchmarks.perf.index_gemm --limit 400 --rounds 3
    python -m eval.benchmarks.perf.index_gemm --limit 200 --rounds 1 --embedders minilm

It also checks that the vectors equal those of an index built before this change
(``--reference``, default ``$RAGSEL_INDEX``: cosine per chunk over the slice).
Results go to eval/benchmarks/perf/results/index_gemm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.benchmarks._common import DATA, DEFAULT_INDEX, results_dir, write_json

HIDDEN, FFN, LAYERS = 384, 1536, 6
MATMUL_FLOP_PER_TOKEN = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)


def text_flop(n_tokens: int) -> int:
    """FLOPs to embed one text of ``n_tokens`` tokens: weight products + attention."""
    return MATMUL_FLOP_PER_TOKEN * n_tokens + LAYERS * 4 * HIDDEN * n_tokens * n_tokens


def _shapes(tokens: int) -> list[tuple[int, int, int]]:
    return [(tokens, HIDDEN, HIDDEN)] * 4 + [(tokens, HIDDEN, FFN), (tokens, FFN, HIDDEN)]


def _time(fn, reps: int) -> float:
    fn()  # warm
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def gemm_onnx(tokens: int, threads: int, reps: int = 5) -> float:
    """GFLOP/s of MiniLM's weight products as one onnxruntime graph (the embedder's runtime
    and session settings: ``threads`` intra-op threads, no spinning)."""
    fn, flop = onnx_gemm_runner(tokens, threads)
    return flop / _time(fn, reps) / 1e9


def onnx_gemm_runner(tokens: int, threads: int):
    """``(run, flop)``: one call of the GEMM graph and the FLOPs it does."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = _shapes(tokens)
    nodes, inits, outs = [], [], []
    for i, (_, k, n) in enumerate(shapes):
        w = rng.standard_normal((k, n), dtype=np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"x{k}", f"w{i}"], [f"y{i}"]))
        outs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["T", n]))
    ins = [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, ["T", k]) for k in (384, 1536)]
    model = helper.make_model(
        helper.make_graph(nodes, "gemm", ins, outs, inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {f"x{k}": rng.standard_normal((tokens, k), dtype=np.float32) for k in (384, 1536)}
    flop = sum(2 * m * k * n for m, k, n in shapes)
    run = lambda: sess.run(None, feeds)  # noqa: E731
    run()
    return run, flop


def interleaved(
    embedder: str, texts: list[str], lens: list[int], threads: int, tokens: int, slice_n: int = 32
) -> dict:
    """Embed ``texts`` in slices of ``slice_n`` and run one GEMM call after each slice, so both
    see the same contention; the ratio of their time-averaged rates is robust to load that
    changes over the run (the before/after GEMM of a whole build is not)."""
    from ragsel.backends.embedders import load_embedder

    emb = load_embedder(embedder)
    gemm, gemm_flop = onnx_gemm_runner(tokens, threads)
    t_emb = t_gemm = f_emb = f_gemm = 0.0
    for s in range(0, len(texts), slice_n):
        t = time.perf_counter()
        emb.embed(texts[s : s + slice_n])
        t_emb += time.perf_counter() - t
        f_emb += sum(text_flop(n) for n in lens[s : s + slice_n])
        t = time.perf_counter()
        gemm()
        t_gemm += time.perf_counter() - t
        f_gemm += gemm_flop
    e, g = f_emb / t_emb / 1e9, f_gemm / t_gemm / 1e9
    return {"embed_gflops": round(e, 1), "gemm_gflops": round(g, 1), "ratio": round(e / g, 3)}


def gemm_torch(tokens: int, threads: int, reps: int = 5) -> float:
    import torch

    torch.set_num_threads(threads)
    shapes = _shapes(tokens)
    xs = {k: torch.randn(tokens, k) for k in (384, 1536)}
    ws = [torch.randn(k, n) for _, k, n in shapes]
    flop = sum(2 * m * k * n for m, k, n in shapes)
    with torch.no_grad():
        return flop / _time(lambda: [xs[k] @ w for (_, k, _), w in zip(shapes, ws)], reps) / 1e9


def scifact_slice(limit: int, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(DATA / "scifact" / "corpus.jsonl") as fh, open(out_dir / "corpus.jsonl", "w") as o:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            o.write(line)
    (out_dir / "queries.jsonl").write_text("")
    return out_dir


def token_lengths(texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    return [len(e.ids) for e in tok.encode_batch(texts)]


def work_gflop(texts: list[str]) -> tuple[float, int]:
    from tokenizers import Tokenizer

    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    lens = [len(e.ids) for e in tok.encode_batch(texts)]
    return sum(text_flop(n) for n in lens) / 1e9, sum(lens)


def build(embedder: str, corpus: Path, out: Path) -> tuple[float, float, object]:
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig

    t = time.perf_counter()
    with LocalIndex.create(out, embedder=embedder, chunker=ChunkerConfig("document")) as ix:
        rep = ix.add_corpus(corpus)
    return time.perf_counter() - t, rep.embed_seconds, ix


def vector_check(ix_path: Path, reference: Path) -> dict:
    """Cosine between the slice's vectors and those of a reference index (same chunk ids)."""
    from ragsel.index import LocalIndex

    if not (reference / "manifest.json").is_file():
        return {"reference": str(reference), "skipped": "no index there"}
    ours = LocalIndex.open(ix_path)
    ref = LocalIndex.open(reference)
    ids = [c.id for c in ours.chunks]
    rv, found = ref.vectors(ids)
    ov = ours.matrix[found]
    cos = (ov * rv).sum(axis=1)
    return {
        "reference": str(reference),
        "reference_embedder": ref.manifest["embedder"]["name"],
        "chunks_compared": int(found.sum()),
        "min_cosine": round(float(cos.min()), 7) if len(cos) else None,
        "mean_cosine": round(float(cos.mean()), 7) if len(cos) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=400, help="SciFact abstracts to index")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--embedders", default="minilm,sentence-transformers")
    ap.add_argument("--tokens", type=int, default=4096, help="rows of the GEMM (one pass)")
    ap.add_argument("--reference", default=DEFAULT_INDEX, help="index for the vector check")
    ap.add_argument("--mode", choices=["interleaved", "build", "both"], default="both")
    ap.add_argument("--out", default=str(results_dir("perf") / "index_gemm.json"))
    args = ap.parse_args()
    from ragsel.backends.embedders import load_embedder
    from ragsel.ingest import load_documents

    threads = len(os.sched_getaffinity(0))
    embedders = [e.strip() for e in args.embedders.split(",") if e.strip()]
    rows, checks = [], {}
    with tempfile.TemporaryDirectory(prefix="ragsel-gemm-") as tmp:
        corpus = scifact_slice(args.limit, Path(tmp) / "corpus")
        gflop, tokens = work_gflop([d.text for d in load_documents(corpus)])
        for e in embedders:
            load_embedder(e).warm_up()  # model loading (and the one-time export) not timed
        texts = [d.text for d in load_documents(corpus)]
        lens = token_lengths(texts)
        inter = []
        for r in range(args.rounds if args.mode != "build" else 0):
            for e in embedders:
                load0 = os.getloadavg()[0]
                row = {
                    "round": r,
                    "embedder": e,
                    **interleaved(e, texts, lens, threads, args.tokens),
                }
                row["load_avg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
                inter.append(row)
                print(json.dumps(row), flush=True)
        for r in range(args.rounds if args.mode != "interleaved" else 0):
            for e in embedders:
                load0 = os.getloadavg()[0]
                before = {"onnx": gemm_onnx(args.tokens, threads)}
                before["torch"] = gemm_torch(args.tokens, threads)
                wall, embed_s, _ = build(e, corpus, Path(tmp) / f"ix-{e}-{r}")
                after = {"onnx": gemm_onnx(args.tokens, threads)}
                after["torch"] = gemm_torch(args.tokens, threads)
                limit = max(np.mean([before[k], after[k]]) for k in before)
                row = {
                    "round": r,
                    "embedder": e,
                    "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                    "gemm_gflops": {k: [round(before[k], 1), round(after[k], 1)] for k in before},
                    "index_wall_s": round(wall, 2),
                    "docs_per_s": round(args.limit / wall, 2),
                    "index_gflops": round(gflop / wall, 1),
                    "embed_gflops": round(gflop / embed_s, 1),
                    "ratio_index": round(gflop / wall / limit, 3),
                    "ratio_embed": round(gflop / embed_s / limit, 3),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if r == 0:
                    checks[e] = vector_check(Path(tmp) / f"ix-{e}-{r}", Path(args.reference))
    summary: dict = {}
    for e in embedders:
        mine = [x for x in rows if x["embedder"] == e]
        summary[e] = {
            k: [min(x[k] for x in mine), max(x[k] for x in mine)]
            for k in ("ratio_index", "ratio_embed", "docs_per_s", "index_gflops")
            if mine
        }
        mine = [x for x in inter if x["embedder"] == e]
        if mine:
            summary[e]["ratio_interleaved"] = [
                min(x["ratio"] for x in mine),
                max(x["ratio"] for x in mine),
            ]
    print(json.dumps({"summary (min, max)": summary, "vectors": checks}, indent=1))
    write_json(
        Path(args.out),
        {
            "documents": args.limit,
            "tokens": tokens,
            "work_gflop": round(gflop, 1),
            "gemm_rows": args.tokens,
            "threads": threads,
            "interleaved": inter,
            "rounds": rows,
            "summary_min_max": summary,
            "vectors_vs_reference": checks,
        },
    )


if __name__ == "__main__":
    main()
