"""Ingestion: load a corpus into :class:`Document`\\ s and cut them into chunks.

::

    from ragsel.ingest import iter_documents, make_chunker

    chunker = make_chunker("words", size=256)          # 10% overlap by default
    for doc in iter_documents("corpus/"):
        for chunk in chunker.chunk(doc):
            assert doc.text[chunk.span[0]:chunk.span[1]] == chunk.text
"""

from ragsel.ingest.chunkers import (
    ChunkerConfig,
    DocumentChunker,
    SentenceChunker,
    WordChunker,
    chunk_documents,
    make_chunker,
)
from ragsel.ingest.documents import (
    Document,
    IngestWarning,
    iter_documents,
    iter_jsonl,
    load_documents,
    load_text_file,
)

__all__ = [
    "ChunkerConfig",
    "Document",
    "DocumentChunker",
    "IngestWarning",
    "SentenceChunker",
    "WordChunker",
    "chunk_documents",
    "iter_documents",
    "iter_jsonl",
    "load_documents",
    "load_text_file",
    "make_chunker",
]
