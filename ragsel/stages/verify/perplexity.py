"""METEORA's perplexity baseline against corpus poisoning."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from ragsel.errors import ConfigError
from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig
from ragsel.types import Candidates, Event, Verdict


def perplexity_threshold(
    ppl: Sequence[float], k_sigma: float = 1.5, cap: float | None = 20.0
) -> tuple[float, float, float]:
    """``min(mean + k_sigma * std, cap)`` over the finite perplexities, with mean and std
    (population std; one value has std 0)."""
    vals = [p for p in ppl if math.isfinite(p)]
    if not vals:
        return math.inf, math.nan, math.nan
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    thr = mean + k_sigma * std
    return (min(thr, cap) if cap is not None else thr), mean, std


@register_stage("perplexity_filter")
class PerplexityFilter(LLMStage):
    """Flag chunks whose perplexity under a local causal LM is unusually high: PPL >
    ``min(mean + 1.5 sigma, 20)`` over the candidate list, the baseline METEORA compares its
    verifier with (poisoned passages are often less fluent than the corpus).

    Any local causal LM works through a backend with ``score_perplexity(texts)`` (the
    transformers backend, e.g. ``llm: "transformers:smollm2"``). Texts without tokens score
    NaN: unmeasured, never flagged. Note the cap: with a small model most
    natural text is above 20, so the rule flags nearly everything; set ``cap: null`` to use
    the relative rule alone. ``action: annotate`` keeps flagged chunks with their verdicts (to
    measure the filter). Every chunk gets a verdict with its perplexity.

    Example::

        f = PerplexityFilter(llm="transformers:smollm2", cap=None)
        kept = f.run(candidates=cands)

    YAML: ``{type: perplexity_filter, llm: "transformers:smollm2"}``.
    """

    config: Config

    class Config(LLMStageConfig):
        k_sigma: float = Field(1.5, ge=0.0, description="flag above mean + k_sigma * std")
        cap: float | None = Field(
            20.0, gt=0, description="flag above this perplexity whatever the mean (None: no cap)"
        )
        action: Literal["drop", "annotate"] = "drop"
        batch_size: int = Field(8, ge=1)
        max_length: int | None = Field(
            512, ge=8, description="tokens scored per chunk (longer chunks are cut)"
        )

    templates: ClassVar[Mapping[str, frozenset[str]]] = {}

    def _perplexities(self, texts: list[str]) -> list[float]:
        llm = self.llm
        fn = getattr(llm, "score_perplexity", None)
        if not callable(fn):
            raise ConfigError(
                f"LLM backend {getattr(llm, 'name', type(llm).__name__)} cannot "
                "score perplexity; use a local causal LM, e.g. llm: "
                "'transformers:smollm2'",
                stage=self.name,
                field="llm",
            )
        out = [
            float(x)
            for x in fn(texts, batch_size=self.config.batch_size, max_length=self.config.max_length)
        ]
        if len(out) != len(texts):
            raise ConfigError(
                f"the LLM returned {len(out)} perplexities for {len(texts)} texts",
                stage=self.name,
                field="llm",
            )
        return out

    def _run(self, candidates: Candidates) -> Candidates:
        items = candidates.items
        if not items:
            return candidates.derive(self.name, [], note={"empty": True})
        ppl = self._perplexities([sc.chunk.text for sc in items])
        thr, mean, std = perplexity_threshold(ppl, self.config.k_sigma, self.config.cap)
        annotated, reasons, verdicts = [], {}, {}
        for sc, p in zip(items, ppl):
            # an unmeasurable text (no tokens) is not evidence of poisoning
            flagged = math.isfinite(p) and p > thr
            why = (
                f"perplexity {p:.2f} > threshold {thr:.2f}"
                if flagged
                else f"perplexity {p:.2f} <= threshold {thr:.2f}"
                if math.isfinite(p)
                else "perplexity not measurable (no tokens)"
            )
            v = Verdict(
                sc.id,
                self.name,
                flagged,
                "POISON" if flagged else "OK",
                1.0,
                f"{why} (mean {mean:.2f}, std {std:.2f})",
            )
            ev = Event(
                self.name, "flagged" if flagged else "kept", why, sc.score, {"perplexity": p}
            )
            sc = sc.with_event(ev, verdicts=sc.verdicts + (v,))
            annotated.append(sc)
            if flagged:
                reasons[sc.id], verdicts[sc.id] = v.reason, v
        note: dict[str, Any] = {
            "threshold": thr,
            "mean": mean,
            "std": std,
            "flagged": len(reasons),
            "action": self.config.action,
            "model": self.model_name,
        }
        base = Candidates(tuple(annotated), candidates.dropped, candidates.notes)
        keep = (
            annotated
            if self.config.action == "annotate"
            else [sc for sc in annotated if sc.id not in reasons]
        )
        return base.derive(self.name, keep, drop_reasons=reasons, verdicts=verdicts, note=note)
