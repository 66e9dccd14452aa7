"""The process-wide cache of read-only indexes behind :func:`open_index`: one
:class:`~ragsel.index.local.LocalIndex` per folder, re-opened when its manifest changes (a new
``ragsel index`` run). :mod:`ragsel.index.local` re-exports both functions.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragsel.index.local import LocalIndex

_cache: dict[Path, tuple[int, LocalIndex]] = {}
_cache_lock = threading.Lock()


def open_index(path: str | Path) -> LocalIndex:
    """The shared read-only :class:`LocalIndex` for ``path`` (re-opened when rebuilt)."""
    p = Path(path).expanduser().resolve()
    mf = p / "manifest.json"
    try:
        stamp = mf.stat().st_mtime_ns
    except OSError:
        stamp = -1
    with _cache_lock:
        hit = _cache.get(p)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    from ragsel.index.local import LocalIndex

    ix = LocalIndex.open(p)
    with _cache_lock:
        _cache[p] = (stamp, ix)
    return ix


def clear_index_cache() -> None:
    """Forget every index :func:`open_index` loaded."""
    with _cache_lock:
        _cache.clear()
