"""SciFact retrieval quality of the local pipeline: nDCG@10 and Recall@100 (BEIR test, 300
queries), with every setting chosen on the TRAIN qrels first.

What it measures, on a SciFact LocalIndex (``ragsel index`` of ``scifact/corpus.jsonl``):

1. BM25 tokenisation and title handling, on train: BM25 indexes are rebuilt in memory with
   bm25s for stemming on/off x stop-words on/off x title prepended/not, and compared with the
   index's own BM25 settings (which the shipped pipeline uses).
2. Fusion settings, on train: the ``bm25`` and ``dense`` stages of the shipped pipeline are run
   once per query (top ``--depth``), then the ``fusion`` stage is applied with every setting
   of a small grid (RRF k, BM25:dense weight, relative-score and distribution-based fusion).
   The rule: the best train nDCG@10; among RRF settings within 0.005 of it, the one whose
   elbow selection (the pipeline's cutoff applied to the fused list) has the best train
   document F1, because the elbow cuts the fused scores and RRF's k shapes that curve.
3. Test (reported once, nothing chosen here): BM25 alone, dense alone, plain RRF(k=60, equal
   weights; the reference hybrid), the train-chosen fusion, and the shipped pipeline itself
   (``pipelines/local.yaml`` run end to end; its fused ranking is scored, and the final
   selection after elbow cutoff and neighbour expansion is summarised).

Documents are ranked by their best chunk (whole-abstract indexes have one chunk per document).

Query vectors are cached in ``$RAGSEL_BENCH_CACHE`` (``eval/benchmarks/_vectors.py``).
Run (a few minutes; the first run also embeds the 1,109 claims)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.scifact_quality --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/scifact_quality.json``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from ragsel_eval.datasets import data_root
from ragsel_eval.datasets.beir import load_beir
from ragsel_eval.metrics.ranking import doc_ranking, ndcg_at_k, recall_at_k
from ragsel_eval.metrics.stats import nanmean

from eval.benchmarks._common import DEFAULT_INDEX, REPO, results_dir, write_json
from eval.benchmarks._vectors import use_precomputed
from ragsel.spec import load_pipeline
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.types import Candidates, Query

DATA = data_root()
RESULTS = results_dir("studies")
TIE = 0.005  # nDCG@10 differences below this are treated as ties on train (see main)

Lists = dict[str, Candidates]  # query id -> candidates


def score_run(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    nd = [ndcg_at_k(ranked.get(q, []), rel, 10) for q, rel in qrels.items()]
    rc = [recall_at_k(ranked.get(q, []), rel, 100) for q, rel in qrels.items()]
    return {
        "ndcg@10": round(nanmean(nd), 4),
        "recall@100": round(nanmean(rc), 4),
        "queries": len(qrels),
    }


def docs_of(c: Candidates) -> list[str]:
    return doc_ranking(sc.chunk.doc_id for sc in c.items)


def stage_of_type(pipe, type_name: str) -> str:
    names = [n for n, s in pipe.stages.items() if s.type_name == type_name]
    if len(names) != 1:
        raise SystemExit(f"expected one {type_name} stage in the pipeline, found {names}")
    return names[0]


def run_stage(stage, queries, what: str) -> Lists:
    out: Lists = {}
    t0 = time.perf_counter()
    for q in queries:
        out[q.id] = stage.run(query=Query(q.text, id=q.id))
    print(f"  {what}: {len(queries)} queries in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def fuse_all(fusion: RankFusion, a: Lists, b: Lists) -> dict[str, list[str]]:
    return {qid: docs_of(fusion.run(candidates=[a[qid], b[qid]])) for qid in a}


def evaluate_fusion(
    fusion: RankFusion, cut, a: Lists, b: Lists, qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """nDCG@10 / Recall@100 of the fused ranking, and document-level precision/recall/F1 of
    what the pipeline's cutoff keeps from it (the elbow runs on the fused scores, so the
    fusion setting shapes the cut). One fusion pass per query serves both."""
    ranked, p, r, f, n = {}, [], [], [], []
    for qid in a:
        fused = fusion.run(candidates=[a[qid], b[qid]])
        ranked[qid] = docs_of(fused)
        kept = set(docs_of(cut.run(candidates=fused)))
        rel = {d for d, g in qrels[qid].items() if g > 0}
        hit = len(kept & rel)
        pi, ri = (hit / len(kept) if kept else 0.0), hit / len(rel)
        p.append(pi)
        r.append(ri)
        f.append(2 * pi * ri / (pi + ri) if hit else 0.0)
        n.append(len(kept))
    return {
        **score_run(ranked, qrels),
        "sel_precision": round(nanmean(p), 4),
        "sel_recall": round(nanmean(r), 4),
        "sel_f1": round(nanmean(f), 4),
        "sel_docs": round(float(np.mean(n)), 2),
    }


def fusion_grid(bm25: str, dense: str, depth: int) -> list[tuple[str, RankFusion]]:
    grid = []
    for k, wb in itertools.product([5, 10, 20, 40, 60, 100], [0.5, 0.75, 1.0, 1.5, 2.0]):
        grid.append(
            (
                f"rrf k={k} w_bm25={wb}",
                RankFusion(method="rrf", k=k, weights={bm25: wb, dense: 1.0}, top_k=depth),
            )
        )
    for method, wb in itertools.product(["relative_score", "dbsf"], [0.5, 1.0, 2.0]):
        grid.append(
            (
                f"{method} w_bm25={wb}",
                RankFusion(method=method, weights={bm25: wb, dense: 1.0}, top_k=depth),
            )
        )
    return grid


def bm25_variants(corpus_folder: Path, train, test, depth: int, index_cfg: dict) -> dict:
    """BM25 tokenisation x title handling, built in memory, scored on train (and test, for
    the record: nothing is chosen on test)."""
    from ragsel.index.bm25 import BM25Config, BM25Store

    out = {}
    for title in (True, False):
        ds = load_beir(corpus_folder, split="train", title_in_text=title)
        ids = list(ds.documents)
        texts = [ds.documents[i].text for i in ids]
        for stem, stop in itertools.product(("english", None), ("en", None)):
            cfg = BM25Config(
                stemmer=stem,
                stopwords=stop,
                k1=index_cfg.get("k1", 1.5),
                b=index_cfg.get("b", 0.75),
                method=index_cfg.get("method", "lucene"),
            )
            store = BM25Store.build(texts, ids, cfg)
            name = f"title={'prepend' if title else 'none'} stem={stem} stop={stop}"
            row = {}
            for split, qs in (("train", train), ("test", test)):
                hits = store.search_many([q.text for q in qs.queries], depth)
                ranked = {q.id: [ids[r] for r, _ in h] for q, h in zip(qs.queries, hits)}
                row[split] = score_run(ranked, {q.id: q.qrels for q in qs.queries})
            out[name] = row
            print(f"  bm25 {name}: train {row['train']['ndcg@10']:.4f}", flush=True)
    return out


def timed(fn: Callable, *a, **kw):
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(DATA / "scifact"))
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "local.yaml"))
    ap.add_argument(
        "--query-embedder",
        default=None,
        help="sets ${RAGSEL_QUERY_EMBEDDER} (local.yaml: minilm-onnx by default; "
        "e.g. minilm-onnx-q8)",
    )
    ap.add_argument("--depth", type=int, default=100, help="candidates per retriever")
    ap.add_argument("--skip-bm25-variants", action="store_true")
    ap.add_argument(
        "--no-grid",
        action="store_true",
        help="skip the train grid (only re-check the shipped settings)",
    )
    ap.add_argument("--out", default=str(RESULTS / "scifact_quality.json"))
    args = ap.parse_args()

    train = load_beir(args.data, split="train")
    test = load_beir(args.data, split="test")
    print(
        f"SciFact: {len(train.queries)} train / {len(test.queries)} test queries, "
        f"{len(test.documents)} documents; index {args.index}",
        flush=True,
    )
    variables = {"RAGSEL_INDEX": args.index}
    if args.query_embedder:
        variables["RAGSEL_QUERY_EMBEDDER"] = args.query_embedder
    pipe = load_pipeline(args.pipeline, variables=variables)
    b_name = stage_of_type(pipe, "bm25_retriever")
    d_name = stage_of_type(pipe, "dense_retriever")
    f_name = stage_of_type(pipe, "fusion")
    for n in (b_name, d_name):
        if getattr(pipe.stages[n].config, "top_k", args.depth) != args.depth:
            print(
                f"  note: {n} retrieves top_k={pipe.stages[n].config.top_k}, "
                f"--depth is {args.depth}"
            )
    pipe.warm_up()
    # query vectors cached on disk across runs (same vectors the retriever would compute)
    use_precomputed(pipe, [q.text for ds in (train, test) for q in ds.queries])
    result: dict = {
        "index": args.index,
        "pipeline": str(args.pipeline),
        "depth": args.depth,
        "query_embedder": args.query_embedder or "the pipeline's",
        "train_queries": len(train.queries),
        "test_queries": len(test.queries),
    }

    from ragsel.index import open_index

    ix = open_index(args.index)
    result["index_manifest"] = {
        k: ix.manifest.get(k) for k in ("embedder", "chunker", "bm25", "counts")
    }
    if not args.skip_bm25_variants:
        print("BM25 tokenisation / title variants (chosen on train):", flush=True)
        result["bm25_variants"] = bm25_variants(
            Path(args.data), train, test, args.depth, ix.manifest.get("bm25", {})
        )

    print("retrieving (shipped pipeline's bm25 and dense stages):", flush=True)
    lists = {}
    for split, ds in (("train", train), ("test", test)):
        lists[split] = {
            "bm25": run_stage(pipe.stages[b_name], ds.queries, f"{split} bm25"),
            "dense": run_stage(pipe.stages[d_name], ds.queries, f"{split} dense"),
        }
    qrels = {s: {q.id: q.qrels for q in ds.queries} for s, ds in (("train", train), ("test", test))}

    cut = pipe.stages[stage_of_type(pipe, "elbow_cutoff")]
    tr = lists["train"]
    best_name, best = None, None
    if not args.no_grid:
        print("fusion grid on train:", flush=True)
        grid = []
        t0 = time.perf_counter()
        for name, fusion in fusion_grid(b_name, d_name, args.depth):
            grid.append(
                (
                    evaluate_fusion(fusion, cut, tr["bm25"], tr["dense"], qrels["train"]),
                    name,
                    fusion,
                )
            )
        print(f"  {len(grid)} settings in {time.perf_counter() - t0:.0f} s")
        grid.sort(key=lambda g: (-g[0]["ndcg@10"], -g[0]["recall@100"], g[1]))
        for m, name, _ in grid[:10]:
            print(
                f"  {name:32s} train nDCG@10 {m['ndcg@10']:.4f}  R@100 {m['recall@100']:.4f}  "
                f"elbow F1 {m['sel_f1']:.4f} ({m['sel_docs']} docs)"
            )
        # The rule, fixed before looking at any number: the best train nDCG@10; among RRF
        # settings within TIE of it, the one whose elbow selection has the best train F1 (the
        # elbow cuts the fused scores, and RRF's k shapes that curve).
        top = grid[0][0]["ndcg@10"]
        near = [g for g in grid if g[1].startswith("rrf") and g[0]["ndcg@10"] >= top - TIE]
        best_metrics, best_name, best = max(
            near or grid[:1], key=lambda g: (g[0]["sel_f1"], g[0]["ndcg@10"])
        )
        result["train_grid"] = [{"setting": n, **m} for m, n, _ in grid]
        result["choice_rule"] = (
            f"max train nDCG@10; among RRF settings within {TIE} of the "
            "best, max train elbow-selection F1"
        )
        result["chosen_on_train"] = {
            "setting": best_name,
            "config": best.to_dict(),
            "train": best_metrics,
        }
        print(f"  chosen: {best_name} {best_metrics}")

    shipped = pipe.stages[f_name]
    rows: dict[str, dict] = {}
    tl = lists["test"]
    rows["bm25"] = score_run({q: docs_of(c) for q, c in tl["bm25"].items()}, qrels["test"])
    rows["dense (MiniLM)"] = score_run(
        {q: docs_of(c) for q, c in tl["dense"].items()}, qrels["test"]
    )
    rows["hybrid RRF k=60, equal weights"] = score_run(
        fuse_all(RankFusion(k=60, top_k=args.depth), tl["bm25"], tl["dense"]), qrels["test"]
    )
    if best is not None:
        rows[f"hybrid chosen on train ({best_name})"] = score_run(
            fuse_all(best, tl["bm25"], tl["dense"]), qrels["test"]
        )
    train_shipped = evaluate_fusion(shipped, cut, tr["bm25"], tr["dense"], qrels["train"])
    result["shipped_fusion"] = {"config": shipped.to_dict(), "train": train_shipped}

    print("shipped pipeline end to end on test:", flush=True)
    fused, sizes, sel_recall, times = {}, [], [], []
    for q in test.queries:
        r, dt = timed(pipe.run, Query(q.text, id=q.id))
        times.append(dt * 1000)
        fused[q.id] = docs_of(r[f_name])
        sel = r.selection
        sizes.append(len(sel.chunks))
        rel = {d for d, g in q.qrels.items() if g > 0}
        got = {sc.chunk.doc_id for sc in sel.chunks}
        sel_recall.append(len(rel & got) / len(rel) if rel else float("nan"))
    rows["shipped pipelines/local.yaml (fused ranking)"] = score_run(fused, qrels["test"])
    result["test"] = rows
    result["shipped_selection"] = {
        "mean_chunks_selected": round(float(np.mean(sizes)), 2),
        "median_chunks_selected": float(np.median(sizes)),
        "doc_recall_of_selection": round(nanmean(sel_recall), 4),
        "mean_ms_per_query_end_to_end": round(float(np.mean(times)), 2),
    }

    print(f"\nSciFact test ({len(test.queries)} queries){'':31s}nDCG@10  Recall@100")
    for name, m in rows.items():
        print(f"  {name:52s} {m['ndcg@10']:.4f}   {m['recall@100']:.4f}")
    s = result["shipped_selection"]
    print(
        f"shipped selection after elbow + expansion: {s['mean_chunks_selected']} chunks/query "
        f"(median {s['median_chunks_selected']}), document recall {s['doc_recall_of_selection']}"
    )
    print(f"shipped fusion on train: {train_shipped}")
    if best is not None:
        print(f"chosen on train: {best_name} {result['chosen_on_train']['train']}")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
