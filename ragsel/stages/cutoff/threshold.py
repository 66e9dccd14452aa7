"""``score_threshold``: keep candidates whose (optionally normalised) score is high enough."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig, cut_candidates
from ragsel.stages.cutoff._curve import normalize
from ragsel.types import Candidates


@register_stage("score_threshold")
class ScoreThresholdCutoff(Stage):
    """Keep the candidates whose score is at least ``threshold``.

    A raw threshold does not transfer between scorers (an RRF score is at most
    ``n_inputs / k``, a BM25 score is unbounded), so ``normalize`` makes it scale-free:
    ``"max"`` compares ``score / best score`` (keep what is within X% of the best),
    ``"minmax"`` rescales the list to [0, 1], ``"zscore"`` compares standard deviations above
    the list's mean, ``"none"`` uses raw scores. ``min_k`` (default 1) keeps the best
    candidate even when none passes, and the trace note says so; set ``min_k: 0`` to allow an
    empty result.

    Example: ``ScoreThresholdCutoff(threshold=0.8, normalize="max")`` or in YAML
    ``{type: score_threshold, threshold: 0.5, normalize: minmax}``.
    """

    config: Config

    class Config(ClampConfig):
        threshold: float = Field(..., description="keep scores >= this (after normalize)")
        normalize: Literal["none", "max", "minmax", "zscore"] = Field(
            "none", description="how to rescale the scores before comparing"
        )

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        cfg = self.config

        def rule(scores: np.ndarray) -> tuple[int, dict]:
            x = normalize(scores, cfg.normalize)
            cut = int(np.count_nonzero(x >= cfg.threshold))  # sorted: a prefix passes
            info = {
                "method": "threshold",
                "n": int(scores.size),
                "threshold": cfg.threshold,
                "normalize": cfg.normalize,
                "passed": cut,
                "best_normalized": float(x[0]),
            }
            if cut < scores.size:
                info["first_failing_normalized"] = float(x[cut])
            return cut, info

        def why(info: dict) -> str:
            what = "score" if cfg.normalize == "none" else f"{cfg.normalize}-normalised score"
            if info["passed"] == 0:
                return f"no {what} reaches {cfg.threshold:g} (best {info['best_normalized']:.4g})"
            return f"{what} >= {cfg.threshold:g}"

        return cut_candidates(
            self.name,
            candidates,
            rule,
            min_k=cfg.min_k,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
            why=why,
        )
