"""What ``ragsel serve`` serves and under which limits (no web framework imported here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragsel.errors import ConfigError, InputError
from ragsel.pipeline import Pipeline

#: The environment variable holding the API key (unset: no key is required).
API_KEY_ENV = "RAGSEL_SERVE_API_KEY"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DEFAULT_NAME = "pipeline"  # what a YAML without ``name:`` is called (ragsel.spec)


@dataclass(frozen=True)
class ServeSettings:
    """Limits and options of one service. ``api_key`` is never shown in ``repr``."""

    timeout_s: float = 30.0  # per request, waiting for a slot included
    max_body_bytes: int = 64 * 1024
    max_query_chars: int = 2000
    max_batch: int = 32  # queries per batch request
    max_concurrency: int = 8  # pipeline runs in flight; further requests wait for a slot
    api_key: str | None = field(default=None, repr=False)
    docs: bool = True  # serve /docs and /openapi.json

    def __post_init__(self) -> None:
        for name in ("timeout_s", "max_body_bytes", "max_query_chars", "max_batch"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"serve setting {name} must be > 0, got {getattr(self, name)}")
        if self.max_concurrency < 1:
            raise ConfigError(
                f"serve setting max_concurrency must be >= 1, got {self.max_concurrency}"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty: set a non-blank key or none at all")

    @classmethod
    def key_from_env(cls, env: str = API_KEY_ENV, *, required: bool = False) -> str | None:
        """The API key in ``$env``; ``required`` makes an unset or empty variable an error
        (the operator asked for a key, so serving without one would be a silent downgrade)."""
        value = os.environ.get(env, "")
        if value.strip():
            return value
        if required:
            raise InputError(
                f"the API key variable {env} is not set or empty: export {env}=<key>, "
                "or drop --api-key-env to serve without a key"
            )
        return None


@dataclass(frozen=True)
class Served:
    """One served pipeline: its URL name, other names it answers to, and where it came from."""

    name: str
    pipeline: Pipeline
    aliases: tuple[str, ...] = ()
    source: str | None = None


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"{where}: pipeline name {name!r} cannot be used in a URL; use 1-64 letters, "
            "digits, '_', '-' or '.' (serve it as NAME=PATH to choose the name)"
        )
    return name


def _split_spec(spec: str) -> tuple[str | None, str]:
    """``NAME=path.yaml`` or ``path.yaml``."""
    name, sep, path = spec.partition("=")
    if sep and name and not name.endswith((".yaml", ".yml")) and "/" not in name:
        return name, path
    return None, spec


def load_served(
    specs: Sequence[str | os.PathLike[str]],
    *,
    variables: Mapping[str, str] | None = None,
) -> list[Served]:
    """Load pipeline files to serve. A pipeline is named by ``NAME=`` when given, else by the
    ``name:`` in its YAML, else by its file stem; the file stem also routes to it when it
    differs and is not another pipeline's name. No model is loaded here."""
    from ragsel.spec import load_pipeline

    if not specs:
        raise InputError("give at least one pipeline file to serve")
    served: list[Served] = []
    for spec in specs:
        explicit, path = _split_spec(str(spec))
        pipe = load_pipeline(Path(path), variables=dict(variables or {}))
        stem = Path(path).stem
        name = explicit or (pipe.name if pipe.name != _DEFAULT_NAME else stem)
        _check_name(name, path)
        aliases = () if explicit or stem == name or not _NAME.match(stem) else (stem,)
        served.append(Served(name, pipe, aliases, str(path)))
    return served


def as_served(pipelines: Iterable[Served | Pipeline] | Mapping[str, Pipeline]) -> list[Served]:
    """Normalise what :func:`create_app` accepts; duplicate names are an error naming both."""
    if isinstance(pipelines, Mapping):
        items = [Served(_check_name(n, "serve"), p) for n, p in pipelines.items()]
    else:
        items = [
            p if isinstance(p, Served) else Served(_check_name(p.name, "serve"), p)
            for p in pipelines
        ]
    if not items:
        raise InputError("give at least one pipeline to serve")
    seen: dict[str, Served] = {}
    for s in items:
        if not isinstance(s.pipeline, Pipeline):
            raise InputError(f"'{s.name}' is a {type(s.pipeline).__name__}, not a ragsel Pipeline")
        if s.name in seen:
            first = seen[s.name].source or "a pipeline"
            raise InputError(
                f"two pipelines are named '{s.name}' ({first} and {s.source or 'another'}); "
                "serve one of them as NAME=PATH"
            )
        if s.pipeline.inputs:
            raise InputError(
                f"pipeline '{s.name}' declares run-time inputs {s.pipeline.inputs}, which a "
                "request cannot carry; serve a pipeline that only needs the query"
            )
        seen[s.name] = s
    return items
