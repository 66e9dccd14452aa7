"""Index the example corpus and select evidence for a question, offline (MiniLM + BM25)."""

from pathlib import Path

from ragsel.index import LocalIndex
from ragsel.spec import load_pipeline

root = Path(__file__).resolve().parents[1]
index = root / ".ragsel" / "examples-index"
with LocalIndex.create(index) as ix:  # re-running adds nothing twice
    ix.add_corpus(root / "examples" / "corpus")
pipe = load_pipeline(root / "pipelines" / "local.yaml", variables={"RAGSEL_INDEX": str(index)})
question = "How much notice does the buyer need to terminate for convenience?"
for sc in pipe.run(question).selection.chunks:
    print(f"{sc.score:.4f}  {sc.chunk.doc_id} #{sc.chunk.position}  {sc.chunk.text[:90]!r}")
