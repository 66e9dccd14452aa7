"""Progress of a long evaluation step: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """A rich progress bar on a terminal; plain lines (at most every ``every`` seconds, and
    at the end) when stderr is not a terminal, so redirected runs still show progress and an
    ETA; nothing when ``enabled`` is false."""

    def __init__(self, enabled: bool, total: int, label: str, every: float = 30.0) -> None:
        self.bar = None
        self.plain = False
        self.total, self.label, self.every, self.done = total, label, every, 0
        self.t0 = self.last = time.monotonic()
        if not (enabled and total):
            return
        if not sys.stderr.isatty():
            self.plain = True
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.bar.add_task(label, total=total)
        self.bar.start()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.t0
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = f", ~{left:.0f} s left" if left == left else ""
        sys.stderr.write(
            f"{self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.1f}%) "
            f"in {elapsed:.0f} s{eta}\n"
        )
        sys.stderr.flush()

    def advance(self, description: str | None = None) -> None:
        self.done += 1
        if self.plain:
            now = time.monotonic()
            if now - self.last >= self.every or self.done == self.total:
                self.last = now
                self._line()
        elif self.bar is not None:
            self.bar.update(
                self.task, advance=1, **({"description": description} if description else {})
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
