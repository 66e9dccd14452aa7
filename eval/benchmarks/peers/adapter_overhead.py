"""Cost of the LangChain / LlamaIndex adapters per call, against calling the pipeline directly.

    python -m eval.benchmarks.peers.adapter_overhead [--n 2000] [--repeats 5] [--chunks 5]

The pipeline is ``FixedCandidates(20 chunks) -> top_k(k=--chunks)``: no model, so the time is
orchestration and conversion. Every case pairs an *adapter* call with its *direct* equivalent
(the same pipeline run on the same query), and the two are timed call by call, alternating
which goes first, so machine load hits both alike. The overhead of a case is the **median of
the paired differences** (adapter minus direct) in per-thread CPU time, which is what to read
on a shared, busy machine (wall-clock time also counts waiting for a core); the mean CPU
difference (it includes garbage collection) and wall-clock medians are printed too.

Two kinds of rows:

*Our code* - what the target (**< 200 µs per call**) applies to: the adapter's own method,
called without the framework's run machinery around it.

- ``lc.adapter``      ``RagselRetriever._get_relevant_documents``: query, run, 5 Documents
- ``lc.aadapter``     ``await RagselRetriever._aget_relevant_documents`` vs ``await arun``
- ``lc.compress``     ``RagselCompressor.compress_documents(docs, q)`` over 20 Documents (id,
                      score, source metadata) vs ``pipeline.run(q, inputs={...})`` given the
                      same 20 chunks as prebuilt Candidates: converts 20 in and 5 out
- ``lc.acompress``    ``await acompress_documents`` vs ``await arun`` (same inputs)
- ``li.adapter``      LlamaIndex ``RagselRetriever._retrieve`` without LlamaIndex's
                      instrumentation wrapper (``__wrapped__``): 5 NodeWithScore
- ``li.aadapter``     the same for ``_aretrieve``
- ``li.post_adapter`` ``RagselPostprocessor._postprocess_nodes`` (unwrapped) over 20 nodes

*With the framework* - the public call a user makes, for reference. It adds the framework's
own machinery, which every retriever of that framework pays, ragsel's or not: LangChain's
callback manager and run bookkeeping in ``invoke``/``ainvoke``; LlamaIndex's dispatcher spans
(a uuid and ``inspect.signature`` per decorated method), callback events and recursive-node
handling in ``retrieve``/``postprocess_nodes``.

- ``lc.invoke``, ``lc.ainvoke``, ``li.retrieve``, ``li.aretrieve``, ``li.postprocess``

Results go to ``eval/benchmarks/peers/results/adapter_overhead.json`` with the load average and a
fixed-loop calibration time (``sum(range(1000))``), since every figure scales with both;
``overhead_per_direct`` (overhead / direct time) is the most load-robust column.

Measured figures and their history: ``eval/benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from eval.benchmarks._common import (  # sets the offline/no-tracing env
    machine,
    results_dir,
    versions,
    write_json,
)
from ragsel import Pipeline, Query
from ragsel.stages.cutoff.top_k import TopKCutoff
from ragsel.testing import FixedCandidates

TEXTS = [f"passage {i} about clause {i % 7} of the agreement" for i in range(20)]
QUERY = "which clause restricts assignment"
TARGET_US = 200.0
#: cases measuring our adapter code only (the target applies to these)
OURS = (
    "lc.adapter",
    "lc.aadapter",
    "lc.compress",
    "lc.acompress",
    "li.adapter",
    "li.aadapter",
    "li.post_adapter",
)

_clock, _cpu = time.perf_counter_ns, time.thread_time_ns


def calibration_us() -> float:
    """A fixed pure-Python loop: compare runs on machines/loads (``sum(range(1000))``)."""
    import timeit

    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


def cases(k: int) -> dict[str, tuple[Callable, Callable, bool]]:
    """name -> (adapter call, direct call, is_async)."""
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from ragsel_langchain import RagselCompressor
    from ragsel_langchain import RagselRetriever as LCRetriever
    from ragsel_langchain.retriever import from_documents
    from ragsel_llamaindex import RagselPostprocessor
    from ragsel_llamaindex import RagselRetriever as LIRetriever
    from ragsel_llamaindex.retriever import from_nodes

    def retrieval() -> Pipeline:
        return Pipeline.linear([FixedCandidates(texts=TEXTS), TopKCutoff(k=k)])

    def unwrapped(cls: type, method: str) -> Callable:
        """``cls.method`` without LlamaIndex's instrumentation (a wrapt wrapper)."""
        fn = getattr(cls, method)
        return getattr(fn, "__wrapped__", fn)

    q = Query(QUERY)
    lc = LCRetriever(pipeline=retrieval())
    li = LIRetriever(retrieval())
    p_lc, p_li = lc.pipeline, li.pipeline
    # what another retriever returns: text, an id, a score and a little metadata
    scores = [1.0 - i / 40 for i in range(len(TEXTS))]
    docs = [
        Document(page_content=t, id=f"d{i}", metadata={"source": "a.txt", "score": sc})
        for i, (t, sc) in enumerate(zip(TEXTS, scores))
    ]
    nodes = [
        NodeWithScore(node=TextNode(id_=f"d{i}", text=t, metadata={"source": "a.txt"}), score=sc)
        for i, (t, sc) in enumerate(zip(TEXTS, scores))
    ]
    comp = RagselCompressor(pipeline=Pipeline.linear([TopKCutoff(k=k)]))
    post = RagselPostprocessor(pipeline=Pipeline.linear([TopKCutoff(k=k)]))
    cands_lc, cands_li = from_documents(docs), from_nodes(nodes)
    bundle = QueryBundle(QUERY)
    li_retrieve = unwrapped(LIRetriever, "_retrieve")
    li_aretrieve = unwrapped(LIRetriever, "_aretrieve")
    li_post = unwrapped(RagselPostprocessor, "_postprocess_nodes")

    def run_lc() -> object:
        return p_lc.run(q).candidates

    def run_li() -> object:
        return p_li.run(q).candidates

    def run_comp() -> object:
        return comp.pipeline.run(q, inputs={comp.input: cands_lc}).candidates

    def run_post() -> object:
        return post.pipeline.run(q, inputs={post.input: cands_li}).candidates

    return {
        "lc.adapter": (lambda: lc._get_relevant_documents(QUERY, run_manager=None), run_lc, False),
        "lc.aadapter": (
            lambda: lc._aget_relevant_documents(QUERY, run_manager=None),
            lambda: p_lc.arun(q),
            True,
        ),
        "lc.compress": (lambda: comp.compress_documents(docs, QUERY), run_comp, False),
        "lc.acompress": (
            lambda: comp.acompress_documents(docs, QUERY),
            lambda: comp.pipeline.arun(q, inputs={comp.input: cands_lc}),
            True,
        ),
        "li.adapter": (lambda: li_retrieve(li, bundle), run_li, False),
        "li.aadapter": (lambda: li_aretrieve(li, bundle), lambda: p_li.arun(q), True),
        "li.post_adapter": (lambda: li_post(post, nodes, bundle), run_post, False),
        "lc.invoke": (lambda: lc.invoke(QUERY), run_lc, False),
        "lc.ainvoke": (lambda: lc.ainvoke(QUERY), lambda: p_lc.arun(q), True),
        "li.retrieve": (lambda: li.retrieve(QUERY), run_li, False),
        "li.aretrieve": (lambda: li.aretrieve(QUERY), lambda: p_li.arun(q), True),
        "li.postprocess": (
            lambda: post.postprocess_nodes(nodes, query_bundle=bundle),
            run_post,
            False,
        ),
    }


