"""Which scores should the no-argument ``RagselCompressor()`` cut on when the documents it is
given carry none (LangChain's ``VectorStoreRetriever`` and ``BM25Retriever``)?

Upstream retrievers, like the LangChain ones, return the top ``--k`` SciFact abstracts with no
score: BM25 over the corpus (``BM25Retriever``) and MiniLM dense search of the SciFact index
(``VectorStoreRetriever``). The documents go through ``ragsel_langchain.from_documents`` (so
they get the rank-derived scores 1, 1-1/k, ...) and then through the shipped document-selection
pipeline with each scoring choice of its ``candidate_scorer`` (bm25, dense, hybrid), or with
no scorer (the rank-derived line: the elbow keeps everything since equal gaps never cut).
Fixed top-n cuts (n = 1..5) are the reference. Measured per query on the document qrels:
precision, recall and F1 of the kept documents, and how many are kept.

Document vectors come from the index (the MiniLM vectors stored at indexing; the ONNX query
embedder shares their space), so only queries are embedded.

The scorer is chosen on SciFact TRAIN (``--train-queries`` of them, seeded sample) by mean F1
over both upstreams; TEST (300 queries) is reported once.

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.scoreless_documents --index "$RAGSEL_INDEX"

Writes ``eval/benchmarks/studies/results/scoreless_documents.json``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from ragsel_eval.datasets.beir import load_beir
from ragsel_langchain import from_documents

from eval.benchmarks._common import DATA, DEFAULT_INDEX, results_dir, write_json
from ragsel import Pipeline
from ragsel.index.bm25 import BM25Config, BM25Store
from ragsel.stages.cutoff.elbow import ElbowCutoff
from ragsel.stages.cutoff.learned import LearnedCutoff
from ragsel.stages.rerank.candidate_scorer import CandidateScorer
from ragsel.stages.retrieve.dense import DenseRetriever
from ragsel.stages.verify.injection import InjectionGuard
from ragsel.types import Query

Upstream = Callable[[str], list[Document]]


def bm25_upstream(index: str, k: int) -> Upstream:
    """BM25 over the index's abstracts (the same texts the dense upstream returns)."""
    from ragsel.index import open_index

    chunks = open_index(index).chunks
    ids, texts = [c.doc_id for c in chunks], [c.text for c in chunks]
    store = BM25Store.build(texts, ids, BM25Config())

    def run(q: str) -> list[Document]:
        hits = store.search_many([q], k)[0]
        return [
            Document(page_content=texts[r], id=ids[r], metadata={"doc_id": ids[r]}) for r, _ in hits
        ]

    return run


def dense_upstream(index: str, k: int) -> Upstream:
    stage = DenseRetriever(index=index, top_k=k, embedder="minilm-onnx")
    stage.warm_up()

    def run(q: str) -> list[Document]:
        c = stage.run(query=Query(q))
        return [
            Document(
                page_content=sc.chunk.text, id=sc.chunk.doc_id, metadata={"doc_id": sc.chunk.doc_id}
            )
            for sc in c.items
        ]

    return run


class CachedEmbedder:
    """One embedder shared by the scorers, remembering every text's vector (the dense and
    hybrid scorers see the same documents; the study is about choices, not speed)."""

    def __init__(self, name: str) -> None:
        from ragsel.backends.embedders import load_embedder

        self.inner = load_embedder(name)
        self.name = getattr(self.inner, "name", name)
        self.cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.embed(todo)))
        return np.stack([self.cache[t] for t in texts])


