"""Helpers shared by CLI commands: error handling, exit codes, variables, output."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from ragsel.errors import RagselError
from ragsel.offline import OFFLINE_ENV as OFFLINE_ENV  # the library's; re-exported
from ragsel.offline import set_offline_env as set_offline_env

#: Exit codes: 0 ok, 1 runtime failure, 2 bad input.
EXIT_OK, EXIT_RUNTIME, EXIT_BAD_INPUT = 0, 1, 2


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` safe for a terminal: control characters (escape sequences that retitle the
    window or clear the screen, carriage returns, bidi overrides) shown as ``\\x1b``-style
    escapes; newlines and tabs kept. Credentials in URLs are redacted."""
    from ragsel.redact import redact_text

    s = redact_text(str(text))
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], s)


def safe(text: object, style: str = ""):
    """A rich ``Text`` of :func:`printable` (``[tags]`` in documents stay literal)."""
    from rich.text import Text

    return Text(printable(text), style=style)


def install_log_redaction() -> None:
    """Redact credentials and escape control characters in every log record (CLI only)."""
    import logging

    old = logging.getLogRecordFactory()
    if getattr(old, "_ragsel_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return record
        record.msg, record.args = printable(msg), None
        return record

    factory._ragsel_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def debug_enabled() -> bool:
    return os.environ.get("RAGSEL_DEBUG", "") not in ("", "0", "false")


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn errors into a one-paragraph message and an exit code (traceback with --debug)."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        stderr_console().print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except RagselError as exc:
        if debug_enabled():
            raise
        code = getattr(exc, "exit_code", EXIT_RUNTIME)
        label = "error" if code == EXIT_BAD_INPUT else "failed"
        console = stderr_console()
        console.print(safe(f"{label}: ", "bold red") + safe(exc), soft_wrap=True)
        cause = exc.__cause__
        shown = getattr(exc, "cause_shown", False) or str(cause) in str(exc)
        if cause is not None and code != EXIT_BAD_INPUT and not shown:
            console.print(safe(f"  caused by {type(cause).__name__}: {cause}"), soft_wrap=True)
        raise typer.Exit(code) from None
    except Exception as exc:
        if debug_enabled():
            raise
        stderr_console().print(
            safe("internal error: ", "bold red")
            + safe(
                f"{type(exc).__name__}: {exc}\n"
                "  re-run with --debug for the traceback and report it."
            ),
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_RUNTIME) from None


ALLOW_PATH_HELP = (
    "Also allow prompt files from this folder (by default only the pipeline's own folder and "
    "ragsel's prompts); repeatable."
)


def parse_vars(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from ragsel.errors import InputError

            raise InputError(f"--var expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def check_vars(pipeline: os.PathLike[str] | str, given: dict[str, str]) -> None:
    """Refuse ``--var NAME=...`` for a NAME the pipeline file does not use (a typo would
    otherwise be ignored silently), listing the names it does use."""
    from ragsel.errors import InputError
    from ragsel.spec import file_variables

    if not given:
        return
    used = file_variables(pipeline)
    unknown = sorted(set(given) - used)
    if unknown:
        raise InputError(
            f"--var {', '.join(unknown)}: {pipeline} uses no such variable; its variables "
            f"are: {', '.join(sorted(used)) or 'none'}"
        )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run a command body under :func:`cli_errors`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return fn(*args, **kwargs)

    return wrapper