def _ids(out: object) -> list[str]:
    """Chunk ids of a pipeline result, Candidates, Documents or NodeWithScores."""
    out = getattr(out, "candidates", out)  # a RunResult
    if hasattr(out, "ids"):
        return list(out.ids)
    return [x.node.node_id if hasattr(x, "node") else x.id for x in out]


def check_same_output(table: dict[str, tuple[Callable, Callable, bool]]) -> None:
    """Every adapter call must return the chunks its direct call selects (else the pair
    compares different work)."""
    for name, (adapter, direct, is_async) in table.items():
        if is_async:

            async def both() -> tuple[object, object]:
                return await adapter(), await direct()  # noqa: B023 - awaited right here

            a, d = asyncio.run(both())
        else:
            a, d = adapter(), direct()
        if _ids(a) != _ids(d) or not _ids(a):
            raise SystemExit(f"{name}: adapter returned {_ids(a)}, direct {_ids(d)}")


def paired_sync(adapter: Callable, direct: Callable, n: int) -> list[tuple[int, ...]]:
    """``n`` pairs ``(adapter_cpu, direct_cpu, adapter_wall, direct_wall)`` in ns, the two
    calls of a pair back to back, alternating which runs first."""
    out = []
    for i in range(n):
        first, second = (adapter, direct) if i % 2 else (direct, adapter)
        c0, w0 = _cpu(), _clock()
        first()
        c1, w1 = _cpu(), _clock()
        second()
        c2, w2 = _cpu(), _clock()
        out.append(_pair(i, c0, c1, c2) + _pair(i, w0, w1, w2))
    return out


def _pair(i: int, t0: int, t1: int, t2: int) -> tuple[int, int]:
    """(adapter, direct) durations of pair ``i``: the adapter ran first when ``i`` is odd."""
    return (t1 - t0, t2 - t1) if i % 2 else (t2 - t1, t1 - t0)


