"""The same real task in every framework: hybrid BM25 + MiniLM dense retrieval fused with
reciprocal rank fusion, on SciFact (BEIR test, 300 queries, whole abstracts = title + text).

    OMP_NUM_THREADS=1 python -m eval.benchmarks.peers.frameworks_hybrid --index "$RAGSEL_INDEX"

Each framework is built natively from its own parts:

- **ragsel**: the retrieval part of ``pipelines/local.yaml`` (``bm25`` + ``dense`` -> ``fuse``,
  RRF k=60, top 100) on the ragsel index;
- **LangChain**: ``EnsembleRetriever`` (langchain_classic) over ``BM25Retriever``
  (langchain_community, rank_bm25 Okapi) and an ``InMemoryVectorStore`` retriever; run twice,
  with BM25Retriever's default tokeniser (``str.split``) and with ragsel's BM25 tokeniser
  (lower-case words, English stop-words, Snowball stemming) passed as ``preprocess_func``;
- **LlamaIndex**: ``QueryFusionRetriever`` (mode ``reciprocal_rerank``, ``num_queries=1``,
  ``llm=MockLLM()``: no query generation) over ``llama-index-retrievers-bm25`` (bm25s) and a
  ``VectorStoreIndex`` retriever;
- **Haystack 2**: a ``Pipeline`` of a query-embedder component, ``InMemoryBM25Retriever``,
  ``InMemoryEmbeddingRetriever`` and ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``.

Same texts and the same vectors everywhere: the chunk texts and MiniLM document vectors are read
from the ragsel index once and handed to each framework (its own ``Embeddings`` /
``BaseEmbedding`` / component wrapping ragsel's ``load_embedder("minilm")``, which for
documents returns the precomputed vector), so no framework re-embeds 5k abstracts. The query is
embedded per query by the same MiniLM model in every framework, and that is part of the latency.
Every retriever returns its top 100; the fused list is cut at 100 and scored by document:
nDCG@10 and Recall@100 over all queries (the quality pass: query vectors embedded in one batch
by the same model, optionally split over ``--jobs`` forked processes, which cannot change a
ranking). Latency is then timed on the first ``--latency-queries`` queries, interleaved (query i
runs in every framework, in a rotating order, before query i+1) so machine drift hits all
equally; whether each timed ranking equals the quality pass's is recorded. Writes
``results/frameworks_hybrid.{json,md,png}``.
"""

# no "from __future__ import annotations": Haystack resolves component type hints at runtime

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ragsel_eval.metrics.ranking import doc_ranking, ndcg_at_k, recall_at_k
from ragsel_eval.metrics.stats import nanmean

from eval.benchmarks import _common

DEPTH = 100  # per retriever and after fusion (Recall@100 needs 100)


@dataclass
class Task:
    """Chunks (id, document id, text, vector) and the queries with graded qrels."""

    chunk_ids: list[str]
    doc_ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    queries: list[tuple[str, str]]  # (query id, text)
    qrels: dict[str, dict[str, int]]
    index: str = ""
    bm25_config: dict = field(default_factory=dict)

    def vector_of(self) -> dict[str, np.ndarray]:
        return dict(zip(self.texts, self.vectors))


def task_from_index(
    index: str | Path, queries: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]]
) -> Task:
    """The chunks and vectors of a ragsel index plus the given queries."""
    from ragsel.index import open_index

    ix = open_index(index)
    chunks = ix.chunks
    return Task(
        [c.id for c in chunks],
        [c.doc_id for c in chunks],
        [c.text for c in chunks],
        np.asarray(ix.matrix, dtype=np.float32),
        list(queries),
        {q: dict(r) for q, r in qrels.items()},
        str(index),
        dict(ix.manifest.get("bm25") or {}),
    )


def scifact_task(index: str | Path, data_dir: Path, limit: int | None = None) -> Task:
    from ragsel_eval.datasets.beir import load_beir

    ds = load_beir(data_dir / "scifact", split="test")
    qs = ds.queries[:limit] if limit else ds.queries
    return task_from_index(index, [(q.id, q.text) for q in qs], {q.id: q.qrels for q in qs})


