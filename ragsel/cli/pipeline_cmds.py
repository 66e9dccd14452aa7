"""``ragsel validate | schema | graph | run``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import typer

from ragsel.cli._common import (
    ALLOW_PATH_HELP,
    EXIT_BAD_INPUT,
    check_vars,
    command,
    parse_vars,
    print_json,
)

GRAPH_FORMATS = ("svg", "png", "pdf")
VAR_HELP = "Set a ${VAR} used in the pipeline file (KEY=VALUE); repeatable."


@command
def validate(
    files: list[Path] = typer.Argument(..., help="Pipeline YAML files."),
    allow_module: list[str] = typer.Option(
        None, "--allow-module", help="Allow 'type: module:Class' from this module."
    ),
    allow_path: list[str] = typer.Option(None, "--allow-path", help=ALLOW_PATH_HELP),
) -> None:
    """Check syntax, stage names, configs and wiring, without loading any model."""
    from ragsel.cli._common import printable, safe, stderr_console
    from ragsel.spec import check_pipeline

    console = stderr_console()
    bad = 0
    for f in files:
        problems = check_pipeline(f, allow_modules=allow_module or [], allow_paths=allow_path or [])
        if problems:
            bad += 1
            for p in problems:
                typer.echo(printable(p))
        else:
            console.print(safe("ok ", "green") + safe(f))
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)


@command
def schema(
    out: Path = typer.Option(None, "--out", "-o", help="Write here instead of stdout."),
) -> None:
    """Write the JSON Schema of pipeline files (every registered stage's config)."""
    from ragsel.schema import pipeline_json_schema

    text = json.dumps(pipeline_json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@command
def graph(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Also render to .svg/.png/.pdf (needs Graphviz's 'dot' program)."
    ),
) -> None:
    """Print the pipeline as a Mermaid flowchart (and render it with graphviz if asked)."""
    from ragsel.errors import InputError, RagselError
    from ragsel.spec import load_pipeline

    pipe = load_pipeline(pipeline, strict_env=False)
    typer.echo(pipe.to_mermaid())
    if out is not None:
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in GRAPH_FORMATS:
            raise InputError(
                f"cannot render to '{out.name}': give -o a file ending in "
                f"{', '.join('.' + f for f in GRAPH_FORMATS)}"
            )
        dot = shutil.which("dot")
        if dot is None:
            raise InputError(
                "rendering needs the 'dot' program of Graphviz, a system package (no pip "
                "extra provides it), and it is not on PATH. Install it with "
                "'apt-get install graphviz', 'brew install graphviz' or 'conda install "
                "graphviz', or leave out -o: the Mermaid text above renders on GitHub and "
                "in mermaid.live."
            )
        lines = ["digraph G {", "rankdir=LR;", "query [shape=oval];"]
        for n, s in pipe.stages.items():
            lines.append(f'"{n}" [shape=box, label="{n}\\n({s.type_name})"];')
        for c in pipe.connections:
            lines.append(f'"{c.src}" -> "{c.dst}" [label="{c.src_out}"];')
        lines.append("}")
        done = subprocess.run(
            [dot, f"-T{fmt}", "-o", str(out)],
            input="\n".join(lines),
            text=True,
            capture_output=True,
        )
        if done.returncode != 0:
            raise RagselError(f"graphviz 'dot' failed writing {out}: {done.stderr.strip()}")
        typer.echo(f"wrote {out}", err=True)


@command
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file."),
    query: str = typer.Option(..., "--query", "-q", help="The query text."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    var: list[str] = typer.Option(None, "--var", help=VAR_HELP),
    index: Path = typer.Option(None, "--index", help="Index folder (sets RAGSEL_INDEX)."),
    allow_path: list[str] = typer.Option(None, "--allow-path", help=ALLOW_PATH_HELP),
) -> None:
    """Run a pipeline on one query; print the selected evidence and the stage trace."""
    from ragsel.cli.render import render_result
    from ragsel.cli.select_cmd import check_paths
    from ragsel.spec import load_pipeline

    variables = parse_vars(var)
    check_vars(pipeline, variables)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    pipe = load_pipeline(pipeline, variables=variables, allow_paths=allow_path or [])
    check_paths(pipe)
    from ragsel import progress

    with progress.to_stderr():  # LLM retries, timeouts and long-running call counts
        result = pipe.run(query)
    if as_json:
        data = result.selection.to_dict()
        data["trace"] = result.trace.as_dicts()
        print_json(data)
    else:
        render_result(result)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("schema")(schema)
    app.command("graph")(graph)
    app.command("run")(run)
