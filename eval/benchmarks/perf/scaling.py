"""Scaling: query latency (p50/p95) of the shipped local pipeline, index size on disk and
serving RSS as the corpus grows: 1k, 5k, 50k chunks.

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.scaling --index "$RAGSEL_INDEX"

Corpora: the chunks of the SciFact index (whole abstracts, 5,183) in their index order; the
first 1,000 and 5,000 are used as they are, and 50,000 repeats the 5,183 abstracts ~10 times
with distinct document ids (``<id>~r<copy>``). **Vectors are reused, not recomputed**: the
index is built by ``LocalIndex.create`` + ``add_documents`` as usual, but with an embedder that
returns each text's MiniLM vector read from the SciFact index (the same vector the model would
give), so building 50k chunks does not cost 50k forward passes. Consequence of repeating: BM25
document frequencies scale uniformly and dense search sees exact ties; what grows (rows to scan,
postings, chroma's HNSW files, memory) grows exactly as with distinct texts. Built indexes are
cached under ``--work`` and reused (``--rebuild`` to rebuild).

Each size is measured in a fresh subprocess (so peak RSS is that size's own): open the index
with ``pipelines/local.yaml`` (BM25 + dense + RRF + elbow cutoff + neighbour expansion), warm
up, then time ``--queries`` SciFact test queries with the query embedded live and with query
vectors served from memory (what grows with the corpus). With ``--repeats`` > 1 the sizes are
measured in interleaved rounds. Writes ``results/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks import _common

SIZES = (1000, 5000, 50000)


def export_source(index: str | Path, dest: Path) -> int:
    """Texts, document ids and vectors of ``index`` to ``dest`` (.jsonl + .npy)."""
    from ragsel.index import open_index

    ix = open_index(index)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for c in ix.chunks:
            fh.write(json.dumps({"doc_id": c.doc_id, "text": c.text}) + "\n")
    np.save(dest / "vectors.npy", np.asarray(ix.matrix, dtype=np.float32))
    return len(ix.chunks)


def synth_corpus(source: Path, size: int) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
    """``size`` (doc id, text) pairs cycling over the source, and text -> vector."""
    rows = [json.loads(x) for x in open(source / "chunks.jsonl", encoding="utf-8")]
    vecs = np.load(source / "vectors.npy")
    docs = []
    for i in range(size):
        r = rows[i % len(rows)]
        copy = i // len(rows)
        docs.append((r["doc_id"] if copy == 0 else f"{r['doc_id']}~r{copy}", r["text"]))
    return docs, {r["text"]: v for r, v in zip(rows, vecs)}


def build(source: Path, size: int, path: Path) -> dict:
    """Build (child process): a LocalIndex of ``size`` chunks with reused vectors."""
    from eval.benchmarks._vectors import PrecomputedEmbedder
    from ragsel.backends import embedders as E
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig
    from ragsel.ingest.documents import Document

    docs, vectors = synth_corpus(source, size)
    # the index builder asks load_embedder for "minilm": serve the known vectors instead
    spec = E.EmbedderSpec("minilm")
    real = E.load_embedder(spec)
    E._cache[spec] = PrecomputedEmbedder(real, vectors)
    try:
        t0 = time.perf_counter()
        with LocalIndex.create(path, embedder="minilm", chunker=ChunkerConfig("document")) as ix:
            rep = ix.add_documents([Document(id=d, text=t) for d, t in docs])
        took = time.perf_counter() - t0
    finally:  # put the real embedder back (matters when called in-process, e.g. tests)
        E._cache[spec] = real
    info = {"chunks": rep.total_chunks, "build_s": round(took, 1), "source": _fingerprint(source)}
    (path / "bench_build.json").write_text(json.dumps(info))
    return info


def _fingerprint(source: Path) -> str:
    """Identifies the exported source corpus (a cached index is reused only for the same)."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    h.update((source / "chunks.jsonl").read_bytes())
    return h.hexdigest()


def measure(index: Path, queries: list[str]) -> dict:
    """Serve (child process): latency with/without the query embedding, RSS, disk size."""
    from eval.benchmarks._vectors import use_precomputed
    from ragsel.spec import load_pipeline
    from ragsel.types import Query

    rss0 = _common.peak_rss_mb()
    t0 = time.perf_counter()
    pipe = load_pipeline(
        _common.REPO / "pipelines" / "local.yaml", variables={"RAGSEL_INDEX": str(index)}
    )
    pipe.warm_up()
    open_s = time.perf_counter() - t0
    for q in queries[:3]:
        pipe.run(Query(q))
    out: dict = {"open_and_warm_up_s": round(open_s, 2)}
    for key in ("live", "precomputed"):
        if key == "precomputed":
            use_precomputed(pipe, queries)
        ms = []
        for q in queries:
            t = time.perf_counter()
            pipe.run(Query(q))
            ms.append((time.perf_counter() - t) * 1e3)
        out[key] = ms
    out["peak_rss_mb"] = round(_common.peak_rss_mb(), 1)
    out["rss_before_mb"] = round(rss0, 1)
    return out


