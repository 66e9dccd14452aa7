"""Plug-ins: what other packages add to ragsel, found through entry points, loaded lazily.

The core names none of its plug-ins. Two entry-point groups (``pyproject.toml``)::

    [project.entry-points."ragsel.stages"]      # YAML stage type -> "module:Class"
    langchain_retriever = "ragsel_langchain.stages:LangChainRetrieverStage"

    [project.entry-points."ragsel.adapters"]    # foreign top-level package -> "module:adapt"
    langchain_core = "ragsel_langchain.plugin:adapt"

An adapter is ``adapt(obj, kind) -> object | None`` with ``kind`` ``"llm"`` or ``"embedder"``:
it returns ``obj`` wrapped as a ragsel LLM / embedder, or None when it cannot. It is loaded
only when an object whose class (or a base class) comes from that package needs adapting, so
no framework is imported before a user hands ragsel one of its objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from ragsel.errors import ConfigError

STAGES_GROUP = "ragsel.stages"
ADAPTERS_GROUP = "ragsel.adapters"
AdapterKind = Literal["llm", "embedder"]


@cache
def entry_points(group: str) -> dict[str, Any]:
    """name -> entry point of ``group`` (read once per process)."""
    from importlib.metadata import entry_points as _eps

    return {ep.name: ep for ep in _eps(group=group)}


def packages_of(obj: Any) -> list[str]:
    """Top-level packages of ``obj``'s class and its bases, nearest first."""
    seen: list[str] = []
    for cls in type(obj).__mro__:
        top = cls.__module__.split(".")[0]
        if top not in seen:
            seen.append(top)
    return seen


def adapt(obj: Any, kind: AdapterKind) -> Any | None:
    """``obj`` adapted by the plug-in registered for its framework, or None if none fits."""
    adapters = entry_points(ADAPTERS_GROUP)
    for package in packages_of(obj):
        ep = adapters.get(package)
        if ep is None:
            continue
        fn: Callable[[Any, str], Any] = ep.load()
        adapted = fn(obj, kind)
        if adapted is not None:
            return adapted
    return None


def adapt_embedder(obj: Any, where: str = "embedder component") -> Any:
    """A ragsel embedder from a bound component: a ragsel embedder as is, or a foreign
    embedding model wrapped by its connector plug-in (LangChain ``Embeddings``, a LlamaIndex
    embed model)."""
    if callable(getattr(obj, "embed", None)) and hasattr(obj, "dim"):
        return obj
    adapted = adapt(obj, "embedder")
    if adapted is not None:
        return adapted
    raise ConfigError(
        f"{where}: got a {type(obj).__name__}, expected an embedder: bind a ragsel Embedder "
        "(embed + dim), LangChain Embeddings or a LlamaIndex embed model (with "
        'pip install "ragsel[langchain]" / "ragsel[llamaindex]")'
    )
