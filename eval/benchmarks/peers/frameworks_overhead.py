"""Orchestration overhead: the same 6-step pipeline in ragsel, LangChain, LlamaIndex, Haystack.

    python -m eval.benchmarks.peers.frameworks_overhead [--n 1000] [--repeats 5] [--out DIR]

Steps: rewrite -> retrieve -> rerank -> select -> cutoff -> verify. Every step is a no-op or
returns fixed data (10 documents), so the time measured is the framework's own: calling,
wiring, validation, tracing. Each framework is built the way its docs show:

- plain Python: the six functions called by hand (the floor);
- ragsel: ``Pipeline.linear`` of six stages, ``run`` and ``arun`` (tracing always on);
- LangChain LCEL: ``RunnableLambda`` x6 composed with ``|``, ``invoke``;
- LangChain ``ContextualCompressionRetriever`` over a ``BaseRetriever`` with a
  ``DocumentCompressorPipeline`` of 4 compressors (from ``langchain_classic``; skipped if absent);
- LlamaIndex: a ``BaseRetriever`` + 4 ``BaseNodePostprocessor``\\ s called by hand, and a
  ``Workflow`` of six steps (async);
- Haystack 2: a ``Pipeline`` of six ``@component``\\ s (skipped with a note if not installed).

Repetitions are interleaved so machine drift hits all equally; medians, p95 and the ratio to
ragsel (sync) are printed and written as Markdown + PNG to ``--out``.
"""

# no "from __future__ import annotations": Haystack resolves component hints at runtime

import argparse
import asyncio
import os

# no telemetry or tracing calls from any framework during the measurement
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
os.environ.setdefault("LANGSMITH_TRACING", "false")
import importlib.metadata as md
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ragsel import Candidates, Pipeline, Query, Stage
from ragsel.testing import make_chunks

TEXTS = [f"passage {i} about contract assignment and consent" for i in range(10)]
QUERY = "can the supplier assign the contract?"


# ---------------------------------------------------------------- ragsel
class _Rewrite(Stage):
    type_name = "_bench_rewrite"
    blocking = False

    def _run(self, query: Query) -> Query:
        return query


class _Retrieve(Stage):
    type_name = "_bench_retrieve"
    blocking = False

    def _setup(self) -> None:
        self._c = Candidates.retrieved(
            "retrieve", zip(make_chunks(TEXTS), [1.0 - i / 20 for i in range(10)])
        )

    def _run(self, query: Query) -> Candidates:
        return self._c


class _Pass(Stage):
    type_name = "_bench_pass"
    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        return candidates


def build_ragsel() -> tuple[Callable[[], object], Callable[[], object]]:
    p = Pipeline.linear(
        [
            ("rewrite", _Rewrite()),
            ("retrieve", _Retrieve()),
            ("rerank", _Pass()),
            ("select", _Pass()),
            ("cutoff", _Pass()),
            ("verify", _Pass()),
        ]
    )
    q = Query(QUERY)
    p.run(q)
    return (lambda: p.run(q)), (lambda: p.arun(q))


# ---------------------------------------------------------------- plain
def build_plain() -> Callable[[], object]:
    docs = list(TEXTS)

    def rewrite(q):
        return q

    def retrieve(q):
        return docs

    def same(d):
        return d

    def run():
        d = retrieve(rewrite(QUERY))
        for f in (same, same, same, same):
            d = f(d)
        return d

    return run


# ---------------------------------------------------------------- LangChain
def build_lcel() -> Callable[[], object]:
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    docs = [Document(page_content=t, metadata={"id": i}) for i, t in enumerate(TEXTS)]
    chain = (
        RunnableLambda(lambda q: q)
        | RunnableLambda(lambda q: docs)
        | RunnableLambda(lambda d: d)
        | RunnableLambda(lambda d: d)
        | RunnableLambda(lambda d: d)
        | RunnableLambda(lambda d: d)
    )
    return lambda: chain.invoke(QUERY)


def build_lc_compression() -> Callable[[], object]:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.retrievers import BaseRetriever

    docs = [Document(page_content=t, metadata={"id": i}) for i, t in enumerate(TEXTS)]

    class Fixed(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ):
            return docs

    class Same(BaseDocumentCompressor):
        def compress_documents(self, documents, query, callbacks=None):
            return documents

    retr = ContextualCompressionRetriever(
        base_compressor=DocumentCompressorPipeline(transformers=[Same(), Same(), Same(), Same()]),
        base_retriever=Fixed(),
    )
    return lambda: retr.invoke(QUERY)


# ---------------------------------------------------------------- LlamaIndex
def build_llamaindex() -> Callable[[], object]:
    from llama_index.core import QueryBundle
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=str(i)), score=1.0 - i / 20)
        for i, t in enumerate(TEXTS)
    ]

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return nodes

    class Same(BaseNodePostprocessor):
        def _postprocess_nodes(self, nodes, query_bundle=None):
            return nodes

    retr, posts = Fixed(), [Same(), Same(), Same(), Same()]

    def run():
        qb = QueryBundle(QUERY)  # the rewrite step
        ns = retr.retrieve(qb)
        for p in posts:
            ns = p.postprocess_nodes(ns, query_bundle=qb)
        return ns

    return run


