"""Run results and traces: what each stage did, how long it took, what it dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ragsel.types import Answer, Candidates, Query, Rationales, Selection

if TYPE_CHECKING:
    from ragsel.pipeline import Pipeline


class StageTrace(NamedTuple):
    """One stage's part of a run (a NamedTuple: built per stage per query, so it is cheap)."""

    stage: str
    type: str
    elapsed_ns: int
    items_in: int | None
    items_out: int | None
    dropped: tuple[str, ...] = ()

    @property
    def ms(self) -> float:
        return self.elapsed_ns / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "type": self.type,
            "ms": round(self.ms, 3),
            "items_in": self.items_in,
            "items_out": self.items_out,
            "dropped": list(self.dropped),
        }


@dataclass(frozen=True, slots=True)
class Trace:
    stages: list[StageTrace]
    total_ns: int

    @property
    def total_ms(self) -> float:
        return self.total_ns / 1e6

    def __getitem__(self, stage: str) -> StageTrace:
        for st in self.stages:
            if st.stage == stage:
                return st
        raise KeyError(stage)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.stages]


class RunResult:
    """Outputs of one pipeline run (``result["stage.output"]``) plus its trace."""

    __slots__ = ("pipeline", "query", "values", "trace", "_selection")

    def __init__(
        self, pipeline: Pipeline, query: Query, values: dict[str, Any], trace: Trace
    ) -> None:
        self.pipeline, self.query, self.values, self.trace = pipeline, query, values, trace
        self._selection: Selection | None = None

    def __getitem__(self, key: str) -> Any:
        if "." not in key:
            stage = self.pipeline.stages.get(key)
            if stage is None:
                raise KeyError(key)
            key = f"{key}.{next(iter(stage.output_types()))}"
        return self.values[key]

    def _first(self, kind: type) -> Any:
        found = [v for v in self.values.values() if isinstance(v, kind)]
        return found[-1] if found else None

    @property
    def candidates(self) -> Candidates | None:
        out = self.pipeline.output_stage()
        for key, v in self.values.items():
            if key.startswith(out + ".") and isinstance(v, Candidates):
                return v
        return None

    @property
    def rationales(self) -> Rationales | None:
        return self._first(Rationales)

    @property
    def answer(self) -> Answer | None:
        return self._first(Answer)

    @property
    def selection(self) -> Selection:
        """The selected evidence with provenance (from the pipeline's output stage)."""
        if self._selection is None:
            cands = self.candidates
            if cands is None:
                raise ValueError(f"pipeline '{self.pipeline.name}' produced no Candidates")
            self._selection = Selection.from_candidates(
                self.query, cands, rationales=self.rationales, answer=self.answer
            )
        return self._selection