class QueryEmbedder:
    """The one MiniLM every framework embeds queries with. With ``cached = True`` it serves
    query vectors computed beforehand (the same vectors), so a second pass times each
    framework's retrieval and fusion without the model."""

    def __init__(self, real) -> None:
        self.real, self.cached = real, False
        self.name, self.dim = real.name, real.dim
        self.space = getattr(real, "space", real.name)
        self._vec: dict[str, np.ndarray] = {}

    def precompute(self, texts: Sequence[str]) -> None:
        self._vec.update(zip(texts, self.real.embed(list(texts))))

    def embed(self, texts):
        if self.cached:
            return np.stack([self._vec[t] for t in texts])
        return self.real.embed(texts)

    def warm_up(self) -> None:
        self.real.warm_up()


# ----------------------------------------------------------------------------- ragsel
def build_ragsel(task: Task, embedder) -> Callable[[str], list[str]]:
    """The retrieval part of pipelines/local.yaml (every retriever + the fusion stage)."""
    from ragsel import Pipeline, Query
    from ragsel.spec import load_pipeline

    full = load_pipeline(
        _common.REPO / "pipelines" / "local.yaml", variables={"RAGSEL_INDEX": task.index}
    )
    retr = [
        n for n, s in full.stages.items() if s.type_name in ("bm25_retriever", "dense_retriever")
    ]
    fuse = next(n for n, s in full.stages.items() if s.type_name == "fusion")
    p = Pipeline(name="local-retrieval", output=fuse)
    for n in (*retr, fuse):
        p.add(n, full.stages[n])
    for n in retr:
        p.connect(n, f"{fuse}.candidates")
    p.warm_up()
    for n in retr:  # dense stages embed the query through the shared QueryEmbedder
        if hasattr(p.stages[n], "_embedder"):
            p.stages[n]._embedder = embedder

    def run(q: str) -> list[str]:
        return doc_ranking(sc.chunk.doc_id for sc in p.run(Query(q))[fuse].items)

    return run


