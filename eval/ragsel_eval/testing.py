"""Small stages for testing evaluation plumbing (use them in YAML with
``allow_modules=["ragsel_eval.testing"]`` / ``--allow-module ragsel_eval.testing``).

- :class:`FailOnQuery` passes candidates through but raises on chosen query ids (to test that a
  failing query is recorded and the run goes on).
- :class:`InterruptOnQuery` raises ``KeyboardInterrupt`` on chosen queries while a flag file
  exists (to test that an interrupted run resumes).
- :class:`FlagContaining` drops chunks whose text contains a marker word, with a flagged
  :class:`~ragsel.types.Verdict` (a fake guard, to test detection metrics end to end).
"""

from __future__ import annotations

from pydantic import Field

from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Query, Verdict


class FailOnQuery(Stage):
    """``{type: "ragsel_eval.testing:FailOnQuery", query_ids: [q7]}``"""

    class Config(StageConfig):
        query_ids: list[str] = Field(default_factory=list)

    blocking = False

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        if query.id in self.config.query_ids:
            raise RuntimeError(f"configured to fail on query {query.id}")
        return candidates


class InterruptOnQuery(Stage):
    """``{type: "ragsel_eval.testing:InterruptOnQuery", query_ids: [q3], flag_file: /tmp/x}``"""

    class Config(StageConfig):
        query_ids: list[str] = Field(default_factory=list)
        flag_file: str = ""

    blocking = False

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        import os

        if query.id in self.config.query_ids and os.path.exists(self.config.flag_file):
            raise KeyboardInterrupt
        return candidates


class FlagContaining(Stage):
    """``{type: "ragsel_eval.testing:FlagContaining", marker: "Contrary"}``"""

    class Config(StageConfig):
        marker: str = "POISON"

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        keep, verdicts = [], {}
        for sc in candidates.items:
            if self.config.marker.lower() in sc.chunk.text.lower():
                verdicts[sc.chunk.id] = Verdict(
                    sc.chunk.id,
                    self.name,
                    True,
                    "POISON",
                    reason=f"contains {self.config.marker!r}",
                )
            else:
                keep.append(sc)
        return candidates.derive(self.name, keep, default_reason="flagged", verdicts=verdicts)
