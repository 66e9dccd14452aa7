"""HyDE: a hypothetical answer passage, searched as a rewrite (Gao et al., 2022)."""

from __future__ import annotations

import re

from pydantic import Field

from ragsel.backends.llm.base import LLMOutputError, usage_summary
from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig
from ragsel.stages.rewrite._common import add_rewrites
from ragsel.types import Query

_PREAMBLE = re.compile(r"^\s*(sure|here is|here's|certainly|okay)[^\n]*:\s*\n", re.I)


@register_stage("hyde")
class HydeRewriter(LLMStage):
    """Ask an LLM to write a short passage that would answer the query and append it to
    ``Query.rewrites``: dense retrievers with ``use_rewrites`` then also search with the
    passage, which looks more like the documents than the question does. ``n`` passages are
    written by ``n`` calls (different at ``temperature > 0``). An empty answer is an error:
    HyDE without its passage is a silent no-op.

    Example: ``HydeRewriter(llm="openai:qwen2.5-7b").run(query=Query("..."))``.
    YAML: ``{type: hyde, llm: openai}``. Template: ``rewrite_hyde`` (``{{query}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        n: int = Field(1, ge=1, le=8, description="hypothetical passages to write")
        temperature: float = Field(0.7, ge=0.0, le=2.0)
        max_tokens: int = Field(256, ge=16)

    templates = {"rewrite_hyde": frozenset({"query"})}

    def _messages(self, query: Query) -> list[dict[str, str]]:
        return self.template("rewrite_hyde").render(query=query.text)

    def _finish(self, query: Query, completions: list) -> Query:
        passages = []
        for c in completions:
            text = _PREAMBLE.sub("", c.text or "").strip().strip('"').strip()
            if text:
                passages.append(" ".join(text.split()))
        if not passages:
            raise LLMOutputError(
                "the model wrote no hypothetical passage (empty answer)",
                backend=self.model_name,
                text="",
                problem="empty",
            )
        info = {"asked": self.config.n, "parsed": len(passages), **usage_summary(completions)}
        return add_rewrites(query, self.name, passages, info)

    def _run(self, query: Query) -> Query:
        msgs = self._messages(query)
        return self._finish(query, [self.complete(msgs) for _ in range(self.config.n)])

    async def _arun(self, query: Query) -> Query:
        import asyncio

        msgs = self._messages(query)
        return self._finish(
            query, list(await asyncio.gather(*(self.acomplete(msgs) for _ in range(self.config.n))))
        )
