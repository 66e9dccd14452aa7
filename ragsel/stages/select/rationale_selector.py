"""METEORA's evidence chunk selection engine (ECSE): rationale pairing + pooled elbow.

Given candidate chunks and rationales (from the LLM ``rationale_generator`` or an LLM-free
source: ``query_rationales``, ``subphrase_rationales``, ``prf_rationales``):

1. **Embed** rationales and chunks with the configured embedder. With ``index: <folder>``
   (the LocalIndex the candidates came from), a candidate's vector is read from the index
   instead of re-embedding it (the index must hold the embedder's vector space; a chunk whose
   text differs from the stored one is embedded). Other chunk vectors are cached per chunk id
   for the life of the stage (a documented, bounded LRU cache; see
   :mod:`ragsel.stages._chunk_vectors`). The note's ``vectors`` says how many came from where.
2. **Pair** (local relevance): each rationale picks its most similar chunk. With
   ``distinct: true`` (the paper's experiments) pairs are assigned greedily from the most
   similar (rationale, chunk) pair down, so no two rationales take the same chunk; with
   ``distinct: false`` (the later package) rationales may converge on one chunk.
   ``min_pair_z`` (optional) skips a pairing whose best chunk does not stand out from the
   rationale's similarities to the other candidates (z-score below the threshold): a rationale
   that matches everything equally has no local evidence to contribute.
3. **Pool** (global relevance): score every chunk against the normalised mean rationale
   embedding and sort.
4. **Cut**: the elbow rule (:func:`ragsel.stages.cutoff._curve.elbow_index`, z > 1 on the
   gaps by default), a fitted learned-cutoff model (``cutoff: learned, model: path``; fit it
   with ``ragsel fit``), or ``none``: keep the whole list re-ranked by pooled score (paired
   chunks carry their rationale labels) and let any later cutoff stage cut it
   (``learned_cutoff`` with ``keep_paired: true`` keeps the paired chunks below its cut).
5. **Select** paired ∪ above-cut, ordered by pooled score. Neighbour expansion is a separate
   stage (``neighbor_expansion``), wired after this one.

``scope: per_document`` (the paper's setting) runs pairing and the cut inside each document's
candidates; ``global`` runs them over the whole list.

Each selected chunk's ``score`` becomes its pooled score; ``rationales`` holds the labels of
the rationales that paired it; its "kept" event carries ``rank``, ``pooled_score``,
``paired_by`` and ``above_cut``. The stage note says where each cut fell and why.

Defined edge cases: no candidates -> an empty list with a note ``{"empty": true}``; no
rationales -> ``on_no_rationales``: ``query`` (default: use the query text as the only
rationale; noted), ``keep_all`` (pass the candidates through; noted) or ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from ragsel.errors import ConfigError, InputError
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._chunk_vectors import ChunkVectors
from ragsel.stages._resources import Embedders
from ragsel.stages.cutoff._curve import clamp, elbow_index
from ragsel.types import Candidates, Event, Query, Rationales

if TYPE_CHECKING:
    from ragsel.stages.cutoff.learned import CutoffModel


def pair_rationales(
    sim: np.ndarray, *, distinct: bool, min_pair_z: float | None = None
) -> dict[int, list[int]]:
    """``{chunk index: [rationale indices]}`` from a (rationales x chunks) similarity matrix.

    ``distinct``: greedy one-to-one assignment from the highest similarity down (ties: lower
    rationale index, then lower chunk index). Otherwise every rationale takes its argmax.
    ``min_pair_z``: a rationale pairs only if its chosen chunk's similarity is at least that
    many standard deviations above its mean similarity to all candidates.
    """
    m, n = sim.shape
    if m == 0 or n == 0:
        return {}
    allowed = np.ones(m, dtype=bool)
    if min_pair_z is not None and n > 1:
        mu, sd = sim.mean(axis=1), sim.std(axis=1)
        z = np.where(sd > 0, (sim.max(axis=1) - mu) / np.where(sd > 0, sd, 1.0), 0.0)
        allowed = z >= min_pair_z
    out: dict[int, list[int]] = {}
    if not distinct:
        for r in np.flatnonzero(allowed):
            out.setdefault(int(np.argmax(sim[r])), []).append(int(r))
        return out
    # one-to-one greedy: order all pairs by similarity (stable on index ties)
    order = np.lexsort((np.tile(np.arange(n), m), np.repeat(np.arange(m), n), -sim.ravel()))
    used_r = ~allowed
    used_c = np.zeros(n, dtype=bool)
    left = int(allowed.sum())
    for flat in order:
        if left == 0:
            break
        r, c = divmod(int(flat), n)
        if used_r[r] or used_c[c]:
            continue
        used_r[r] = used_c[c] = True
        left -= 1
        out[c] = [r]
    return out


@register_stage("rationale_selector")
class RationaleSelector(Stage):
    """Select evidence with rationales: paired chunks ∪ chunks above the pooled-score cut.

    Example (YAML)::

        rationales: {type: subphrase_rationales}
        select: {type: rationale_selector, distinct: true, scope: global, min_pair_z: 2.0}
        expand: {type: neighbor_expansion, window: 1}

    or in Python ``RationaleSelector(cutoff="learned", model="cut.npz")``.
    """

    config: Config

    class Config(StageConfig):
        embedder: str = Field("minilm", description="embedder for chunks (and rationales)")
        index: str | None = Field(
            None,
            description="LocalIndex folder the candidates come from: their stored "
            "vectors are used instead of re-embedding them (None = embed)",
        )
        rationale_embedder: str | None = Field(
            None, description="a different embedder for rationales (dimensions must match)"
        )
        pairing: bool = True
        distinct: bool = True
        min_pair_z: float | None = Field(
            None, description="pair only when the best chunk stands out by this z-score"
        )
        scope: Literal["global", "per_document"] = "global"
        cutoff: Literal["elbow", "learned", "none"] = "elbow"
        z_threshold: float = Field(1.0, description="elbow: z-score a gap must exceed")
        model: str | None = Field(None, description="learned cutoff model file (.npz)")
        min_k: int = Field(1, ge=0, description="keep at least this many above the cut")
        max_k: int | None = Field(None, ge=1, description="keep at most this many above it")
        on_no_rationales: Literal["query", "keep_all", "error"] = "query"
        cache_size: int = Field(50_000, ge=0, description="chunk vectors cached (LRU)")

    def _setup(self) -> None:
        c = self.config
        if c.cutoff == "learned" and not c.model:
            raise ConfigError(
                "cutoff: learned needs 'model: <path>' (fit one with 'ragsel fit')",
                stage=self.type_name,
                field="model",
            )
        if c.model and c.cutoff != "learned":
            raise ConfigError(
                "'model' is only used with cutoff: learned", stage=self.type_name, field="model"
            )
        if c.cutoff == "learned" and c.scope == "per_document":
            raise ConfigError(
                "a learned cutoff is fitted on whole candidate lists; use "
                "scope: global with cutoff: learned",
                stage=self.type_name,
                field="scope",
            )
        self._embedders = Embedders()
        self.vectors = ChunkVectors(
            lambda: self.name,
            lambda: self._embedder(c.embedder),
            index=c.index,
            cache_size=c.cache_size,
        )
        self._learned: CutoffModel | None = None

    # --- resources ---------------------------------------------------------------------
    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder, self.config.rationale_embedder)

    def _embedder(self, name: str) -> Any:
        return self._embedders.get(name)

    def ranking_only(self) -> RationaleSelector:
        """This stage with ``cutoff: none`` (its full pooled ranking, e.g. to fit a learned cut
        on), under the same name and sharing its bound embedders."""
        ranker = type(self)(self.config.model_copy(update={"cutoff": "none", "model": None}))
        ranker.name = self.name
        ranker._embedders = self._embedders  # bound components carry over
        return ranker

    def warm_up(self) -> None:
        self._embedder(self.config.embedder).warm_up()
        if self.config.rationale_embedder:
            self._embedder(self.config.rationale_embedder).warm_up()
        if self.config.cutoff == "learned":
            self._learned_model()
        self.vectors.index()  # open and check the index now, not on the first query

    def check_pipeline(self, pipeline: Any) -> None:
        """Before the first run: a learned cutoff model must come from this pipeline."""
        if self.config.cutoff == "learned":
            from ragsel.stages.cutoff.learned import CutoffModel, pipeline_hash

            expect, _ = pipeline_hash(pipeline, self.name)
            self._learned = CutoffModel.load(
                self.config.model,  # type: ignore[arg-type]
                expect_pipeline=expect,
            )

    def _learned_model(self) -> Any:
        if self._learned is None:
            from ragsel.stages.cutoff.learned import CutoffModel

            self._learned = CutoffModel.load(self.config.model)  # type: ignore[arg-type]
        return self._learned

    def rationale_vectors(self, texts: Sequence[str]) -> np.ndarray:
        name = self.config.rationale_embedder or self.config.embedder
        vecs = np.asarray(self._embedder(name).embed(list(texts)), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise InputError(
                f"embedder {name!r} returned shape {vecs.shape} for {len(texts)} rationales"
            )
        return vecs

    # --- the method --------------------------------------------------------------------
    def _cut(
        self,
        pooled: np.ndarray,
        order: np.ndarray,
        ranked: Candidates | None,
        query: Query | None = None,
    ) -> tuple[int, dict[str, Any]]:
        c = self.config
        n = len(order)
        if c.cutoff == "none":
            return n, {"method": "none", "n": n}
        if c.cutoff == "elbow":
            cut, info = elbow_index(pooled[order], c.z_threshold)
        else:
            cut, info = self._learned_model().cut(ranked, query)
        clamped = clamp(cut, n, c.min_k, c.max_k)
        if clamped != cut:
            info = {**info, "unclamped": cut}
        return clamped, info

    def _run(
        self, candidates: Candidates, rationales: Rationales, query: Query | None = None
    ) -> Candidates:
        c = self.config
        items = candidates.items
        if not items:
            return candidates.derive(self.name, [], note={"empty": True, "reason": "no candidates"})
        texts = [r.text for r in rationales]
        labels = [r.label or f"r{i + 1}" for i, r in enumerate(rationales)]
        fallback = None
        if not texts:
            if c.on_no_rationales == "error":
                raise InputError(
                    "no rationales to select with; connect a rationale source "
                    "or set on_no_rationales: query"
                )
            if c.on_no_rationales == "keep_all" or query is None:
                return candidates.derive(
                    self.name,
                    list(items),
                    note={"no_rationales": True, "action": "kept all candidates unchanged"},
                )
            texts, labels, fallback = [query.text], ["query"], "query"
        cvec, sources = self.vectors.get([sc.chunk for sc in items])
        rvec = self.rationale_vectors(texts)
        if rvec.shape[1] != cvec.shape[1]:
            raise InputError(
                f"rationale embeddings have {rvec.shape[1]} dimensions "
                f"({c.rationale_embedder or c.embedder}) but chunk embeddings have "
                f"{cvec.shape[1]} ({c.embedder}); embed both with the same model "
                "(unset rationale_embedder or make it equal to embedder)"
            )
        centre = rvec.mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        pooled = cvec @ centre
        sim = rvec @ cvec.T

        groups: dict[str, Any]
        if c.scope == "global":
            groups = {"": np.arange(len(items))}
        else:
            groups = {}
            for i, sc in enumerate(items):
                groups.setdefault(sc.chunk.doc_id, []).append(i)
            groups = {d: np.asarray(ix) for d, ix in groups.items()}

        paired_by: dict[int, list[str]] = {}
        selected: dict[int, tuple[int, bool, str]] = {}  # idx -> (rank in group, above, group)
        rank_of: dict[int, tuple[int, int, str, int]] = {}  # idx -> (rank, cut, group, n)
        cuts: dict[str, Any] = {}
        for doc, ix in groups.items():
            order = ix[np.argsort(-pooled[ix], kind="stable")]
            if c.pairing:
                pairs = pair_rationales(sim[:, ix], distinct=c.distinct, min_pair_z=c.min_pair_z)
                for local, rs in pairs.items():
                    paired_by.setdefault(int(ix[local]), []).extend(labels[r] for r in rs)
            ranked = None
            if c.cutoff == "learned":
                ranked = candidates.derive(
                    self.name,
                    [
                        replace(
                            items[i],
                            score=float(pooled[i]),
                            rationales=tuple(paired_by.get(int(i), ())),
                        )
                        for i in order
                    ],
                )
            cut, info = self._cut(pooled, order, ranked, query)
            info = {**info, "kept": cut, "n": len(order)}
            if cut and cut <= len(order):
                info["cut_score"] = round(float(pooled[order[cut - 1]]), 6)
            cuts[doc or "all"] = info
            for rank, i in enumerate(order.tolist(), 1):
                rank_of[i] = (rank, cut, doc, len(order))
                if rank <= cut or i in paired_by:
                    selected[i] = (rank, rank <= cut, doc)

        out, drops = [], {}
        for i in sorted(selected, key=lambda j: (-pooled[j], j)):
            rank, above, doc = selected[i]
            by = tuple(paired_by.get(i, ()))
            why = (
                ("above the cut" if above else "")
                + (" and " if above and by else "")
                + (f"paired by {', '.join(by)}" if by else "")
            )
            data = {
                "rank": rank,
                "pooled_score": round(float(pooled[i]), 6),
                "paired_by": list(by),
                "above_cut": above,
            }
            if doc:
                data["document"] = doc
            sc = items[i]
            out.append(
                replace(
                    sc,
                    score=float(pooled[i]),
                    stage=self.name,
                    rationales=by,
                    events=sc.events + (Event(self.name, "kept", why, float(pooled[i]), data),),
                )
            )
        for i, sc in enumerate(items):
            if i not in selected:
                rank, cut, doc, n = rank_of[i]
                drops[sc.chunk.id] = (
                    f"pooled score {pooled[i]:.3f} below the cut (rank {rank}"
                    f" of {n}, kept top {cut}"
                    f"{' in ' + doc if doc else ''}) and not paired"
                )
        note: dict[str, Any] = {
            "scope": c.scope,
            "cutoff": c.cutoff,
            "distinct": c.distinct,
            "n_candidates": len(items),
            "n_rationales": len(texts),
            "rationale_source": rationales.source or None,
            "n_paired": len(paired_by),
            "n_selected": len(out),
            "vectors": sources,
            "pairs": {lab: items[i].chunk.id for i, labs in paired_by.items() for lab in labs},
            "cuts": cuts,
        }
        if fallback:
            note["no_rationales"] = True
            note["action"] = "used the query as the only rationale"
        return candidates.derive(self.name, out, drop_reasons=drops, note=note)
