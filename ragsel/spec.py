"""YAML pipeline files: safe loading, ``${ENV}`` interpolation, every problem located.

Format::

    # yaml-language-server: $schema=ragsel.schema.json
    version: 1
    name: local
    stages:                      # a mapping (graph) ...
      bm25:   {type: bm25_retriever, index: "${RAGSEL_INDEX:-./index}", top_k: 100}
      dense:  {type: dense_retriever, index: "${RAGSEL_INDEX:-./index}", top_k: 100}
      fuse:   {type: fusion, method: rrf}
      cut:    {type: elbow_cutoff}
    connections:
      - bm25 -> fuse.candidates
      - dense -> fuse.candidates
      - fuse -> cut
    output: cut                  # optional

``stages`` may instead be a list (``- {type: ..., name: ...}``) for a linear pipeline, in which
case ``connections`` is omitted. A stage's keys other than ``type``/``name`` are its config.

This module builds pipelines from that form; the build context and ``${VAR}`` interpolation
live in :mod:`ragsel._spec_context`, YAML reading with locations in :mod:`ragsel._spec_yaml`
and prompt-file paths in :mod:`ragsel._spec_paths`.
"""

from __future__ import annotations

import importlib
import os
import re
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ragsel import _spec_yaml
from ragsel._spec_context import _Ctx, _interpolate, file_variables
from ragsel._spec_paths import resolve_prompt_files
from ragsel.errors import (
    ConfigError,
    DefinitionError,
    PipelineSpecError,
    Problem,
    UnknownStageError,
)
from ragsel.pipeline import Pipeline
from ragsel.registry import get_stage_class
from ragsel.stage import Stage

__all__ = [
    "SCHEMA_FILE",
    "check_pipeline",
    "dump_pipeline",
    "file_variables",
    "load_pipeline",
    "pipeline_from_dict",
    "stage_location",
]

SCHEMA_FILE = "ragsel.schema.json"
_TOP_KEYS = {"version", "name", "description", "stages", "connections", "output", "inputs"}

#: stage -> (file, {config field: (line, column)}, (line, column) of the stage), kept beside
#: the stage, which stays a plain object.
_SOURCES: weakref.WeakKeyDictionary[Stage, tuple[str | None, dict[str, tuple[int, int]], Any]] = (
    weakref.WeakKeyDictionary()
)


