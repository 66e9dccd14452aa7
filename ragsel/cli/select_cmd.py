"""``ragsel select``: run a pipeline against an index and show the selected evidence."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsel.cli._common import ALLOW_PATH_HELP, check_vars, command, parse_vars, print_json

VAR_HELP = "Set a ${VAR} used in the pipeline file (KEY=VALUE); repeatable."


#: Stages whose ``model`` config names a model file written by ``ragsel fit``.
MODEL_FILE_STAGES = ("learned_cutoff", "rationale_selector")


def check_paths(pipe) -> None:
    """Fail fast (exit 2, before any model loads) when an index a stage reads is missing or
    incompatible, or a learned cutoff's model file is missing; the error names the file,
    line and column of the YAML value."""
    from ragsel.errors import InputError, RagselIndexError
    from ragsel.index.store import read_manifest
    from ragsel.spec import stage_location

    for name, stage in pipe.stages.items():
        value = getattr(stage.config, "index", None)
        where = stage_location(stage, "index")
        if isinstance(value, str) and value:
            try:
                read_manifest(Path(value))
            except RagselIndexError as exc:
                raise RagselIndexError(f"{where or name}: stage '{name}' index: {exc}") from None
        model = getattr(stage.config, "model", None)
        if stage.type_name in MODEL_FILE_STAGES and model and not Path(model).is_file():
            from ragsel.stages.cutoff._learned_model import is_model_name, resolve_model

            if is_model_name(model):  # a shipped model ("general"), or a clear error
                try:
                    resolve_model(model)
                    continue
                except InputError as exc:
                    where = stage_location(stage, "model") or name
                    raise InputError(f"{where}: stage '{name}' model: {exc}") from None
            raise InputError(
                f"{stage_location(stage, 'model') or name}: stage '{name}' model: no file "
                f"at {model}. Fit one with 'ragsel fit PIPELINE --dataset NAME --out {model}'"
            )


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
    allow_path: list[str] = typer.Option(None, "--allow-path", help=ALLOW_PATH_HELP),
) -> None:
    """Select the evidence for one query: a table of rank, document, position, score, the
    stages that kept or added each chunk, and its text (``--json`` for the full record with
    every drop and stage note)."""
    from ragsel.spec import load_pipeline
    from ragsel.types import Query

    q = Query(query)  # an empty query is an InputError (exit 2) before anything loads
    variables = parse_vars(var)
    check_vars(pipeline, variables)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    pipe = load_pipeline(pipeline, variables=variables, allow_paths=allow_path or [])
    check_paths(pipe)
    from ragsel import progress

    with progress.to_stderr():  # LLM retries, timeouts and long-running call counts
        result = pipe.run(q)
    if as_json:
        print_json(selection_payload(result))
        return
    from rich.console import Console

    from ragsel.cli._common import safe
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
            table.add_row(*(safe(x) for x in (d.id, d.item.chunk.doc_id, d.stage, d.reason)))
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
