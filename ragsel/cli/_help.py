"""Help texts as a terminal shows them: docstrings keep their RST (``--json``, :func:`x`)
and their source line breaks, ``--help`` shows neither."""

from __future__ import annotations

import inspect
import re

import typer

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`x` / :class:`~a.b.C`
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def plain(text: str | None) -> str | None:
    """RST roles and literals unwrapped, each paragraph on one line (blank lines kept)."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], inspect.cleandoc(text))
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def tidy(app: typer.Typer) -> None:
    """Rewrite every registered command's help and its options' help with :func:`plain`."""
    for cmd in app.registered_commands:
        cb = cmd.callback
        cmd.help = plain(cmd.help or (inspect.getdoc(cb) if cb else None))
        if cb is None:
            continue
        for param in inspect.signature(cb).parameters.values():
            info = param.default
            if isinstance(info, typer.models.ParameterInfo) and info.help:
                info.help = plain(info.help)
