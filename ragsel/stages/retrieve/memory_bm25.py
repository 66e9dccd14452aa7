"""BM25 retrieval over documents held in memory (small corpora, tests, notebooks)."""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages.retrieve._common import (
    load_memory_chunks,
    matches,
    query_texts,
    to_candidates,
)
from ragsel.types import Candidates, Query


@register_stage("in_memory_bm25_retriever")
class InMemoryBM25Retriever(Stage):
    """BM25 (bm25s) over the given documents, indexed on first use.

    Same document options as ``in_memory_dense_retriever``; ``stemmer`` (a PyStemmer
    language or ``none``) and ``stopwords`` (``en`` or ``none``) set the tokenisation.

    Example: ``InMemoryBM25Retriever(documents=["Rent is due monthly."], top_k=3)``.
    """

    config: Config

    class Config(StageConfig):
        documents: list[str | dict[str, Any]] = Field(default_factory=list)
        path: str | None = None
        chunker: Literal["document", "words", "sentences"] = "document"
        chunk_size: int = Field(256, ge=1)
        overlap: int | None = Field(None, ge=0)
        stemmer: str = Field("english", description="PyStemmer language or 'none'")
        stopwords: str = Field("en", description="stop-word list or 'none'")
        k1: float = Field(1.5, ge=0)
        b: float = Field(0.75, ge=0, le=1)
        top_k: int = Field(10, ge=1)
        where: dict[str, Any] | None = None
        use_rewrites: bool = True
        rrf_k: int = Field(60, ge=0)

    def _setup(self) -> None:
        self._store: Any = None
        self._chunks: list[Any] = []
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._store is not None:
            return
        with self._lock:
            if self._store is not None:
                return
            from ragsel.index.bm25 import BM25Config, BM25Store

            cfg = self.config
            bm = BM25Config(
                stemmer=None if cfg.stemmer.lower() == "none" else cfg.stemmer,
                stopwords=None if cfg.stopwords.lower() == "none" else cfg.stopwords,
                k1=cfg.k1,
                b=cfg.b,
            )
            chunks = load_memory_chunks(
                cfg.documents, cfg.path, cfg.chunker, cfg.chunk_size, cfg.overlap, self.name
            )
            self._chunks = chunks
            self._store = BM25Store.build([c.text for c in chunks], [c.id for c in chunks], bm)

    def _run(self, query: Query) -> Candidates:
        self.warm_up()
        cfg = self.config
        mask = None
        if cfg.where:
            mask = np.asarray([matches(c, cfg.where) for c in self._chunks], dtype=np.float32)
        texts = query_texts(query, cfg.use_rewrites)
        if mask is not None and not mask.any():
            hits: list[list[Any]] = [[] for _ in texts]
        else:
            hits = [
                [(self._chunks[r], s) for r, s in h]
                for h in self._store.search_many(texts, cfg.top_k, mask=mask)
            ]
        note: dict[str, Any] = {"documents": len(self._chunks)}
        if cfg.where:
            note["where"] = cfg.where
        if not any(hits):
            note["empty_reason"] = (
                "no query term occurs in the documents (after stemming "
                "and stop-word removal)" + (" and filter" if cfg.where else "")
            )
        return to_candidates(
            self.name, "bm25", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
