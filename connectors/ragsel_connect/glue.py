"""Pipeline and component glue shared by the connectors: checking that a pipeline can serve
as a retriever/compressor, resolving a pipeline from a path or object, binding user objects
to stages by name, the connector packages' lazy exports and LLM registration, and the helpers
of the foreign-retriever stages. Exported by :mod:`ragsel_connect`; imports no framework."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ragsel.errors import ConfigError, InputError
from ragsel.pipeline import Pipeline
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, ScoredChunk


# --- checking a pipeline for a connector ---------------------------------------------------
def check_selection_pipeline(pipeline: Any, who: str) -> Pipeline:
    """``pipeline`` must be a valid :class:`Pipeline` whose output stage gives Candidates."""
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(
            f"{who} needs a ragsel Pipeline (or the path of a pipeline YAML), "
            f"got {type(pipeline).__name__}"
        )
    pipeline.validate()
    out = pipeline.output_stage()
    stage = pipeline.stages[out]
    if Candidates not in stage.output_types().values():
        raise ConfigError(
            f"{who}: pipeline '{pipeline.name}' ends in stage '{out}' ({stage.type_name}) "
            f"with outputs {stage.describe_sockets()}, not a ranked list of chunks. Set "
            f"'output: <stage>' to a stage that gives Candidates (a retriever, cutoff, "
            f"selector or verifier)"
        )
    return pipeline


def candidates_input(pipeline: Pipeline, ref: str | None, who: str) -> str:
    """The pipeline input that receives documents from outside (``"stage.input"``), declared
    on the pipeline if needed. ``ref=None`` picks the only declared or unconnected Candidates
    input."""
    if ref is None:
        declared = [r for r in pipeline.inputs if _accepts_candidates(pipeline, r)]
        open_ = [
            f"{n}.{s.name}"
            for n, st in pipeline.stages.items()
            for s in st.input_specs().values()
            if s.required
            and not s.variadic
            and not pipeline.is_fed(n, s)
            and f"{n}.{s.name}" not in pipeline.inputs
            and _accepts_candidates(pipeline, f"{n}.{s.name}")
        ]
        options = declared or open_
        if len(options) != 1:
            raise ConfigError(
                f"{who}: cannot tell which stage receives the documents in pipeline "
                f"'{pipeline.name}' (candidates inputs: {options or 'none'}). Declare one: "
                f"'inputs: [<stage>.candidates]' in the YAML, or pass input='<stage>.candidates'"
            )
        ref = options[0]
    elif not _accepts_candidates(pipeline, ref):
        raise ConfigError(
            f"{who}: '{ref}' is not an input of pipeline '{pipeline.name}' that "
            "takes Candidates; write '<stage>.<input>'"
        )
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


def resolve_pipeline(
    pipeline: Any,
    variables: Mapping[str, str] | None,
    components: Mapping[str, Any] | None,
    who: str,
) -> Pipeline:
    """A Pipeline object as is, or a YAML path loaded with ``variables``/``components``."""
    if isinstance(pipeline, (str, os.PathLike)):
        from ragsel.spec import load_pipeline

        return load_pipeline(pipeline, variables=variables, components=components)
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(
            f"{who} needs a ragsel Pipeline or the path of a pipeline YAML, got "
            f"{type(pipeline).__name__}"
        )
    if components:
        for stage in pipeline.stages.values():
            stage.bind_components(components)
    return pipeline


# --- user objects bound to stages by name ----------------------------------------------------
def component_type_error(where: str, kind: str, expected: str, hint: str) -> ConfigError:
    return ConfigError(f"{where}: got a {kind}, expected {expected}; {hint}")


def bind_component(
    stage: Stage, components: Mapping[str, Any], check: Callable[[Any, str], Any], current: Any
) -> Any:
    """The object named by ``stage.config.component`` in ``components``, type-checked by
    ``check``; ``current`` (the object passed in Python) when the stage names none."""
    name = getattr(stage.config, "component", None)
    if name is None:
        return current
    if name not in components:
        raise ConfigError(
            f"component '{name}' is not bound. Pass it when loading: "
            f"load_pipeline(path, components={{'{name}': obj}}) (bound: "
            f"{sorted(components) or 'none'})",
            stage=stage.name,
            field="component",
        )
    return check(components[name], f"stage '{stage.name}', component '{name}'")


def bound(stage: Stage, obj: Any, python_form: str) -> Any:
    """``obj``, or a ConfigError saying how to bind it when it is missing."""
    if obj is not None:
        return obj
    name = getattr(stage.config, "component", None)
    if name is not None:
        raise ConfigError(
            f"component '{name}' is not bound: load the pipeline with "
            f"load_pipeline(path, components={{'{name}': obj}})",
            stage=stage.name,
            field="component",
        )
    raise ConfigError(
        f"no object to call: construct {python_form} or set 'component: <name>' "
        "and bind it with load_pipeline(components=...)",
        stage=stage.name,
    )


def from_framework(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class (or a base class) comes from ``package`` (e.g. "llama_index")."""
    return any(c.__module__.split(".")[0] == package for c in type(obj).__mro__)


# --- connector packages: lazy exports, LLM adapter registration -----------------------------
def lazy_exports(
    package: str, exports: Mapping[str, str], framework: str, extra: str, purpose: str
) -> Callable[[str], Any]:
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
