"""Report a ragsel run to LangChain's callbacks: one custom event ``ragsel_trace`` carrying
the stage trace and every dropped chunk with its stage and reason (LangSmith and
``astream_events(version="v2")`` show it as ``on_custom_event``)."""

from __future__ import annotations

import uuid
from typing import Any

import ragsel_connect as interop
from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackManager, CallbackManager

EVENT = "ragsel_trace"


def _manager(callbacks: Any, run_manager: Any) -> tuple[Any, Any] | None:
    """A callback manager and the run id the event belongs to, or None when nobody listens."""
    if run_manager is not None:  # inside a retriever run: attach the event to that run
        return run_manager.get_child(), run_manager.run_id
    if isinstance(callbacks, BaseCallbackManager):  # e.g. ContextualCompressionRetriever's child
        return callbacks, callbacks.parent_run_id or uuid.uuid4()
    if callbacks:
        return CallbackManager.configure(inheritable_callbacks=callbacks), uuid.uuid4()
    return None


def _from_context(data: dict[str, Any]) -> None:
    """No callbacks passed: use the enclosing Runnable's, if there is one."""
    from langchain_core.callbacks import dispatch_custom_event

    try:
        dispatch_custom_event(EVENT, data)
    except RuntimeError:  # not inside a run: nobody to tell
        pass


def report(result: Any, *, callbacks: Any = None, run_manager: Any = None) -> None:
    """Send ``ragsel_trace`` for ``result`` (sync callers)."""
    data = interop.trace_event(result)
    found = _manager(callbacks, run_manager)
    if found is None:
        _from_context(data)
        return
    mgr, run_id = found
    if isinstance(mgr, AsyncCallbackManager):  # a sync caller with an async manager
        mgr = CallbackManager(handlers=mgr.handlers, parent_run_id=mgr.parent_run_id)
    mgr.on_custom_event(EVENT, data, run_id=run_id)


async def areport(result: Any, *, callbacks: Any = None, run_manager: Any = None) -> None:
    """Send ``ragsel_trace`` for ``result`` (async callers)."""
    data = interop.trace_event(result)
    found = _manager(callbacks, run_manager)
    if found is None:
        from langchain_core.callbacks import adispatch_custom_event

        try:
            await adispatch_custom_event(EVENT, data)
        except RuntimeError:
            pass
        return
    mgr, run_id = found
    if isinstance(mgr, AsyncCallbackManager):
        await mgr.on_custom_event(EVENT, data, run_id=run_id)
    else:
        mgr.on_custom_event(EVENT, data, run_id=run_id)
