"""The hot path of ``ragsel serve``: ``POST /v1/pipelines/{name}/select`` answered by a plain
ASGI layer in front of FastAPI, with the same body validation, API-key check and JSON errors
as the FastAPI routes. FastAPI's routing and dependency solving cost ~0.8 ms per request on
the busy 2-core machine this was measured on (``eval/benchmarks/perf/serve_load.py``); the
route stays declared in FastAPI for OpenAPI."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from ragsel.serve.errors import ApiError, log, validation_error

_SELECT = re.compile(r"^/v1/pipelines/([^/]+)/select$")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def check_key(expected: bytes, given: str | None) -> None:
    """Raise 401 unless ``given`` is the key (constant-time; the key is never echoed)."""
    if given is None or not hmac.compare_digest(given.encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: send 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>'" + (" (the key sent is wrong)" if given is not None else ""),
            headers={"WWW-Authenticate": "Bearer"},
        )


def given_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request sent: ``X-API-Key`` first, else an ``Authorization: Bearer`` token."""
    bearer = None
    for k, v in headers:
        if k == b"x-api-key":
            return v.decode("latin-1")
        if k == b"authorization":
            scheme, _, token = v.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


def parse_body(model: type[BaseModel], raw: bytes) -> Any:
    """``model`` from a JSON body; problems are the same 400/422 as FastAPI's."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise validation_error(errors) from None


class FastSelect:
    """ASGI middleware: serves single selects via ``select(name, body_bytes) -> bytes``; every
    other request goes on to the app."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        select: Callable[[str, bytes], Awaitable[bytes]],
        api_key: str | None,
    ) -> None:
        self.app, self.select = app, select
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        match = _SELECT.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers: list[tuple[bytes, bytes]] | None = None
        try:
            if self.key is not None:
                check_key(self.key, given_key(scope["headers"]))
            body = await self.select(match.group(1), await _read(receive))
            status = 200
        except ApiError as err:
            status, body = err.status, err.body()
            headers = [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
        except Exception as exc:  # a bug: logged with its traceback, answered without it
            bug = ApiError(500, "internal_error", "internal error; see the server log")
            log.error("request %s %s failed", bug.request_id, scope["path"], exc_info=exc)
            status, body = 500, bug.body()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _JSON_HEADERS
                + [(b"content-length", str(len(body)).encode())]
                + (headers or []),
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _read(receive: Callable) -> bytes:
    """The whole request body (its size is already bounded by ``BodyLimit`` in front)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client_disconnected", "the client went away mid-request")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
