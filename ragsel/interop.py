"""Framework-free helpers shared by the LangChain and LlamaIndex connectors.

Both connectors turn a ragsel selection into the other framework's documents, and documents
back into :class:`Candidates`. The metadata layout is the same in both, so ids, scores and
provenance survive ragsel -> LangChain/LlamaIndex -> ragsel::

    {<the chunk's own metadata>,
     "chunk_id": "doc#3", "doc_id": "doc", "position": 3, "span": [120, 180],
     "score": 0.71, "rank": 1,
     "ragsel": {"stage": "cut", "kept_by": ["cut"], "rationales": ["R1"],
                "expanded_from": None, "events": [...], "verdicts": [...], "notes": [...]}}

Nothing here imports LangChain or LlamaIndex.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ragsel.errors import ConfigError, InputError
from ragsel.pipeline import Pipeline
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Chunk, Event, ScoredChunk, StageNote, Verdict, content_id

#: Keys the connectors write; everything else in a document's metadata is the user's.
RAGSEL_KEYS = ("chunk_id", "doc_id", "position", "span", "score", "rank", "ragsel")
_RAGSEL_KEYSET = frozenset(RAGSEL_KEYS)
_SCORE_KEYS = ("score", "relevance_score", "similarity")
NO_POSITION_NOTE = ("no doc_id/position in the document metadata: neighbour expansion "
                    "skipped for it")


# --- ragsel -> documents ---------------------------------------------------------------------
def _verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"stage": v.stage, "flagged": v.flagged, "label": v.label,
            "confidence": v.confidence, "reason": v.reason, "evidence": v.evidence}


def provenance(sc: ScoredChunk) -> dict[str, Any]:
    """Why this chunk is in the selection: the stages that kept/added it, every event,
    the rationales that chose it and the verifiers' verdicts."""
    out: dict[str, Any] = {
        "stage": sc.stage,
        "kept_by": [e.stage for e in sc.events if e.action in ("kept", "added")],
        "rationales": list(sc.rationales),
        "expanded_from": sc.expanded_from,
        "events": [{"stage": e.stage, "action": e.action, "reason": e.reason,
                    "score": e.score, **({"data": dict(e.data)} if e.data else {})}
                   for e in sc.events],
        "verdicts": [_verdict_dict(v) for v in sc.verdicts],
    }
    if sc.chunk.position is None or not sc.chunk.doc_id:
        out["notes"] = [NO_POSITION_NOTE]
    return out


def chunk_metadata(sc: ScoredChunk, rank: int) -> dict[str, Any]:
    """The metadata dict a connector attaches to the document made from ``sc``."""
    c = sc.chunk
    md = dict(c.metadata)
    md.update(chunk_id=c.id, doc_id=c.doc_id, position=c.position,
              span=list(c.span) if c.span else None, score=sc.score, rank=rank,
              ragsel=provenance(sc))
    return md


# --- documents -> ragsel ---------------------------------------------------------------------
def _events(raw: Any) -> tuple[Event, ...]:
    out = []
    for e in raw or ():
        if isinstance(e, Mapping) and "stage" in e and "action" in e:
            out.append(Event(str(e["stage"]), e["action"], str(e.get("reason", "")),
                             e.get("score"), e.get("data") or {}))
    return tuple(out)


