"""Multi-query rewriting: N paraphrases of the query, searched and fused by the retrievers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig
from ragsel.stages.rewrite._common import finish_list
from ragsel.types import Query


@register_stage("multi_query")
class MultiQueryRewriter(LLMStage):
    """Ask an LLM for ``n`` rewrites of the query and add them to ``Query.rewrites``;
    retrievers with ``use_rewrites`` search each and fuse the lists. The answer may be a
    numbered or bulleted list or plain lines; chatter, duplicates and copies of the query are
    skipped. If no rewrite comes back the query passes on unchanged (``on_empty: keep``, noted
    in ``Query.metadata["rewrites_by"]``) or the stage fails (``on_empty: error``).

    Example: ``MultiQueryRewriter(n=3, llm="openai:qwen2.5-7b").run(query=Query("..."))``.
    YAML: ``{type: multi_query, n: 3, llm: openai}``. Template: ``rewrite_multi_query``
    (``{{query}} {{n}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        n: int = Field(3, ge=1, le=20, description="how many rewrites to ask for")
        temperature: float = Field(0.7, ge=0.0, le=2.0)
        max_tokens: int = Field(300, ge=16)
        on_empty: Literal["keep", "error"] = "keep"

    templates = {"rewrite_multi_query": frozenset({"query", "n"})}

    def _messages(self, query: Query) -> list[dict[str, str]]:
        return self.template("rewrite_multi_query").render(query=query.text, n=str(self.config.n))

    def _run(self, query: Query) -> Query:
        completion = self.complete(self._messages(query))
        return finish_list(self, query, completion, "rewrite")

    async def _arun(self, query: Query) -> Query:
        completion = await self.acomplete(self._messages(query))
        return finish_list(self, query, completion, "rewrite")
