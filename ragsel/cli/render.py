"""Rich tables for selections and traces."""

from __future__ import annotations

import re

from ragsel.cli._common import printable, safe
from ragsel.trace import RunResult
from ragsel.types import Selection


def _provenance(events) -> str:
    """One short tag per stage that touched a chunk: ``bm25 #3``, ``fuse``, ``kept by cut``,
    ``added by expand``, in the order the stages ran."""
    tags: list[str] = []
    for e in events:
        if e.action == "retrieved":
            rank = e.data.get("rank") or e.reason.rpartition("rank ")[2].split(" ")[0]
            tag = f"{e.stage} #{rank}" if str(rank).isdigit() else e.stage
        elif e.action in ("kept", "added", "flagged", "rescored"):
            tag = f"{e.action} by {e.stage}"
        else:
            tag = e.stage
        if tag not in tags:
            tags.append(tag)
    return ", ".join(tags)


_WORD = re.compile(r"\w{3,}")


def snippet(text: str, query: str, max_chars: int) -> str:
    """``text`` if short, else the ``max_chars`` window that holds the query's words best
    (each distinct word weighted by how rare it is in ``text``), marked with "…" where cut:
    a long merged passage shows where it answers, not only how it starts."""
    if len(text) <= max_chars:
        return text
    # words compared by their first five letters: "assign" finds "assignment"
    words = {w[:5] for w in _WORD.findall(query.lower())}
    hits = [(m.start(), m.group()[:5]) for m in _WORD.finditer(text.lower())]
    hits = [(p, w) for p, w in hits if w in words]
    start = 0
    if hits:
        count: dict[str, int] = {}
        for _, w in hits:
            count[w] = count.get(w, 0) + 1
        best = -1.0
        for pos, _ in hits:
            lead = max(0, pos - max_chars // 6)
            seen = {w for p, w in hits if lead <= p < lead + max_chars - 2}
            score = sum(1.0 / count[w] for w in seen)
            if score > best + 1e-9:
                best, start = score, lead
        start = min(start, len(text) - (max_chars - 2))
        space = text.find(" ", start, start + 20) if start else -1
        start = space + 1 if space > 0 else start
    head = "…" if start else ""
    body = text[start : start + max_chars - len(head) - 1]
    return head + body + ("…" if start + len(body) < len(text) else "")


def note_lines(selection: Selection) -> list[str]:
    """A readable line per stage note: where a cutoff cut and why, what fusion merged, how many
    neighbours expansion added (falls back to the raw note)."""
    lines = []
    for n in selection.notes:
        d = dict(n.data)
        if "why" in d:
            text = f"kept {d.get('kept')} of {d.get('n')}: {d['why']}"
        elif "method" in d and "inputs" in d:
            ins = ", ".join(f"{i['stage']} ({i['n']})" for i in d["inputs"])
            text = f"{d['method']} over {ins} -> {d.get('unique')} unique, kept {d.get('kept')}"
        elif "added" in d and "source" in d:
            text = f"added {d['added']} neighbour(s) from {d['source']}"
            if d.get("budget") is not None:
                text += f", {d['spent']}/{d['budget']} {d['budget_unit']}"
            if d.get("skipped_no_position"):
                text += f"; {len(d['skipped_no_position'])} chunk(s) without a position skipped"
        else:
            text = ", ".join(f"{k}={v}" for k, v in d.items())
        lines.append(printable(f"{n.stage}: {text}"))
    return lines


def selection_table(selection: Selection, max_text: int = 240):
    from rich.table import Table

    table = Table(title=safe(f"Evidence for: {selection.query.text}"), show_lines=True)
    for col in ("#", "document", "pos", "score", "kept/added by", "text"):
        table.add_column(col, overflow="fold")
    # anchors named by document and position (ids are content hashes)
    where = {
        sc.chunk.id: f"#{sc.chunk.position} of {sc.chunk.doc_id}"
        for sc in selection.chunks
        if sc.chunk.position is not None
    }
    for rank, sc in enumerate(selection.chunks, 1):
        c = sc.chunk
        text = snippet(c.text, selection.query.text, max_text)
        prov = _provenance(sc.events)
        if sc.rationales:
            prov += f"\nrationales: {', '.join(sc.rationales)}"
        if sc.expanded_from:
            prov += f"\nneighbour of {where.get(sc.expanded_from, sc.expanded_from)}"
        table.add_row(
            str(rank),
            safe(c.doc_id),
            "" if c.position is None else str(c.position),
            f"{sc.score:.4g}",
            safe(prov),
            safe(text),
        )
    return table


def trace_table(result: RunResult):
    from rich.table import Table

    table = Table(title=f"Trace ({result.trace.total_ms:.1f} ms)")
    for col in ("stage", "type", "ms", "in", "out", "dropped"):
        table.add_column(col)
    for st in result.trace.stages:
        dropped = ", ".join(st.dropped[:5]) + (" …" if len(st.dropped) > 5 else "")
        table.add_row(
            safe(st.stage),
            safe(st.type),
            f"{st.ms:.2f}",
            "" if st.items_in is None else str(st.items_in),
            "" if st.items_out is None else str(st.items_out),
            safe(dropped),
        )
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
        for line in note_lines(selection):
            console.print(line, style="dim", markup=False, highlight=False)
    if result.answer is not None:
        console.print(safe("Answer: ", "bold") + safe(result.answer.text))
    console.print(trace_table(result))
