"""Graph checks of a :class:`~ragsel.pipeline.Pipeline`: every wiring problem at once, and a
deterministic topological order (ties broken by name, so the order never depends on the
order stages were added)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ragsel.errors import CycleError
from ragsel.typecheck import type_name

if TYPE_CHECKING:
    from ragsel.pipeline import Connection, Pipeline


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"stage.socket"`` -> ``("stage", "socket")``; ``"stage"`` -> ``("stage", None)``."""
    stage, _, socket = ref.partition(".")
    return stage, (socket or None)


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
