"""The clock of one LLM stage run: its deadline (``stage_timeout``), calls made, progress.

:class:`~ragsel.stages._llm.LLMStage` wraps each subclass's ``_run``/``_arun`` with
:func:`timed`, so every run starts a clock in a context variable; ``complete``/``acomplete``
call :func:`before_call` (refuse a call past the deadline, hand the deadline to the backend
through :data:`~ragsel.backends.llm.base.REQUEST_DEADLINE`) and :func:`after_call` (count it,
emit a :mod:`ragsel.progress` event). Worker threads get the clock through :func:`in_context`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ragsel import progress
from ragsel.backends.llm.base import REQUEST_DEADLINE
from ragsel.errors import BackendTimeout, RagselError


@dataclass
class RunClock:
    """One run of an LLM stage: when it started, when it must end, calls made so far."""

    start: float
    end: float | None
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def left(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def count(self) -> int:
        with self.lock:  # worker threads share the clock
            self.calls += 1
            return self.calls


_CLOCK: contextvars.ContextVar[RunClock | None] = contextvars.ContextVar(
    "ragsel_llm_stage_clock", default=None
)


def _start(stage: Any) -> contextvars.Token[RunClock | None]:
    now = time.monotonic()
    limit = stage.config.stage_timeout
    return _CLOCK.set(RunClock(now, None if limit is None else now + limit))


def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a stage's ``_run``/``_arun`` so each run has its own clock (and deadline)."""
    if getattr(fn, "_ragsel_timed", False):
        return fn
    if asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def arun(self: Any, **inputs: Any) -> Any:
            token = _start(self)
            try:
                return await fn(self, **inputs)
            finally:
                _CLOCK.reset(token)

        arun._ragsel_timed = True  # type: ignore[attr-defined]
        return arun

    @functools.wraps(fn)
    def run(self: Any, **inputs: Any) -> Any:
        token = _start(self)
        try:
            return fn(self, **inputs)
        finally:
            _CLOCK.reset(token)

    run._ragsel_timed = True  # type: ignore[attr-defined]
    return run


def in_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` to run in a worker thread with a copy of the caller's context (the stage's
    clock and deadline go along); use it for ``ThreadPoolExecutor.map``."""
    ctx = contextvars.copy_context()

    def call(*args: Any) -> Any:
        return ctx.copy().run(fn, *args)  # a Context cannot be entered twice at once

    return call


def before_call(stage: Any) -> contextvars.Token[float | None] | None:
    """Refuse to start a call past the stage's deadline; pass the deadline down."""
    clock = _CLOCK.get()
    if clock is None or clock.end is None:
        return None
    left = clock.left()
    if left is not None and left <= 0:
        msg = (
            f"stage '{stage.name}' used up its stage_timeout of "
            f"{stage.config.stage_timeout:g}s after {clock.calls} LLM call(s); raise "
            "stage_timeout or check the server"
        )
        progress.emit(progress.ProgressEvent(stage.name, "timeout", msg, clock.calls))
        raise BackendTimeout(msg, backend=stage.model_name or str(stage.llm.name))
    outer = REQUEST_DEADLINE.get()
    return REQUEST_DEADLINE.set(clock.end if outer is None else min(outer, clock.end))


def after_call(stage: Any, token: contextvars.Token[float | None] | None, ok: bool) -> None:
    if token is not None:
        REQUEST_DEADLINE.reset(token)
    clock = _CLOCK.get()
    if clock is None:
        return
    n = clock.count()
    elapsed = time.monotonic() - clock.start
    what = "LLM call(s) so far" if ok else "LLM call(s) so far (the last one failed)"
    progress.emit(progress.ProgressEvent(stage.name, "call", f"{n} {what}", n, elapsed))


def report_timeout(stage: Any, exc: RagselError) -> None:
    if isinstance(exc, BackendTimeout):
        clock = _CLOCK.get()
        calls = clock.calls if clock else None
        progress.emit(progress.ProgressEvent(stage.name, "timeout", str(exc), calls))