# ----------------------------------------------------------------------------- LangChain
def _lc_embeddings(embedder, known: Mapping[str, np.ndarray]):
    from langchain_core.embeddings import Embeddings

    class MiniLMEmbeddings(Embeddings):
        """ragsel's MiniLM as LangChain Embeddings; documents already embedded are looked
        up (the same vector the model would return) instead of re-embedded."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            missing = [t for t in texts if t not in known]
            extra = dict(zip(missing, embedder.embed(missing))) if missing else {}
            return [np.asarray(known.get(t, extra.get(t))).tolist() for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    return MiniLMEmbeddings()


def build_langchain(task: Task, embedder, tokenizer: str = "default") -> Callable[[str], list[str]]:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    docs = [
        Document(page_content=t, metadata={"doc_id": d}, id=c)
        for c, d, t in zip(task.chunk_ids, task.doc_ids, task.texts)
    ]
    kw = {}
    if tokenizer == "ragsel":
        from ragsel.index.bm25 import BM25Config, tokenize

        cfg = BM25Config.from_dict(task.bm25_config) if task.bm25_config else BM25Config()
        kw["preprocess_func"] = lambda text: tokenize([text], cfg)[0]
    bm25 = BM25Retriever.from_documents(docs, k=DEPTH, **kw)
    store = InMemoryVectorStore(_lc_embeddings(embedder, task.vector_of()))
    store.add_documents(docs, ids=task.chunk_ids)
    ens = EnsembleRetriever(
        retrievers=[bm25, store.as_retriever(search_kwargs={"k": DEPTH})], weights=[0.5, 0.5]
    )

    def run(q: str) -> list[str]:
        return doc_ranking(d.metadata["doc_id"] for d in ens.invoke(q)[:DEPTH])

    return run


# ----------------------------------------------------------------------------- LlamaIndex
def _li_embedding(embedder):
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class MiniLMEmbedding(BaseEmbedding):
        """ragsel's MiniLM as a LlamaIndex embedding (explicit: never the OpenAI default)."""

        _emb: object = PrivateAttr()

        def __init__(self, emb, **kw):
            super().__init__(model_name="minilm", **kw)
            self._emb = emb

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._emb.embed([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._emb.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [v.tolist() for v in self._emb.embed(texts)]

    return MiniLMEmbedding(embedder)


def build_llamaindex(task: Task, embedder) -> Callable[[str], list[str]]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    # doc_id is kept out of the text BM25 and the embedder see
    nodes = [
        TextNode(
            text=t,
            id_=c,
            metadata={"doc_id": d},
            embedding=v.tolist(),
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for c, d, t, v in zip(task.chunk_ids, task.doc_ids, task.texts, task.vectors)
    ]
    index = VectorStoreIndex(nodes, embed_model=_li_embedding(embedder))  # vectors given
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=DEPTH)
    fusion = QueryFusionRetriever(
        [bm25, index.as_retriever(similarity_top_k=DEPTH)],
        llm=MockLLM(),
        mode="reciprocal_rerank",
        num_queries=1,
        similarity_top_k=DEPTH,
        use_async=False,
        verbose=False,
    )

    def run(q: str) -> list[str]:
        return doc_ranking(n.node.metadata["doc_id"] for n in fusion.retrieve(q)[:DEPTH])

    return run


# ----------------------------------------------------------------------------- Haystack
def build_haystack(task: Task, embedder) -> Callable[[str], list[str]]:
    from haystack import Document, Pipeline, component
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    @component
    class MiniLMQueryEmbedder:
        """ragsel's MiniLM as a Haystack text embedder."""

        @component.output_types(embedding=list[float])
        def run(self, text: str):
            return {"embedding": embedder.embed([text])[0].tolist()}

    store = InMemoryDocumentStore()  # defaults: BM25L, regex word tokens, dot product
    store.write_documents(
        [
            Document(id=c, content=t, meta={"doc_id": d}, embedding=v.tolist())
            for c, d, t, v in zip(task.chunk_ids, task.doc_ids, task.texts, task.vectors)
        ]
    )
    p = Pipeline()
    p.add_component("embed", MiniLMQueryEmbedder())
    p.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=DEPTH))
    p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=DEPTH))
    p.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=DEPTH))
    p.connect("embed.embedding", "dense.query_embedding")
    p.connect("bm25.documents", "join.documents")
    p.connect("dense.documents", "join.documents")

    def run(q: str) -> list[str]:
        out = p.run({"embed": {"text": q}, "bm25": {"query": q}})
        return doc_ranking(d.meta["doc_id"] for d in out["join"]["documents"])

    return run


#: name -> (builder, required module, fusion description for the report)
SYSTEMS: dict[str, tuple[Callable, str, str]] = {
    "ragsel (pipelines/local.yaml retrieval)": (
        build_ragsel,
        "ragsel",
        "RRF k=60, 1-based ranks; bm25s Lucene BM25, lower-case, "
        "stop-words, Snowball stemming; exact cosine",
    ),
    "LangChain EnsembleRetriever (default tokeniser)": (
        lambda t, e: build_langchain(t, e, "default"),
        "langchain_classic",
        "RRF c=60, 1-based; rank_bm25 Okapi on str.split() tokens (case and punctuation kept)",
    ),
    "LangChain EnsembleRetriever (ragsel tokeniser)": (
        lambda t, e: build_langchain(t, e, "ragsel"),
        "langchain_classic",
        "RRF c=60, 1-based; rank_bm25 Okapi on ragsel's stemmed tokens",
    ),
    "LlamaIndex QueryFusionRetriever": (
        build_llamaindex,
        "llama_index.retrievers.bm25",
        "RRF k=60 on 0-based ranks (= k 59); bm25s, stop-words, Snowball stemming; dedup by "
        "node hash",
    ),
    "Haystack DocumentJoiner (RRF)": (
        build_haystack,
        "haystack",
        "RRF k=61 on 0-based ranks (= k 60); BM25L, regex word tokens, no stemming",
    ),
}
_MODULE_DEP = {
    "langchain_classic": ("langchain_community", "rank_bm25"),
    "llama_index.retrievers.bm25": ("llama_index.core",),
}


