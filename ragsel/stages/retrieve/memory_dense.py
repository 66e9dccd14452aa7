"""Dense retrieval over documents held in memory (small corpora, tests, notebooks)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._resources import Embedders
from ragsel.stages.retrieve._common import (
    load_memory_chunks,
    matches,
    query_texts,
    to_candidates,
)
from ragsel.types import Candidates, Query


@register_stage("in_memory_dense_retriever")
class InMemoryDenseRetriever(Stage):
    """Embeds the given documents once (on first use) and ranks them by cosine similarity.

    ``documents`` holds texts or ``{id, text, title, metadata}`` objects; ``path`` adds a
    corpus file or folder (.txt/.md/.jsonl). Documents are one chunk each unless ``chunker``
    says otherwise. ``where`` filters on metadata (equality, ``$in``, ``$gt``... ).

    Example: ``InMemoryDenseRetriever(documents=["Rent is due monthly.", "Pets need consent."],
    top_k=1)`` or ``{type: in_memory_dense_retriever, path: docs.jsonl, top_k: 5}``.
    """

    config: Config

    class Config(StageConfig):
        documents: list[str | dict[str, Any]] = Field(
            default_factory=list, description="texts or document objects"
        )
        path: str | None = Field(None, description="a corpus file or folder to load as well")
        chunker: Literal["document", "words", "sentences"] = "document"
        chunk_size: int = Field(256, ge=1, description="words per chunk (words/sentences)")
        overlap: int | None = Field(None, ge=0, description="overlap in words (default 10%)")
        embedder: str = Field("minilm", description="minilm, minilm-onnx or a local ST dir")
        threads: int | None = Field(None, ge=1)
        top_k: int = Field(10, ge=1)
        where: dict[str, Any] | None = Field(None, description="metadata filter")
        use_rewrites: bool = True
        rrf_k: int = Field(60, ge=0)

    def _setup(self) -> None:
        self._chunks: list[Any] | None = None
        self._matrix: np.ndarray | None = None
        self._embedder: Any = None
        self._embedders = Embedders(threads=self.config.threads)
        self._lock = threading.Lock()

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder)

    def warm_up(self) -> None:
        if self._matrix is not None:
            return
        with self._lock:
            if self._matrix is not None:
                return
            cfg = self.config
            chunks = load_memory_chunks(
                cfg.documents, cfg.path, cfg.chunker, cfg.chunk_size, cfg.overlap, self.name
            )
            emb = self._embedders.get(cfg.embedder)
            self._embedder, self._chunks = emb, chunks
            self._matrix = emb.embed([c.text for c in chunks])

    def _run(self, query: Query) -> Candidates:
        self.warm_up()
        assert self._matrix is not None and self._chunks is not None
        cfg = self.config
        rows = np.arange(len(self._chunks))
        if cfg.where:
            rows = np.asarray(
                [i for i, c in enumerate(self._chunks) if matches(c, cfg.where)], dtype=np.int64
            )
        texts = query_texts(query, cfg.use_rewrites)
        hits = []
        if rows.size:
            sims = self._embedder.embed(texts) @ self._matrix[rows].T
            for s in sims:
                k = min(cfg.top_k, len(rows))
                order = np.lexsort((rows, -s))[:k]
                hits.append([(self._chunks[rows[i]], float(s[i])) for i in order])
        else:
            hits = [[] for _ in texts]
        note: dict[str, Any] = {"documents": len(self._chunks)}
        if cfg.where:
            note["where"] = cfg.where
        return to_candidates(
            self.name, "dense", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