def _verdicts(raw: Any, chunk_id: str) -> tuple[Verdict, ...]:
    out = []
    for v in raw or ():
        if isinstance(v, Mapping) and "stage" in v:
            out.append(Verdict(chunk_id, str(v["stage"]), bool(v.get("flagged")),
                               str(v.get("label", "OK")), float(v.get("confidence", 1.0)),
                               str(v.get("reason", "")), str(v.get("evidence", ""))))
    return tuple(out)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def scored_chunk_from_record(text: Any, metadata: Mapping[str, Any] | None, *, rank: int,
                             n: int, source: str, id: str | None = None,
                             doc_id: str | None = None, score: float | None = None,
                             span: tuple[int, int] | None = None,
                             what: str = "document") -> tuple[ScoredChunk, bool]:
    """A :class:`ScoredChunk` from one foreign document; also says whether the score was
    rank-derived (the document carried none).

    Ids come from ``metadata["chunk_id"]``, then ``id``, then a content hash; the doc id from
    ``metadata["doc_id"]``, ``doc_id`` or ``metadata["source"]``; the position from
    ``metadata["position"]``. Provenance written by a connector (``metadata["ragsel"]``) is
    restored, so earlier events and verdicts carry over.
    """
    if not isinstance(text, str):
        raise InputError(f"{what} {rank} has {type(text).__name__} content; ragsel selects "
                         "text: convert it to a string first (e.g. Document(page_content=str(x)))")
    md = metadata if type(metadata) is dict else dict(metadata or {})
    prov = md.get("ragsel")
    if not isinstance(prov, dict):
        prov = {}
    did = md.get("doc_id") or doc_id or md.get("source") or ""
    cid = md.get("chunk_id") or id or content_id(text, did)
    raw_span = md.get("span")
    if isinstance(raw_span, (list, tuple)) and len(raw_span) == 2:
        span = (int(raw_span[0]), int(raw_span[1]))
    derived = False
    if score is None:
        for key in _SCORE_KEYS:
            value = md.get(key)
            if type(value) in (float, int):  # not bool
                score = value
                break
    if score is None:  # descending in rank, so rank order is kept by score-sorting stages
        score, derived = 1.0 - (rank - 1) / max(n, 1), True
    user_md = {k: v for k, v in md.items() if k not in _RAGSEL_KEYSET}
    chunk = Chunk(str(cid), text, str(did), _int_or_none(md.get("position")), span, user_md)
    reason = f"rank {rank} from {source}" + (" (rank-derived score)" if derived else "")
    event = Event(source, "retrieved", reason, float(score))
    if not prov:
        return ScoredChunk(chunk, float(score), source, (event,)), derived
    events = _events(prov.get("events")) + (event,)
    rationales = tuple(str(r) for r in prov.get("rationales") or ())
    sc = ScoredChunk(chunk, float(score), source, events, rationales,
                     prov.get("expanded_from"), _verdicts(prov.get("verdicts"), chunk.id))
    return sc, derived


def candidates_from_records(items: Sequence[ScoredChunk], derived: int, source: str
                            ) -> Candidates:
    """Candidates from converted documents, with a note saying where they came from; a
    chunk id seen twice is kept once (its first, best-ranked occurrence)."""
    seen: set[str] = set()
    unique = [sc for sc in items if not (sc.id in seen or seen.add(sc.id))]
    no_pos = sum(1 for sc in unique if sc.chunk.position is None or not sc.chunk.doc_id)
    note = {"source": source, "documents": len(items), "duplicates": len(items) - len(unique),
            "rank_derived_scores": derived, "without_position": no_pos}
    return Candidates(tuple(unique), (), (StageNote(source, note),))


# --- checking a pipeline for a connector ---------------------------------------------------
def check_selection_pipeline(pipeline: Any, who: str) -> Pipeline:
    """``pipeline`` must be a valid :class:`Pipeline` whose output stage gives Candidates."""
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"{who} needs a ragsel Pipeline (or the path of a pipeline YAML), "
                          f"got {type(pipeline).__name__}")
    pipeline.validate()
    out = pipeline.output_stage()
    stage = pipeline.stages[out]
    if Candidates not in stage.output_types().values():
        raise ConfigError(
            f"{who}: pipeline '{pipeline.name}' ends in stage '{out}' ({stage.type_name}) "
            f"with outputs {stage.describe_sockets()}, not a ranked list of chunks. Set "
            f"'output: <stage>' to a stage that gives Candidates (a retriever, cutoff, "
            f"selector or verifier)")
    return pipeline


