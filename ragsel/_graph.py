"""Graph checks of a :class:`~ragsel.pipeline.Pipeline`: the sockets one connection means
(for ``Pipeline.connect``), every wiring problem at once, and a deterministic topological
order (ties broken by name, so the order never depends on the order stages were added)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ragsel.errors import CycleError, WiringError
from ragsel.stage import sockets_compatible
from ragsel.typecheck import type_name

if TYPE_CHECKING:
    from ragsel.pipeline import Connection, Pipeline
    from ragsel.stage import InputSpec


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"stage.socket"`` -> ``("stage", "socket")``; ``"stage"`` -> ``("stage", None)``."""
    stage, _, socket = ref.partition(".")
    return stage, (socket or None)


def connection_sockets(
    p: Pipeline, src: str, dst: str, source: tuple[str, str | None], target: tuple[str, str | None]
) -> tuple[dict[str, Any], dict[str, InputSpec]]:
    """The source stage's outputs and the target's inputs, once both stages and any
    socket the connection names exist (and the connection is no self-loop)."""
    (s_name, s_out), (d_name, d_in) = source, target
    for n in (s_name, d_name):
        if n not in p.stages:
            raise WiringError(
                f"connection {src} -> {dst}: there is no stage '{n}' "
                f"(stages: {', '.join(p.stages) or 'none'})"
            )
    s_stage, d_stage = p.stages[s_name], p.stages[d_name]
    outs = s_stage.output_types()
    ins = d_stage.input_specs()
    if s_out is not None and s_out not in outs:
        raise WiringError(
            f"stage '{s_name}' ({s_stage.type_name}) has no output '{s_out}'; "
            f"its outputs are: {', '.join(outs)}"
        )
    if d_in is not None and d_in not in ins:
        raise WiringError(
            f"stage '{d_name}' ({d_stage.type_name}) has no input '{d_in}'; "
            f"its inputs are: {', '.join(ins) or 'none'}"
        )
    if s_name == d_name:
        raise CycleError([s_name])
    return outs, ins


def socket_pair(
    p: Pipeline,
    src: str,
    dst: str,
    source: tuple[str, str | None],
    target: tuple[str, str | None],
    outs: dict[str, Any],
    ins: dict[str, InputSpec],
) -> tuple[str, str]:
    """The one (output, input) socket pair the connection means: named sockets, else the
    only compatible pair among the source's outputs and the target's open inputs."""
    (s_name, s_out), (d_name, d_in) = source, target
    out_names = [s_out] if s_out else list(outs)
    in_names = (
        [d_in] if d_in else [n for n, sp in ins.items() if sp.variadic or not p.is_fed(d_name, sp)]
    )
    pairs = [(o, i) for o in out_names for i in in_names if sockets_compatible(outs[o], ins[i])]
    if not pairs and d_name in p.upstream_of(s_name):  # a back-edge: name the cycle
        raise CycleError(p._path(d_name, s_name))
    if not pairs:
        if s_out and d_in:
            raise WiringError(
                f"type mismatch: {s_name}.{s_out} gives {type_name(outs[s_out])} but "
                f"{d_name}.{d_in} expects {type_name(ins[d_in].item_type)}. Put a stage "
                f"between them that converts one to the other, or connect other sockets."
            )
        raise WiringError(
            f"nothing in '{s_name}' {p.stages[s_name].describe_sockets()} fits an open "
            f"input of '{d_name}' {p.stages[d_name].describe_sockets()}"
        )
    if len(pairs) > 1:
        opts = ", ".join(f'connect("{s_name}.{o}", "{d_name}.{i}")' for o, i in pairs)
        raise WiringError(
            f"ambiguous connection {src} -> {dst}: several sockets fit. "
            f"Name them explicitly, one of: {opts}"
        )
    return pairs[0]


def wiring_problems(p: Pipeline) -> list[str]:
    """Every wiring problem of ``p`` (missing required input, bad declared input, cycle,
    unknown output stage, no stages), not just the first."""
    out: list[str] = []
    declared = set(p.inputs)
    for ref in p.inputs:
        s_name, i_name = split_ref(ref)
        specs = p.stages[s_name].input_specs() if s_name in p.stages else {}
        if i_name not in specs:
            out.append(
                f"pipeline input '{ref}' is not a stage input; write "
                f"'<stage>.<input>' (stages: {', '.join(p.stages) or 'none'})"
            )
        elif p.is_fed(s_name, specs[i_name]):
            out.append(
                f"pipeline input '{ref}' is also connected to a stage; a declared "
                "input is supplied at run time, so remove the connection or the "
                "declaration"
            )
    for name, stage in p.stages.items():
        for spec in stage.input_specs().values():
            if (
                p.is_fed(name, spec)
                or p.takes_pipeline_query(spec)
                or f"{name}.{spec.name}" in declared
            ):
                continue
            if spec.required:
                out.append(
                    f"stage '{name}' ({stage.type_name}) is missing required input "
                    f"'{spec.name}: {type_name(spec.type)}'. Connect a stage that "
                    f"produces it, e.g. connections: [<stage>.<output> -> "
                    f"{name}.{spec.name}], or supply it at run time: "
                    f"inputs: [{name}.{spec.name}]"
                )
    try:
        p.topological_order()
    except CycleError as exc:
        out.append(str(exc))
    if p.output is not None and p.output not in p.stages:
        out.append(f"output stage '{p.output}' does not exist")
    if not p.stages:
        out.append("the pipeline has no stages")
    return out


def topological_order(stages: Mapping[str, Any], connections: Iterable[Connection]) -> list[str]:
    indeg = {n: 0 for n in stages}
    succ: dict[str, set[str]] = {n: set() for n in stages}
    for c in connections:
        if c.dst not in succ[c.src]:
            succ[c.src].add(c.dst)
            indeg[c.dst] += 1
    heap = [n for n, d in indeg.items() if d == 0]
    heapq.heapify(heap)  # ties broken by name: independent of insertion order
    order = []
    while heap:
        n = heapq.heappop(heap)
        order.append(n)
        for m in sorted(succ[n]):
            indeg[m] -= 1
            if indeg[m] == 0:
                heapq.heappush(heap, m)
    if len(order) < len(stages):
        raise CycleError(_find_cycle({n for n, d in indeg.items() if d > 0}, succ))
    return order


def _find_cycle(nodes: set[str], succ: Mapping[str, set[str]]) -> list[str]:
    start = min(nodes)
    path, seen = [start], {start: 0}
    node = start
    while True:
        node = min(m for m in succ[node] if m in nodes)
        if node in seen:
            return path[seen[node] :]
        seen[node] = len(path)
        path.append(node)
