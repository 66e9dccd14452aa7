"""Find groups of near-duplicate chunks and treat them as one source, or as an attack.

Knowledge-poisoning attacks (PoisonedRAG) plant several passages that all assert the same false
answer, so that they outnumber the true source in the prompt. Such passages are near-copies of
each other; the gold passage and ordinary on-topic passages are not. But honest sources repeat
each other too (syndicated news, overlapping chunks of one document, mirrors), and a cluster
alone cannot tell poison from corroboration (see ``../shared/ANCHORS.md``). So
:class:`PoisonClusterGuard` offers three modes:

- ``flag_densest`` (the default): the densest suspicious cluster is flagged (dropped, or
  annotated with ``on_flag: annotate``).
- ``drop_unsupported``: a *suspicious* cluster is dropped unless some independent chunk (outside
  the cluster, from another source) supports its claim. The claim is approximated without a
  model: the words most cluster members share that the query does not contain (for an attack,
  typically the planted answer), weighted by how rare they are in the candidate list.
- ``collapse``: every cluster counts as *one* source: its representative is kept, the others
  are annotated as duplicates (``Verdict(label="DUPLICATE")``) and, with
  ``drop_duplicates: true``, removed. Nothing is called poison, so it does not defend: a
  planted copy still reaches the context.

Candidate order never decides anything: clustering runs on a canonical order (score
descending, then chunk id), so a cluster's representative is its best-scored chunk (ties: the
smallest id) and shuffled inputs give the same flags and survivors.

A cluster is *suspicious* when its members come from at least ``min_cluster_size`` distinct
documents (chunks of one document, e.g. overlapping windows, are one source, not an attack) and
source metadata does not show corroboration: members from ``corroboration_sites`` or more
distinct sites (``site``/``source``/``domain``/``url`` metadata) are independent reports.

Similarity between two chunks is the larger of their embedding cosine and their character
n-gram Jaccard rescaled so that ``ngram_threshold`` maps to ``cosine_threshold``. Clusters:

1. average-linkage agglomeration cut at ``cosine_threshold`` (average linkage keeps a gold
   passage that resembles each planted copy only moderately out of their tight group);
2. ``core_margin``: a member much less similar to the others than they are to each other is
   peeled off (an honest passage on the same topic sits on the edge of a group of copies);
3. ``merge_threshold``: groups of >= 2 (never singletons) merge at a looser threshold, because
   copies often form several tight pairs that one cut splits;
4. optionally ``expand_threshold``: absorb chunks that are fairly similar *and* repeat the
   group's claim words.

Cost: with ``index:`` naming the LocalIndex the candidates came from, chunk vectors are read
from it (nothing is embedded for indexed chunks); the n-gram Jaccard is vectorised
(:mod:`ragsel.stages.verify._ngrams`, bit-identical to the pairwise set version). Clustering
~100 candidates then takes milliseconds (``eval/benchmarks/studies/poisoning.py`` prints the timing).

Defaults (``flag_densest``, cosine 0.75, core margin 0.05, no merge, min size 3) were chosen on
half of the PoisonedRAG NQ queries and half of a clean, redundant SciFact set
(``python -m eval.benchmarks.studies.poisoning``): the best training F1 with gold kept >= 0.95
and at most 2% clean chunks flagged (a default runs on everybody's clean corpora). Held out:
detection F1 0.93 (gold kept 0.95, attack success 0.19) on the NQ test half, 0.97 on
PoisonedRAG HotpotQA and 0.93 on MS MARCO; 3.8% of the chunks of held-out clean SciFact claims
whose related papers repeat each other flagged (0.4% with mirror sites named; 16% when chunks
carry no ids or sites at all: metadata matters). ``merge_threshold: 0.7`` raises NQ F1 to 0.95
at 8% clean false flags. ``collapse`` (the old default) flags nothing: attack success 1.00 on
HotpotQA and MS MARCO.

The clustering maths (linkage, peeling, merging, claim words, verdict text) lives in
:mod:`._poison_clusters`; this module holds the stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.errors import InputError
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages._chunk_vectors import ChunkVectors
from ragsel.stages._resources import Embedders
from ragsel.stages.verify._ngrams import ngram_jaccard
from ragsel.stages.verify._poison_clusters import (
    DATE_KEYS,
    SITE_KEYS,
    Cluster,
    _date_of,
    _score_key,
    _site_of,
    _tokens,
    average_linkage,
    claim_weights,
    describe,
    expand_groups,
    merge_groups,
    peel,
    poison_verdict,
)

__all__ = [
    "DATE_KEYS",
    "SITE_KEYS",
    "Cluster",
    "PoisonClusterGuard",
    "average_linkage",
    "merge_groups",
    "peel",
]
from ragsel.types import Candidates, Chunk, Event, Query, ScoredChunk, Verdict


@register_stage("poison_cluster_guard")
class PoisonClusterGuard(Stage):
    """Group near-duplicate chunks; collapse them, or flag/drop suspicious groups (LLM-free).

    Verdicts: ``DUPLICATE`` (collapse; not flagged, names the representative) and ``POISON``
    (flagged; the reason gives cluster size, density, sources and claim support, the evidence
    quotes the claim words and the representative's text). The stage note lists every cluster.

    Example::

        PoisonClusterGuard(mode="collapse")                      # safe on redundant sources
        PoisonClusterGuard(mode="drop_unsupported", cosine_threshold=0.8)
        # YAML: {type: poison_cluster_guard, mode: flag_densest, min_cluster_size: 3}
    """

    config: Config

    class Config(StageConfig):
        mode: Literal["collapse", "drop_unsupported", "flag_densest"] = Field(
            "flag_densest",
            description="flag the densest suspicious cluster (the default, chosen on the "
            "poisoning benchmark), drop unsupported suspicious clusters, or only collapse "
            "clusters into one source (flags nothing)",
        )
        embedder: str = Field("minilm", description="embedder name for load_embedder")
        index: str | None = Field(
            None,
            description="LocalIndex folder the candidates come from: their stored "
            "vectors are used instead of re-embedding them (None = embed)",
        )
        cache_size: int = Field(10_000, ge=0, description="chunk vectors cached (LRU)")
        cosine_threshold: float = Field(
            0.75, gt=0.0, le=1.0, description="average-linkage cut on similarity"
        )
        ngram_threshold: float = Field(
            0.5,
            gt=0.0,
            le=1.0,
            description="character n-gram Jaccard counted as equally similar as cosine_threshold",
        )
        ngram_size: int = Field(5, ge=2, le=12, description="character n-gram length")
        min_cluster_size: int = Field(3, ge=2, description="smallest suspicious cluster")
        min_density: float = Field(
            0.0,
            ge=0.0,
            le=1.0,
            description="a cluster is suspicious only if its mean pairwise similarity is at "
            "least this (copies are tighter than topical neighbours)",
        )
        use_metadata: bool = Field(True, description="use site/date/doc id metadata")
        site_keys: list[str] = Field(
            default_factory=lambda: list(SITE_KEYS),
            description="metadata keys naming a chunk's site",
        )
        corroboration_sites: int = Field(
            3, ge=2, description="members from this many distinct sites = corroboration"
        )
        claim_quorum: float = Field(
            0.6, gt=0.0, le=1.0, description="share of members a claim word must occur in"
        )
        support_threshold: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description="weighted share of the claim words an independent chunk must contain",
        )
        on_flag: Literal["drop", "annotate"] = Field(
            "drop", description="what happens to chunks of a flagged cluster"
        )
        drop_duplicates: bool = Field(
            False, description="collapse mode: remove duplicates instead of annotating them"
        )
        merge_threshold: float | None = Field(
            None,
            gt=0.0,
            le=1.0,
            description="merge clusters of >= 2 chunks whose average similarity is at least "
            "this (looser than cosine_threshold; singletons are never merged). "
            "None = off",
        )
        expand_threshold: float | None = Field(
            None,
            gt=0.0,
            le=1.0,
            description="also absorb a chunk whose mean similarity to a cluster is at least "
            "this and that repeats the cluster's claim words (None = off)",
        )
        core_margin: float = Field(
            0.05,
            ge=0.0,
            le=1.0,
            description="peel a member off its cluster when its mean similarity to the others "
            "is this much below theirs (0 = off)",
        )

    blocking = True  # may embed the candidates

    def _setup(self) -> None:
        self._embedders = Embedders()
        self.vectors = ChunkVectors(
            lambda: self.name,
            self._get_embedder,
            index=self.config.index,
            cache_size=self.config.cache_size,
        )

    def use_embedder(self, embedder: Any) -> PoisonClusterGuard:
        """Use this embedder object instead of ``load_embedder(config.embedder)`` (tests,
        benchmarks that cache vectors). Returns ``self``."""
        self._embedders.use(self.config.embedder, embedder)
        self.vectors.clear()
        return self

    def bind_components(self, components: Mapping[str, Any]) -> None:
        self._embedders.bind(components, self.config.embedder)

    def _get_embedder(self) -> Any:
        return self._embedders.get(self.config.embedder)

    def warm_up(self) -> None:
        self._get_embedder().warm_up()
        self.vectors.index()  # open and check the index now, not on the first query

    # --- analysis ----------------------------------------------------------------------
    def similarity(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """Pairwise similarity used for clustering (see the module docstring)."""
        if vectors is None:
            vectors = np.asarray(self._get_embedder().embed(list(texts)), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise InputError(
                f"stage '{self.name}': the embedder returned shape "
                f"{vectors.shape} for {len(texts)} texts"
            )
        cos = vectors @ vectors.T
        ng = ngram_jaccard(texts, self.config.ngram_size)
        scaled = np.minimum(1.0, ng * (self.config.cosine_threshold / self.config.ngram_threshold))
        sim = np.maximum(cos, scaled)
        np.fill_diagonal(sim, 1.0)
        return sim

    def analyse(
        self, chunks: Sequence[Chunk], query: Query | None = None, vectors: np.ndarray | None = None
    ) -> list[Cluster]:
        """Clusters of >= 2 chunks (rank order kept), with suspicion and claim support."""
        cfg = self.config
        if len(chunks) < 2:
            return []
        texts = [c.text for c in chunks]
        sim = self.similarity(texts, vectors)
        groups = [g for g in average_linkage(sim, cfg.cosine_threshold) if len(g) >= 2]
        if cfg.core_margin > 0:
            groups = [c for g in groups for c in peel(sim, g, cfg.core_margin) if len(c) >= 2]
        if cfg.merge_threshold is not None:
            groups = merge_groups(sim, groups, cfg.merge_threshold)
        toks = [_tokens(t) for t in texts]
        df = Counter(w for t in toks for w in t)
        q_toks = _tokens(query.text) if query is not None else set()
        if cfg.expand_threshold is not None:
            groups = expand_groups(
                groups,
                sim,
                toks,
                df,
                q_toks,
                threshold=cfg.expand_threshold,
                support_threshold=cfg.support_threshold,
                quorum=cfg.claim_quorum,
            )
        clusters = []
        for g in groups:
            sub = sim[np.ix_(g, g)]
            density = float((sub.sum() - len(g)) / (len(g) * (len(g) - 1)))
            cl = Cluster(g, round(density, 4))
            if cfg.use_metadata:
                metas = [chunks[i].metadata for i in g]
                cl.sites = sorted({s for m in metas if (s := _site_of(m, cfg.site_keys))})
                cl.dates = sorted({d for m in metas if (d := _date_of(m))})
            cl.docs = sorted({chunks[i].doc_id for i in g if chunks[i].doc_id})
            self._judge(cl, chunks, toks, df, q_toks)
            clusters.append(cl)
        return clusters

    def _judge(
        self,
        cl: Cluster,
        chunks: Sequence[Chunk],
        toks: list[set[str]],
        df: Counter[str],
        q_toks: set[str],
    ) -> None:
        cfg = self.config
        # Chunks of one document are one source (overlapping windows, repeated boilerplate):
        # a cluster's weight is its number of distinct documents.
        sources = len(cl.docs) + sum(1 for i in cl.members if not chunks[i].doc_id)
        if sources == 1:
            cl.why = f"chunks of one document ({cl.docs[0]})"
        elif sources < cfg.min_cluster_size:
            cl.why = f"only {sources} distinct documents"
        elif cfg.use_metadata and len(cl.sites) >= cfg.corroboration_sites:
            cl.why = f"corroborated by {len(cl.sites)} distinct sites"
        elif cl.density < cfg.min_density:
            cl.why = f"loose (density {cl.density:.2f} < {cfg.min_density})"
        else:
            cl.suspicious = True
            src = f"{len(cl.sites)} site(s)" if cl.sites else "no site metadata"
            cl.why = f"{cl.size} near-duplicates, {src}"
        # The claim: words most members share that the query does not ask about.
        weight = claim_weights(cl.members, toks, df, q_toks, cfg.claim_quorum)
        claim = list(weight)
        cl.claim = sorted(claim, key=lambda w: (-weight[w], w))
        total = sum(weight.values())
        if not total:
            return
        member_docs = {chunks[i].doc_id for i in cl.members if chunks[i].doc_id}
        member_sites = set(cl.sites)
        in_cluster = set(cl.members)
        for j, c in enumerate(chunks):
            if j in in_cluster or (c.doc_id and c.doc_id in member_docs):
                continue
            if (
                cfg.use_metadata
                and member_sites
                and _site_of(c.metadata, cfg.site_keys) in member_sites
            ):
                continue  # the same site is not an independent witness
            s = sum(weight[w] for w in claim if w in toks[j]) / total
            if s > cl.support:
                cl.support, cl.supported_by = round(s, 4), c.id

    # --- running -----------------------------------------------------------------------
    def _run(self, candidates: Candidates, query: Query | None = None) -> Candidates:
        cfg = self.config
        items = list(candidates.items)
        if not items:
            return candidates.derive(
                self.name, [], note={"mode": cfg.mode, "clusters": [], "empty_input": True}
            )
        clusters, sources = self._clusters(items, query)
        flagged, dup_of = self._decide(clusters)
        keep, reasons, verdicts = self._apply(items, clusters, flagged, dup_of)
        note = {
            "mode": cfg.mode,
            "flagged": sorted(items[i].id for i in flagged),
            "vectors": sources,
            "clusters": [describe(cl, items) for cl in clusters],
        }
        return candidates.derive(
            self.name, keep, drop_reasons=reasons, verdicts=verdicts, note=note
        )

    def _decide(self, clusters: Sequence[Cluster]) -> tuple[set[int], dict[int, int]]:
        """The members the mode flags, and (collapse) each duplicate's representative."""
        cfg = self.config
        flagged: set[int] = set()
        dup_of: dict[int, int] = {}
        if cfg.mode == "collapse":
            for each in clusters:
                for i in each.members[1:]:
                    dup_of[i] = each.members[0]
        elif cfg.mode == "drop_unsupported":
            for each in clusters:
                if each.suspicious and each.support < cfg.support_threshold:
                    flagged.update(each.members)
        else:  # flag_densest
            sus = [c for c in clusters if c.suspicious]
            if sus:
                top = max(sus, key=lambda c: (c.density * c.size, c.density))
                flagged.update(top.members)
        return flagged, dup_of

    def _apply(
        self,
        items: Sequence[ScoredChunk],
        clusters: Sequence[Cluster],
        flagged: set[int],
        dup_of: dict[int, int],
    ) -> tuple[list[ScoredChunk], dict[str, str], dict[str, Verdict]]:
        """Drop or annotate each candidate: kept chunks, drop reasons and verdicts by id."""
        cfg = self.config
        keep: list[ScoredChunk] = []
        reasons: dict[str, str] = {}
        verdicts: dict[str, Verdict] = {}
        by_member = {i: cl for cl in clusters for i in cl.members}
        for i, sc in enumerate(items):
            cl = by_member.get(i)
            if i in flagged and cl is not None:
                v = poison_verdict(self.name, sc, cl, items)
                verdicts[sc.id] = v
                if cfg.on_flag == "drop":
                    reasons[sc.id] = v.reason
                    continue
                keep.append(
                    sc.with_event(
                        Event(self.name, "flagged", v.reason, sc.score), verdicts=sc.verdicts + (v,)
                    )
                )
            elif i in dup_of and cl is not None:
                rep = items[dup_of[i]]
                v = Verdict(
                    sc.id,
                    self.name,
                    False,
                    "DUPLICATE",
                    round(float(min(1.0, max(0.0, cl.density))), 4),
                    f"duplicate of {rep.id} (cluster of {cl.size}; {cl.why})",
                    rep.chunk.text[:160],
                )
                verdicts[sc.id] = v
                if cfg.drop_duplicates:
                    reasons[sc.id] = v.reason
                    continue
                keep.append(
                    sc.with_event(
                        Event(self.name, "kept", v.reason, sc.score, {"duplicate_of": rep.id}),
                        verdicts=sc.verdicts + (v,),
                    )
                )
            elif cl is not None and cfg.mode == "collapse":
                keep.append(
                    sc.kept(
                        self.name,
                        f"represents a cluster of {cl.size}",
                        cluster_size=cl.size,
                        sources=max(1, len(cl.sites)),
                        duplicates=[items[j].id for j in cl.members[1:]],
                    )
                )
            else:
                keep.append(sc)
        return keep, reasons, verdicts

    def _clusters(
        self, items: Sequence[ScoredChunk], query: Query | None
    ) -> tuple[list[Cluster], dict[str, Any]]:
        """Clusters with members as indices into ``items``. The analysis runs on a canonical
        order (score descending, then chunk id), so the order candidates arrive in never
        decides the clusters, the representative (a cluster's first member: its best-scored
        chunk, ties broken by id) or which cluster is the densest."""
        canon = sorted(range(len(items)), key=lambda i: (-_score_key(items[i].score), items[i].id))
        chunks = [items[i].chunk for i in canon]
        vectors, sources = self.vectors.get(chunks) if len(items) >= 2 else (None, {})
        clusters = self.analyse(chunks, query, vectors)
        for cl in clusters:  # members stay in canonical order: members[0] is the representative
            cl.members = [canon[i] for i in cl.members]
        return clusters, sources
