"""``candidate_scorer``: score the candidates themselves against the query (BM25 and/or dense).

For lists that arrive without scores (LangChain's ``VectorStoreRetriever`` and
``BM25Retriever`` put none in the metadata, so the connectors derive 1, 1-1/n, ... from the
rank): a cutoff reading rank-derived scores would cut a straight line. This stage gives the
cut real scores from the given texts alone, with no index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._resources import Embedders
from ragsel.types import Candidates, Query


def rank_derived(candidates: Candidates) -> bool:
    """Whether any score of ``candidates`` was derived from a rank by a connector (its note
    says ``rank_derived_scores``)."""
    return any(int(n.data.get("rank_derived_scores") or 0) > 0 for n in candidates.notes)


def bm25_scores(query: str, texts: Sequence[str]) -> np.ndarray:
    """BM25 scores of ``texts`` for ``query``, with the statistics of these texts only."""
    from ragsel.index.bm25 import BM25Config, BM25Store

    store = BM25Store.build(list(texts), [str(i) for i in range(len(texts))], BM25Config())
    out = np.zeros(len(texts), dtype=np.float64)
    for row, score in store.search_many([query], len(texts))[0]:
        out[row] = score
    return out


@register_stage("candidate_scorer")
class CandidateScorer(Stage):
    """Scores the given candidates against the query and sorts them: BM25 over the candidate
    texts, cosine similarity of an embedder, or both (``hybrid``: the mean of BM25 divided by
    its best score and the cosine clipped at 0).

    ``when: unscored`` (the default) rescores only lists whose scores a connector derived from
    the rank (documents without scores); other lists pass unchanged. ``always`` rescores
    every list. Each rescored chunk's provenance says which scores the cut will read.

    Example: ``CandidateScorer(method="bm25")``; YAML
    ``{type: candidate_scorer, method: hybrid, when: unscored}``.
    """

    config: Config

    class Config(StageConfig):
        method: Literal["bm25", "dense", "hybrid"] = Field(
            "hybrid", description="bm25, dense (embedder cosine) or hybrid (their mean)"
        )
        when: Literal["unscored", "always"] = Field(
            "unscored", description="rescore only rank-derived scores, or always"
        )
        embedder: str = Field("minilm", description="embedder for dense/hybrid scores")

    blocking = True

    def _setup(self) -> None:
        self._embedders = Embedders()

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder)

    def warm_up(self) -> None:
        if self.config.method != "bm25":
            self._get_embedder()

    def _get_embedder(self) -> Any:
        return self._embedders.get(self.config.embedder)

    def _scores(self, query: str, texts: list[str]) -> np.ndarray:
        method = self.config.method
        lexical = dense = None
        if method != "dense":
            lexical = bm25_scores(query, texts)
        if method != "bm25":
            vecs = self._get_embedder().embed([query, *texts])
            dense = np.asarray(vecs[1:] @ vecs[0], dtype=np.float64)
        if dense is None:
            return lexical  # type: ignore[return-value]
        if lexical is None:
            return dense
        top = float(lexical.max())
        return 0.5 * (lexical / top if top > 0 else lexical) + 0.5 * np.clip(dense, 0.0, None)

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        cfg = self.config
        items = candidates.items
        if not items or (cfg.when == "unscored" and not rank_derived(candidates)):
            note = {"rescored": 0, "why": "the input has scores of its own" if items else "empty"}
            return candidates.derive(self.name, items, note=note)
        scores = self._scores(query.text, [sc.chunk.text for sc in items])
        why = f"{cfg.method} score of the given text against the query" + (
            " (the input had rank-derived scores only)" if rank_derived(candidates) else ""
        )
        rescored = [sc.rescored(self.name, float(s), why) for sc, s in zip(items, scores)]
        order = sorted(range(len(items)), key=lambda i: (-rescored[i].score, i))
        note = {"rescored": len(items), "method": cfg.method, "scores_read_by_cut": cfg.method}
        return candidates.derive(self.name, [rescored[i] for i in order], note=note)