def _resolve_type(type_: str, allow_modules: Sequence[str]) -> type[Stage]:
    if ":" in type_ or "." in type_:
        module, _, attr = type_.rpartition(":") if ":" in type_ else type_.rpartition(".")
        if not any(module == m or module.startswith(m + ".") for m in allow_modules):
            raise DefinitionError(
                f"stage type '{type_}' is an import path, and importing code named in YAML is "
                f"off. Allow it with load_pipeline(..., allow_modules=['{module}']) or "
                f"--allow-module {module}, or register the stage under a short name."
            )
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DefinitionError(f"cannot import stage '{type_}': {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise DefinitionError(f"'{type_}' is not a ragsel Stage subclass")
        if not cls.__dict__.get("type_name"):
            cls.type_name = type_  # errors and to_dict() name it by the path it was loaded by
        return cls
    return get_stage_class(type_)


def _parse_connection(item: Any) -> tuple[str, str] | None:
    if isinstance(item, str) and "->" in item:
        a, _, b = item.partition("->")
        return a.strip(), b.strip()
    if isinstance(item, Mapping) and set(item) == {"from", "to"}:
        return str(item["from"]), str(item["to"])
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        return str(item[0]), str(item[1])
    return None


# --- one stage ------------------------------------------------------------------------
def _report_config_error(exc: ConfigError, name: str, type_: Any, path: tuple, ctx: _Ctx) -> None:
    for err in getattr(exc, "details", None) or [{"loc": (), "msg": str(exc)}]:
        loc = tuple(err["loc"])
        if not loc and getattr(exc, "field", None):
            loc = tuple(str(exc.field).split("."))
        msg = "unknown config field" if err.get("type") == "extra_forbidden" else err["msg"]
        msg = str(msg).removeprefix("Value error, ")
        dotted = ".".join(str(x) for x in loc)
        if dotted and str(msg).startswith(f"stage '{name}': "):
            msg = str(msg)[len(f"stage '{name}': ") :]
        ctx.add(
            f"stage '{name}' ({type_}): {dotted + ': ' if dotted else ''}{msg}",
            path + loc,
            key=err.get("type") == "extra_forbidden",
        )


def _stub(cls: type[Stage]) -> Stage:
    """A config-less stand-in for a stage whose config failed: its sockets are known (they
    come from the class), so its connections are still checked in the same pass."""
    stub = object.__new__(cls)
    stub.name = cls.type_name or cls.__name__
    return stub


def _make_stage(name: str, raw: Any, path: tuple, ctx: _Ctx) -> Stage | None:
    """The stage of one ``stages`` entry, a stub when only its config is wrong, or None
    when its type is unknown (every problem is added to ``ctx``)."""
    if not isinstance(raw, Mapping) or "type" not in raw:
        ctx.add(f"stage '{name}' needs a 'type' (a registered stage name)", path)
        return None
    cfg = {k: v for k, v in raw.items() if k not in ("type", "name")}
    before = len(ctx.problems)
    cfg = _interpolate(cfg, ctx, path)
    try:
        cls = _resolve_type(str(raw["type"]), ctx.allow_modules)
    except (UnknownStageError, DefinitionError) as exc:
        ctx.add(str(exc), path + ("type",))
        return None
    if "prompts" in cls.Config.model_fields and isinstance(cfg.get("prompts"), Mapping):
        cfg["prompts"], bad = resolve_prompt_files(cfg["prompts"], ctx.base_dir, ctx.allow_paths)
        for name, message in bad:
            ctx.add(message, path + ("prompts", name))
    try:
        stage = cls(cfg)
    except ConfigError as exc:
        _report_config_error(exc, name, raw["type"], path, ctx)
        return _stub(cls)
    except Exception as exc:  # a stage's own validation in _setup
        ctx.add(f"stage '{name}' ({raw['type']}): {exc}", path)
        return _stub(cls)
    if len(ctx.problems) > before:
        return _stub(cls)
    fields = {k: ctx.where(path + (k,)) for k in cfg}
    _SOURCES[stage] = (ctx.file, {k: v for k, v in fields.items() if v}, ctx.where(path))
    return stage


def _stage_entries(data: Mapping, ctx: _Ctx) -> list[tuple[str, Any, tuple]] | None:
    stages_raw = data.get("stages")
    if not stages_raw:
        ctx.add("the pipeline has no 'stages'", ("stages",))
        return None
    if isinstance(stages_raw, list):
        entries = []
        for i, raw in enumerate(stages_raw):
            name = raw.get("name") or raw.get("type") if isinstance(raw, Mapping) else None
            # a dotted type ("pkg.mod:Class") becomes a valid default name ("pkg_mod_Class")
            name = re.sub(r"[^\w-]", "_", str(name)) if name else f"stage{i}"
            entries.append((name, raw, ("stages", i)))
        return entries
    if isinstance(stages_raw, Mapping):
        return [(str(n), raw, ("stages", n)) for n, raw in stages_raw.items()]
    ctx.add("'stages' must be a mapping of name -> stage, or a list", ("stages",))
    return None


def _check_top(data: Any, ctx: _Ctx) -> bool:
    if not isinstance(data, Mapping):
        ctx.add("a pipeline file must be a mapping with at least a 'stages' key")
        return False
    for key in data:
        if key not in _TOP_KEYS:
            ctx.add(
                f"unknown top-level key '{key}' (allowed: {', '.join(sorted(_TOP_KEYS))})",
                (key,),
                key=True,
            )
    if data.get("version", 1) != 1 or isinstance(data.get("version"), bool):
        ctx.add(
            f"unsupported pipeline version {data.get('version')!r}; this ragsel reads version 1",
            ("version",),
        )
    return True


def _new_pipeline(data: Mapping, ctx: _Ctx) -> Pipeline:
    inputs = data.get("inputs") or []
    if not (isinstance(inputs, list) and all(isinstance(r, str) for r in inputs)):
        ctx.add("'inputs' must be a list of 'stage.input' names supplied at run time", ("inputs",))
        inputs = []
    for key in ("name", "description", "output"):
        if data.get(key) is not None and not isinstance(data[key], str):
            ctx.add(f"'{key}' must be a string", (key,))
    return Pipeline(
        name=str(data.get("name", "pipeline")),
        description=str(data.get("description", "")),
        output=data.get("output") if isinstance(data.get("output"), str) else None,
        inputs=inputs,
    )


# --- wiring ---------------------------------------------------------------------------
def _wire_linear(pipe: Pipeline, data: Mapping, ctx: _Ctx) -> None:
    if data.get("connections"):
        ctx.add(
            "a linear 'stages' list takes no 'connections'; use a mapping of stages to wire a "
            "graph",
            ("connections",),
        )
        return
    try:
        pipe._connect_linear(list(pipe.stages))
    except DefinitionError as exc:
        ctx.add(str(exc), ("stages",))


def _wire_graph(pipe: Pipeline, data: Mapping, ctx: _Ctx, unknown: set[str]) -> set[str]:
    """Connect every readable connection; returns the stages a failed connection touches."""
    conns = data.get("connections") or []
    if not isinstance(conns, list):
        ctx.add("'connections' must be a list like ['a -> b.input']", ("connections",))
        return set(pipe.stages)
    tainted: set[str] = set()
    for i, item in enumerate(conns):
        pair = _parse_connection(item)
        if pair is None:
            ctx.add(
                f"cannot read connection {item!r}; write 'a.output -> b.input'", ("connections", i)
            )
            continue
        ends = [ref.partition(".")[0] for ref in pair]
        if any(e in unknown for e in ends):  # already reported at the stage itself
            tainted.update(ends)
            continue
        try:
            pipe.connect(*pair)
        except DefinitionError as exc:
            ctx.add(str(exc), ("connections", i))
            tainted.update(ends)
    return tainted


def _report_graph_problems(pipe: Pipeline, ctx: _Ctx, skip: set[str]) -> None:
    for msg in pipe.problems():
        if skip and (
            msg == "the pipeline has no stages" or any(f"stage '{n}'" in msg for n in skip)
        ):
            continue
        where = (
            ("output",)
            if "output stage" in msg
            else ("inputs",)
            if msg.startswith("pipeline input")
            else ("stages",)
        )
        ctx.add(msg, where)


def _build(data: Any, ctx: _Ctx) -> Pipeline | None:
    if not _check_top(data, ctx):
        return None
    entries = _stage_entries(data, ctx)
    if entries is None:
        return None
    pipe = _new_pipeline(data, ctx)
    unknown: set[str] = set()  # stages whose type is unknown: their sockets are unknown too
    for name, raw, path in entries:
        stage = _make_stage(name, raw, path, ctx)
        if stage is None:
            unknown.add(name)
            continue
        try:
            pipe.add(name, stage)
        except DefinitionError as exc:
            ctx.add(str(exc), path, key=True)
            unknown.add(name)
            continue
        if ctx.components is not None and stage in _SOURCES:
            try:
                stage.bind_components(ctx.components)
            except DefinitionError as exc:
                ctx.add(f"stage '{name}': {exc}", path)
    if isinstance(data.get("stages"), list):
        if unknown:
            return None  # the chain cannot be wired around a stage of unknown type
        _wire_linear(pipe, data, ctx)
        skip = unknown
    else:
        skip = unknown | _wire_graph(pipe, data, ctx, unknown)
    _report_graph_problems(pipe, ctx, skip)
    return pipe


def pipeline_from_dict(
    data: Mapping[str, Any],
    *,
    variables: Mapping[str, str] | None = None,
    components: Mapping[str, Any] | None = None,
    allow_modules: Sequence[str] = (),
    allow_paths: Sequence[str | os.PathLike[str]] = (),
    strict_env: bool = True,
    file: str | None = None,
    _locs: _spec_yaml.Loc | None = None,
) -> Pipeline:
    """Build a pipeline from its dict form; raises PipelineSpecError listing every problem."""
    ctx = _Ctx(
        file,
        _locs or {},
        variables=variables or {},
        strict_env=strict_env,
        components=components,
        allow_modules=allow_modules,
        allow_paths=[str(p) for p in allow_paths],
    )
    pipe = _build(data, ctx)
    if ctx.problems or pipe is None:
        raise PipelineSpecError(ctx.problems or [Problem("invalid pipeline", file)])
    return pipe


def load_pipeline(
    source: str | os.PathLike[str],
    *,
    variables: Mapping[str, str] | None = None,
    components: Mapping[str, Any] | None = None,
    allow_modules: Sequence[str] = (),
    allow_paths: Sequence[str | os.PathLike[str]] = (),
    strict_env: bool = True,
) -> Pipeline:
    """Load a pipeline from a YAML file path (or YAML text).

    ``variables`` override the environment for ``${VAR}``; ``components`` binds user objects
    (e.g. a LangChain retriever) to stages that name them; ``allow_modules`` permits
    ``type: package.module:Class`` for those modules; ``allow_paths`` lets prompt files come
    from folders other than the pipeline's own. No model is loaded here.
    """
    text, file = _spec_yaml.read(source)
    data, locs = _spec_yaml.parse(text, file)
    return pipeline_from_dict(
        data,
        variables=variables,
        components=components,
        allow_modules=allow_modules,
        allow_paths=allow_paths,
        strict_env=strict_env,
        file=file,
        _locs=locs,
    )


def check_pipeline(
    source: str | os.PathLike[str],
    *,
    allow_modules: Sequence[str] = (),
    allow_paths: Sequence[str | os.PathLike[str]] = (),
) -> list[Problem]:
    """Every problem in a pipeline file (syntax, stage names, configs, wiring), in one pass
    and without loading any model. Unset ``${VAR}`` without default are not problems here."""
    try:
        load_pipeline(
            source, allow_modules=allow_modules, allow_paths=allow_paths, strict_env=False
        )
    except PipelineSpecError as exc:
        return exc.problems
    return []


def stage_location(stage: Stage, field: str | None = None) -> str | None:
    """``file:line:col`` of a loaded stage (of one of its config fields if given)."""
    src = _SOURCES.get(stage)
    if src is None:
        return None
    file, fields, at = src
    loc = fields.get(field, at) if field else at
    if loc is None:
        return None
    return f"{file or '<pipeline>'}:{loc[0]}:{loc[1]}"


def dump_pipeline(
    pipeline: Pipeline, path: str | os.PathLike[str] | None = None, *, schema_ref: str = SCHEMA_FILE
) -> str:
    """YAML text for ``pipeline`` (starting with a ``$schema`` line); written if ``path``."""
    body = yaml.safe_dump(pipeline.to_dict(), sort_keys=False, allow_unicode=True)
    text = f"# yaml-language-server: $schema={schema_ref}\n{body}"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
