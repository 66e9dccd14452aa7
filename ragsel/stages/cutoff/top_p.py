"""``top_p``: keep the smallest prefix holding a given share of the softmax mass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig, cut_candidates
from ragsel.stages.cutoff._curve import top_p_index
from ragsel.types import Candidates


@register_stage("top_p")
class TopPCutoff(Stage):
    """Nucleus-style cut: softmax the scores (divided by ``temperature``) and keep the
    smallest prefix whose cumulative probability reaches ``p``.

    Scores are z-scored first by default (``normalize: zscore``) so the temperature means the
    same for cosine, BM25 and RRF scores; ``normalize: none`` softmaxes raw scores (as
    Haystack's TopPSampler does). A lower temperature concentrates the mass on the top.

    Example: ``TopPCutoff(p=0.9, temperature=0.5)`` or in YAML
    ``{type: top_p, p: 0.9, temperature: 0.5}``.
    """

    config: Config

    class Config(ClampConfig):
        p: float = Field(0.9, gt=0.0, le=1.0, description="cumulative probability to reach")
        temperature: float = Field(1.0, gt=0.0, description="softmax temperature")
        normalize: Literal["none", "minmax", "zscore"] = Field(
            "zscore", description="rescale scores before the softmax"
        )

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        cfg = self.config

        def why(info: dict) -> str:
            return (
                f"cumulative softmax mass {info['mass']:.3f} >= p={cfg.p:g} "
                f"(temperature {cfg.temperature:g}, {cfg.normalize})"
            )

        return cut_candidates(
            self.name,
            candidates,
            lambda s: top_p_index(s, cfg.p, cfg.temperature, cfg.normalize),
            min_k=cfg.min_k,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
            why=why,
        )
