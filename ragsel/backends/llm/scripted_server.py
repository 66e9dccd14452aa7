"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

Test a pipeline's LLM stages offline, over real HTTP, including the faults real endpoints
produce. Each request consumes the next scripted action; when the script is empty,
``responder(body)`` decides (default: ``Ok("ok")``)::

    with ScriptedLLMServer() as srv:
        srv.script(Status(500), Status(429, headers={"Retry-After": "0.2"}), Ok("hi"))
        llm = OpenAICompatLLM(base_url=srv.base_url, model="m", ...)

Actions: :class:`Ok` (content, usage, logprobs), :class:`Slow` (sleep before answering),
:class:`Status` (any HTTP status with a body and headers), :class:`Truncated` (announces a
longer body than it sends, then closes), :class:`Trickle` (sends the body a byte at a time), :class:`BadBody` (200 with a body that is not JSON),
:class:`Drop` (closes the connection without answering). ``requests`` records each request's
arrival time, headers and JSON body; ``peak`` is the most requests handled at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Ok:
    content: str = "ok"
    usage: tuple[int, int] = (7, 3)
    logprobs: list[tuple[str, float, dict[str, float]]] | None = None
    delay: float = 0.0  # seconds before answering (for concurrency tests)


@dataclass
class Slow:
    seconds: float
    content: str = "late"


@dataclass
class Trickle:
    """Answer 200 with the full Content-Length, then send the body one byte every
    ``interval`` seconds (a read timeout never fires; only a total deadline stops it)."""

    interval: float = 1.0
    content: str = "slowly"


@dataclass
class Status:
    code: int
    body: str = '{"error": {"message": "scripted failure", "type": "server_error"}}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Truncated:
    pass


@dataclass
class BadBody:
    body: str = '{"choices": [{"message": {"content": "cut'


@dataclass
class Drop:
    pass


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]
    path: str = ""


def completion_payload(
    model: str,
    content: str,
    usage: tuple[int, int],
    logprobs: list[tuple[str, float, dict[str, float]]] | None,
) -> dict:
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": content},
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": t,
                    "logprob": lp,
                    "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()],
                }
                for t, lp, top in logprobs
            ]
        }
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


__all__ = [
    "BadBody",
    "Drop",
    "Ok",
    "Request",
    "ScriptedLLMServer",
    "Slow",
    "Status",
    "Trickle",
    "Truncated",
    "completion_payload",
]


class ScriptedLLMServer:
    """The server; a context manager. ``base_url`` ends in ``/v1`` like real endpoints."""

    def __init__(self) -> None:
        self._actions: deque[Any] = deque()
        self.responder: Callable[[dict[str, Any]], Any] | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self._server: ThreadingHTTPServer | None = None

    # --- scripting ----------------------------------------------------------------------
    def script(self, *actions: Any) -> None:
        with self._lock:
            self._actions.extend(actions)

    def reset(self) -> None:
        with self._lock:
            self._actions.clear()
            self.requests.clear()
            self.responder = None
            self.peak = 0

    def _next(self, body: dict[str, Any]) -> Any:
        with self._lock:
            if self._actions:
                return self._actions.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Ok("ok")

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> ScriptedLLMServer:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle + delayed ACK add
            # ~40 ms to some responses
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                with srv._lock:
                    srv.requests.append(
                        Request(time.monotonic(), dict(self.headers), body, self.path)
                    )
                    srv.in_flight += 1
                    srv.peak = max(srv.peak, srv.in_flight)
                try:
                    self._answer(srv._next(body), body)
                finally:
                    with srv._lock:
                        srv.in_flight -= 1

            def _send(
                self,
                code: int,
                text: str,
                headers: dict[str, str] | None = None,
                length: int | None = None,
            ) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) if length is None else length))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def _answer(self, action: Any, body: dict[str, Any]) -> None:
                model = body.get("model", "")
                if isinstance(action, Ok):
                    time.sleep(action.delay)
                    self._send(
                        200,
                        json.dumps(
                            completion_payload(model, action.content, action.usage, action.logprobs)
                        ),
                    )
                elif isinstance(action, Slow):
                    time.sleep(action.seconds)
                    try:
                        self._send(
                            200, json.dumps(completion_payload(model, action.content, (1, 1), None))
                        )
                    except OSError:
                        pass  # the client gave up already
                elif isinstance(action, Trickle):
                    self._trickle(action, model)
                elif isinstance(action, Status):
                    self._send(action.code, action.body, action.headers)
                elif isinstance(action, BadBody):
                    self._send(200, action.body)
                elif isinstance(action, Truncated):
                    full = json.dumps(completion_payload(model, "x" * 200, (1, 1), None))
                    self._send(200, full[:40], length=len(full))
                    self._drop()
                elif isinstance(action, Drop):
                    self._drop()
                else:  # pragma: no cover - a test bug
                    raise TypeError(f"unknown action {action!r}")

            def _trickle(self, action: Trickle, model: str) -> None:
                data = json.dumps(completion_payload(model, action.content, (1, 1), None)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(action.interval)
                except OSError:
                    pass  # the client gave up
                self.close_connection = True

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
