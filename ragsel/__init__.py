"""ragsel: evidence selection for retrieval-augmented generation.

Compose typed stages (retrieve -> rerank -> select -> cut -> expand -> verify) into a DAG,
defined in Python or YAML, validated when it is built::

    import ragsel
    pipeline = ragsel.load_pipeline("pipelines/local.yaml", variables={"RAGSEL_INDEX": "idx"})
    selection = pipeline.run("Which clauses restrict assignment?").selection
"""

from __future__ import annotations

from ragsel.errors import (
    BackendError,
    BackendTimeout,
    ConfigError,
    ContextLengthError,
    CycleError,
    DefinitionError,
    InputError,
    LLMOutputError,
    MissingExtraError,
    PipelineSpecError,
    RagselError,
    RagselIndexError,
    StageError,
    UnknownStageError,
    WiringError,
)
from ragsel.pipeline import Connection, Pipeline
from ragsel.registry import get_stage_class, register_stage, stage_names
from ragsel.spec import dump_pipeline, load_pipeline, pipeline_from_dict
from ragsel.stage import Stage, StageConfig
from ragsel.trace import RunResult, StageTrace, Trace
from ragsel.typecheck import Variadic
from ragsel.types import (
    Answer,
    Candidates,
    Chunk,
    Dropped,
    Event,
    Query,
    Rationale,
    Rationales,
    ScoredChunk,
    Selection,
    StageNote,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "BackendError",
    "BackendTimeout",
    "Candidates",
    "Chunk",
    "ConfigError",
    "Connection",
    "ContextLengthError",
    "CycleError",
    "DefinitionError",
    "Dropped",
    "Event",
    "InputError",
    "LLMOutputError",
    "MissingExtraError",
    "Pipeline",
    "PipelineSpecError",
    "Query",
    "RagselError",
    "RagselIndexError",
    "Rationale",
    "Rationales",
    "RunResult",
    "ScoredChunk",
    "Selection",
    "Stage",
    "StageConfig",
    "StageError",
    "StageNote",
    "StageTrace",
    "Trace",
    "UnknownStageError",
    "Variadic",
    "Verdict",
    "WiringError",
    "__version__",
    "dump_pipeline",
    "get_stage_class",
    "load_pipeline",
    "pipeline_from_dict",
    "register_stage",
    "stage_names",
]
