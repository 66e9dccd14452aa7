"""File paths named in pipeline files: prompt templates stay inside the pipeline's folder.

A pipeline file is often someone else's (a shared config, a downloaded example); letting it
name any file would let it read ``/etc/passwd`` or ``~/.ssh`` into a prompt sent to an LLM
endpoint. Relative paths are relative to the pipeline's folder (not the working directory), a
path resolving outside it (``..``, an absolute path, a symlink) is refused unless its folder
is allowed explicitly (``load_pipeline(..., allow_paths=[...])``, ``--allow-path``), and the
package's own ``ragsel/prompts/`` is always allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PACKAGE_PROMPTS = Path(__file__).resolve().parent / "prompts"


def resolve_prompt_files(
    prompts: Mapping[str, Any], base_dir: Path, allow_paths: Sequence[str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``prompts`` with absolute, resolved paths, and ``(template name, problem)`` for each
    path outside the allowed folders or not a file. Values that are not strings are left for
    the stage's config to report."""
    roots = [base_dir, PACKAGE_PROMPTS, *(Path(p).expanduser().resolve() for p in allow_paths)]
    out, problems = dict(prompts), []
    for name, value in prompts.items():
        if not isinstance(value, str) or not value.strip():
            continue
        p = Path(value).expanduser()
        full = (p if p.is_absolute() else base_dir / p).resolve()
        if not any(full.is_relative_to(r) for r in roots):
            problems.append(
                (
                    name,
                    f"prompts.{name}: {value} is outside the pipeline's folder ({base_dir}); a "
                    "prompt file must sit next to the pipeline (or in ragsel/prompts/). Allow "
                    "another folder with load_pipeline(..., allow_paths=[...]) or --allow-path",
                )
            )
        elif not full.is_file():
            problems.append((name, f"prompts.{name}: prompt file not found: {full}"))
        out[name] = str(full)
    return out, problems
