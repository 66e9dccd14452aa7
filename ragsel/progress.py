"""Progress events from long-running stages (LLM calls, retries, deadlines), for feedback.

Stages and backends call :func:`emit`; nothing happens unless someone listens. The CLI's
``ragsel select`` / ``ragsel run`` listen with :func:`to_stderr`, which prints a line when an
LLM request is retried or times out, and a throttled "N LLM calls so far" line while a stage
runs long. Listen in your own code with::

    from ragsel import progress

    with progress.listening(lambda ev: print(ev.stage, ev.kind, ev.message)):
        pipeline.run("...")

Listeners are process-wide (stages may call from worker threads) and must be quick; an
exception in a listener is swallowed, never failing the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

#: kinds: "call" (an LLM call finished), "retry" (a request will be retried), "timeout"
#: (a request or a stage ran out of time), "fallback" (a stage used its fallback)
KINDS = ("call", "retry", "timeout", "fallback")


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # the stage's name, or the backend's name when no stage is known
    kind: str
    message: str
    done: int | None = None  # calls finished so far in this stage run
    elapsed_s: float | None = None  # seconds since the stage run started


_LISTENERS: list[Callable[[ProgressEvent], None]] = []
_LOCK = threading.Lock()


def emit(event: ProgressEvent) -> None:
    """Send ``event`` to every listener (cheap when nobody listens)."""
    if not _LISTENERS:
        return
    with _LOCK:
        listeners = list(_LISTENERS)
    for fn in listeners:
        try:
            fn(event)
        except Exception:  # noqa: BLE001 - feedback must never fail a run
            pass


@contextmanager
def listening(fn: Callable[[ProgressEvent], None]) -> Iterator[None]:
    """Call ``fn`` with every event emitted while the block runs."""
    with _LOCK:
        _LISTENERS.append(fn)
    try:
        yield
    finally:
        with _LOCK:
            _LISTENERS.remove(fn)


class StderrReporter:
    """Prints retries and timeouts at once, and call counts at most every ``every`` seconds
    (the first one after ``every`` seconds, so quick runs print nothing)."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.stream, self.every = stream, every
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    def __call__(self, ev: ProgressEvent) -> None:
        now = time.monotonic()
        with self._lock:
            if ev.kind == "call":
                if now - self._last < self.every:
                    return
                self._last = now
            line = f"[{ev.stage}] {ev.message}"
            if ev.kind == "call" and ev.elapsed_s is not None:
                line += f" ({ev.elapsed_s:.0f}s)"
            line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
            print(line, file=self.stream or sys.stderr, flush=True)


@contextmanager
def to_stderr(every: float = 5.0) -> Iterator[None]:
    """Print progress to stderr while the block runs (what the CLI does)."""
    with listening(StderrReporter(every=every)):
        yield
