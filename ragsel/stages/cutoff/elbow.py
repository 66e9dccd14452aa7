"""``elbow_cutoff``: METEORA's adaptive cutoff on the score curve."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig, cut_candidates
from ragsel.stages.cutoff._curve import elbow_index
from ragsel.types import Candidates


def _why(info: dict[str, Any]) -> str:
    method = info["method"]
    if method == "z_score":
        return (
            f"elbow after rank {info['elbow'] + 1}: gap {info['gap']:.4g} has "
            f"z={info['z']:.2f} > {info['z_threshold']:g}"
        )
    if method == "second_difference":
        return (
            f"no gap with z > {info['z_threshold']:g} (max z={info['max_z']:.2f}); "
            f"largest second difference after rank {info['elbow'] + 1}"
        )
    if method == "equal_gaps":
        return f"all {info['n'] - 1} gaps equal (a linear score curve): no elbow, all kept"
    return f"{info['n']} candidate(s): too few for an elbow, all kept"


@register_stage("elbow_cutoff")
class ElbowCutoff(Stage):
    """Cut the ranked list where the score curve bends (METEORA's elbow rule).

    Sorts the scores, z-scores the gaps between consecutive scores and cuts at the first gap
    whose z-score is above ``z_threshold`` (keeps everything before it); falls back to the
    largest second difference when no gap stands out; keeps everything when there are two
    candidates or fewer; then clamps the count to ``[min_k, max_k]``. Scale-free: it works the
    same on cosine, BM25 or RRF scores. The trace note says where it cut and why (the gap, its
    z-score). The math is :func:`ragsel.stages.cutoff._curve.elbow_index`.

    Example: ``ElbowCutoff(z_threshold=1.0, max_k=10)`` or in YAML
    ``{type: elbow_cutoff, max_k: 10}``.
    """

    config: Config

    class Config(ClampConfig):
        z_threshold: float = Field(
            1.0, description="cut at the first gap whose z-score is above this"
        )

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        cfg = self.config
        return cut_candidates(
            self.name,
            candidates,
            lambda s: elbow_index(s, cfg.z_threshold),
            min_k=cfg.min_k,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
            why=_why,
        )
