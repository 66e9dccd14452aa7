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
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

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

SCHEMA_FILE = "ragsel.schema.json"
_TOP_KEYS = {"version", "name", "description", "stages", "connections", "output", "inputs"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_Loc = dict[tuple, tuple[int, int]]


def _locations(node: yaml.Node, path: tuple = (), out: _Loc | None = None) -> _Loc:
    out = {} if out is None else out
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key, "__key__")] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _locations(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _locations(v, path + (i,), out)
    return out


class _Ctx:
    def __init__(self, file: str | None, locs: _Loc) -> None:
        self.file, self.locs, self.problems = file, locs, []

    def add(self, message: str, path: tuple = (), key: bool = False) -> None:
        p = tuple(path)
        loc = None
        if key:
            loc = self.locs.get(p + ("__key__",))
        while loc is None and p:
            loc = self.locs.get(p)
            if loc is None:
                p = p[:-1]
        loc = loc or self.locs.get(())
        self.problems.append(Problem(message, self.file, *(loc or (None, None))))


def _interpolate(
    value: Any, variables: Mapping[str, str], ctx: _Ctx, path: tuple, strict: bool
) -> Any:
    if isinstance(value, str) and "${" in value:

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in variables:
                return variables[name]
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            if strict:
                ctx.add(
                    f"environment variable {name} is not set; set it "
                    f"(export {name}=...) or give a default: ${{{name}:-value}}",
                    path,
                )
            return m.group(0)

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, variables, ctx, path + (k,), strict) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables, ctx, path + (i,), strict) for i, v in enumerate(value)]
    return value


def _resolve_type(type_: str, allow_modules: Sequence[str]) -> type:
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


def _build(
    data: Any,
    ctx: _Ctx,
    *,
    variables: Mapping[str, str],
    strict_env: bool,
    components: Mapping[str, Any] | None,
    allow_modules: Sequence[str],
) -> Pipeline | None:
    if not isinstance(data, Mapping):
        ctx.add("a pipeline file must be a mapping with at least a 'stages' key")
        return None
    for key in data:
        if key not in _TOP_KEYS:
            ctx.add(
                f"unknown top-level key '{key}' (allowed: {', '.join(sorted(_TOP_KEYS))})",
                (key,),
                key=True,
            )
    if data.get("version", 1) != 1:
        ctx.add(
            f"unsupported pipeline version {data.get('version')!r}; this ragsel reads version 1",
            ("version",),
        )
    stages_raw = data.get("stages")
    if not stages_raw:
        ctx.add("the pipeline has no 'stages'", ("stages",))
        return None
    linear = isinstance(stages_raw, list)
    if linear:
        entries = []
        for i, raw in enumerate(stages_raw):
            name = raw.get("name") or raw.get("type") if isinstance(raw, Mapping) else None
            # a dotted type ("pkg.mod:Class") becomes a valid default name ("pkg_mod_Class")
            name = re.sub(r"[^\w-]", "_", str(name)) if name else f"stage{i}"
            entries.append((name, raw, ("stages", i)))
    elif isinstance(stages_raw, Mapping):
        entries = [(str(n), raw, ("stages", n)) for n, raw in stages_raw.items()]
    else:
        ctx.add("'stages' must be a mapping of name -> stage, or a list", ("stages",))
        return None
    inputs = data.get("inputs") or []
    if not (isinstance(inputs, list) and all(isinstance(r, str) for r in inputs)):
        ctx.add("'inputs' must be a list of 'stage.input' names supplied at run time", ("inputs",))
        inputs = []
    pipe = Pipeline(
        name=str(data.get("name", "pipeline")),
        description=str(data.get("description", "")),
        output=data.get("output"),
        inputs=inputs,
    )
    failed: set[str] = set()
    for name, raw, path in entries:
        if not isinstance(raw, Mapping) or "type" not in raw:
            ctx.add(f"stage '{name}' needs a 'type' (a registered stage name)", path)
            failed.add(name)
            continue
        cfg = {k: v for k, v in raw.items() if k not in ("type", "name")}
        cfg = _interpolate(cfg, variables, ctx, path, strict_env)
        try:
            cls = _resolve_type(str(raw["type"]), allow_modules)
        except (UnknownStageError, DefinitionError) as exc:
            ctx.add(str(exc), path + ("type",))
            failed.add(name)
            continue
        try:
            stage = cls(cfg)
        except ConfigError as exc:
            for err in getattr(exc, "details", None) or [{"loc": (), "msg": str(exc)}]:
                loc = tuple(err["loc"])
                msg = "unknown config field" if err.get("type") == "extra_forbidden" else err["msg"]
                field = ".".join(str(x) for x in loc)
                ctx.add(
                    f"stage '{name}' ({raw['type']}): {field + ': ' if field else ''}{msg}",
                    path + loc,
                    key=err.get("type") == "extra_forbidden",
                )
            failed.add(name)
            continue
        except Exception as exc:  # a stage's own validation in _setup
            ctx.add(f"stage '{name}' ({raw['type']}): {exc}", path)
            failed.add(name)
            continue
        if name in pipe.stages:
            ctx.add(f"duplicate stage name '{name}'", path)
            failed.add(name)
            continue
        try:
            pipe.add(name, stage)
        except DefinitionError as exc:
            ctx.add(str(exc), path)
            failed.add(name)
            continue
        if components is not None:
            try:
                stage.bind_components(components)
            except DefinitionError as exc:
                ctx.add(f"stage '{name}': {exc}", path)
                failed.add(name)
    if linear:
        if failed:
            return None  # the chain cannot be wired around a broken stage
        if data.get("connections"):
            ctx.add(
                "a linear 'stages' list takes no 'connections'; use a mapping of stages "
                "to wire a graph",
                ("connections",),
            )
            return None
        try:
            pipe._connect_linear(list(pipe.stages))
        except DefinitionError as exc:
            ctx.add(str(exc), ("stages",))
            return None
    else:
        conns = data.get("connections") or []
        if not isinstance(conns, list):
            ctx.add("'connections' must be a list like ['a -> b.input']", ("connections",))
            return None
        tainted: set[str] = set()
        for i, item in enumerate(conns):
            pair = _parse_connection(item)
            if pair is None:
                ctx.add(
                    f"cannot read connection {item!r}; write 'a.output -> b.input'",
                    ("connections", i),
                )
                continue
            ends = [ref.partition(".")[0] for ref in pair]
            if any(e in failed for e in ends):  # already reported at the stage itself
                tainted.update(ends)
                continue
            try:
                pipe.connect(*pair)
            except DefinitionError as exc:
                ctx.add(str(exc), ("connections", i))
                tainted.update(ends)
    if not linear:
        failed |= tainted
    for msg in pipe.problems():
        if failed and (
            msg == "the pipeline has no stages" or any(f"stage '{n}'" in msg for n in failed)
        ):
            continue
        ctx.add(
            msg,
            ("output",)
            if "output stage" in msg
            else ("inputs",)
            if msg.startswith("pipeline input")
            else ("stages",),
        )
    return pipe


