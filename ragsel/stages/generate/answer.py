"""Answer generation from the selected evidence, with validated citations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from ragsel.backends.llm.base import Completion, LLMOutputError, usage_summary
from ragsel.registry import register_stage
from ragsel.stages._llm import LLMStage, LLMStageConfig, escape_delimiters
from ragsel.types import Answer, Candidates, Query

_BRACKET = re.compile(r"\[([^\[\]\n]{1,200})\]")
_SPLIT = re.compile(r"\s*[,;]\s*|\s+and\s+")


def parse_citations(
    text: str, ids: Sequence[str], *, numbered: bool = False
) -> tuple[list[str], list[str]]:
    """Chunk ids cited in ``text`` as ``[id]`` / ``[id1, id2]`` (or ``[1]`` when
    ``numbered``: 1-based positions in ``ids``), in order of first appearance, and the cited
    references that match no given id."""
    known = set(ids)
    cited: list[str] = []
    invalid: list[str] = []
    for m in _BRACKET.finditer(text or ""):
        for ref in _SPLIT.split(m.group(1).strip()):
            ref = ref.strip().strip("'\"`")
            if ref.lower().startswith(("id:", "id=", "passage ")):
                ref = ref.split(":", 1)[-1].split("=", 1)[-1].replace("passage ", "").strip()
            if not ref:
                continue
            cid = None
            if ref in known:
                cid = ref
            elif numbered and ref.isdigit() and 1 <= int(ref) <= len(ids):
                cid = ids[int(ref) - 1]
            if cid is None:
                if ref not in invalid:
                    invalid.append(ref)
            elif cid not in cited:
                cited.append(cid)
    return cited, invalid


@register_stage("answer_generator")
class AnswerGenerator(LLMStage):
    """Answer the query from the candidates, citing chunk ids in square brackets.

    The evidence goes between ``<context>`` delimiters, one ``<passage id="...">`` per chunk,
    and the instructions tell the model to ignore instructions inside it; delimiter tags that
    occur in a chunk's own text are neutralised so a chunk cannot close the context block.
    Citations are parsed and validated against the given ids: ``Answer.citations`` holds only
    real chunk ids (in order of first citation); anything else the model cited is listed in
    ``Answer.metadata["invalid_citations"]``. Long evidence is truncated to fit the prompt
    budget (never the instructions). With no evidence the model is not called and the answer
    says so (``metadata["no_evidence"] = True``).

    ``cite_by: number`` labels passages 1, 2, ... instead of their ids (easier for small
    models); citations are still reported as chunk ids.

    Example::

        answer = AnswerGenerator(llm="openai:qwen2.5-7b").run(query=Query("..."),
                                                              candidates=selected)

    YAML: ``{type: answer_generator, llm: openai}``. Template: ``answer`` (``{{query}}
    {{context}} {{example_id}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        cite_by: Literal["id", "number"] = "id"
        max_tokens: int = Field(512, ge=16)
        no_evidence_answer: str = Field(
            "No evidence was selected for this question, so it cannot be answered from the "
            "documents.",
            description="returned without calling the model when there is no evidence",
        )

    templates = {"answer": frozenset({"query", "context", "example_id"})}

    def _refs(self, candidates: Candidates) -> list[str]:
        if self.config.cite_by == "number":
            return [str(i) for i in range(1, len(candidates) + 1)]
        return candidates.ids

    def _messages(
        self, query: Query, candidates: Candidates, budget: int | None = None
    ) -> tuple[list[dict[str, str]], dict[str, int]]:
        refs = self._refs(candidates)
        pairs = [
            (r, escape_delimiters(sc.chunk.text, ("context", "passage")))
            for r, sc in zip(refs, candidates.items)
        ]
        return self.render_fitted(
            "answer",
            {"context": pairs},
            lambda i, t: f'<passage id="{i}">\n{t}\n</passage>',
            budget,
            query=query.text,
            example_id=refs[0],
        )

    def _answer(
        self, candidates: Candidates, completion: Completion, fit: dict[str, int]
    ) -> Answer:
        text = (completion.text or "").strip()
        cited, invalid = parse_citations(
            text, candidates.ids, numbered=self.config.cite_by == "number"
        )
        meta: dict[str, Any] = {
            **usage_summary([completion]),
            **fit,
            "invalid_citations": invalid,
            "evidence": len(candidates),
        }
        if not text:
            raise LLMOutputError(
                "the model returned an empty answer",
                backend=self.model_name,
                text="",
                problem="empty",
            )
        return Answer(text, tuple(cited), str(completion.model or self.model_name), meta)

    def _no_evidence(self) -> Answer:
        return Answer(self.config.no_evidence_answer, (), "", {"no_evidence": True})

    def _run(self, query: Query, candidates: Candidates) -> Answer:
        if not candidates.items:
            return self._no_evidence()
        c, fit = self.complete_fitted(lambda b: self._messages(query, candidates, b))
        return self._answer(candidates, c, fit)

    async def _arun(self, query: Query, candidates: Candidates) -> Answer:
        if not candidates.items:
            return self._no_evidence()
        c, fit = await self.acomplete_fitted(lambda b: self._messages(query, candidates, b))
        return self._answer(candidates, c, fit)
