"""Query decomposition: sub-questions of a complex query, searched as rewrites."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig
from ragsel.stages.rewrite._common import finish_list
from ragsel.types import Query


@register_stage("decompose")
class DecomposeRewriter(LLMStage):
    """Ask an LLM to split a multi-part question into at most ``n`` self-contained
    sub-questions and add them to ``Query.rewrites`` (retrievers with ``use_rewrites`` search
    each, so every part of a multi-hop question gets its own evidence). Parsing and
    ``on_empty`` work as in :class:`~ragsel.stages.rewrite.multi_query.MultiQueryRewriter`.

    Example: ``DecomposeRewriter(n=4, llm="openai:qwen2.5-7b").run(query=Query("..."))``.
    YAML: ``{type: decompose, n: 4, llm: openai}``. Template: ``rewrite_decompose``
    (``{{query}} {{n}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        n: int = Field(4, ge=1, le=10, description="at most this many sub-questions")
        max_tokens: int = Field(300, ge=16)
        on_empty: Literal["keep", "error"] = "keep"

    templates = {"rewrite_decompose": frozenset({"query", "n"})}

    def _messages(self, query: Query) -> list[dict[str, str]]:
        return self.template("rewrite_decompose").render(query=query.text, n=str(self.config.n))

    def _run(self, query: Query) -> Query:
        completion = self.complete(self._messages(query))
        return finish_list(self, query, completion, "sub-question")

    async def _arun(self, query: Query) -> Query:
        completion = await self.acomplete(self._messages(query))
        return finish_list(self, query, completion, "sub-question")