def paired_async(adapter: Callable, direct: Callable, n: int) -> list[tuple[int, ...]]:
    """:func:`paired_sync` for coroutine functions, all in one event loop."""

    async def go() -> list[tuple[int, ...]]:
        out = []
        for i in range(n):
            first, second = (adapter, direct) if i % 2 else (direct, adapter)
            c0, w0 = _cpu(), _clock()
            await first()
            c1, w1 = _cpu(), _clock()
            await second()
            c2, w2 = _cpu(), _clock()
            out.append(_pair(i, c0, c1, c2) + _pair(i, w0, w1, w2))
        return out

    return asyncio.run(go())


def summarise(name: str, pairs: list[tuple[int, ...]]) -> dict:
    us = 1e3
    cpu_a = [p[0] / us for p in pairs]
    cpu_d = [p[1] / us for p in pairs]
    wall_a = [p[2] / us for p in pairs]
    wall_d = [p[3] / us for p in pairs]
    diff = [a - d for a, d in zip(cpu_a, cpu_d)]
    return {
        "case": name,
        "ours": name in OURS,
        "calls": len(pairs),
        "cpu_direct_us": round(statistics.median(cpu_d), 1),
        "cpu_adapter_us": round(statistics.median(cpu_a), 1),
        "overhead_us": round(statistics.median(diff), 1),
        "overhead_mean_us": round(statistics.fmean(diff), 1),
        # load-robust: the direct run slows down with the machine exactly as the adapter
        "overhead_per_direct": round(statistics.median(diff) / statistics.median(cpu_d), 2),
        "wall_direct_us": round(statistics.median(wall_d), 1),
        "wall_adapter_us": round(statistics.median(wall_a), 1),
        "wall_overhead_us": round(statistics.median(wall_a) - statistics.median(wall_d), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="call pairs per case and round")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over all cases")
    ap.add_argument("--chunks", type=int, default=5, help="chunks returned per call")
    ap.add_argument("--out", type=Path, default=results_dir("peers"))
    args = ap.parse_args()
    table = cases(args.chunks)
    check_same_output(table)
    load_before = os.getloadavg()
    pairs: dict[str, list[tuple[int, ...]]] = {name: [] for name in table}
    for adapter, direct, is_async in table.values():  # warm up every path
        (paired_async if is_async else paired_sync)(adapter, direct, 50)
    for _ in range(args.repeats):  # rounds: a load change mid-run spreads over every case
        for name, (adapter, direct, is_async) in table.items():
            pairs[name] += (paired_async if is_async else paired_sync)(adapter, direct, args.n)
    rows = [summarise(name, ps) for name, ps in pairs.items()]
    cal = calibration_us()
    load_after = os.getloadavg()

    print(
        f"adapter overhead per call ({args.chunks} chunks returned, {args.n} x "
        f"{args.repeats} paired calls per case; µs)"
    )
    print(f"{'':<17}{'CPU time, medians':^40}{'wall-clock medians':^30}")
    print(
        f"{'case':<17}{'direct':>9}{'adapter':>9}{'overhead':>10}{'(mean)':>9}   "
        f"{'direct':>9}{'adapter':>9}{'overhead':>10}"
    )
    for r in rows:
        if r["case"] == "lc.invoke":
            print("-- with the framework's own machinery (not the target):")
        print(
            f"{r['case']:<17}{r['cpu_direct_us']:>9.1f}{r['cpu_adapter_us']:>9.1f}"
            f"{r['overhead_us']:>10.1f}{r['overhead_mean_us']:>9.1f}   "
            f"{r['wall_direct_us']:>9.1f}{r['wall_adapter_us']:>9.1f}"
            f"{r['wall_overhead_us']:>10.1f}"
        )
    print(
        f"calibration: sum(range(1000)) = {cal:.1f} µs; load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs (a busy machine "
        "inflates every figure)"
    )
    ours = [r for r in rows if r["ours"]]
    worst = max(ours, key=lambda r: r["overhead_us"])
    print(
        "our adapter code (median paired CPU overhead): "
        + ", ".join(f"{r['case']} {r['overhead_us']:.0f}" for r in ours)
        + f" µs; target < {TARGET_US:.0f} µs: "
        + (
            "met by every adapter"
            if worst["overhead_us"] < TARGET_US
            else f"MISSED by {worst['case']}"
        )
    )
    write_json(
        "adapter_overhead.json",
        {
            "rows": rows,
            "n": args.n,
            "repeats": args.repeats,
            "chunks": args.chunks,
            "target_us": TARGET_US,
            "overhead": "median of paired (adapter - direct) CPU time",
            "calibration_us": round(cal, 2),
            "load_avg_before": [round(x, 2) for x in load_before],
            "machine": machine(),
            "versions": versions(("ragsel", "pydantic", "langchain-core", "llama-index-core")),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
