"""``top_k``: a fixed-size cut (the baseline every adaptive cutoff is compared with)."""

from __future__ import annotations

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages.cutoff._apply import cut_candidates
from ragsel.types import Candidates


@register_stage("top_k")
class TopKCutoff(Stage):
    """Keep the ``k`` best candidates (by score; the input order breaks ties).

    Example: ``TopKCutoff(k=5)`` or in YAML ``{type: top_k, k: 5}``.
    """

    config: Config

    class Config(StageConfig):
        k: int = Field(5, ge=1, description="how many to keep")

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        k = self.config.k
        return cut_candidates(
            self.name,
            candidates,
            lambda s: (k, {"method": "top_k", "n": int(s.size), "k": k}),
            min_k=0,
            max_k=None,
            why=lambda info: f"in the top {k}",
        )
