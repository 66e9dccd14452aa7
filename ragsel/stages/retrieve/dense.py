"""Dense retrieval over a local index (chroma store, exact cosine search in numpy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._resources import Embedders
from ragsel.stages.retrieve._common import query_texts, to_candidates
from ragsel.types import Candidates, Query


@register_stage("dense_retriever")
class DenseRetriever(Stage):
    """The ``top_k`` chunks of a local index most similar to the query (cosine).

    The index is a folder built by ``ragsel index``; its vectors are held in memory after the
    first query (exact search, ~0.5 ms per 5k chunks). ``where`` is a chroma metadata filter.
    With query rewrites, the query and each rewrite are searched and fused by RRF.

    Example: ``DenseRetriever(index="idx", top_k=20)`` or in YAML
    ``{type: dense_retriever, index: "${RAGSEL_INDEX:-.ragsel/index}", top_k: 20}``.
    """

    config: Config

    class Config(StageConfig):
        index: str = Field(".ragsel/index", description="index folder (built by ragsel index)")
        top_k: int = Field(10, ge=1, description="how many chunks to return")
        embedder: str | None = Field(
            None, description="query embedder; default: the one the index was built with"
        )
        threads: int | None = Field(None, ge=1, description="embedding threads")
        where: dict[str, Any] | None = Field(None, description="chroma metadata filter")
        use_rewrites: bool = Field(True, description="also search query.rewrites (RRF)")
        rrf_k: int = Field(60, ge=0, description="RRF constant when fusing rewrites")

    def _setup(self) -> None:
        self._index: Any = None
        self._embedder: Any = None
        self._embedders = Embedders(threads=self.config.threads)

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder)

    def warm_up(self) -> None:
        from ragsel.index import open_index

        ix = open_index(self.config.index)
        emb = self._embedders.get(self.config.embedder or ix.embedder_spec)
        ix.check_embedder(emb, self.name)
        ix.load()
        emb.warm_up()
        self._index, self._embedder = ix, emb

    def _run(self, query: Query) -> Candidates:
        if self._index is None:
            self.warm_up()
        cfg = self.config
        texts = query_texts(query, cfg.use_rewrites)
        vecs = self._embedder.embed(texts)
        hits = self._index.dense_search(vecs, cfg.top_k, where=cfg.where)
        note: dict[str, Any] = {"index": str(self._index.path)}
        if cfg.where:
            note["where"] = cfg.where
        return to_candidates(
            self.name, "dense", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
