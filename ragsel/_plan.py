"""The run plan of a :class:`~ragsel.pipeline.Pipeline`: compiled once, then executed by
``Pipeline.run``/``arun`` without re-validating anything (orchestration costs microseconds).

A :class:`Step` says how to gather one stage's arguments (:class:`InputKind`) and where its
outputs go; :func:`record` stores a stage's result and appends its trace row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragsel.errors import InputError, StageError
from ragsel.stage import Stage
from ragsel.trace import StageTrace
from ragsel.typecheck import compatible
from ragsel.types import Candidates, Query

if TYPE_CHECKING:
    from ragsel.pipeline import Pipeline


class InputKind(enum.IntEnum):
    """Where a stage argument comes from."""

    QUERY = 0  # the pipeline's query
    SINGLE = 1  # one value: an upstream output or a declared pipeline input
    LIST = 2  # a variadic input: the values of several upstream outputs


_QUERY, _SINGLE = InputKind.QUERY, InputKind.SINGLE  # (identity checks on the hot path)


@dataclass(slots=True)
class Step:
    name: str
    stage: Stage
    args: list[tuple[str, InputKind, Any]]  # (parameter, kind, value key / key list / None)
    single: str | None
    outputs: tuple[str, ...]
    level: int
    out_key: str | None = None  # "name.output" of a single-output stage (precomputed)
    type_name: str = ""
    cand_params: tuple[str, ...] = ()  # inputs that take Candidates (counted in the trace)
    inline: bool = False  # non-blocking and no native async: arun() calls _run directly


@dataclass
class Plan:
    steps: list[Step]
    levels: list[list[Step]] = field(default_factory=list)


def input_key(ref: str) -> str:
    """The value key of a declared pipeline input (cannot clash with "stage.output")."""
    return "input:" + ref


def _args(p: Pipeline, name: str, stage: Stage) -> list[tuple[str, InputKind, Any]]:
    args: list[tuple[str, InputKind, Any]] = []
    for spec in stage.input_specs().values():
        feeds = sorted(
            (c for c in p.connections if c.dst == name and c.dst_in == spec.name),
            key=lambda c: (c.src, c.src_out),
        )
        if spec.variadic and feeds:
            args.append((spec.name, InputKind.LIST, [f"{c.src}.{c.src_out}" for c in feeds]))
        elif feeds:
            args.append((spec.name, InputKind.SINGLE, f"{feeds[0].src}.{feeds[0].src_out}"))
        elif f"{name}.{spec.name}" in p.inputs:
            args.append((spec.name, InputKind.SINGLE, input_key(f"{name}.{spec.name}")))
        elif p.takes_pipeline_query(spec):
            args.append((spec.name, InputKind.QUERY, None))
    return args


def compile_plan(p: Pipeline) -> Plan:
    """The plan of ``p`` (validated first): steps in its deterministic topological order and
    the DAG levels whose stages ``arun`` runs concurrently."""
    p.validate()
    steps: list[Step] = []
    level: dict[str, int] = {}
    for name in p.topological_order():
        stage = p.stages[name]
        ups = [level[c.src] for c in p.connections if c.dst == name]
        level[name] = 1 + max(ups, default=-1)
        single = stage.single_output()
        cand_params = tuple(
            sp.name
            for sp in stage.input_specs().values()
            if compatible(Candidates, sp.item_type) and sp.item_type is not Any
        )
        inline = not stage.blocking and type(stage)._arun is Stage._arun
        steps.append(
            Step(
                name,
                stage,
                _args(p, name, stage),
                single,
                tuple(stage.output_types()),
                level[name],
                f"{name}.{single}" if single else None,
                stage.type_name,
                cand_params,
                inline,
            )
        )
    levels: list[list[Step]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for st in steps:
        levels[st.level].append(st)
    return Plan(steps, levels)


def kwargs(step: Step, values: dict[str, Any], query: Query) -> dict[str, Any]:
    """The keyword arguments of ``step``'s stage from the values computed so far."""
    kw = {}
    for pname, kind, key in step.args:
        if kind is _SINGLE:
            kw[pname] = values[key]
        elif kind is _QUERY:
            kw[pname] = query
        else:
            kw[pname] = [values[k] for k in key]
    return kw


def seed(p: Pipeline, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's values of the declared pipeline inputs: all given, none unknown."""
    given = inputs or {}
    unknown = [r for r in given if r not in p.inputs]
    missing = [r for r in p.inputs if r not in given]
    if unknown or missing:
        raise InputError(
            f"pipeline '{p.name}': "
            + (f"no declared input(s) {unknown}; " if unknown else "")
            + (f"missing value(s) for input(s) {missing}; " if missing else "")
            + f"pass run(query, inputs={{...}}) with exactly the declared inputs {p.inputs}"
        )
    return {input_key(r): v for r, v in given.items()}


def record(
    step: Step,
    kw: dict[str, Any],
    result: Any,
    values: dict[str, Any],
    elapsed_ns: int,
    trace: list[StageTrace],
) -> None:
    """Store ``step``'s result in ``values`` and append its trace row."""
    if step.out_key is not None:
        values[step.out_key] = result
        out_val = result
    else:
        if not isinstance(result, Mapping):
            raise StageError(
                step.name,
                step.stage.type_name,
                f"returned {type(result).__name__}, expected a dict with {list(step.outputs)}",
            )
        for o in step.outputs:
            values[f"{step.name}.{o}"] = result.get(o)
        out_val = next((v for v in result.values() if isinstance(v, Candidates)), None)
    n_in = None
    drops_before = 0
    for pname in step.cand_params:
        v = kw.get(pname)
        if isinstance(v, Candidates):
            n_in = (n_in or 0) + len(v.items)
            drops_before = max(drops_before, len(v.dropped))
        elif isinstance(v, list) and v and isinstance(v[0], Candidates):
            n_in = (n_in or 0) + sum(len(c.items) for c in v)
    n_out: int | None = None
    dropped: tuple[str, ...] = ()
    if isinstance(out_val, Candidates):
        n_out = len(out_val.items)
        all_drops = out_val.dropped
        if len(all_drops) != drops_before:
            dropped = tuple(
                d.item.chunk.id for d in all_drops[drops_before:] if d.stage == step.name
            )
    trace.append(StageTrace(step.name, step.type_name, elapsed_ns, n_in, n_out, dropped))
