"""Pointwise LLM relevance scoring: P(yes) from logprobs, or a graded 0-3 judgement."""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

from pydantic import Field

from ragsel.backends.llm.base import Completion, usage_summary
from ragsel.registry import register_stage
from ragsel.stages._llm import (
    LLMStage,
    LLMStageConfig,
    escape_delimiters,
    gather_limited,
    in_context,
)
from ragsel.types import Candidates, Query, ScoredChunk

_GRADE = re.compile(r"(?<![\d.])([0-3])(?![\d.])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def yes_probability(logprobs: list[Any] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first answer token's alternatives (format of
    :class:`ragsel.backends.llm.base.Completion.logprobs`), or None when neither is there."""
    if not logprobs:
        return None
    first = logprobs[0]
    if not isinstance(first, dict):
        return None
    alts = dict(first.get("top") or {})
    tok = first.get("token")
    if isinstance(tok, str) and isinstance(first.get("logprob"), (int, float)):
        alts.setdefault(tok, first["logprob"])
    p = {"yes": 0.0, "no": 0.0}
    for t, lp in alts.items():
        key = str(t).strip().lower()
        if key in p and isinstance(lp, (int, float)):
            p[key] += math.exp(lp)
    total = p["yes"] + p["no"]
    return None if total <= 0 else p["yes"] / total


def parse_grade(text: str) -> int | None:
    """The first standalone digit 0-3 in a graded answer."""
    m = _GRADE.search(text or "")
    return int(m.group(1)) if m else None


@register_stage("llm_pointwise_reranker")
class LLMPointwiseReranker(LLMStage):
    """Score each candidate alone with an LLM and sort by the score.

    ``mode: yes_no`` asks "does the passage help answer the query?" and scores P(yes) from the
    first token's logprobs (the model's own probability, so ties are rare); without logprobs
    the text answer gives 1 or 0. ``mode: graded`` asks for a 0-3 grade (score = grade / 3).
    ``mode: auto`` (default) uses yes_no while the backend returns logprobs and switches to
    graded for good as soon as it does not. Calls run concurrently (``max_concurrency``);
    ties keep the original order. Unparseable answers score 0 and are counted in the note.

    Example::

        rr = LLMPointwiseReranker(llm="openai:qwen2.5-7b", depth=30)
        reranked = rr.run(candidates=cands, query=Query("..."))

    YAML: ``{type: llm_pointwise_reranker, llm: openai, mode: graded}``.
    Templates: ``rerank_pointwise_yesno``, ``rerank_pointwise_graded`` (``{{query}}
    {{passage}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        mode: Literal["auto", "yes_no", "graded"] = "auto"
        depth: int = Field(50, ge=1, description="score only the first `depth` candidates")
        max_concurrency: int = Field(4, ge=1)
        max_tokens: int = Field(4, ge=1, description="the answer is one word or digit")

    templates = {
        "rerank_pointwise_yesno": frozenset({"query", "passage"}),
        "rerank_pointwise_graded": frozenset({"query", "passage"}),
    }

    def _setup(self) -> None:
        super()._setup()
        self._no_logprobs = False  # learned on the first call in auto mode

    def _mode(self) -> str:
        if self.config.mode == "auto":
            return "graded" if self._no_logprobs else "yes_no"
        return self.config.mode

    def _render(self, mode: str, query: Query, sc: ScoredChunk) -> Any:
        name = "rerank_pointwise_yesno" if mode == "yes_no" else "rerank_pointwise_graded"
        return lambda budget: self.render_fitted(
            name,
            {"passage": [(sc.id, sc.chunk.text)]},
            lambda _i, t: escape_delimiters(t, ("passage",)),
            budget,
            query=query.text,
        )

    def _score(self, mode: str, c: Completion) -> tuple[float | None, str]:
        if mode == "yes_no":
            p = yes_probability(c.logprobs)
            if p is not None:
                return p, "P(yes)"
            m = _YES_NO.search(c.text or "")
            return (
                (None, "unparsed")
                if m is None
                else (float(m.group(1).lower() == "yes"), "yes/no text")
            )
        g = parse_grade(c.text)
        return (None, "unparsed") if g is None else (g / 3.0, f"grade {g}")

    def _needs_graded(self, mode: str, c: Completion) -> bool:
        if self.config.mode == "auto" and mode == "yes_no" and c.logprobs is None:
            self._no_logprobs = True
            return True
        return False

    def _one(
        self, query: Query, sc: ScoredChunk, calls: list[Completion]
    ) -> tuple[float | None, str]:
        mode = self._mode()
        c, _ = self.complete_fitted(self._render(mode, query, sc), logprobs=mode == "yes_no")
        calls.append(c)
        if self._needs_graded(mode, c):
            mode = "graded"
            c, _ = self.complete_fitted(self._render(mode, query, sc))
            calls.append(c)
        return self._score(mode, c)

    async def _aone(
        self, query: Query, sc: ScoredChunk, calls: list[Completion]
    ) -> tuple[float | None, str]:
        mode = self._mode()
        c, _ = await self.acomplete_fitted(self._render(mode, query, sc), logprobs=mode == "yes_no")
        calls.append(c)
        if self._needs_graded(mode, c):
            mode = "graded"
            c, _ = await self.acomplete_fitted(self._render(mode, query, sc))
            calls.append(c)
        return self._score(mode, c)

    def _finish(
        self,
        candidates: Candidates,
        head: list[ScoredChunk],
        scores: list[tuple[float | None, str]],
        calls: list[Completion],
    ) -> Candidates:
        rescored = []
        for sc, (s, how) in zip(head, scores):
            rescored.append(
                sc.rescored(
                    self.name,
                    0.0 if s is None else s,
                    how if s is not None else "unparseable answer: 0",
                )
            )
        order = sorted(range(len(rescored)), key=lambda i: (-rescored[i].score, i))
        tail = [
            sc.kept(self.name, "below rerank depth") for sc in candidates.items[self.config.depth :]
        ]
        note = {
            **usage_summary(calls),
            "mode": self._mode() if head else self.config.mode,
            "unparsed": sum(s is None for s, _ in scores),
            "model": self.model_name,
        }
        return candidates.derive(self.name, [rescored[i] for i in order] + tail, note=note)

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        head = list(candidates.items[: self.config.depth])
        calls: list[Completion] = []
        scores: list[tuple[float | None, str]] = []
        if head:
            # the first call alone: in auto mode it tells whether logprobs are available
            scores.append(self._one(query, head[0], calls))
            workers = min(self.config.max_concurrency, max(1, len(head) - 1))
            with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-") as pool:
                one = in_context(lambda sc: self._one(query, sc, calls))
                scores += list(pool.map(one, head[1:]))
        return self._finish(candidates, head, scores, calls)

    async def _arun(self, candidates: Candidates, query: Query) -> Candidates:
        head = list(candidates.items[: self.config.depth])
        calls: list[Completion] = []
        scores: list[tuple[float | None, str]] = []
        if head:
            scores.append(await self._aone(query, head[0], calls))
            scores += await gather_limited(
                [partial(self._aone, query, sc, calls) for sc in head[1:]],
                self.config.max_concurrency,
            )
        return self._finish(candidates, head, scores, calls)
