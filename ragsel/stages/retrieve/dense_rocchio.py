"""``dense_rocchio_retriever``: dense retrieval with Rocchio pseudo-relevance feedback.

The query vector moves toward the centroid of its top ``fb_docs`` chunks (their vectors as
stored in the index, nothing re-embedded): ``q' = alpha * q + beta * mean(d_1..d_n)``,
re-normalised, then searched again. One extra exact search per query (~1 ms per 5k chunks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stages.retrieve._common import query_texts, to_candidates
from ragsel.stages.retrieve.dense import DenseRetriever
from ragsel.types import Candidates, Query


def rocchio(query: np.ndarray, feedback: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``alpha * query + beta * mean(feedback)``, unit length (the query if no feedback)."""
    if feedback.shape[0] == 0:
        return query
    v = alpha * query + beta * feedback.mean(axis=0)
    n = float(np.linalg.norm(v))
    return query if n == 0 else (v / n).astype(np.float32)


@register_stage("dense_rocchio_retriever")
class DenseRocchioRetriever(DenseRetriever):
    """Dense retrieval whose query vector is moved toward its top ``fb_docs`` chunks
    (Rocchio). Other settings as ``dense_retriever``.

    Example (YAML): ``{type: dense_rocchio_retriever, index: "${RAGSEL_INDEX:-.ragsel/index}",
    top_k: 100, fb_docs: 3, beta: 0.5}``.
    """

    config: Config

    class Config(DenseRetriever.Config):
        fb_docs: int = Field(3, ge=1, description="feedback chunks (top of the first pass)")
        alpha: float = Field(1.0, ge=0.0, description="weight of the query vector")
        beta: float = Field(0.5, ge=0.0, description="weight of the feedback centroid")

    def _run(self, query: Query) -> Candidates:
        if self._index is None:
            self.warm_up()
        cfg, ix = self.config, self._index
        texts = query_texts(query, cfg.use_rewrites)
        vecs = np.asarray(self._embedder.embed(texts), dtype=np.float32)
        first = ix.dense_search(vecs, cfg.fb_docs, where=cfg.where)
        moved = []
        for v, hits in zip(vecs, first):
            fb, _ = ix.vectors([c.id for c, _ in hits])
            moved.append(rocchio(v, fb, cfg.alpha, cfg.beta))
        hits = ix.dense_search(np.stack(moved), cfg.top_k, where=cfg.where)
        note: dict[str, Any] = {
            "index": str(ix.path),
            "rocchio": {"fb_docs": cfg.fb_docs, "alpha": cfg.alpha, "beta": cfg.beta},
        }
        if cfg.where:
            note["where"] = cfg.where
        return to_candidates(
            self.name, "dense_rocchio", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
