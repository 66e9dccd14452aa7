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
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="token budget of the kept chunks (words and punctuation marks): the cut "
        "stops before the chunk that would exceed it (the first chunk is always kept); give "
        "the expansion the same budget so cut + expansion honour it together",
    )

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
    max_tokens: int | None = None,
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
    budget_note, drops, cut = token_budget(items, cut, max_tokens)
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
    if budget_note:
        note["budget"] = budget_note
    return candidates.derive(
        stage,
        keep,
        note=note,
        drop_reasons=drops,
        default_reason=f"below the cut after rank {cut} of {n} ({reason})",
    )


def token_budget(
    items: list[ScoredChunk], cut: int, max_tokens: int | None
) -> tuple[dict[str, Any], dict[str, str], int]:
    """Shorten the prefix ``items[:cut]`` to ``max_tokens``: returns the budget note
    (budget, tokens kept, ids dropped by the budget), the drop reasons and the new cut. The
    first item is kept even when it alone is over the budget (never an empty selection)."""
    if max_tokens is None or cut == 0:
        return {}, {}, cut
    from ragsel.stages.expand.neighbors import text_cost

    spent, keep = 0, 0
    for sc in items[:cut]:
        cost = text_cost(sc.chunk.text, "tokens")
        if keep and spent + cost > max_tokens:
            break
        spent += cost
        keep += 1
    dropped = [sc.chunk.id for sc in items[keep:cut]]
    note: dict[str, Any] = {"max_tokens": max_tokens, "tokens_kept": spent}
    if dropped:
        note["dropped_by_budget"] = dropped
    if spent > max_tokens:
        note["over_budget"] = "the first chunk alone exceeds max_tokens; kept it"
    why = f"over the token budget (max_tokens={max_tokens}; {spent} tokens kept before it)"
    return note, dict.fromkeys(dropped, why), keep
