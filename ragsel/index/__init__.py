"""The local index: chroma (vectors, texts, metadata) + bm25s (BM25) + a manifest, in one
folder. See :class:`ragsel.index.local.LocalIndex`.

Importing this package does not import chromadb or bm25s; they load when an index is opened.
"""

from ragsel.index.bm25 import BM25Config
from ragsel.index.builder import IndexReport
from ragsel.index.local import IndexIncompleteWarning, LocalIndex, clear_index_cache, open_index

__all__ = [
    "BM25Config",
    "IndexIncompleteWarning",
    "IndexReport",
    "LocalIndex",
    "clear_index_cache",
    "open_index",
]
