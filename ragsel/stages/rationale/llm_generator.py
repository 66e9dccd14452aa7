"""METEORA rationales written by an LLM."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from ragsel.backends.llm.base import LLMOutputError, usage_summary
from ragsel.errors import BackendError
from ragsel.registry import get_stage_class, register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig
from ragsel.stages.rationale._parse import parse_rationales
from ragsel.types import Query, Rationale, Rationales

log = logging.getLogger("ragsel.stages")


@register_stage("rationale_generator")
class LLMRationaleGenerator(LLMStage):
    """Ask an LLM for ``n`` rationales: distinct search strategies for the evidence a query
    needs, each with a short label and flag instructions saying when a chunk must be rejected
    (METEORA, step 1). The answer is parsed tolerantly (XML tags, JSON, "Rationale N:" blocks,
    numbered lists; see :mod:`ragsel.stages.rationale._parse`).

    Fewer rationales than asked, missing labels or flags are reported in
    ``Rationales.notes["problems"]``. When the answer holds no usable rationale (fewer than
    ``min_rationales``), the stage falls back to the LLM-free ``query_rationales`` (the query
    itself as the only rationale; ``on_no_rationales: error`` raises instead), so one odd
    answer never fails a whole pipeline. When the LLM is down it raises, unless
    ``fallback: query`` is set. A fallback is never silent: the rationales' source is
    ``llm->query``, their labels end in ``(fallback)`` (shown on every chunk they select),
    the notes carry ``fallback`` and ``fallback_reason``, and a warning is logged.

    Example::

        gen = LLMRationaleGenerator(n=8, llm={"backend": "openai", "model": "qwen2.5-7b"})
        rationales = gen.run(query=Query("Can the agreement be assigned?"))

    YAML: ``{type: rationale_generator, n: 8, llm: openai, fallback: query}``.
    An answer cut at ``max_tokens`` (``finish_reason: length``) loses its cut-off item.
    Template: ``rationale_generator`` (slots ``{{query}}``, ``{{n}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        n: int = Field(8, ge=1, le=32, description="how many rationales to ask for")
        temperature: float = Field(0.7, ge=0.0, le=2.0)
        max_tokens: int = Field(1200, ge=16)
        min_rationales: int = Field(
            1,
            ge=1,
            description="fewer usable rationales than this counts as a failure (error or fallback)",
        )
        fallback: Literal["error", "query"] = Field(
            "error",
            description="when the LLM fails (and, if 'query', also when its answer has too "
            "few rationales): raise ('error') or use the LLM-free query_rationales ('query')",
        )
        on_no_rationales: Literal["query", "error"] = Field(
            "query",
            description="when the answer has fewer than min_rationales usable rationales: "
            "fall back to the query as the rationale ('query', reported) or raise ('error')",
        )

    templates = {"rationale_generator": frozenset({"query", "n"})}

    def _messages(self, query: Query) -> list[dict[str, str]]:
        return self.template("rationale_generator").render(query=query.text, n=str(self.config.n))

    def _finish(
        self, query: Query, text: str | None, completion: Any, error: BaseException | None
    ) -> Rationales:
        cfg = self.config
        notes: dict[str, Any] = {"requested": cfg.n, "model": self.model_name}
        if completion is not None:
            notes.update(usage_summary([completion]))
        if error is None:
            cut = getattr(completion, "finish_reason", None) == "length"
            parsed = parse_rationales(text or "", limit=cfg.n, truncated=cut)
            notes.update(parsed=len(parsed.items), format=parsed.format, problems=parsed.problems)
            if len(parsed.items) < cfg.n:
                parsed.problems.insert(0, f"asked for {cfg.n} rationales, got {len(parsed.items)}")
            if len(parsed.items) >= cfg.min_rationales:
                return Rationales(tuple(parsed.items), source="llm", notes=notes)
            why = (
                f"the model gave {len(parsed.items)} usable rationale(s), fewer than "
                f"min_rationales={cfg.min_rationales}"
            )
            detail = "; ".join(parsed.problems[:3])
            error = LLMOutputError(
                f"{why} ({detail})", backend=self.model_name, text=text or "", problem=why
            )
            if cfg.on_no_rationales == "query":
                return self._fallback(query, notes, error)
        if cfg.fallback == "query":
            return self._fallback(query, notes, error)
        raise error

    def _fallback(self, query: Query, notes: dict[str, Any], error: BaseException) -> Rationales:
        # The LLM-free source is a stage of its own; reuse it rather than re-implement it.
        source = get_stage_class("query_rationales")()
        source.name = f"{self.name}.fallback"
        out = source.run(query=query)
        log.warning("stage %r: no usable LLM rationale, using the query (%s)", self.name, error)
        items = tuple(
            Rationale(r.text, f"{r.label} (fallback)", r.flags, r.source) for r in out.items
        )
        merged = {
            **dict(out.notes),
            **notes,
            "fallback": "query",
            "fallback_reason": f"{type(error).__name__}: {error}",
        }
        return Rationales(items, source=f"llm->{out.source or 'query'}", notes=merged)

    def _run(self, query: Query) -> Rationales:
        try:
            completion = self.complete(self._messages(query))
        except BackendError as exc:
            return self._finish(query, None, None, exc)
        return self._finish(query, completion.text, completion, None)

    async def _arun(self, query: Query) -> Rationales:
        try:
            completion = await self.acomplete(self._messages(query))
        except BackendError as exc:
            return self._finish(query, None, None, exc)
        return self._finish(query, completion.text, completion, None)
