"""Settings of an evaluation run (:class:`EvalConfig`) and where built indexes are cached."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragsel.errors import ConfigError

DEFAULT_KS = (1, 5, 10, 20, 100)
DEFAULT_CURVE_KS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 50, 100)


def eval_cache_dir() -> Path:
    """Where built evaluation indexes are kept, shared by every run: ``$RAGSEL_EVAL_CACHE``,
    else ``$XDG_CACHE_HOME/ragsel/eval`` (``~/.cache/ragsel/eval``). Each index folder is keyed
    by the corpus content, the chunker and the embedder, so another ``--out`` reuses it."""
    env = os.environ.get("RAGSEL_EVAL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ragsel" / "eval"


@dataclass(frozen=True)
class EvalConfig:
    """How :func:`run_eval` runs (every field has a default; see the module docstring).

    ``failed_as_miss``: a failed query scores 0 on quality metrics (default) instead of being
    left out; ``cache_dir``: where indexes are built (default :func:`eval_cache_dir`);
    ``notify``: called with one line before a long step (what is embedded, how long)."""

    out_dir: str | Path = "ragsel-eval"
    limit: int | None = None
    engine: str = "local"
    chunker: str | None = None
    embedder: str = "minilm"
    variables: dict[str, str] = field(default_factory=dict)
    ks: Sequence[int] = DEFAULT_KS
    curve_ks: Sequence[int] = DEFAULT_CURVE_KS
    seed: int = 0
    retry_failed: bool = False
    progress: bool = True
    keep_texts: bool = False
    ragas: bool = False
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    write: bool = True
    dataset_options: dict[str, Any] | None = None
    allow_modules: Sequence[str] = ()
    index: str | Path | None = None
    failed_as_miss: bool = True
    cache_dir: str | Path | None = None
    notify: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"engine must be 'local' or 'ray', got {self.engine!r}")

    @property
    def out(self) -> Path:
        return Path(self.out_dir)

    @property
    def texts(self) -> bool:
        return self.keep_texts or self.ragas
