"""Pseudo-relevance-feedback facets as rationales (LLM-free).

The top candidates of a first retrieval are split into sentences; the sentences are embedded
and clustered (spherical k-means, deterministic farthest-point start); the clusters whose
centroid is nearest the query become *facets*, each represented by its most central sentence.
The query itself stays the first rationale.

Why it over-selected in the prototype, and what this version does about it: every facet pairs
one more chunk, and facets drawn from the whole top-10 include off-topic passages, so each
facet added a marginal chunk. Here facets come from the top ``top_n`` candidates only (default
3), only clusters whose centroid-query cosine reaches ``min_relative_similarity`` times the best
cluster's are kept, and at most ``max_facets`` are returned. The selector's
``min_pair_z`` then drops facets whose best chunk does not stand out. Measured effect: see
``eval/benchmarks/studies/selection_cv.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._resources import Embedders
from ragsel.types import Candidates, Query, Rationale, Rationales

_SENT = re.compile(r"(?<=[.!?])\s+(?=[\"'\u201c(]?[A-Z0-9])|\n{2,}|\n(?=[-*\u2022\d])")


def split_sentences(text: str, min_words: int = 4) -> list[str]:
    """Sentences of ``text``; fragments shorter than ``min_words`` words join the next one."""
    out: list[str] = []
    carry = ""
    for part in _SENT.split(text):
        part = " ".join(part.split())
        if not part:
            continue
        part = f"{carry} {part}".strip() if carry else part
        if len(part.split()) < min_words:
            carry = part
            continue
        carry = ""
        out.append(part)
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


def spherical_kmeans(x: np.ndarray, k: int, anchor: np.ndarray, iters: int = 15) -> np.ndarray:
    """Cluster labels of unit rows ``x`` into ``k`` clusters. Deterministic: the first centre
    is the row nearest ``anchor`` (the query), then farthest-point initialisation."""
    n = x.shape[0]
    k = max(1, min(k, n))
    centres = [int(np.argmax(x @ anchor))]
    best = x @ x[centres[0]]
    for _ in range(1, k):
        nxt = int(np.argmin(best))
        centres.append(nxt)
        best = np.maximum(best, x @ x[nxt])
    c = x[centres].copy()
    labels = np.zeros(n, dtype=int)
    for _ in range(iters):
        new = np.argmax(x @ c.T, axis=1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                m = members.sum(axis=0)
                c[j] = m / (np.linalg.norm(m) or 1.0)
    return labels


@register_stage("prf_rationales")
class PRFRationales(Stage):
    """Rationales = the query + facets mined from the top candidates' sentences.

    Example (YAML): ``{type: prf_rationales, top_n: 3, max_facets: 2}``, wired after a
    retriever (``candidates`` input) and before a ``rationale_selector``.
    """

    config: Config

    class Config(StageConfig):
        embedder: str = "minilm"
        top_n: int = Field(3, ge=1, description="how many top candidates feed the facets")
        clusters: int = Field(4, ge=1, description="k-means clusters over their sentences")
        max_facets: int = Field(2, ge=0)
        min_relative_similarity: float = Field(
            0.9,
            ge=0.0,
            le=1.0,
            description="a facet's centroid-query cosine must reach this share of the best",
        )
        min_sentence_words: int = Field(4, ge=1)
        include_query: bool = True

    def _setup(self) -> None:
        self._embedders = Embedders()

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder)

    def _get_embedder(self) -> Any:
        return self._embedders.get(self.config.embedder)

    def warm_up(self) -> None:
        self._get_embedder().warm_up()

    def _run(self, query: Query, candidates: Candidates) -> Rationales:
        c = self.config
        items = (
            [Rationale(query.text.strip(), label="query", source="prf")] if c.include_query else []
        )
        sentences: list[str] = []
        for sc in candidates.items[: c.top_n]:
            sentences += split_sentences(sc.chunk.text, c.min_sentence_words)
        sentences = list(dict.fromkeys(sentences))
        notes: dict = {"n_sentences": len(sentences), "top_n": c.top_n}
        if not sentences or c.max_facets == 0:
            notes["facets"] = 0
            if not items:
                items = [Rationale(query.text.strip(), label="query", source="prf")]
            return Rationales(tuple(items), source="prf", notes=notes)
        emb = self._get_embedder()
        vecs = emb.embed([query.text] + sentences)
        q, x = vecs[0], vecs[1:]
        labels = spherical_kmeans(x, c.clusters, q)
        facets = []
        for j in sorted(set(labels.tolist())):
            idx = np.flatnonzero(labels == j)
            centre = x[idx].sum(axis=0)
            centre /= np.linalg.norm(centre) or 1.0
            rep = int(idx[np.argmax(x[idx] @ centre)])
            facets.append((float(centre @ q), rep, len(idx)))
        facets.sort(key=lambda f: (-f[0], f[1]))
        best = facets[0][0]
        kept = [f for f in facets if best <= 0 or f[0] >= c.min_relative_similarity * best]
        kept = kept[: c.max_facets]
        for i, (_sim, rep, _size) in enumerate(kept, 1):
            items.append(Rationale(sentences[rep], label=f"facet{i}", source="prf"))
        notes.update(
            facets=len(kept),
            clusters=len(facets),
            facet_similarity=[round(f[0], 4) for f in kept],
            facet_sizes=[f[2] for f in kept],
        )
        return Rationales(tuple(items), source="prf", notes=notes)
