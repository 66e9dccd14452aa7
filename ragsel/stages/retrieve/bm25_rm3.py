"""``bm25_rm3_retriever``: BM25 with RM3 pseudo-relevance feedback (query expansion).

RM3 as in Anserini/Pyserini (Lavrenko & Croft's relevance model, interpolated with the query):

1. BM25 with the query; the top ``fb_docs`` chunks are the feedback set.
2. Each feedback chunk's term distribution ``P(w|D)`` (term counts over chunk length, the
   index's own tokenisation) is weighted by the chunk's BM25 score; summed over the set, the
   ``fb_terms`` heaviest terms form the relevance model (L1-normalised).
3. The expanded query is ``w * P(w|Q) + (1 - w) * P(w|R)`` with ``w = original_weight``
   (``P(w|Q)``: query term counts, L1-normalised), scored as a weighted sum of per-term BM25
   scores (what Lucene's boosted boolean query computes) and the ``top_k`` best returned.

Cost: one extra BM25 pass plus tokenising ``fb_docs`` chunks (see
eval/benchmarks/studies/prf_fusion.py for the per-query time).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
from pydantic import Field

from ragsel.index.bm25 import BM25Store, tokenize
from ragsel.registry import register_stage
from ragsel.stages.retrieve._common import Hits, query_texts, to_candidates
from ragsel.stages.retrieve.bm25 import BM25Retriever
from ragsel.types import Candidates, Chunk, Query


def relevance_model(
    query_tokens: list[str],
    feedback: list[tuple[list[str], float]],
    fb_terms: int,
    original_weight: float,
) -> dict[str, float]:
    """RM3 term weights from the query's tokens and ``(tokens, score)`` feedback documents."""
    q = Counter(query_tokens)
    qn = sum(q.values())
    rm: defaultdict[str, float] = defaultdict(float)
    for toks, score in feedback:
        if not toks:
            continue
        n = len(toks)
        for t, c in Counter(toks).items():
            rm[t] += score * c / n
    top = sorted(rm.items(), key=lambda kv: (-kv[1], kv[0]))[:fb_terms]
    rn = sum(v for _, v in top)
    out: dict[str, float] = {}
    for t, c in q.items():
        out[t] = original_weight * c / qn
    if rn > 0:
        for t, v in top:
            out[t] = out.get(t, 0.0) + (1.0 - original_weight) * v / rn
    return out


def weighted_scores(store: BM25Store, weights: dict[str, float]) -> np.ndarray:
    """Per index row, ``sum_t weight_t * bm25(t, row)`` (terms missing from the index skipped)."""
    sc = store.retriever.scores
    vocab = store.retriever.vocab_dict
    data, indices, indptr = sc["data"], sc["indices"], sc["indptr"]
    out = np.zeros(len(store.ids), dtype=np.float32)
    for t, w in weights.items():
        tid = vocab.get(t)
        if tid is None:
            continue
        a, b = indptr[tid], indptr[tid + 1]
        out[indices[a:b]] += np.float32(w) * data[a:b]
    return out


@register_stage("bm25_rm3_retriever")
class BM25RM3Retriever(BM25Retriever):
    """BM25 with RM3 query expansion from the top ``fb_docs`` chunks (Anserini defaults:
    10 feedback docs, 10 terms, original-query weight 0.5). Other settings as
    ``bm25_retriever``; the expansion terms and weights are in the stage note.

    Example (YAML): ``{type: bm25_rm3_retriever, index: "${RAGSEL_INDEX:-.ragsel/index}",
    top_k: 100, fb_docs: 10, fb_terms: 10, original_weight: 0.5}``.
    """

    config: Config

    class Config(BM25Retriever.Config):
        fb_docs: int = Field(10, ge=1, description="feedback chunks (top of the first pass)")
        fb_terms: int = Field(10, ge=1, description="expansion terms kept")
        original_weight: float = Field(
            0.5, ge=0.0, le=1.0, description="weight of the original query (1.0: no feedback)"
        )

    def _setup(self) -> None:
        super()._setup()
        self._rows: np.ndarray | None = None  # BM25 row -> index row (-1: chunk gone)

    def _row_map(self) -> np.ndarray:
        if self._rows is None:
            ix = self._index
            pos = {c.id: r for r, c in enumerate(ix.chunks)}
            self._rows = np.asarray([pos.get(i, -1) for i in ix.bm25().ids], dtype=np.int64)
        return self._rows

    def _expanded_search(self, text: str, note: dict[str, Any]) -> Hits:
        cfg, ix = self.config, self._index
        store = ix.bm25()
        first = ix.bm25_search([text], cfg.fb_docs, where=cfg.where)[0]
        if not first:
            return []
        feedback = [(tokenize([c.text], store.config)[0], s) for c, s in first]
        qt = [t for t in tokenize([text], store.config)[0] if t in store.retriever.vocab_dict]
        weights = relevance_model(qt, feedback, cfg.fb_terms, cfg.original_weight)
        note.setdefault("expansion", []).append(
            {t: round(w, 4) for t, w in sorted(weights.items(), key=lambda kv: -kv[1])}
        )
        scores = weighted_scores(store, weights)
        rows = self._row_map()
        scores[rows < 0] = 0.0
        if cfg.where:
            scores *= ix.mask(cfg.where)[np.maximum(rows, 0)]
        return self._top(scores, rows, ix.chunks)

    def _top(self, scores: np.ndarray, rows: np.ndarray, chunks: list[Chunk]) -> Hits:
        n, k = scores.shape[0], min(self.config.top_k, scores.shape[0])
        idx = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        idx = idx[np.lexsort((idx, -scores[idx]))]
        idx = idx[scores[idx] > 0]
        return [(chunks[r], s) for r, s in zip(rows[idx].tolist(), scores[idx].tolist())]

    def _run(self, query: Query) -> Candidates:
        if self._index is None:
            self.warm_up()
        cfg = self.config
        texts = query_texts(query, cfg.use_rewrites)
        note: dict[str, Any] = {
            "index": str(self._index.path),
            "rm3": {"fb_docs": cfg.fb_docs, "fb_terms": cfg.fb_terms, "w": cfg.original_weight},
        }
        hits = [self._expanded_search(t, note) for t in texts]
        if cfg.where:
            note["where"] = cfg.where
        if not any(hits):
            note["empty_reason"] = (
                "no query term occurs in the index (after stemming and stop-word removal)"
            )
        return to_candidates(
            self.name, "bm25_rm3", texts, hits, top_k=cfg.top_k, rrf_k=cfg.rrf_k, note=note
        )
