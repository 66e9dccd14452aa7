"""Concurrency limits and retry delays shared by the LLM backends.

:class:`Limiter` is one semaphore usable from threads *and* coroutines (stages run either way:
``run_batch`` uses threads, ``arun`` the event loop), fair in arrival order. Limiters are
shared per endpoint through :func:`endpoint_limiter`, a documented process-wide cache, so two
stages pointed at the same server share its concurrency budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from typing import Any


class Limiter:
    """At most ``limit`` holders at a time, across threads and event loops.

    ``with limiter.hold(): ...`` in threads, ``async with limiter.ahold(): ...`` in coroutines.
    ``peak`` is the highest number of simultaneous holders seen (for tests and stats).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._free = limit
        self._lock = threading.Lock()
        self._waiters: deque[Any] = deque()
        self.active = 0
        self.peak = 0

    def _take(self) -> None:  # with self._lock held
        self.active += 1
        self.peak = max(self.peak, self.active)

    def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                self._take()
                return
            event = threading.Event()
            self._waiters.append(event)
        event.wait()  # release() hands the slot over directly (and counts it as taken)

    async def aacquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                self._take()
                return
            fut: asyncio.Future[None] = loop.create_future()
            waiter = (loop, fut)
            self._waiters.append(waiter)
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiters:  # never granted: just leave the queue
                    self._waiters.remove(waiter)
                    raise
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled: give the slot back
            # else the pending grant sees the cancelled future and passes the slot on
            raise

    def release(self) -> None:
        with self._lock:
            self.active -= 1
            while self._waiters:
                waiter = self._waiters.popleft()
                self._take()
                if isinstance(waiter, threading.Event):
                    waiter.set()
                    return
                loop, fut = waiter
                try:
                    loop.call_soon_threadsafe(self._grant, fut)
                    return
                except RuntimeError:  # that loop is closed: try the next waiter
                    self.active -= 1
            self._free += 1

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # cancelled while the grant was in flight
            self.release()
        else:
            fut.set_result(None)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def ahold(self) -> AsyncIterator[None]:
        await self.aacquire()
        try:
            yield
        finally:
            self.release()


_LIMITERS: dict[tuple[str, int], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def endpoint_limiter(endpoint: str, limit: int) -> Limiter:
    """The shared limiter for ``endpoint`` (e.g. ``"openai:http://host/v1"``) and ``limit``."""
    with _LIMITERS_LOCK:
        lim = _LIMITERS.get((endpoint, limit))
        if lim is None:
            lim = _LIMITERS[(endpoint, limit)] = Limiter(limit)
        return lim


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(retry: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry number ``retry`` (1-based): exponential, capped, with jitter in
    [50%, 100%] of the step so simultaneous clients spread out but still back off."""
    step = min(maximum, initial * (2 ** (retry - 1)))
    return step * (0.5 + 0.5 * rng.random())