def candidates_input(pipeline: Pipeline, ref: str | None, who: str) -> str:
    """The pipeline input that receives documents from outside (``"stage.input"``), declared
    on the pipeline if needed. ``ref=None`` picks the only declared or unconnected Candidates
    input."""
    if ref is None:
        declared = [r for r in pipeline.inputs if _accepts_candidates(pipeline, r)]
        open_ = [f"{n}.{s.name}" for n, st in pipeline.stages.items()
                 for s in st.input_specs().values()
                 if s.required and not s.variadic and not pipeline._is_fed(n, s)
                 and f"{n}.{s.name}" not in pipeline.inputs
                 and _accepts_candidates(pipeline, f"{n}.{s.name}")]
        options = declared or open_
        if len(options) != 1:
            raise ConfigError(
                f"{who}: cannot tell which stage receives the documents in pipeline "
                f"'{pipeline.name}' (candidates inputs: {options or 'none'}). Declare one: "
                f"'inputs: [<stage>.candidates]' in the YAML, or pass input='<stage>.candidates'")
        ref = options[0]
    elif not _accepts_candidates(pipeline, ref):
        raise ConfigError(f"{who}: '{ref}' is not an input of pipeline '{pipeline.name}' that "
                          "takes Candidates; write '<stage>.<input>'")
    pipeline.declare_input(ref)
    return ref


def _accepts_candidates(pipeline: Pipeline, ref: str) -> bool:
    stage_name, _, inp = ref.partition(".")
    stage = pipeline.stages.get(stage_name)
    spec = stage.input_specs().get(inp) if stage is not None else None
    if spec is None:
        return False
    from ragsel.typecheck import compatible

    return compatible(Candidates, spec.item_type) and spec.item_type is not Any


def selected(result: Any, who: str) -> Candidates:
    cands = result.candidates
    if cands is None:  # check_selection_pipeline makes this rare: a stage returned None
        raise InputError(f"{who}: pipeline '{result.pipeline.name}' produced no Candidates")
    return cands


def cap(items: Iterable[ScoredChunk], k: int | None) -> list[ScoredChunk]:
    items = list(items)
    return items if k is None else items[:k]


def resolve_pipeline(pipeline: Any, variables: Mapping[str, str] | None,
                     components: Mapping[str, Any] | None, who: str) -> Pipeline:
    """A Pipeline object as is, or a YAML path loaded with ``variables``/``components``."""
    if isinstance(pipeline, (str, os.PathLike)):
        from ragsel.spec import load_pipeline

        return load_pipeline(pipeline, variables=variables, components=components)
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"{who} needs a ragsel Pipeline or the path of a pipeline YAML, got "
                          f"{type(pipeline).__name__}")
    if components:
        for stage in pipeline.stages.values():
            stage.bind_components(components)
    return pipeline


# --- user objects bound to stages by name ----------------------------------------------------
def component_type_error(where: str, kind: str, expected: str, hint: str) -> ConfigError:
    return ConfigError(f"{where}: got a {kind}, expected {expected}; {hint}")


def bind_component(stage: Stage, components: Mapping[str, Any],
                   check: Callable[[Any, str], Any], current: Any) -> Any:
    """The object named by ``stage.config.component`` in ``components``, type-checked by
    ``check``; ``current`` (the object passed in Python) when the stage names none."""
    name = getattr(stage.config, "component", None)
    if name is None:
        return current
    if name not in components:
        raise ConfigError(f"component '{name}' is not bound. Pass it when loading: "
                          f"load_pipeline(path, components={{'{name}': obj}}) (bound: "
                          f"{sorted(components) or 'none'})", stage=stage.name,
                          field="component")
    return check(components[name], f"stage '{stage.name}', component '{name}'")


