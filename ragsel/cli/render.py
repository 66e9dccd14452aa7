"""Rich tables for selections and traces."""

from __future__ import annotations

from ragsel.trace import RunResult
from ragsel.types import Selection


def _provenance(events) -> str:
    seen = []
    for e in events:
        tag = f"{e.stage}:{e.action}"
        if tag not in seen:
            seen.append(tag)
    return ", ".join(seen)


def selection_table(selection: Selection, max_text: int = 240):
    from rich.table import Table

    table = Table(title=f"Evidence for: {selection.query.text}", show_lines=True)
    for col in ("#", "document", "pos", "score", "kept/added by", "text"):
        table.add_column(col, overflow="fold")
    for rank, sc in enumerate(selection.chunks, 1):
        c = sc.chunk
        text = c.text if len(c.text) <= max_text else c.text[: max_text - 1] + "…"
        prov = _provenance(sc.events)
        if sc.rationales:
            prov += f"\nrationales: {', '.join(sc.rationales)}"
        if sc.expanded_from:
            prov += f"\nneighbour of {sc.expanded_from}"
        table.add_row(str(rank), c.doc_id, "" if c.position is None else str(c.position),
                      f"{sc.score:.4g}", prov, text)
    return table


def trace_table(result: RunResult):
    from rich.table import Table

    table = Table(title=f"Trace ({result.trace.total_ms:.1f} ms)")
    for col in ("stage", "type", "ms", "in", "out", "dropped"):
        table.add_column(col)
    for st in result.trace.stages:
        dropped = ", ".join(st.dropped[:5]) + (" …" if len(st.dropped) > 5 else "")
        table.add_row(st.stage, st.type, f"{st.ms:.2f}",
                      "" if st.items_in is None else str(st.items_in),
                      "" if st.items_out is None else str(st.items_out), dropped)
    return table


def render_result(result: RunResult) -> None:
    from rich.console import Console

    console = Console()
    try:
        selection = result.selection
    except ValueError:
        selection = None
    if selection is not None:
        console.print(selection_table(selection))
        if selection.notes:
            for n in selection.notes:
                console.print(f"[dim]{n.stage}: {dict(n.data)}[/]")
    if result.answer is not None:
        console.print(f"[bold]Answer:[/] {result.answer.text}")
    console.print(trace_table(result))
