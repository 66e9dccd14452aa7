"""Turn a cut position on the score curve into a derived :class:`Candidates` (shared by the
cutoff stages so each of them only decides *where* to cut)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ragsel.stage import StageConfig
from ragsel.stages.cutoff._curve import as_scores, clamp
from ragsel.types import Candidates, ScoredChunk

CutRule = Callable[[np.ndarray], tuple[int, dict[str, Any]]]


class ClampConfig(StageConfig):
    """Config fields every cutoff shares: the ``[min_k, max_k]`` clamp on the rule's cut."""

    min_k: int = Field(1, ge=0, description="keep at least this many (0 allows an empty result)")
    max_k: int | None = Field(None, ge=1, description="keep at most this many")

    @model_validator(mode="after")
    def _check_clamp(self) -> ClampConfig:
        if self.max_k is not None and self.max_k < self.min_k:
            raise ValueError(f"max_k ({self.max_k}) must be >= min_k ({self.min_k})")
        return self


def sorted_items(candidates: Candidates) -> tuple[list[ScoredChunk], np.ndarray, bool]:
    """Items and scores by descending score (stable), and whether the input was out of
    order. NaN/inf scores are an :class:`~ragsel.errors.InputError`."""
    items = candidates.items
    scores = as_scores([sc.score for sc in items], sort=False)
    if scores.size < 2 or not np.any(scores[1:] > scores[:-1]):
        return list(items), scores, False
    order = np.argsort(-scores, kind="stable")
    return [items[i] for i in order], scores[order], True


def cut_candidates(
    stage: str,
    candidates: Candidates,
    rule: CutRule,
    *,
    min_k: int,
    max_k: int | None,
    why: Callable[[dict[str, Any]], str],
) -> Candidates:
    """Apply ``rule`` (scores sorted descending -> ``(cut, info)``) to ``candidates``.

    Keeps the best ``cut`` (clamped to ``[min_k, max_k]``), marks them ``kept`` with the
    reason ``why(info)``, drops the rest with one reason naming the cut and why, and
    records a note with the rule's ``info``, the clamped cut and the counts.
    """
    items, scores, resorted = sorted_items(candidates)
    n = len(items)
    if n == 0:
        return candidates.derive(
            stage, [], note={"n": 0, "cut": 0, "reason": "no candidates to cut"}
        )
    rule_cut, info = rule(scores)
    cut = clamp(rule_cut, n, min_k, max_k)
    reason = why(info)
    if cut != rule_cut:
        clamp_by = "max_k" if max_k is not None and rule_cut > cut else "min_k"
        reason += f"; clamped by {clamp_by} from {rule_cut} to {cut}"
    keep = [sc.kept(stage, reason, rank=r) for r, sc in enumerate(items[:cut], 1)]
    last = items[cut - 1].score if cut else None
    note = {
        **info,
        "rule_cut": rule_cut,
        "cut": cut,
        "kept": cut,
        "dropped": n - cut,
        "min_k": min_k,
        "max_k": max_k,
        "why": reason,
        "last_kept_score": last,
    }
    if resorted:
        note["resorted"] = True
    return candidates.derive(
        stage, keep, note=note, default_reason=f"below the cut after rank {cut} of {n} ({reason})"
    )
