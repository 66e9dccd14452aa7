"""What the LangChain and LlamaIndex connectors share, framework-free.

- :mod:`ragsel_connect.documents`: a selection to documents and documents back to
  :class:`~ragsel.types.Candidates`, with one metadata layout (ids, scores and provenance
  survive a round trip), written for speed; values inside go through :mod:`ragsel.codec`.
- :mod:`ragsel_connect.glue`: checking and resolving a pipeline for a retriever/compressor,
  binding user objects to stages, the connector packages' lazy exports and LLM registration,
  and the helpers of the foreign-retriever stages.

The core (``ragsel``) never imports this package (an import-linter contract); the connectors do.
It was ``ragsel.interop`` (plus ``ragsel._connector_glue``); that name still works, deprecated.
"""

from __future__ import annotations

from ragsel.plugins import adapt_embedder
from ragsel_connect.documents import (
    NO_POSITION_NOTE,
    RAGSEL_KEYS,
    candidates_from_records,
    chunk_metadata,
    model_builder,
    provenance,
    trace_event,
)
from ragsel_connect.glue import (
    BatchEmbedder,
    bind_component,
    bound,
    candidates_input,
    cap,
    capped,
    check_selection_pipeline,
    component_type_error,
    from_framework,
    lazy_exports,
    object_and_config,
    register_llm_class,
    resolve_pipeline,
    selected,
)

__all__ = [
    "NO_POSITION_NOTE",
    "RAGSEL_KEYS",
    "BatchEmbedder",
    "adapt_embedder",
    "bind_component",
    "bound",
    "candidates_from_records",
    "candidates_input",
    "cap",
    "capped",
    "check_selection_pipeline",
    "chunk_metadata",
    "component_type_error",
    "from_framework",
    "lazy_exports",
    "model_builder",
    "object_and_config",
    "provenance",
    "register_llm_class",
    "resolve_pipeline",
    "selected",
    "trace_event",
]