def selectors(embedder: str, index: str) -> dict[str, Pipeline | int]:
    shared = CachedEmbedder(embedder)
    # the index already holds every abstract's MiniLM vector (the ONNX embedder's space):
    # documents are looked up by their text, only queries (and misses) are embedded
    from ragsel.index import open_index

    ix = open_index(index)
    shared.cache.update(zip((c.text for c in ix.chunks), ix.matrix))

    def pipe(method: str | None, cut: Any = None) -> Pipeline:
        stages = []
        if method:
            scorer = CandidateScorer(method=method, when="always", embedder=embedder)
            scorer._embedders.use(embedder, shared)  # one embedder (and cache) for all scorers
            stages = [scorer]
        cut = cut if cut is not None else ElbowCutoff(min_k=1, max_k=10)
        return Pipeline.linear([*stages, InjectionGuard(), cut])

    out: dict[str, Pipeline | int] = {"rank-derived scores (no scorer)": pipe(None)}
    for m in ("bm25", "dense", "hybrid"):
        out[f"candidate_scorer {m}"] = pipe(m)
    # local.yaml's cut on the handed-in documents (documents.yaml keeps the elbow)
    out["candidate_scorer hybrid, general learned cut"] = pipe(
        "hybrid", LearnedCutoff(model="general")
    )
    for n in range(1, 6):
        out[f"fixed top-{n}"] = n
    return out


def prf(kept: Sequence[str], rel: set[str]) -> tuple[float, float, float]:
    tp = len(set(kept) & rel)
    p = tp / len(kept) if kept else 0.0
    r = tp / len(rel) if rel else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(queries, upstream: Upstream, sels: dict) -> dict[str, dict[str, float]]:
    rows: dict[str, list[tuple[float, float, float, int]]] = {n: [] for n in sels}
    for q in queries:
        rel = {d for d, g in q.qrels.items() if g > 0}
        docs = upstream(q.text)
        if not docs:
            continue
        cands = from_documents(docs)
        for name, sel in sels.items():
            if isinstance(sel, int):
                kept = [d.id for d in docs[:sel]]
            else:
                res = sel.run(Query(q.text), inputs={sel.inputs[0]: cands})
                kept = [sc.chunk.doc_id for sc in res.candidates.items]
            rows[name].append((*prf(kept, rel), len(kept)))
    return {
        n: {
            "precision": float(np.mean([r[0] for r in v])),
            "recall": float(np.mean([r[1] for r in v])),
            "f1": float(np.mean([r[2] for r in v])),
            "kept": float(np.mean([r[3] for r in v])),
            "queries": len(v),
        }
        for n, v in rows.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=DEFAULT_INDEX)
    ap.add_argument("--data", default=str(DATA / "scifact"))
    ap.add_argument("--k", type=int, default=10, help="documents the upstream returns")
    ap.add_argument("--train-queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", default="minilm-onnx", help="the scorer's embedder")
    ap.add_argument("--out", default=str(results_dir("studies") / "scoreless_documents.json"))
    args = ap.parse_args()
    train = load_beir(args.data, split="train")
    test = load_beir(args.data, split="test")
    tq = list(train.queries)
    random.Random(args.seed).shuffle(tq)
    tq = tq[: args.train_queries]
    ups = {"bm25 (like BM25Retriever)": bm25_upstream(args.index, args.k)}
    ups["dense (like VectorStoreRetriever)"] = dense_upstream(args.index, args.k)
    sels = selectors(args.embedder, args.index)
    result: dict = {
        "k": args.k,
        "embedder": args.embedder,
        "train_queries": len(tq),
        "test_queries": len(test.queries),
    }
    t0 = time.perf_counter()
    for split, qs in (("train", tq), ("test", test.queries)):
        result[split] = {}
        for up_name, up in ups.items():
            print(f"{split} / {up_name} ...", flush=True)
            result[split][up_name] = evaluate(qs, up, sels)
    scorers = [n for n in sels if n.startswith("candidate_scorer") and "," not in n]
    mean_f1 = {n: float(np.mean([result["train"][u][n]["f1"] for u in ups])) for n in scorers}
    result["chosen_on_train"] = max(scorers, key=lambda n: mean_f1[n])
    result["train_mean_f1"] = mean_f1
    result["seconds"] = round(time.perf_counter() - t0, 1)
    for up in ups:
        print(f"\nTEST, upstream {up}: precision / recall / F1 / kept")
        for n, r in result["test"][up].items():
            print(
                f"  {n:<34} {r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f} / {r['kept']:.2f}"
            )
    print(f"\nchosen on train (mean F1 over both upstreams): {result['chosen_on_train']} {mean_f1}")
    print("wrote", write_json(args.out, result))


if __name__ == "__main__":
    main()
