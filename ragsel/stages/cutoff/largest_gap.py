"""``largest_gap_cutoff``: cut at the biggest drop in the score curve."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig, cut_candidates
from ragsel.stages.cutoff._curve import largest_gap_index
from ragsel.types import Candidates


def _why(info: dict[str, Any]) -> str:
    if info["method"] == "too_few":
        return f"{info['n']} candidate(s): nothing to cut"
    if info["method"] == "equal_gaps":
        return f"all {info['n'] - 1} gaps equal (a linear score curve): no gap decides, all kept"
    return (
        f"largest gap after rank {info['elbow'] + 1}: {info['gap']:.4g} "
        f"(z={info['z']:.2f}), {info['score_before']:.4g} -> {info['score_after']:.4g}"
    )


@register_stage("largest_gap_cutoff")
class LargestGapCutoff(Stage):
    """Keep the candidates above the largest gap between consecutive scores (Adaptive-k).

    Scale-free. ``search_k`` limits the search to the gaps after the first ``search_k`` ranks
    (a big gap deep in a noisy tail is rarely the relevance boundary); ``min_k``/``max_k``
    clamp the count. The trace note gives the gap, its z-score and the scores around it.

    Example: ``LargestGapCutoff(search_k=20, min_k=2)`` or in YAML
    ``{type: largest_gap_cutoff, search_k: 20}``.
    """

    config: Config

    class Config(ClampConfig):
        search_k: int | None = Field(
            None, ge=1, description="only look at the gaps after the first search_k ranks"
        )

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        cfg = self.config
        return cut_candidates(
            self.name,
            candidates,
            lambda s: largest_gap_index(s, cfg.search_k),
            min_k=cfg.min_k,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
            why=_why,
        )
