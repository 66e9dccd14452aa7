"""``ragsel serve``: serve pipelines over HTTP (FastAPI + uvicorn, the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsel.cli._common import command, parse_vars, stderr_console

VAR_HELP = "Set a ${VAR} used in the pipeline files (KEY=VALUE); repeatable."
KEY_HELP = (
    "Require an API key, read from this environment variable (default: RAGSEL_SERVE_API_KEY "
    "when it is set). Clients send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
)


@command
def serve(
    pipelines: list[str] = typer.Argument(
        ..., help="Pipeline YAML files; NAME=PATH serves one under another name."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    index: Path = typer.Option(
        None, "--index", "-i", help="Index folder built by `ragsel index` (sets RAGSEL_INDEX)."
    ),
    var: list[str] = typer.Option(None, "--var", help=VAR_HELP),
    api_key_env: str = typer.Option(None, "--api-key-env", help=KEY_HELP),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per request (504 after)."),
    max_concurrency: int = typer.Option(
        8, "--max-concurrency", min=1, help="Pipeline runs in flight; other requests wait."
    ),
    max_body: int = typer.Option(65536, "--max-body-bytes", min=1, help="Largest request body."),
    max_query: int = typer.Option(2000, "--max-query-chars", min=1, help="Longest query text."),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most queries per batch request."),
    no_docs: bool = typer.Option(False, "--no-docs", help="Do not serve /docs and /openapi.json."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request line."),
) -> None:
    """Serve PIPELINE(s) as a selection service: POST /v1/pipelines/{name}/select with
    {"query": "..."} returns the `ragsel select --json` record. A pipeline is named by NAME=,
    else by the `name:` in its YAML, else by its file stem. Models load before the port opens."""
    from ragsel.cli.select_cmd import check_paths
    from ragsel.errors import require
    from ragsel.serve import API_KEY_ENV, ServeSettings, load_served

    require("fastapi", "serve", "ragsel serve")
    require("uvicorn", "serve", "ragsel serve")
    variables = parse_vars(var)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    key = ServeSettings.key_from_env(api_key_env or API_KEY_ENV, required=api_key_env is not None)
    settings = ServeSettings(
        timeout_s=timeout,
        max_body_bytes=max_body,
        max_query_chars=max_query,
        max_batch=max_batch,
        max_concurrency=max_concurrency,
        api_key=key,
        docs=not no_docs,
    )
    served = load_served(pipelines, variables=variables)
    for s in served:
        check_paths(s.pipeline)  # a missing index is exit 2 before any model loads
    from ragsel.serve import create_app
    from ragsel.serve.server import bind, make_server, url_of

    _log_to_stderr()
    app = create_app(served, settings)
    sock = bind(host, port)
    _announce(served, host, key is not None)
    stderr_console().print(f"listening on {url_of(sock)} once the models are loaded (docs: /docs)")
    make_server(app, access_log=access_log).run(sockets=[sock])


def _announce(served, host: str, keyed: bool) -> None:
    err = stderr_console()
    for s in served:
        alias = f" (also /{', /'.join(s.aliases)})" if s.aliases else ""
        err.print(f"pipeline [bold]{s.name}[/]{alias}: {s.source}", markup=True)
    err.print("API key: required" if keyed else "API key: none (anyone who can connect may call)")
    if not keyed and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning:[/] listening on {host} without an API key; "
            "set RAGSEL_SERVE_API_KEY or pass --api-key-env",
            markup=True,
        )


def _log_to_stderr() -> None:
    """The service's own log lines (start-up, failed requests with their request id)."""
    import logging

    log = logging.getLogger("ragsel.serve")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
