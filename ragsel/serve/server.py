"""Running the app under uvicorn: in the foreground (the CLI) or in a background thread
(tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ragsel.errors import InputError, require


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port); it starts listening only once the
    app has started (models loaded), so early clients are refused rather than kept waiting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app: Any, *, access_log: bool = False, log_level: str = "info") -> Any:
    uvicorn = require("uvicorn", "serve", "ragsel serve")
    config = uvicorn.Config(
        app,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


@contextmanager
def background_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 120.0
) -> Iterator[str]:
    """Serve ``app`` from a thread; yields its base URL once it accepts requests (after the
    app's start-up, i.e. with models loaded) and stops it on exit."""
    sock = bind(host, port)
    server = make_server(app, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the server did not start (see the log above)")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
