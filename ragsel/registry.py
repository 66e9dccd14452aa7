"""The one stage registry: short names (``elbow_cutoff``) -> stage classes.

Built-in stages are listed in :data:`BUILTIN_STAGES` as ``module:Class`` strings and imported
only when first used, so ``import ragsel`` and YAML validation stay fast. Third parties
register with :func:`register_stage` or the ``ragsel.stages`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TypeVar

from ragsel.errors import ConfigError, UnknownStageError

S = TypeVar("S", bound=type)

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
    # fakes for tests and benchmarks (ragsel.testing)
    "fake_retriever": "ragsel.testing:FakeRetriever",
    "fixed_candidates": "ragsel.testing:FixedCandidates",
    "recording_stage": "ragsel.testing:RecordingStage",
    "noop": "ragsel.testing:NoOpStage",
    # connectors (other frameworks' objects inside ragsel; bound by name at load time)
    "langchain_retriever": "ragsel_langchain.stages:LangChainRetrieverStage",
    "llamaindex_retriever": "ragsel_llamaindex.stages:LlamaIndexRetrieverStage",
}

_registered: dict[str, type] = {}
_entry_points_loaded = False


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


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="ragsel.stages"):
        if ep.name not in _registered and ep.name not in BUILTIN_STAGES:
            cls = ep.load()
            cls.type_name = ep.name
            _registered[ep.name] = cls


def stage_names() -> list[str]:
    _load_entry_points()
    return sorted(set(BUILTIN_STAGES) | set(_registered))


def get_stage_class(name: str) -> type:
    """The class registered as ``name``; an unknown name raises with the closest match."""
    cls = _registered.get(name)
    if cls is not None:
        return cls
    target = BUILTIN_STAGES.get(name)
    if target is None:
        _load_entry_points()
        cls = _registered.get(name)
        if cls is not None:
            return cls
        known = stage_names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        raise UnknownStageError(name, known, close[0] if close else None)
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    _registered[name] = cls
    return cls
