"""Report a ragsel run to LlamaIndex's instrumentation: a :class:`RagselTraceEvent` through
the dispatcher (``llama_index.core.instrumentation``), so event handlers and observability
integrations see the stage trace and which stage dropped what and why."""

from __future__ import annotations

from typing import Any

import llama_index.core.instrumentation as instrument
import ragsel_connect as interop
from llama_index.core.instrumentation.events.base import BaseEvent

dispatcher = instrument.get_dispatcher(__name__)


class RagselTraceEvent(BaseEvent):
    """One ragsel pipeline run: per-stage trace rows, selected ids, and dropped chunks
    (``{"id", "stage", "reason", "text"}``)."""

    pipeline: str
    query: str
    trace: list[dict[str, Any]]
    selected: list[str]
    dropped: list[dict[str, Any]]

    @classmethod
    def class_name(cls) -> str:
        return "RagselTraceEvent"


def report(result: Any) -> None:
    dispatcher.event(RagselTraceEvent(**interop.trace_event(result)))