def bound(stage: Stage, obj: Any, python_form: str) -> Any:
    """``obj``, or a ConfigError saying how to bind it when it is missing."""
    if obj is not None:
        return obj
    name = getattr(stage.config, "component", None)
    if name is not None:
        raise ConfigError(f"component '{name}' is not bound: load the pipeline with "
                          f"load_pipeline(path, components={{'{name}': obj}})", stage=stage.name,
                          field="component")
    raise ConfigError(f"no object to call: construct {python_form} or set 'component: <name>' "
                      "and bind it with load_pipeline(components=...)", stage=stage.name)


def from_framework(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class (or a base class) comes from ``package`` (e.g. "llama_index")."""
    return any(c.__module__.split(".")[0] == package for c in type(obj).__mro__)


def adapt_embedder(obj: Any, where: str = "embedder component") -> Any:
    """A ragsel embedder from a bound component: a ragsel embedder as is, LangChain
    ``Embeddings`` or a LlamaIndex embed model wrapped by its connector."""
    if callable(getattr(obj, "embed", None)) and hasattr(obj, "dim"):
        return obj
    if from_framework(obj, "langchain_core"):
        from ragsel_langchain import LangChainEmbedder

        return LangChainEmbedder(obj)
    if from_framework(obj, "llama_index"):
        from ragsel_llamaindex import LlamaIndexEmbedder

        return LlamaIndexEmbedder(obj)
    raise component_type_error(where, type(obj).__name__, "an embedder",
                               "bind a ragsel Embedder, LangChain Embeddings or a LlamaIndex "
                               "embed model")


# --- connector packages: lazy exports, LLM adapter registration -----------------------------
def lazy_exports(package: str, exports: Mapping[str, str], framework: str, extra: str,
                 purpose: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``package.<module>`` (and so ``framework``) only
    when one of ``exports`` (name -> submodule) is first used."""
    import importlib
    import sys

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute {name!r}")
        from ragsel.errors import require

        require(framework, extra, purpose)
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def register_llm_class(framework: str, base: str, factory: Callable[[Any], Any]) -> None:
    """Let ``llm: "component:<name>"`` accept instances of ``base`` (``"module:Class"`` in
    ``framework``), adapted by ``factory``, without importing the framework now."""
    from ragsel.backends.llm import register_llm_adapter

    def predicate(obj: Any) -> bool:
        if not from_framework(obj, framework):  # then the framework may not be imported
            return False
        import importlib

        module, _, cls = base.partition(":")
        return isinstance(obj, getattr(importlib.import_module(module), cls))

    register_llm_adapter(predicate, factory)


# --- helpers of the foreign-retriever stages -----------------------------------------------
def object_and_config(obj: Any, config: Any) -> tuple[Any, Any]:
    """Split ``Stage(obj_or_config, config)``: ``from_dict`` passes the config first."""
    if obj is None or isinstance(obj, (Mapping, StageConfig)):
        return None, obj if config is None else config
    return obj, config


def capped(cands: Candidates, stage: str, top_k: int | None) -> Candidates:
    """``cands`` cut to ``top_k`` (the rest recorded as dropped by ``stage``)."""
    if top_k is None or len(cands) <= top_k:
        return cands
    return cands.derive(stage, cands.items[:top_k], default_reason=f"below top_k={top_k}")


class BatchEmbedder:
    """A ragsel embedder over any ``texts -> vectors`` function (the connectors' embedders
    derive from it): rows L2-normalised float32; ``dim`` probed once when first needed."""

    def __init__(self, name: str, embed_batch: Callable[[list[str]], Any]) -> None:
        self.name, self._embed_batch = name, embed_batch
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        return self._dim  # type: ignore[return-value]

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        from ragsel.backends.embedders.base import normalize

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = normalize(np.asarray(self._embed_batch(list(texts)), dtype=np.float32))
        self._dim = int(vectors.shape[1])
        return vectors

    def warm_up(self) -> None:
        _ = self.dim
