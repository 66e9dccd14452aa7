"""HTTP errors of ``ragsel serve``: one JSON envelope, ragsel's error tree mapped to statuses.

Every error body is ``{"error": {"status", "code", "message", "request_id", ["details"]}}``.
Client mistakes are 4xx and say what to fix; server-side failures never carry a traceback
(it goes to the server log under the same ``request_id``).

=============================================  ======  =======================
ragsel error                                   status  code
=============================================  ======  =======================
InputError (empty query, ...)                  422     invalid_input
RagselIndexError (index missing/locked at run time) 503     index_unavailable
other DefinitionError (config, missing extra)  500     pipeline_misconfigured
BackendTimeout                                 504     backend_timeout
BackendError (retryable / not)                 503/502 backend_unavailable/error
StageError: by its cause as above, else        500     stage_failed
anything else                                  500     internal_error
=============================================  ======  =======================
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from ragsel.errors import (
    BackendError,
    BackendTimeout,
    DefinitionError,
    InputError,
    RagselError,
    RagselIndexError,
    StageError,
)

log = logging.getLogger("ragsel.serve")


class ApiError(Exception):
    """An error answered as JSON with ``status``; ``message`` is safe to show the client."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers
        self.request_id = uuid.uuid4().hex[:16]

    def body(self) -> bytes:
        err: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
        }
        if self.details:
            err["details"] = self.details
        return json.dumps({"error": err}, ensure_ascii=False, default=str).encode()


def _classify(exc: BaseException) -> tuple[int, str, bool]:
    """(status, code, whether the message is written for users) for a ragsel error."""
    if isinstance(exc, RagselIndexError):
        return 503, "index_unavailable", True
    if isinstance(exc, InputError):
        return 422, "invalid_input", True
    if isinstance(exc, DefinitionError):
        return 500, "pipeline_misconfigured", True
    if isinstance(exc, BackendTimeout):
        return 504, "backend_timeout", True
    if isinstance(exc, BackendError):
        return (503, "backend_unavailable", True) if exc.retryable else (502, "backend_error", True)
    if isinstance(exc, RagselError):
        return 500, "pipeline_error", True
    return 500, "internal_error", False


def api_error_for(exc: BaseException, pipeline: str) -> ApiError:
    """Map an exception raised while running ``pipeline`` to an :class:`ApiError`, logging
    server-side failures (with traceback) under the error's request id."""
    if isinstance(exc, StageError):
        cause = exc.__cause__
        status, code, readable = _classify(cause) if cause is not None else (500, "", True)
        if status == 500 and code in ("", "internal_error", "pipeline_error"):
            code = "stage_failed"
        # a foreign cause's message may carry paths or data: the client gets its type only
        message = (
            str(exc)
            if readable
            else f"stage '{exc.stage}' ({exc.stage_type}) failed with {type(cause).__name__}"
        )
    else:
        status, code, readable = _classify(exc)
        message = str(exc) if readable else "internal error"
    if status >= 500 and not readable:
        message += "; see the server log"
    err = ApiError(status, code, f"pipeline '{pipeline}': {message}")
    if status == 503:
        err.headers = {"Retry-After": "1"}
    if status >= 500:
        log.error(
            "request %s: pipeline '%s' failed (%s %s)",
            err.request_id,
            pipeline,
            status,
            code,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    return err


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """A request body that is not JSON (400) or does not fit the schema (422). The user's
    input is not echoed back (it may be large)."""
    details = []
    for e in errors:
        msg = str(e.get("msg", ""))
        ctx_error = (e.get("ctx") or {}).get("error")
        if e.get("type") == "json_invalid" and ctx_error:
            msg = f"{msg}: {ctx_error}"
        elif e.get("type") in ("model_type", "model_attributes_type") and tuple(
            e.get("loc", ())
        ) == ("body",):
            msg = 'the body must be a JSON object such as {"query": "..."} (Content-Type: application/json)'
        loc = ".".join(str(p) for p in e.get("loc", ()))
        details.append({"loc": loc, "msg": msg, "type": e.get("type", "")})
    bad_json = [d for d in details if d["type"] == "json_invalid"]
    if bad_json:
        return ApiError(
            400, "invalid_json", f"the request body is not valid JSON: {bad_json[0]['msg']}"
        )
    first = details[0] if details else {"loc": "body", "msg": "invalid request"}
    more = f" (and {len(details) - 1} more problem(s))" if len(details) > 1 else ""
    return ApiError(
        422, "invalid_request", f"{first['loc']}: {first['msg']}{more}", details=details
    )