def build_llamaindex_workflow() -> Callable[[], object]:
    from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step

    docs = list(TEXTS)

    class Q(Event):
        q: str

    class D1(Event):
        d: list

    class D2(Event):
        d: list

    class D3(Event):
        d: list

    class D4(Event):
        d: list

    class Flow(Workflow):
        @step
        async def rewrite(self, ev: StartEvent) -> Q:
            return Q(q=ev.query)

        @step
        async def retrieve(self, ev: Q) -> D1:
            return D1(d=docs)

        @step
        async def rerank(self, ev: D1) -> D2:
            return D2(d=ev.d)

        @step
        async def select(self, ev: D2) -> D3:
            return D3(d=ev.d)

        @step
        async def cutoff(self, ev: D3) -> D4:
            return D4(d=ev.d)

        @step
        async def verify(self, ev: D4) -> StopEvent:
            return StopEvent(result=ev.d)

    flow = Flow(timeout=60, verbose=False)
    return lambda: flow.run(query=QUERY)


# ---------------------------------------------------------------- Haystack
def build_haystack() -> Callable[[], object]:
    from haystack import Document, component
    from haystack import Pipeline as HPipeline

    docs = [Document(content=t, id=str(i)) for i, t in enumerate(TEXTS)]

    @component
    class Rewrite:
        @component.output_types(query=str)
        def run(self, query: str):
            return {"query": query}

    @component
    class Retrieve:
        @component.output_types(documents=list[Document])
        def run(self, query: str):
            return {"documents": docs}

    @component
    class Same:
        @component.output_types(documents=list[Document])
        def run(self, documents: list[Document]):
            return {"documents": documents}

    p = HPipeline()
    p.add_component("rewrite", Rewrite())
    p.add_component("retrieve", Retrieve())
    for n in ("rerank", "select", "cutoff", "verify"):
        p.add_component(n, Same())
    p.connect("rewrite.query", "retrieve.query")
    p.connect("retrieve.documents", "rerank.documents")
    p.connect("rerank.documents", "select.documents")
    p.connect("select.documents", "cutoff.documents")
    p.connect("cutoff.documents", "verify.documents")
    return lambda: p.run({"rewrite": {"query": QUERY}})


# ---------------------------------------------------------------- harness
def _time_sync(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def _time_async(fn: Callable[[], object], n: int) -> list[float]:
    async def go() -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await fn()
            out.append((time.perf_counter_ns() - t0) / 1e3)
        return out

    return asyncio.run(go())


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ragsel", "langchain-core", "langchain-classic", "llama-index-core", "haystack-ai"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    rg_sync, rg_async = build_ragsel()
    candidates: list[tuple[str, Callable[[], Callable[[], object]], bool]] = [
        ("plain Python calls", build_plain, False),
        ("ragsel run (sync)", lambda: rg_sync, False),
        ("ragsel arun (async)", lambda: rg_async, True),
        ("LangChain LCEL", build_lcel, False),
        ("LangChain ContextualCompressionRetriever", build_lc_compression, False),
        ("LlamaIndex retriever + 4 postprocessors", build_llamaindex, False),
        ("LlamaIndex Workflow (async)", build_llamaindex_workflow, True),
        ("Haystack 2 Pipeline", build_haystack, False),
    ]
    runners: dict[str, tuple[Callable[[], object], bool]] = {}
    skipped: dict[str, str] = {}
    for name, build, is_async in candidates:
        try:
            runners[name] = (build(), is_async)
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name})"
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for fn, is_async in runners.values():  # warm-up
        (_time_async if is_async else _time_sync)(fn, min(100, args.n))
    for _ in range(args.repeats):
        for name, (fn, is_async) in runners.items():
            n = args.n if "Workflow" not in name else max(50, args.n // 10)
            samples[name].extend((_time_async if is_async else _time_sync)(fn, n))

    base = statistics.median(samples["ragsel run (sync)"])
    rows = []
    for name, xs in samples.items():
        med = statistics.median(xs)
        p95 = sorted(xs)[int(0.95 * (len(xs) - 1))]
        rows.append((name, med, p95, med / base, len(xs)))
    lines = [
        "| framework (6 no-op steps) | median µs | p95 µs | × ragsel sync | n |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {m:.1f} | {p:.1f} | {r:.2f} | {k} |" for n, m, p, r, k in rows]
    lines += [f"| {n} | – | – | – | {why} |" for n, why in skipped.items()]
    table = "\n".join(lines)
    print(table)
    versions = _versions()
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frameworks_overhead.md").write_text(
        "# Orchestration overhead, 6 no-op steps\n\n"
        f"Command: `python -m eval.benchmarks.peers.frameworks_overhead --n {args.n} "
        f"--repeats {args.repeats}`\n\n{table}\n\nVersions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + "\n"
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.5))
        names = [r[0] for r in rows]
        ax.barh(
            names, [r[1] for r in rows], color=["#2a7" if "ragsel" in n else "#888" for n in names]
        )
        ax.set_xscale("log")
        ax.set_xlabel("median µs per query (log scale)")
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(args.out / "frameworks_overhead.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