def pipeline_from_dict(
    data: Mapping[str, Any],
    *,
    variables: Mapping[str, str] | None = None,
    components: Mapping[str, Any] | None = None,
    allow_modules: Sequence[str] = (),
    strict_env: bool = True,
    file: str | None = None,
    _locs: _Loc | None = None,
) -> Pipeline:
    """Build a pipeline from its dict form; raises PipelineSpecError listing every problem."""
    ctx = _Ctx(file, _locs or {})
    pipe = _build(
        data,
        ctx,
        variables=variables or {},
        strict_env=strict_env,
        components=components,
        allow_modules=allow_modules,
    )
    if ctx.problems or pipe is None:
        raise PipelineSpecError(ctx.problems or [Problem("invalid pipeline", file)])
    return pipe


def _read(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        if not path.is_file():
            raise PipelineSpecError(Problem(f"pipeline file not found: {path}", str(path)))
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise PipelineSpecError(
                Problem(f"cannot read pipeline file: {exc}", str(path))
            ) from exc
    return str(source), None


def _parse(text: str, file: str | None) -> tuple[Any, _Loc]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        raise PipelineSpecError(
            Problem(msg, file, mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        ) from None
    return data, (_locations(node) if node is not None else {})


def load_pipeline(
    source: str | os.PathLike[str],
    *,
    variables: Mapping[str, str] | None = None,
    components: Mapping[str, Any] | None = None,
    allow_modules: Sequence[str] = (),
    strict_env: bool = True,
) -> Pipeline:
    """Load a pipeline from a YAML file path (or YAML text).

    ``variables`` override the environment for ``${VAR}``; ``components`` binds user objects
    (e.g. a LangChain retriever) to stages that name them; ``allow_modules`` permits
    ``type: package.module:Class`` for those modules. No model is loaded here.
    """
    text, file = _read(source)
    data, locs = _parse(text, file)
    return pipeline_from_dict(
        data,
        variables=variables,
        components=components,
        allow_modules=allow_modules,
        strict_env=strict_env,
        file=file,
        _locs=locs,
    )


def check_pipeline(
    source: str | os.PathLike[str], *, allow_modules: Sequence[str] = ()
) -> list[Problem]:
    """Every problem in a pipeline file (syntax, stage names, configs, wiring), without
    loading any model. Unset ``${VAR}`` without default are not problems here."""
    try:
        load_pipeline(source, allow_modules=allow_modules, strict_env=False)
    except PipelineSpecError as exc:
        return exc.problems
    return []


def dump_pipeline(
    pipeline: Pipeline, path: str | os.PathLike[str] | None = None, *, schema_ref: str = SCHEMA_FILE
) -> str:
    """YAML text for ``pipeline`` (starting with a ``$schema`` line); written if ``path``."""
    body = yaml.safe_dump(pipeline.to_dict(), sort_keys=False, allow_unicode=True)
    text = f"# yaml-language-server: $schema={schema_ref}\n{body}"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
