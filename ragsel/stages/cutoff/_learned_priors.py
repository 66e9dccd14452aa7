"""Corpus priors for the learned cutoff: what the training queries of *this* corpus found.

A cutoff model is fitted on the corpus it serves (see ``learned``), and on corpora that many
queries ask about (a few long policies, a product manual) the same chunks keep answering:
in PrivacyQA one 128-word chunk is gold for 25 of 56 questions. :class:`CorpusPriors` turns
the labelled training queries into features (:data:`PRIOR_FEATURES`) keyed by chunk and
document id (ragsel's ids are content hashes, stable across re-indexing):

- ``prior_chunk`` / ``prior_doc``: how often the chunk (its document) was relevant among the
  training queries that had it as a candidate, smoothed towards the overall rate;
- ``prior_qsim``: the same, weighted by how similar each training query is to this one
  (IDF-weighted term cosine, nearest :data:`NEIGHBOURS`): "questions like this one were
  answered by this chunk";
- their z-score and rank within the list, and how many training queries saw the chunk.

On a corpus where queries do not share chunks (HotpotQA: each question has its own
paragraphs) every chunk is unseen and these columns are constant, so the model ignores them.
The rows a model is *trained* on get leave-one-query-out priors (a query's own labels never
feed its features), so what the model learns matches what it sees at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.stages.cutoff._learned_features import terms
from ragsel.types import Candidates

PRIOR_FEATURES = [
    "prior_chunk",
    "prior_chunk_lift",
    "prior_chunk_z",
    "prior_chunk_rank_frac",
    "prior_seen",
    "prior_doc",
    "prior_qsim",
    "prior_qsim_z",
    "prior_qsim_max",
]
#: the arrays a model file with priors holds (see :meth:`CorpusPriors.to_arrays`)
PRIOR_ARRAYS = (
    "prior_chunk_ids",
    "prior_chunk_counts",
    "prior_doc_ids",
    "prior_doc_counts",
    "prior_query_terms",
    "prior_query_gold",
    "prior_base",
)
SMOOTH = 2.0  # pseudo-queries at the overall rate: a chunk seen by 2 queries says little
NEIGHBOURS = 10  # most similar training queries read by prior_qsim
_SEP = "\x1f"  # joins ids / terms in the model file (ids may contain spaces)


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std()) if x.size else 0.0
    return np.zeros_like(x) if sd <= 0 else (x - x.mean()) / sd


class CorpusPriors:
    """Relevance counts per chunk, per document and per training query.

    Example::

        pri = CorpusPriors.count(lists, golds, query_texts)
        X_train_i = pri.features(lists[i], query_texts[i], exclude=i)  # leave-one-out
        X_new = pri.features(cands, "who can see my posts?")
    """

    def __init__(
        self,
        chunk: dict[str, tuple[float, float]],
        doc: dict[str, tuple[float, float]],
        queries: list[tuple[list[str], set[str]]],
        base: float,
    ):
        self.chunk, self.doc, self.queries, self.base = chunk, doc, queries, base
        self._index()

    def _index(self) -> None:
        df: dict[str, int] = {}
        for q_terms, _ in self.queries:
            for t in set(q_terms):
                df[t] = df.get(t, 0) + 1
        n = len(self.queries)
        self.idf = {t: math.log((n + 1) / (d + 0.5)) for t, d in df.items()}
        self.qvecs = [self._vec(t) for t, _ in self.queries]

    def _vec(self, q_terms: Sequence[str]) -> dict[str, float]:
        # sorted: float sums must not depend on set order (hash seed), or ties between
        # equally similar queries would break differently from run to run
        v = {t: self.idf.get(t, math.log(len(self.queries) + 1)) for t in sorted(set(q_terms))}
        norm = math.sqrt(sum(w * w for w in v.values())) or 1.0
        return {t: w / norm for t, w in v.items()}

    @classmethod
    def count(
        cls, lists: Sequence[Candidates], golds: Sequence[set[str]], texts: Sequence[str | None]
    ) -> CorpusPriors:
        chunk: dict[str, list[float]] = {}
        doc: dict[str, list[float]] = {}
        rows = pos = 0
        for cands, gold in zip(lists, golds):
            docs_gold: dict[str, bool] = {}
            for sc in cands.items:
                hit = sc.chunk.id in gold
                c = chunk.setdefault(sc.chunk.id, [0.0, 0.0])
                c[0] += hit
                c[1] += 1
                docs_gold[sc.chunk.doc_id] = docs_gold.get(sc.chunk.doc_id, False) or hit
                rows += 1
                pos += hit
            for d, hit in docs_gold.items():
                c = doc.setdefault(d, [0.0, 0.0])
                c[0] += hit
                c[1] += 1
        queries = [(terms(t) if t else [], set(g)) for t, g in zip(texts, golds)]
        return cls(
            {k: (v[0], v[1]) for k, v in chunk.items()},
            {k: (v[0], v[1]) for k, v in doc.items()},
            queries,
            pos / rows if rows else 0.0,
        )

    def features(
        self, cands: Candidates, query: str | None = None, exclude: int | None = None
    ) -> np.ndarray:
        """``(n, len(PRIOR_FEATURES))`` for ``cands``; ``exclude`` = the index of the training
        query these candidates belong to (its own labels are taken out)."""
        items = cands.items
        n = len(items)
        out = np.zeros((n, len(PRIOR_FEATURES)))
        if n == 0:
            return out
        own = self.queries[exclude][1] if exclude is not None else set()
        b = self.base
        docs_own: dict[str, bool] = {}
        if exclude is not None:
            for sc in items:
                docs_own[sc.chunk.doc_id] = (
                    docs_own.get(sc.chunk.doc_id, False) or sc.chunk.id in own
                )
        near = self._neighbours(query, exclude)
        wsum = sum(w for _, w in near)
        for i, sc in enumerate(items):
            g, s = self.chunk.get(sc.chunk.id, (0.0, 0.0))
            if exclude is not None and s > 0:
                g, s = g - (sc.chunk.id in own), s - 1
            out[i, 0] = (g + SMOOTH * b) / (s + SMOOTH)
            out[i, 4] = math.log1p(s)
            dg, ds = self.doc.get(sc.chunk.doc_id, (0.0, 0.0))
            if exclude is not None and ds > 0:
                dg, ds = dg - docs_own[sc.chunk.doc_id], ds - 1
            out[i, 5] = (dg + SMOOTH * 0.5) / (ds + SMOOTH)
            if s > 0 and wsum > 0:
                hits = sum(w for j, w in near if sc.chunk.id in self.queries[j][1])
                out[i, 6] = (hits + out[i, 0]) / (wsum + 1.0)
                out[i, 8] = max(
                    (w for j, w in near if sc.chunk.id in self.queries[j][1]), default=0.0
                )
            else:
                out[i, 6] = out[i, 0]
        out[:, 1] = np.log(np.maximum(out[:, 0], 1e-6) / max(b, 1e-6))
        out[:, 2] = _z(out[:, 0])
        # share of the list with a strictly higher prior (ties, e.g. unseen chunks, share a rank)
        out[:, 3] = (n - np.searchsorted(np.sort(out[:, 0]), out[:, 0], side="right")) / n
        out[:, 7] = _z(out[:, 6])
        return out

    def _neighbours(self, query: str | None, exclude: int | None) -> list[tuple[int, float]]:
        if not query or not self.queries:
            return []
        v = self._vec(terms(query))
        sims = [
            (j, sum(w * qv.get(t, 0.0) for t, w in v.items()))
            for j, qv in enumerate(self.qvecs)
            if j != exclude
        ]
        sims = [(j, round(s, 9)) for j, s in sims if s > 1e-12]
        sims.sort(key=lambda t: (-t[1], t[0]))
        return sims[:NEIGHBOURS]

    # --- model file ------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        ck, dk = sorted(self.chunk), sorted(self.doc)
        return {
            "prior_chunk_ids": np.array(ck, dtype=str),
            "prior_chunk_counts": np.array([self.chunk[k] for k in ck], dtype=np.float64).reshape(
                -1, 2
            ),
            "prior_doc_ids": np.array(dk, dtype=str),
            "prior_doc_counts": np.array([self.doc[k] for k in dk], dtype=np.float64).reshape(
                -1, 2
            ),
            "prior_query_terms": np.array([_SEP.join(t) for t, _ in self.queries], dtype=str),
            "prior_query_gold": np.array(
                [_SEP.join(sorted(g)) for _, g in self.queries], dtype=str
            ),
            "prior_base": np.array([self.base]),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, Any]) -> CorpusPriors:
        def split(s: str) -> list[str]:
            return s.split(_SEP) if s else []

        return cls(
            {
                str(k): (float(v[0]), float(v[1]))
                for k, v in zip(a["prior_chunk_ids"], a["prior_chunk_counts"])
            },
            {
                str(k): (float(v[0]), float(v[1]))
                for k, v in zip(a["prior_doc_ids"], a["prior_doc_counts"])
            },
            [
                (split(str(t)), set(split(str(g))))
                for t, g in zip(a["prior_query_terms"], a["prior_query_gold"])
            ],
            float(a["prior_base"][0]),
        )
