"""RankGPT-style listwise reranking with an LLM over a sliding window."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from pydantic import Field, model_validator

from ragsel.backends.llm.base import usage_summary
from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig, escape_delimiters
from ragsel.types import Candidates, Query, ScoredChunk

_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def parse_permutation(text: str, n: int) -> tuple[list[int], dict[str, int]]:
    """0-based order of ``n`` items from a model's ranking like ``[3] > [1] > [2]``.

    Bracketed ids are used when the answer has any, else bare numbers. Ids outside ``1..n``
    and repeats are ignored; ids the model forgot are appended in their original order.
    Returns the order and ``{"unknown": k, "duplicates": k, "missing": k}``.
    """
    found = _BRACKETED.findall(text or "")
    if not found:
        found = _NUMBER.findall(text or "")
    seen: list[int] = []
    unknown = dupes = 0
    for tok in found:
        i = int(tok) - 1
        if not 0 <= i < n:
            unknown += 1
        elif i in seen:
            dupes += 1
        else:
            seen.append(i)
    missing = [i for i in range(n) if i not in set(seen)]
    return seen + missing, {"unknown": unknown, "duplicates": dupes, "missing": len(missing)}


@register_stage("llm_listwise_reranker")
class LLMListwiseReranker(LLMStage):
    """Rerank the top ``depth`` candidates by asking an LLM to order passages, RankGPT style:
    a window of ``window`` passages slides from the bottom of the list to the top in steps of
    ``step``, so good passages bubble up. The answer is parsed leniently
    (:func:`parse_permutation`): unknown and repeated ids are ignored, forgotten ones keep
    their original order. Candidates below ``depth`` follow unchanged. The new score is
    ``1 / rank``; the note counts calls and repairs.

    Example::

        rr = LLMListwiseReranker(llm="openai:qwen2.5-7b", window=20, step=10, depth=50)
        reranked = rr.run(candidates=cands, query=Query("..."))

    YAML: ``{type: llm_listwise_reranker, llm: openai, window: 20, step: 10}``.
    Template: ``rerank_listwise`` (``{{query}} {{passages}} {{count}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        window: int = Field(20, ge=2, description="passages per LLM call")
        step: int = Field(10, ge=1, description="how far the window moves up each call")
        depth: int = Field(50, ge=1, description="rerank only the first `depth` candidates")
        max_passage_chars: int = Field(
            800, ge=50, description="passages are cut to this length in the prompt"
        )
        max_tokens: int = Field(256, ge=8)

        @model_validator(mode="after")
        def _step_within_window(self) -> LLMListwiseReranker.Config:
            if self.step > self.window:
                raise ValueError(
                    f"step ({self.step}) must be <= window ({self.window}), or "
                    "passages between windows would never be compared"
                )
            return self

    templates = {"rerank_listwise": frozenset({"query", "passages", "count"})}

    def _windows(self, n: int) -> list[tuple[int, int]]:
        """(start, end) windows from the bottom of the list to the top."""
        w, s = self.config.window, self.config.step
        out = []
        end = n
        while True:
            start = max(0, end - w)
            out.append((start, end))
            if start == 0:
                return out
            end -= s

    def _messages(
        self, query: Query, part: Sequence[ScoredChunk], budget: int | None = None
    ) -> tuple[list[dict[str, str]], dict[str, int]]:
        limit = self.config.max_passage_chars
        passages = []
        for i, sc in enumerate(part, 1):
            text = " ".join(sc.chunk.text.split())
            if len(text) > limit:
                text = text[:limit].rsplit(" ", 1)[0] + " …"
            passages.append((str(i), escape_delimiters(text, ("passage",))))
        return self.render_fitted(
            "rerank_listwise",
            {"passages": passages},
            lambda i, t: f"[{i}] {t}",
            budget,
            query=query.text,
            count=str(len(part)),
        )

    def _apply(
        self, order: list[ScoredChunk], start: int, end: int, text: str, stats: dict[str, int]
    ) -> None:
        perm, repair = parse_permutation(text, end - start)
        for k, v in repair.items():
            stats[k] += v
        order[start:end] = [order[start + i] for i in perm]

    def _finish(
        self,
        candidates: Candidates,
        order: list[ScoredChunk],
        rest: list[ScoredChunk],
        stats: dict[str, Any],
        completions: list[Any],
    ) -> Candidates:
        new = [
            sc.rescored(self.name, 1.0 / rank, f"listwise rank {rank}")
            for rank, sc in enumerate(order, 1)
        ]
        tail = [sc.kept(self.name, "below rerank depth") for sc in rest]
        note = {
            **stats,
            **usage_summary(completions),
            "window": self.config.window,
            "step": self.config.step,
            "depth": self.config.depth,
            "model": self.model_name,
        }
        return candidates.derive(self.name, new + tail, note=note)

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        order = list(candidates.items[: self.config.depth])
        rest = list(candidates.items[self.config.depth :])
        stats: dict[str, Any] = {"unknown": 0, "duplicates": 0, "missing": 0}
        completions = []
        if len(order) > 1:
            for start, end in self._windows(len(order)):
                c, _ = self.complete_fitted(partial(self._messages, query, order[start:end]))
                completions.append(c)
                self._apply(order, start, end, c.text, stats)
        return self._finish(candidates, order, rest, stats, completions)

    async def _arun(self, candidates: Candidates, query: Query) -> Candidates:
        # Windows depend on the previous window's result: sequential by design.
        order = list(candidates.items[: self.config.depth])
        rest = list(candidates.items[self.config.depth :])
        stats: dict[str, Any] = {"unknown": 0, "duplicates": 0, "missing": 0}
        completions = []
        if len(order) > 1:
            for start, end in self._windows(len(order)):
                c, _ = await self.acomplete_fitted(partial(self._messages, query, order[start:end]))
                completions.append(c)
                self._apply(order, start, end, c.text, stats)
        return self._finish(candidates, order, rest, stats, completions)
