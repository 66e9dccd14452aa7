"""The state of one pipeline build for :mod:`ragsel.spec` (``_Ctx``: its options, the file's
YAML locations and every problem found so far) and ``${VAR}`` / ``${VAR:-default}``
interpolation of config values, including :func:`file_variables` (re-exported by
:mod:`ragsel.spec`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragsel import _spec_yaml
from ragsel.errors import Problem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class _Ctx:
    """One build: its options, the file's locations and every problem found so far."""

    file: str | None
    locs: _spec_yaml.Loc
    variables: Mapping[str, str] = field(default_factory=dict)
    strict_env: bool = True
    components: Mapping[str, Any] | None = None
    allow_modules: Sequence[str] = ()
    allow_paths: Sequence[str] = ()
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: tuple, key: bool = False) -> tuple[int, int] | None:
        p = tuple(path)
        loc = self.locs.get(p + ("__key__",)) if key else None
        while loc is None and p:
            loc = self.locs.get(p)
            if loc is None:
                p = p[:-1]
        return loc or self.locs.get(())

    def add(self, message: str, path: tuple = (), key: bool = False) -> None:
        self.problems.append(Problem(message, self.file, *(self.where(path, key) or (None, None))))

    @property
    def base_dir(self) -> Path:
        """Relative file paths in the pipeline are relative to its folder."""
        return Path(self.file).resolve().parent if self.file else Path.cwd()


def _interpolate(value: Any, ctx: _Ctx, path: tuple) -> Any:
    if isinstance(value, str) and "$" in value:
        if "${" in _VAR.sub("", value):
            ctx.add(
                f"malformed variable in {value!r}: write ${{NAME}} or ${{NAME:-default}} "
                "(an unclosed '${' or a name that is not letters, digits and '_')",
                path,
            )
            return value

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in ctx.variables:
                return ctx.variables[name]
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            if ctx.strict_env:
                ctx.add(
                    f"environment variable {name} is not set; set it "
                    f"(export {name}=...) or give a default: ${{{name}:-value}}",
                    path,
                )
            return m.group(0)

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, ctx, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, ctx, path + (i,)) for i, v in enumerate(value)]
    return value


def file_variables(source: str | os.PathLike[str]) -> frozenset[str]:
    """The ``${VAR}`` names a pipeline file's values use (comments not included)."""
    data, _ = _spec_yaml.parse(*_spec_yaml.read(source))
    names: set[str] = set()
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            names.update(m.group(1) for m in _VAR.finditer(v))
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return frozenset(names)