def available(names: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The systems whose packages are installed, and why the others were skipped."""
    ok, skipped = [], {}
    for name in names or SYSTEMS:
        mod = SYSTEMS[name][1]
        missing = [m for m in (mod, *_MODULE_DEP.get(mod, ())) if not _common.has(m)]
        if missing:
            skipped[name] = f"not installed ({', '.join(missing)})"
        else:
            ok.append(name)
    return ok, skipped


_RUNNERS: dict[str, Callable[[str], list[str]]] = {}  # set before forking quality workers


def _rank_slice(queries: list[tuple[str, str]]) -> dict[str, dict[str, list[str]]]:
    return {name: {qid: fn(q) for qid, q in queries} for name, fn in _RUNNERS.items()}


def rank_all(
    runners: Mapping[str, Callable[[str], list[str]]], queries: list[tuple[str, str]], jobs: int = 1
) -> dict[str, dict[str, list[str]]]:
    """Every system's ranking for every query (the quality pass). With ``jobs`` > 1 the
    queries are split over forked worker processes, which inherit the built systems (the
    rankings do not depend on timing, so running them in parallel changes no score)."""
    global _RUNNERS
    _RUNNERS = dict(runners)
    if jobs <= 1 or len(queries) < 2 * jobs:
        return _rank_slice(queries)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    slices = [queries[i::jobs] for i in range(jobs)]
    out: dict[str, dict[str, list[str]]] = {n: {} for n in runners}
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
        for part in pool.map(_rank_slice, slices):
            for name, ranked in part.items():
                out[name].update(ranked)
    return out


def compare(
    task: Task,
    embedder,
    names: Sequence[str] | None = None,
    repeats: int = 1,
    warmup: int = 3,
    latency_queries: int | None = None,
    jobs: int = 1,
) -> dict:
    """Build every available system; score each on every query (query vectors precomputed in
    one batch by the same model, optionally in ``jobs`` parallel processes); then time
    ``latency_queries`` queries (default: all) interleaved across systems, once with the query
    embedded live and once with its vector served from memory."""
    names, skipped = available(names)
    if not isinstance(embedder, QueryEmbedder):
        embedder = QueryEmbedder(embedder)
    embedder.precompute([q for _, q in task.queries])
    runners, build_s = {}, {}
    for name in names:
        t0 = time.perf_counter()
        runners[name] = SYSTEMS[name][0](task, embedder)
        build_s[name] = round(time.perf_counter() - t0, 2)
    embedder.cached = True
    t0 = time.perf_counter()
    ranked = rank_all(runners, task.queries, jobs)
    quality_s = time.perf_counter() - t0
    for fn in runners.values():
        for _, q in task.queries[:warmup]:
            fn(q)
    lat_q = task.queries[:latency_queries] if latency_queries else task.queries
    times: dict[str, list[float]] = {n: [] for n in runners}
    times_nq: dict[str, list[float]] = {n: [] for n in runners}
    same: dict[str, int] = {n: 0 for n in runners}
    order = list(runners)
    for r in range(repeats):
        # pass 1 embeds each query live (what a user sees); pass 2 serves the same query
        # vectors from memory (what the framework itself costs)
        for cached, sink in ((False, times), (True, times_nq)):
            embedder.cached = cached
            for i, (qid, q) in enumerate(lat_q):
                shift = (i + r) % len(order)
                for name in order[shift:] + order[:shift]:  # rotate who goes first
                    t0 = time.perf_counter()
                    got = runners[name](q)
                    sink[name].append((time.perf_counter() - t0) * 1e3)
                    same[name] += got == ranked[name][qid]
    embedder.cached = False
    rows = []
    base = statistics.median(times[order[0]]) if order else float("nan")
    base_nq = statistics.median(times_nq[order[0]]) if order else float("nan")
    for name in runners:
        nd = [ndcg_at_k(ranked[name].get(q, []), rel, 10) for q, rel in task.qrels.items()]
        rc = [recall_at_k(ranked[name].get(q, []), rel, 100) for q, rel in task.qrels.items()]
        lat, nq = _common.summary_ms(times[name]), _common.summary_ms(times_nq[name])
        rows.append(
            {
                "system": name,
                "ndcg@10": round(nanmean(nd), 4),
                "recall@100": round(nanmean(rc), 4),
                **lat,
                "x_ragsel_p50": round(lat["p50_ms"] / base, 2) if base else None,
                "no_embed_p50_ms": nq["p50_ms"],
                "no_embed_p95_ms": nq["p95_ms"],
                "x_ragsel_no_embed_p50": round(nq["p50_ms"] / base_nq, 2) if base_nq else None,
                "timed_rankings_identical": f"{same[name]}/{2 * repeats * len(lat_q)}",
                "build_s": build_s[name],
                "fusion": SYSTEMS[name][2],
            }
        )
    return {
        "rows": rows,
        "skipped": skipped,
        "queries": len(task.queries),
        "latency_queries": len(lat_q),
        "chunks": len(task.texts),
        "repeats": repeats,
        "jobs": jobs,
        "quality_pass_s": round(quality_s, 1),
    }


def markdown(res: dict) -> str:
    lines = [
        "| system | nDCG@10 | Recall@100 | p50 ms | p95 ms | × ragsel | "
        "p50 ms w/o query embedding | p95 ms w/o | × ragsel w/o | how it fuses |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['system']} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['x_ragsel_p50']:.2f} | "
            f"{r['no_embed_p50_ms']:.2f} | {r['no_embed_p95_ms']:.2f} | "
            f"{r['x_ragsel_no_embed_p50']:.1f} | {r['fusion']} |"
        )
    dash = " – |" * 8
    lines += [f"| {n} |{dash} skipped: {why} |" for n, why in res["skipped"].items()]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    names = [r["system"].replace(" (", "\n(") for r in rows]
    colors = ["#2a7" if r["system"].startswith("ragsel") else "#888" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.9 * len(rows) + 1.2), sharey=True)
    a.barh(names, [r["ndcg@10"] for r in rows], color=colors)
    a.set_xlabel("nDCG@10 (SciFact test)")
    a.set_xlim(0.5, max(0.8, max(r["ndcg@10"] for r in rows) + 0.02))
    y = np.arange(len(rows))
    b.barh(
        y - 0.2, [r["p50_ms"] for r in rows], height=0.4, color=colors, label="with query embedding"
    )
    b.barh(
        y + 0.2,
        [r["no_embed_p50_ms"] for r in rows],
        height=0.4,
        color=colors,
        alpha=0.45,
        label="without (vectors precomputed)",
    )
    b.set_xscale("log")
    b.set_xlabel("query latency p50 ms (log)")
    b.legend(fontsize=7)
    a.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=_common.DEFAULT_INDEX)
    ap.add_argument("--limit", type=int, default=None, help="first N test queries only")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes")
    ap.add_argument(
        "--latency-queries",
        type=int,
        default=100,
        help="queries timed (interleaved); quality always uses all",
    )
    ap.add_argument("--jobs", type=int, default=1, help="processes for the (untimed) quality pass")
    ap.add_argument("--out", type=Path, default=_common.results_dir("peers"))
    args = ap.parse_args(argv)

    from ragsel_eval.datasets import data_root

    from ragsel.backends.embedders import load_embedder

    t0 = time.perf_counter()
    task = scifact_task(args.index, data_root(), args.limit)
    emb = load_embedder("minilm")  # the same shared instance the ragsel dense stage uses
    emb.warm_up()
    print(
        f"SciFact: {len(task.texts)} chunks, {len(task.queries)} queries, index "
        f"{args.index} (loaded in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    m0 = _common.machine()
    res = compare(
        task, emb, repeats=args.repeats, latency_queries=args.latency_queries, jobs=args.jobs
    )
    res.update(
        machine_start=m0,
        machine_end=_common.machine(),
        versions=_common.versions(),
        index=args.index,
        command="python -m eval.benchmarks.peers.frameworks_hybrid"
        + (f" --limit {args.limit}" if args.limit else "")
        + f" --latency-queries {args.latency_queries} --jobs {args.jobs}",
    )
    table = markdown(res)
    print(table)
    _common.write_json("frameworks_hybrid.json", res, args.out)
    (args.out / "frameworks_hybrid.md").write_text(
        f"# Hybrid BM25 + MiniLM with RRF on SciFact, natively in each framework\n\n"
        f"Command: `{res['command']}`\n\n{table}\n",
        encoding="utf-8",
    )
    try:
        plot(res, args.out / "frameworks_hybrid.png")
    except ImportError:
        pass
    return res


if __name__ == "__main__":
    main()
