"""Deprecated: the connectors' shared helpers moved to the :mod:`ragsel_connect` package
(installed with ragsel, next to ``ragsel_langchain`` and ``ragsel_llamaindex``).

``ragsel.interop.X`` still works with a DeprecationWarning; import ``ragsel_connect`` instead.
The value codec those helpers use is :mod:`ragsel.codec`, in the core. The core itself never
imports ``ragsel_connect`` (an import-linter contract); this shim looks names up at run time.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    connect = importlib.import_module("ragsel_connect")
    try:
        value = getattr(connect, name)
    except AttributeError:
        raise AttributeError(f"module 'ragsel.interop' has no attribute {name!r}") from None
    warnings.warn(
        f"ragsel.interop.{name} moved: use ragsel_connect.{name} (ragsel.interop will be removed)",
        DeprecationWarning,
        stacklevel=2,
    )
    return value
