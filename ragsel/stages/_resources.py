"""The one way a stage gets an embedder.

``Embedders`` resolves a name in this order, once per name, on first use (thread-safe):

1. a component bound by name (``load_pipeline(components={"my-emb": obj})``, or
   :meth:`Embedders.use`), adapted when it is a LangChain/LlamaIndex object
   (:func:`ragsel.plugins.adapt_embedder`);
2. the embedder registry, :func:`ragsel.backends.embedders.load_embedder` (a process-wide
   shared instance; the model itself loads lazily on first ``embed``).

Stages hold one ``Embedders`` and call ``bind(components, *names)`` from
``bind_components`` and ``get(name)`` where they need the embedder.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class Embedders:
    def __init__(self, **load_options: Any) -> None:
        self._options = load_options  # e.g. threads=1, passed to load_embedder
        self._by_name: dict[str, Any] = {}
        self._lock = threading.Lock()

    def bind(self, components: Mapping[str, Any], *names: str | None) -> None:
        """Take the components named by ``names`` (names that are not components are left
        to the registry)."""
        from ragsel.plugins import adapt_embedder

        for name in names:
            if name and name in components:
                self.use(name, adapt_embedder(components[name], f"component '{name}'"))

    def use(self, name: str, embedder: Any) -> None:
        """Resolve ``name`` to this embedder object from now on."""
        with self._lock:
            self._by_name[name] = embedder

    def get(self, name: Any) -> Any:
        """The embedder for ``name`` (a name, or an ``EmbedderSpec`` such as an index's)."""
        with self._lock:
            emb = self._by_name.get(name)
            if emb is None:
                from ragsel.backends.embedders import load_embedder

                emb = self._by_name[name] = load_embedder(name, **self._options)
            return emb
