"""BM25 retrieval over a local index (bm25s, built by ``ragsel index``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ragsel.errors import ConfigError
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages.retrieve._common import query_texts, to_candidates
from ragsel.types import Candidates, Query


@register_stage("bm25_retriever")
class BM25Retriever(Stage):
    """The ``top_k`` chunks of a local index with the highest BM25 score (score > 0 only).

    Tokenisation (stemmer, stop-words) is fixed when the index is built; ``stemmer`` and
    ``stopwords`` here are optional assertions: if set, they must equal the index's (a query
    tokenised differently from the documents would silently miss matches).

    Example: ``BM25Retriever(index="idx", top_k=100)`` or in YAML
    ``{type: bm25_retriever, index: "${RAGSEL_INDEX:-.ragsel/index}", top_k: 100}``.
    """

    config: Config

    class Config(StageConfig):
        index: str = Field(".ragsel/index", description="index folder (built by ragsel index)")
        top_k: int = Field(10, ge=1, description="how many chunks to return")
        stemmer: str | None = Field(
            None, description="expected stemmer ('english', 'none'); default: the index's"
        )
        stopwords: str | None = Field(
            None, description="expected stop-words ('en', 'none'); default: the index's"
        )
        where: dict[str, Any] | None = Field(None, description="chroma metadata filter")
        use_rewrites: bool = Field(True, description="also search query.rewrites (RRF)")
        rrf_k: int = Field(60, ge=0, description="RRF constant when fusing rewrites")

    def _setup(self) -> None:
        self._index: Any = None

    def warm_up(self) -> None:
        from ragsel.index import open_index

        ix = open_index(self.config.index)
        have = ix.bm25_config
        for field in ("stemmer", "stopwords"):
            want = getattr(self.config, field)
            if want is None:
                continue
            want_v = None if want.lower() == "none" else want
            if want_v != getattr(have, field):
                raise ConfigError(
                    f"{field}={want!r} but the index at {ix.path} was built with "
                    f"{field}={getattr(have, field)!r}; drop the setting to use the index's, or "
                    f"rebuild the index with --{field} {want}",
                    stage=self.name,
                    field=field,
                )
        ix.bm25()
        self._index = ix

    def _run(self, query: Query) -> Candidates:
        if self._index is None:
            self.warm_up()
        cfg = self.config
        texts = query_texts(query, cfg.use_rewrites)
        hits = self._index.bm25_search(texts, cfg.top_k, where=cfg.where)
        note: dict[str, Any] = {"index": str(self._index.path)}
        if cfg.where:
            note["where"] = cfg.where
        if not any(hits):
            note["empty_reason"] = (
                "no query term occurs in the index (after stemming and stop-word removal)"
            )
        return to_candidates(
            self.name, "bm25", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
