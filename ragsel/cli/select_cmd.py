"""``ragsel select``: run a pipeline against an index and show the selected evidence."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsel.cli._common import command, parse_vars, print_json

VAR_HELP = "Set a ${VAR} used in the pipeline file (KEY=VALUE); repeatable."


def check_indexes(pipe, index: Path | None) -> None:
    """Fail fast (exit 2, before any model loads) when the index a stage reads is missing or
    incompatible. Stages name their index in an ``index`` config field."""
    from ragsel.index.store import read_manifest

    paths = {Path(index)} if index is not None else set()
    for stage in pipe.stages.values():
        value = getattr(stage.config, "index", None)
        if isinstance(value, str) and value:
            paths.add(Path(value))
    for p in sorted(paths):
        read_manifest(p)  # raises RagselIndexError naming the fix


def selection_payload(result) -> dict:
    data = result.selection.to_dict()
    data["trace"] = result.trace.as_dicts()
    data["total_ms"] = round(result.trace.total_ms, 3)
    return data


@command
def select(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file (e.g. pipelines/local.yaml)."),
    query: str = typer.Option(..., "--query", "-q", help="The question to select evidence for."),
    index: Path = typer.Option(
        None, "--index", "-i", help="Index folder built by `ragsel index` (sets RAGSEL_INDEX)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
    var: list[str] = typer.Option(None, "--var", help=VAR_HELP),
    show_dropped: bool = typer.Option(
        False, "--dropped", help="Also list the chunks stages dropped, and why."
    ),
    show_trace: bool = typer.Option(False, "--trace", help="Also print per-stage timings."),
    max_text: int = typer.Option(
        240, "--max-text", min=20, help="Characters of chunk text shown per row."
    ),
) -> None:
    """Select the evidence for one query: a table of rank, document, position, score, the
    stages that kept or added each chunk, and its text (``--json`` for the full record with
    every drop and stage note)."""
    from ragsel.spec import load_pipeline
    from ragsel.types import Query

    q = Query(query)  # an empty query is an InputError (exit 2) before anything loads
    variables = parse_vars(var)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    pipe = load_pipeline(pipeline, variables=variables)
    check_indexes(pipe, index)
    from ragsel import progress

    with progress.to_stderr():  # LLM retries, timeouts and long-running call counts
        result = pipe.run(q)
    if as_json:
        print_json(selection_payload(result))
        return
    from rich.console import Console

    from ragsel.cli.render import note_lines, selection_table, trace_table

    console = Console()
    if not console.is_terminal:  # piped or captured: 80 columns would fold every cell
        console = Console(width=160)
    selection = result.selection
    console.print(selection_table(selection, max_text=max_text))
    for line in note_lines(selection):
        console.print(line, style="dim", markup=False, highlight=False)
    if show_dropped and selection.dropped:
        from rich.table import Table

        table = Table(title="Dropped")
        for col in ("id", "document", "stage", "reason"):
            table.add_column(col, overflow="fold")
        for d in selection.dropped:
            table.add_row(d.id, d.item.chunk.doc_id, d.stage, d.reason)
        console.print(table)
    if show_trace:
        console.print(trace_table(result))
    else:
        console.print(
            f"{len(selection.chunks)} chunk(s) selected in {result.trace.total_ms:.1f} ms",
            style="dim",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("select")(select)
