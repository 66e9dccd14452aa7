"""``ragsel`` CLI entry point. Commands live in one module each and import heavy packages
only inside their bodies, so ``ragsel --help`` stays fast."""

from __future__ import annotations

import importlib

import typer

from ragsel.cli._common import install_log_redaction, set_offline_env
from ragsel.cli._help import tidy as tidy_help

app = typer.Typer(
    name="ragsel",
    help="Evidence selection for RAG: validate, run and evaluate typed YAML pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules that define commands; each has ``register(app)``.
COMMAND_MODULES = [
    "ragsel.cli.pipeline_cmds",  # validate, schema, graph, run
    "ragsel.cli.select_cmd",  # select
    "ragsel.cli.index_cmd",  # index
    "ragsel.cli.fit_cmd",  # fit
    "ragsel.cli.tune_cmd",  # tune-embedder
    "ragsel.cli.eval_cmd",  # eval
    "ragsel.cli.stages_cmd",  # stages
    "ragsel.cli.serve_cmd",  # serve
]


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    import os

    set_offline_env()
    install_log_redaction()
    if debug:
        os.environ["RAGSEL_DEBUG"] = "1"


for _mod in COMMAND_MODULES:
    importlib.import_module(_mod).register(app)
tidy_help(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
