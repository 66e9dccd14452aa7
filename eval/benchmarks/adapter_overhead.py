"""Cost of the LangChain / LlamaIndex adapters per call, against calling the pipeline directly.

    python eval/benchmarks/adapter_overhead.py [--n 2000] [--repeats 5] [--chunks 5]

The pipeline is ``FixedCandidates(20 chunks) -> top_k(k=--chunks)``: no model, so the time is
orchestration and conversion. For each adapter call the *direct* equivalent is timed in the
same interleaved round; the overhead is the difference, as wall-clock medians and as
per-thread CPU time means (the CPU figure is what to compare on a shared, busy machine,
where wall-clock time includes waiting for a core):

- ``lc.invoke``        ``RagselRetriever.invoke(q)`` vs ``pipeline.run(q)`` (includes LangChain's
                       own callback manager and run bookkeeping)
- ``lc.adapter``       ``RagselRetriever._get_relevant_documents`` (our code only: query
                       coercion, run, Document building) vs ``pipeline.run(q)``
- ``lc.ainvoke``       ``ainvoke`` vs ``await pipeline.arun(q)``
- ``lc.compress``      ``RagselCompressor.compress_documents(docs, q)`` over 20 Documents
                       (id, score, source metadata) vs ``pipeline.run(q, inputs={...})`` with
                       prebuilt Candidates: the overhead converts all 20 inputs
- ``li.retrieve``      LlamaIndex ``RagselRetriever.retrieve(q)`` vs ``pipeline.run(q)``
                       (includes LlamaIndex's dispatcher/callback events)
- ``li.adapter``       ``RagselRetriever._retrieve`` (our code only)
- ``li.postprocess``   ``RagselPostprocessor.postprocess_nodes`` over 20 nodes vs
                       ``pipeline.run(q, inputs=...)`` (includes LlamaIndex's dispatcher)
- ``li.post_adapter``  ``RagselPostprocessor._postprocess_nodes`` (our code only)

Target: our adapter code under 0.2 ms per call. Results also go to
``eval/benchmarks/results/adapter_overhead.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared benchmark helpers

from _bench import machine, versions, write_json  # noqa: E402  (sets offline/no-tracing env)
from frameworks_overhead import _time_async as atimed  # noqa: E402
from frameworks_overhead import _time_sync as timed  # noqa: E402

from ragsel import Pipeline, Query  # noqa: E402
from ragsel.stages.cutoff.top_k import TopKCutoff  # noqa: E402
from ragsel.testing import FixedCandidates  # noqa: E402

TEXTS = [f"passage {i} about clause {i % 7} of the agreement" for i in range(20)]
QUERY = "which clause restricts assignment"


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

    q = Query(QUERY)
    lc = LCRetriever(pipeline=retrieval())
    li = LIRetriever(retrieval())
    p_lc, p_li = lc.pipeline, li.pipeline
    # what another retriever returns: text, an id, a score and a little metadata
    scores = [1.0 - i / 40 for i in range(len(TEXTS))]
    docs = [Document(page_content=t, id=f"d{i}", metadata={"source": "a.txt", "score": sc})
            for i, (t, sc) in enumerate(zip(TEXTS, scores))]
    nodes = [NodeWithScore(node=TextNode(id_=f"d{i}", text=t, metadata={"source": "a.txt"}),
                           score=sc) for i, (t, sc) in enumerate(zip(TEXTS, scores))]
    comp = RagselCompressor(pipeline=Pipeline.linear([TopKCutoff(k=k)]))
    post = RagselPostprocessor(pipeline=Pipeline.linear([TopKCutoff(k=k)]))
    cands_lc, cands_li = from_documents(docs), from_nodes(nodes)
    bundle = QueryBundle(QUERY)
    return {
        "lc.invoke": (lambda: lc.invoke(QUERY), lambda: p_lc.run(q).selection, False),
        "lc.adapter": (lambda: lc._get_relevant_documents(QUERY, run_manager=None),
                       lambda: p_lc.run(q).selection, False),
        "lc.ainvoke": (lambda: lc.ainvoke(QUERY), lambda: p_lc.arun(q), True),
        "lc.compress": (lambda: comp.compress_documents(docs, QUERY),
                        lambda: comp.pipeline.run(q, inputs={comp.input: cands_lc}), False),
        "li.retrieve": (lambda: li.retrieve(QUERY), lambda: p_li.run(q).selection, False),
        "li.adapter": (lambda: li._retrieve(bundle), lambda: p_li.run(q).selection, False),
        "li.postprocess": (lambda: post.postprocess_nodes(nodes, query_bundle=bundle),
                           lambda: post.pipeline.run(q, inputs={post.input: cands_li}), False),
        "li.post_adapter": (lambda: post._postprocess_nodes(nodes, bundle),
                            lambda: post.pipeline.run(q, inputs={post.input: cands_li}), False),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="calls per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--chunks", type=int, default=5, help="chunks returned per call")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    table = cases(args.chunks)
    samples: dict[str, dict[str, list[float]]] = {n: {"adapter": [], "direct": []}
                                                  for n in table}
    cpu: dict[str, dict[str, int]] = {n: {"adapter": 0, "direct": 0} for n in table}
    for name, (adapter, direct, is_async) in table.items():  # warm up every path
        run = atimed if is_async else timed
        run(adapter, 50), run(direct, 50)
    for _ in range(args.repeats):
        for name, (adapter, direct, is_async) in table.items():
            run = atimed if is_async else timed
            for which, fn in (("direct", direct), ("adapter", adapter)):
                t0 = time.thread_time_ns()  # CPU time of this thread: robust to a busy machine
                samples[name][which] += run(fn, args.n)
                cpu[name][which] += time.thread_time_ns() - t0
    rows = []
    print(f"adapter overhead per call ({args.chunks} chunks returned, n={args.n} x "
          f"{args.repeats} rounds; medians in µs)")
    print(f"{'':<16}{'wall-clock medians':^30}{'CPU time means':^30}")
    print(f"{'case':<16}{'direct':>10}{'adapter':>10}{'overhead':>10}"
          f"{'direct':>10}{'adapter':>10}{'overhead':>10}")
    calls = args.n * args.repeats
    for name, s in samples.items():
        d, a = statistics.median(s["direct"]), statistics.median(s["adapter"])
        cd, ca = cpu[name]["direct"] / calls / 1e3, cpu[name]["adapter"] / calls / 1e3
        rows.append({"case": name, "direct_us": round(d, 1), "adapter_us": round(a, 1),
                     "overhead_us": round(a - d, 1), "cpu_direct_us": round(cd, 1),
                     "cpu_adapter_us": round(ca, 1), "cpu_overhead_us": round(ca - cd, 1)})
        print(f"{name:<16}{d:>10.1f}{a:>10.1f}{a - d:>10.1f}{cd:>10.1f}{ca:>10.1f}"
              f"{ca - cd:>10.1f}")
    cal = calibration_us()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"calibration: sum(range(1000)) = {cal:.1f} µs; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs (a busy machine inflates every figure alike)")
    ours = [r for r in rows if r["case"].endswith(("adapter", "compress"))]
    print("overhead of our adapter code (CPU time): " + ", ".join(
        f"{r['case']} {r['cpu_overhead_us']:.0f} µs" for r in ours) + " (target < 200 µs)")
    write_json("adapter_overhead.json", {
        "rows": rows, "n": args.n, "repeats": args.repeats, "chunks": args.chunks,
        "calibration_us": round(cal, 2), "machine": machine(),
        "versions": versions(("ragsel", "langchain-core", "llama-index-core"))}, args.out)


if __name__ == "__main__":
    main()
