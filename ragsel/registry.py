"""The one stage registry: short names (``elbow_cutoff``) -> stage classes.

Built-in stages are listed in :data:`BUILTIN_STAGES` as ``module:Class`` strings and imported
only when first used, so ``import ragsel`` and YAML validation stay fast. Plug-ins (the
LangChain/LlamaIndex connectors, third parties) register through the ``ragsel.stages``
entry-point group (:mod:`ragsel.plugins`), or with :func:`register_stage` in code.

The fakes of :mod:`ragsel.testing` are not user stage types: they register when that module
is imported, or in any process where ``$RAGSEL_TEST_STAGES=1`` (set by the test suite, so a
CLI run in a subprocess of a test sees them too).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ragsel.errors import ConfigError, UnknownStageError

if TYPE_CHECKING:
    from ragsel.stage import Stage

S = TypeVar("S", bound="type[Stage]")

_S = "ragsel.stages"
#: name -> "module:Class". One line per built-in stage; one module per stage.
BUILTIN_STAGES: dict[str, str] = {
    # rewrite
    "multi_query": f"{_S}.rewrite.multi_query:MultiQueryRewriter",
    "hyde": f"{_S}.rewrite.hyde:HydeRewriter",
    "decompose": f"{_S}.rewrite.decompose:DecomposeRewriter",
    # retrieve
    "dense_retriever": f"{_S}.retrieve.dense:DenseRetriever",
    "bm25_retriever": f"{_S}.retrieve.bm25:BM25Retriever",
    "bm25_rm3_retriever": f"{_S}.retrieve.bm25_rm3:BM25RM3Retriever",
    "dense_rocchio_retriever": f"{_S}.retrieve.dense_rocchio:DenseRocchioRetriever",
    "in_memory_dense_retriever": f"{_S}.retrieve.memory_dense:InMemoryDenseRetriever",
    "in_memory_bm25_retriever": f"{_S}.retrieve.memory_bm25:InMemoryBM25Retriever",
    "fusion": f"{_S}.retrieve.fusion:RankFusion",
    # rerank
    "cross_encoder_reranker": f"{_S}.rerank.cross_encoder:CrossEncoderReranker",
    "llm_listwise_reranker": f"{_S}.rerank.llm_listwise:LLMListwiseReranker",
    "llm_pointwise_reranker": f"{_S}.rerank.llm_pointwise:LLMPointwiseReranker",
    "candidate_scorer": f"{_S}.rerank.candidate_scorer:CandidateScorer",
    # rationale
    "rationale_generator": f"{_S}.rationale.llm_generator:LLMRationaleGenerator",
    "query_rationales": f"{_S}.rationale.query:QueryRationales",
    "subphrase_rationales": f"{_S}.rationale.subphrases:SubphraseRationales",
    "prf_rationales": f"{_S}.rationale.prf:PRFRationales",
    # select
    "rationale_selector": f"{_S}.select.rationale_selector:RationaleSelector",
    # cutoff
    "elbow_cutoff": f"{_S}.cutoff.elbow:ElbowCutoff",
    "largest_gap_cutoff": f"{_S}.cutoff.largest_gap:LargestGapCutoff",
    "score_threshold": f"{_S}.cutoff.threshold:ScoreThresholdCutoff",
    "top_k": f"{_S}.cutoff.top_k:TopKCutoff",
    "top_p": f"{_S}.cutoff.top_p:TopPCutoff",
    "learned_cutoff": f"{_S}.cutoff.learned:LearnedCutoff",
    # expand
    "neighbor_expansion": f"{_S}.expand.neighbors:NeighborExpander",
    # verify
    "injection_guard": f"{_S}.verify.injection:InjectionGuard",
    "poison_cluster_guard": f"{_S}.verify.poison_cluster:PoisonClusterGuard",
    "llm_verifier": f"{_S}.verify.llm_verifier:LLMVerifier",
    "perplexity_filter": f"{_S}.verify.perplexity:PerplexityFilter",
    # generate
    "answer_generator": f"{_S}.generate.answer:AnswerGenerator",
}
TEST_STAGES_ENV = "RAGSEL_TEST_STAGES"

_registered: dict[str, type[Stage]] = {}


def register_stage(name: str) -> Callable[[S], S]:
    """Class decorator: register a stage under a short name used in YAML (``type: name``)."""
    if not name.isidentifier():
        raise ConfigError(f"stage name {name!r} must be an identifier (letters, digits, _)")

    def deco(cls: S) -> S:
        builtin = BUILTIN_STAGES.get(name)
        if builtin is not None and builtin != f"{cls.__module__}:{cls.__qualname__}":
            raise ConfigError(f"stage name '{name}' is a built-in ragsel stage; pick another")
        existing = _registered.get(name)
        if (
            existing is not None
            and existing is not cls
            and (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__)
        ):
            raise ConfigError(
                f"stage name '{name}' is already registered to "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        cls.type_name = name
        _registered[name] = cls
        return cls

    return deco


def _plugin_stages() -> dict[str, Any]:
    """name -> entry point of the ``ragsel.stages`` group (loaded only when used)."""
    from ragsel.plugins import STAGES_GROUP, entry_points

    if os.environ.get(TEST_STAGES_ENV) == "1":
        import ragsel.testing  # noqa: F401  (its fakes register themselves)
    return {n: ep for n, ep in entry_points(STAGES_GROUP).items() if n not in BUILTIN_STAGES}


def is_test_stage(name: str) -> bool:
    """Whether ``name`` is one of :mod:`ragsel.testing`'s fakes (not offered to users)."""
    cls = _registered.get(name)
    return cls is not None and cls.__module__ == "ragsel.testing"


def stage_names() -> list[str]:
    return sorted(set(BUILTIN_STAGES) | set(_plugin_stages()) | set(_registered))


def get_stage_class(name: str) -> type[Stage]:
    """The class registered as ``name``; an unknown name raises with the closest match."""
    cls = _registered.get(name)
    if cls is not None:
        return cls
    target = BUILTIN_STAGES.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        plugin = _plugin_stages().get(name)
        cls = _registered.get(name)  # e.g. ragsel.testing, imported just now
        if cls is not None:
            return cls
        if plugin is None:
            known = stage_names()
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            raise UnknownStageError(name, known, close[0] if close else None)
        cls = plugin.load()
        cls.type_name = name
    _registered[name] = cls
    return cls