def disk(path: Path) -> dict:
    parts = {
        p.name: round(_common.dir_size_mb(p) if p.is_dir() else p.stat().st_size / 2**20, 2)
        for p in path.iterdir()
        if p.name != "bench_build.json"
    }
    return {"total_mb": round(_common.dir_size_mb(path), 2), "parts_mb": parts}


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", __spec__.name, *args], capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"scaling child {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(
    index: str | Path,
    queries: list[str],
    sizes: Sequence[int] = SIZES,
    work: Path = Path("/tmp/ragsel-scaling"),
    repeats: int = 1,
    rebuild: bool = False,
) -> dict:
    """Build (or reuse) an index per size, then measure each in fresh processes."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source"
    n_src = export_source(index, source)
    (work / "queries.json").write_text(json.dumps(queries))
    built: dict[int, dict] = {}
    for size in sizes:
        path = work / f"n{size}"
        manifest, info = path / "manifest.json", path / "bench_build.json"
        fresh = (
            not rebuild
            and manifest.is_file()
            and info.is_file()
            and json.loads(manifest.read_text()).get("complete")
            and json.loads(info.read_text()).get("source") == _fingerprint(source)
            and json.loads(info.read_text()).get("chunks") == size
        )
        if not fresh:
            if path.exists():
                import shutil

                shutil.rmtree(path)
            built[size] = _child(
                ["--build", str(size), "--source", str(source), "--path", str(path)]
            )
        else:  # built by an earlier run from the same source: report that run's build time
            built[size] = {**json.loads(info.read_text()), "reused": True}
    samples: dict[int, dict[str, list[float]]] = {s: {"live": [], "precomputed": []} for s in sizes}
    extra: dict[int, dict] = {}
    for r in range(repeats):
        for size in sizes if r % 2 == 0 else list(reversed(sizes)):
            m = _child(
                ["--measure", str(work / f"n{size}"), "--queries-file", str(work / "queries.json")]
            )
            samples[size]["live"] += m.pop("live")
            samples[size]["precomputed"] += m.pop("precomputed")
            extra.setdefault(size, {}).setdefault("peak_rss_mb", []).append(m["peak_rss_mb"])
            extra[size].setdefault("open_and_warm_up_s", []).append(m["open_and_warm_up_s"])
    rows = []
    for size in sizes:
        rows.append(
            {
                "chunks": size,
                "copies_of_source": round(size / n_src, 2),
                "with_query_embedding": _common.summary_ms(samples[size]["live"]),
                "without_query_embedding": _common.summary_ms(samples[size]["precomputed"]),
                "peak_rss_mb": float(np.median(extra[size]["peak_rss_mb"])),
                "open_and_warm_up_s": float(np.median(extra[size]["open_and_warm_up_s"])),
                "disk": disk(work / f"n{size}"),
                "build": built[size],
            }
        )
    return {
        "source_chunks": n_src,
        "rows": rows,
        "repeats": repeats,
        "vectors": "reused from the source index (no re-embedding)",
    }


def main(argv: Sequence[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=_common.DEFAULT_INDEX)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--queries", type=int, default=100, help="SciFact test queries per size")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ragsel-scaling"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.results_dir("perf"))
    ap.add_argument("--build", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build:
        print(json.dumps(build(args.source, args.build, args.path)))
        return None
    if args.measure:
        print(json.dumps(measure(args.measure, json.loads(args.queries_file.read_text()))))
        return None

    from ragsel_eval.datasets import data_root
    from ragsel_eval.datasets.beir import load_beir

    qs = [q.text for q in load_beir(data_root() / "scifact", split="test").queries]
    m0 = _common.machine()
    res = run(
        args.index,
        qs[: args.queries],
        [int(s) for s in args.sizes.split(",")],
        args.work,
        args.repeats,
        args.rebuild,
    )
    res.update(
        machine_start=m0,
        machine_end=_common.machine(),
        versions=_common.versions(),
        command=f"python -m eval.benchmarks.perf.scaling --queries {args.queries}",
    )
    print(
        f"{'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'p50 w/o emb':>12} {'p95 w/o':>8} "
        f"{'disk MB':>8} {'RSS MB':>8}"
    )
    for r in res["rows"]:
        w, wo = r["with_query_embedding"], r["without_query_embedding"]
        print(
            f"{r['chunks']:>8} {w['p50_ms']:>8.2f} {w['p95_ms']:>8.2f} {wo['p50_ms']:>12.2f} "
            f"{wo['p95_ms']:>8.2f} {r['disk']['total_mb']:>8.1f} {r['peak_rss_mb']:>8.0f}"
        )
    _common.write_json("scaling.json", res, args.out)
    return res


if __name__ == "__main__":
    main()
