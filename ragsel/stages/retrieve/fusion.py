"""``fusion``: merge several ranked lists (hybrid BM25 + dense, multi-query) into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ragsel.errors import ConfigError, InputError
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages.retrieve._common import rank_reason
from ragsel.stages.retrieve._rank_fusion import reciprocal_rank_fusion
from ragsel.typecheck import Variadic
from ragsel.types import (
    Candidates,
    Event,
    ScoredChunk,
    StageNote,
    new_dropped,
    new_event,
    new_scored_chunk,
)

Method = Literal["rrf", "relative_score", "dbsf", "zscore", "calibrated"]


def _source_names(lists: Sequence[Candidates]) -> list[str]:
    """The stage that scored each list (its items' ``stage``, the latest scorer), made unique
    with ``#2``, ``#3`` suffixes; an empty list is named by the last stage that left a note on
    it (a retriever says why it found nothing), else ``input<i>``."""
    names: list[str] = []
    for i, cands in enumerate(lists):
        if cands.items and cands.items[0].stage:
            base = cands.items[0].stage
        else:
            base = cands.notes[-1].stage if cands.notes else f"input{i}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return names


def _unique(cands: Candidates) -> list[ScoredChunk]:
    """Each chunk once, at its best (first) rank: a list that repeats a chunk (multi-query
    retrieval) must not vote for it twice."""
    seen: set[str] = set()
    out = []
    for sc in cands.items:
        if sc.chunk.id not in seen:
            seen.add(sc.chunk.id)
            out.append(sc)
    return out


def normalized_scores(scores: np.ndarray, method: Method) -> np.ndarray:
    """Per-list normalisation of relative-score (min-max to [0, 1]) and distribution-based
    (``mean ± 3σ`` mapped to [0, 1], clipped) fusion. A list whose scores do not vary maps
    every score to 1 (min-max) or 0.5 (dbsf): it carries no ranking signal of its own.

    ``zscore`` (label-free calibration, eval/benchmarks/studies/prf_fusion.py): distance above
    the list's lowest score in units of the list's standard deviation, so a chunk missing from
    a list counts as that list's minimum (0); a flat list contributes 0."""
    if method == "zscore":
        sd = float(scores.std())
        return np.zeros_like(scores) if sd <= 0 else (scores - float(scores.min())) / sd
    if method == "relative_score":
        lo, hi = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if hi <= lo else (scores - lo) / (hi - lo)
    mu, sd = float(scores.mean()), float(scores.std())
    if sd <= 0:
        return np.full_like(scores, 0.5)
    return np.clip((scores - (mu - 3 * sd)) / (6 * sd), 0.0, 1.0)


@register_stage("fusion")
class RankFusion(Stage):
    """Fuse several candidate lists into one ranking.

    Methods: ``rrf`` (reciprocal rank fusion, ``sum_i w_i / (k + rank_i)``), ``relative_score``
    (each list's scores min-max normalised, then a weighted sum) and ``dbsf``
    (distribution-based score fusion: each list normalised with ``mean ± 3σ`` as its range)
    and ``zscore`` (each list's scores minus its minimum, over its standard deviation), and
    ``calibrated`` (per-retriever score, rank and presence weighed by coefficients learned from
    labelled queries, ``calibration:``; ``ragsel fit-fusion`` prints them; see
    :mod:`ragsel.stages.retrieve.fusion_calibration`).
    A chunk repeated inside one list counts once for that list (at its best rank); a chunk
    missing from a list gets nothing from it. The fused item keeps the events of every list
    that returned it, plus a ``fused`` event with its rank and score in each; drops and notes
    of all inputs are merged. Ties break by best rank in any list, then by input order.

    Weights: a list, in the order the pipeline feeds the inputs -- deterministic, sorted by
    upstream stage name (``bm25`` before ``dense``) -- or a mapping from upstream stage name to
    weight (clearer; a missing name means 1.0). ``top_k`` keeps only the best fused items.

    Example: ``RankFusion(method="rrf", k=60, weights={"bm25": 1.0, "dense": 1.0})`` or in
    YAML ``{type: fusion, method: rrf, k: 60}`` with ``connections: [bm25 -> fuse.candidates,
    dense -> fuse.candidates]``.
    """

    config: Config

    class Config(StageConfig):
        method: Method = Field("rrf", description="rrf, relative_score, dbsf, zscore or calibrated")
        k: int = Field(60, ge=0, description="RRF rank constant")
        weights: list[float] | dict[str, float] | None = Field(
            None,
            description="per input: a list (inputs sorted by upstream stage name) or "
            "{upstream stage name: weight}",
        )
        top_k: int | None = Field(None, ge=1, description="keep only the best top_k")
        calibration: dict[str, dict[str, float]] | None = Field(
            None,
            description="method calibrated: {upstream stage name: {z, log_rank, present}} "
            "coefficients (`ragsel fit-fusion` prints them)",
        )

        @model_validator(mode="after")
        def _calibration_goes_with_its_method(self) -> RankFusion.Config:
            from ragsel.stages.retrieve.fusion_calibration import FEATURES

            if (self.method == "calibrated") != (self.calibration is not None):
                raise ValueError(
                    "method: calibrated needs calibration: (from `ragsel fit-fusion`), and "
                    "calibration: needs method: calibrated"
                )
            for name, coef in (self.calibration or {}).items():
                unknown = sorted(set(coef) - set(FEATURES))
                if unknown:
                    raise ValueError(
                        f"calibration of {name!r}: unknown feature(s) {unknown}; "
                        f"use {list(FEATURES)}"
                    )
            if self.method == "calibrated" and self.weights is not None:
                raise ValueError("calibrated fusion learns its weights: drop weights:")
            return self

        @field_validator("weights")
        @classmethod
        def _non_negative(cls, v: Any) -> Any:
            vals = v.values() if isinstance(v, dict) else (v or [])
            if any(w < 0 for w in vals):
                raise ValueError("weights must be >= 0")
            return v

    blocking = False

    def _weights(self, names: Sequence[str], empty: Sequence[bool]) -> list[float]:
        """One weight per input. An empty list carries no name of its own (``input<i>``) and
        contributes nothing whatever its weight, so a mapping may name it: fusing with an empty
        input equals fusing without it (the retriever that found nothing is not an error)."""
        w = self.config.weights
        if w is None:
            return [1.0] * len(names)
        if isinstance(w, dict):
            unknown = sorted(set(w) - set(names))
            if unknown and len(unknown) > sum(empty):
                raise ConfigError(
                    f"weights name {unknown}, but the inputs come from "
                    f"{[n for n, e in zip(names, empty) if not e]}; use the upstream stage names",
                    stage=self.name,
                    field="weights",
                )
            return [1.0 if e else float(w.get(n, 1.0)) for n, e in zip(names, empty)]
        if len(w) != len(names):
            raise ConfigError(
                f"{len(w)} weights for {len(names)} inputs {list(names)}; give "
                "one weight per connected input (sorted by upstream stage name) "
                "or a {stage: weight} mapping",
                stage=self.name,
                field="weights",
            )
        return list(w)

    def _score_fusion(
        self,
        uniques: Sequence[Sequence[ScoredChunk]],
        names: Sequence[str],
        weights: Sequence[float],
    ) -> list[tuple[str, float]]:
        """Relative-score / distribution-based fusion: a weighted sum of per-list normalised
        scores; ties break by best rank in any list, then by list order (as RRF's do)."""
        total: dict[str, float] = {}
        best: dict[str, tuple[int, int]] = {}
        for li, (uniq, name, w) in enumerate(zip(uniques, names, weights)):
            if not uniq:
                continue
            raw = np.fromiter((sc.score for sc in uniq), np.float64, len(uniq))
            if not np.all(np.isfinite(raw)):
                raise InputError(
                    f"stage '{self.name}': the list from '{name}' has NaN/inf "
                    f"scores; {self.config.method} fusion needs finite scores "
                    "(rrf uses ranks only)"
                )
            norm = normalized_scores(raw, self.config.method)
            for rank, (sc, v) in enumerate(zip(uniq, norm), 1):
                cid = sc.chunk.id
                total[cid] = total.get(cid, 0.0) + w * float(v)
                best[cid] = min(best.get(cid, (rank, li)), (rank, li))
        return sorted(total.items(), key=lambda kv: (-kv[1], best[kv[0]]))

    def _calibrated_fusion(
        self, lists: Sequence[Candidates], names: Sequence[str], seen: Mapping[str, Any]
    ) -> list[tuple[str, float]]:
        """Learned log-odds fusion; an empty input adds nothing (its features are constant)."""
        from ragsel.stages.retrieve.fusion_calibration import (
            calibrated_scores,
            feature_rows,
        )

        calibration = self.config.calibration or {}
        missing = [n for n, c in zip(names, lists) if c.items and n not in calibration]
        if missing:
            raise ConfigError(
                f"calibration names {sorted(calibration)}, but inputs {missing} have no "
                "coefficients; re-run `ragsel fit-fusion` for this pipeline",
                stage=self.name,
                field="calibration",
            )
        live = [(c, n) for c, n in zip(lists, names) if c.items]
        try:
            ids, feats = feature_rows([c for c, _ in live], [n for _, n in live])
        except InputError as exc:
            raise InputError(f"stage '{self.name}': {exc}") from None
        scores = calibrated_scores(feats, calibration)
        best = {cid: min(seen[cid][2].values()) for cid in ids}
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], best[ids[i]], i))
        return [(ids[i], float(scores[i])) for i in order]

    def _run(self, candidates: Variadic[Candidates]) -> Candidates:
        cfg = self.config
        names = _source_names(candidates)
        weights = self._weights(names, [not c.items for c in candidates])
        drops, notes = Candidates.merge_history(candidates)
        # one pass over the inputs: each list's ranking (a chunk counts once per list, at its
        # best rank) and, per chunk, its first occurrence, its events from every list and its
        # rank in each -- the hot path of every query (~200 inputs, ~100 kept)
        rankings: list[list[str]] = []
        # chunk id -> (first occurrence, events of later lists or None, rank per list)
        seen: dict[str, tuple[ScoredChunk, list[Event] | None, dict[str, int]]] = {}
        for cands, name in zip(candidates, names):
            ids: list[str] = []
            for sc in cands.items:
                cid = sc.chunk.id
                rec = seen.get(cid)
                if rec is None:
                    ids.append(cid)
                    seen[cid] = (sc, None, {name: len(ids)})
                elif name not in rec[2]:
                    ids.append(cid)
                    if rec[1] is None:
                        seen[cid] = rec = (rec[0], list(sc.events), rec[2])
                    else:
                        rec[1].extend(sc.events)
                    rec[2][name] = len(ids)
            rankings.append(ids)
        if cfg.method == "rrf":
            fused = reciprocal_rank_fusion(rankings, k=cfg.k, weights=weights)
        elif cfg.method == "calibrated":
            fused = self._calibrated_fusion(candidates, names, seen)
        else:
            fused = self._score_fusion([_unique(c) for c in candidates], names, weights)
        keep = fused if cfg.top_k is None else fused[: cfg.top_k]
        items = []
        method, me = cfg.method, self.name
        for cid, score in keep:
            src, more, r = seen[cid]
            why = ", ".join([rank_reason(n, v) for n, v in r.items()])
            ev = new_event(me, "fused", f"{method}: {why}", score, MappingProxyType({"ranks": r}))
            events = src.events + (ev,) if more is None else (*src.events, *more, ev)
            items.append(
                new_scored_chunk(
                    src.chunk, score, me, events, src.rationales, src.expanded_from, src.verdicts
                )
            )
        note: dict[str, Any] = {
            "method": method,
            "inputs": [
                {"stage": n, "n": len(c), "weight": w}
                for n, c, w in zip(names, candidates, weights)
            ],
            "unique": len(fused),
            "kept": len(items),
        }
        if method == "rrf":
            note["k"] = cfg.k
        if not fused:
            note["empty"] = "no input list had any candidate"
        if len(keep) < len(fused):
            reason = f"fused rank below top_k={cfg.top_k}"
            drops += tuple(
                new_dropped(seen[cid][0], self.name, reason, None) for cid, _ in fused[len(keep) :]
            )
        return Candidates(tuple(items), drops, notes + (StageNote(self.name, note),))
