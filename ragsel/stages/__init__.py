"""Stages, one module per stage, grouped by role. See ragsel.registry for the short names.

Every built-in stage class is importable from here, loaded on first use (so importing
``ragsel.stages`` loads no stage module and no model)::

    from ragsel.stages import ElbowCutoff, NeighborExpander

``ragsel stages`` on the command line lists every type with its one-line doc, config fields
and module path.
"""

from __future__ import annotations

import importlib
from typing import Any


def _targets() -> dict[str, str]:
    """Class name -> "module:Class" for the built-in stages under ``ragsel.stages``."""
    from ragsel.registry import BUILTIN_STAGES

    prefix = __name__ + "."
    return {
        target.rpartition(":")[2]: target
        for target in BUILTIN_STAGES.values()
        if target.startswith(prefix)
    }


def __getattr__(name: str) -> Any:
    target = _targets().get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_targets()))


__all__ = sorted(
    [
        "BM25RM3Retriever",
        "BM25Retriever",
        "CandidateScorer",
        "CrossEncoderReranker",
        "DecomposeRewriter",
        "DenseRetriever",
        "DenseRocchioRetriever",
        "ElbowCutoff",
        "HydeRewriter",
        "InMemoryBM25Retriever",
        "InMemoryDenseRetriever",
        "InjectionGuard",
        "LLMListwiseReranker",
        "LLMPointwiseReranker",
        "LLMRationaleGenerator",
        "LLMVerifier",
        "LargestGapCutoff",
        "LearnedCutoff",
        "MultiQueryRewriter",
        "NeighborExpander",
        "PRFRationales",
        "PerplexityFilter",
        "PoisonClusterGuard",
        "QueryRationales",
        "RankFusion",
        "RationaleSelector",
        "ScoreThresholdCutoff",
        "SubphraseRationales",
        "TopKCutoff",
        "TopPCutoff",
        "AnswerGenerator",
    ]
)
