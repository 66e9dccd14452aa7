"""A pipeline as a Mermaid flowchart (``ragsel graph``, ``Pipeline.to_mermaid``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragsel.pipeline import Pipeline


def to_mermaid(p: Pipeline) -> str:
    lines = ["flowchart LR", "    query([query])"]
    for n, s in p.stages.items():
        lines.append(f'    {n}["{n}<br/><i>{s.type_name}</i>"]')
    for c in p.connections:
        lines.append(f"    {c.src} -- {c.src_out} --> {c.dst}")
    for n, s in p.stages.items():
        for spec in s.input_specs().values():
            if not p.is_fed(n, spec) and p.takes_pipeline_query(spec):
                lines.append(f"    query --> {n}")
    return "\n".join(lines)
