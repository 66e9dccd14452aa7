"""Progress of an indexing run on stderr: a bar in a terminal, plain lines otherwise.

In a terminal the bar advances after every forward pass (tens of chunks, not the 1k-chunk
write batches), with an ETA from the average rate so far. When stderr is redirected (a log
file, CI), a plain line is printed every ``every`` seconds and at the end::

    embedded 1,024/5,183 chunks (19.8%) at 41.3 chunks/s, 1m41s left

Before a long run, :meth:`IndexProgress.plan` prints what will be embedded and, after the
first forward pass, a time estimate.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class IndexProgress:
    """``start(total)``, ``advance(n)`` per forward pass, ``close()``."""

    def __init__(
        self, *, stream: TextIO | None = None, tty: bool | None = None, every: float = 10.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self.total = self.done = 0
        self._t0 = self._last = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._estimated = False

    def _say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def plan(self, chunks: int, docs: int, chars: int, embedder: str) -> None:
        """Say what will be embedded (before the first forward pass)."""
        if chunks:
            self._say(
                f"to embed: {chunks:,} chunks of {docs:,} new or changed document(s), "
                f"{chars / 1e6:.1f}M characters, with {embedder}"
            )

    def start(self, total: int) -> None:
        self.total, self.done = total, 0
        self._t0 = self._last = time.perf_counter()
        if self.tty and total:
            self._bar = _rich_bar(self.stream)
            self._task = self._bar.add_task("embed", total=total)
            self._bar.start()

    def rate(self) -> float:
        el = time.perf_counter() - self._t0
        return self.done / el if el > 0 else 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self._estimated and self.done and self.total > self.done:
            self._estimated = True
            left = (self.total - self.done) / max(self.rate(), 1e-9)
            if left > 30:
                self._say(f"estimated time: about {_dur(left)} at {self.rate():,.1f} chunks/s")
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif now - self._last >= self.every:
            self._last = now
            self._say(self.line())

    def line(self) -> str:
        rate = self.rate()
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = (self.total - self.done) / rate if rate else 0.0
        return (
            f"embedded {self.done:,}/{self.total:,} chunks ({pct:.1f}%) at {rate:,.1f} "
            f"chunks/s, {_dur(left)} left"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.total:
            self._say(self.line())


def _rich_bar(stream: TextIO) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class RateEta(ProgressColumn):
        """Average rate since the start and the ETA from it: steady, unlike a window."""

        def render(self, task: Any) -> Text:
            el = task.elapsed or 0.0
            rate = task.completed / el if el else 0.0
            if not rate:
                return Text("-- chunks/s  ETA --", style="progress.data.speed")
            left = (task.total - task.completed) / rate
            return Text(f"{rate:,.1f} chunks/s  ETA {_dur(left)}", style="progress.data.speed")

    return Progress(
        TextColumn("[bold]embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        RateEta(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        refresh_per_second=4,
        transient=False,
    )
