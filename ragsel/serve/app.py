"""The FastAPI app of ``ragsel serve`` (see :mod:`ragsel.serve` for the endpoints).

No ``from __future__ import annotations`` here: FastAPI reads the route signatures, whose
request models are made per app (with its limits) and so are not module globals.
"""

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ragsel.errors import require
from ragsel.serve.errors import ApiError, api_error_for, log, validation_error
from ragsel.serve.fastpath import FastSelect, check_key, parse_body
from ragsel.serve.settings import Served, ServeSettings, as_served
from ragsel.types import Query

require("fastapi", "serve", "ragsel serve")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from ragsel.cli.select_cmd import selection_payload  # noqa: E402  (the `ragsel select --json` record)

JSON = "application/json"
_SELECT_DOC = (
    "The selected evidence for one query, the same record as `ragsel select --json`: "
    "`query`, `chunks` (rank, id, doc_id, position, span, score, text, metadata and the "
    "events of the stages that kept or added each chunk), `dropped` (every chunk a stage "
    "removed, with the stage and reason), `notes`, `rationales`, `answer`, `trace` (per stage: "
    "ms, items in/out, ids dropped) and `total_ms`; plus `pipeline`, the name that served it."
)


def _dumps_std(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, default=str).encode()


def _json_encoder() -> Callable[[Any], bytes]:
    """orjson when installed (the ``serve`` extra has it): ~8x faster on a selection record
    with a few hundred drops; NaN becomes null, which stdlib json would write as invalid
    JSON."""
    try:
        import orjson
    except ImportError:
        return _dumps_std
    opts = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(data: Any) -> bytes:
        return orjson.dumps(data, default=str, option=opts)

    return dumps


dumps = _json_encoder()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type=JSON, headers=headers)


def request_models(s: ServeSettings) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request bodies, with this service's limits in their schema."""

    class SelectRequest(BaseModel):
        """One query to select evidence for."""

        model_config = ConfigDict(extra="forbid")
        query: str = Field(min_length=1, max_length=s.max_query_chars, description="The question.")
        id: str | None = Field(None, max_length=256, description="Your id for the query.")
        metadata: dict[str, Any] | None = Field(
            None, description="Passed to stages as Query.metadata."
        )

    class BatchRequest(BaseModel):
        """Several queries, run concurrently; results come back in the same order."""

        model_config = ConfigDict(extra="forbid")
        queries: list[SelectRequest] = Field(min_length=1, max_length=s.max_batch)

    return SelectRequest, BatchRequest


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 before it is parsed."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:  # the server enforces that the body matches it
            if not length.isdigit() or int(length) > self.limit:
                return await self._too_large(send, length.decode("latin-1"))
            return await self.app(scope, receive, send)
        chunks, size = [], 0  # chunked upload: read it here, up to the limit
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(send, f"more than {self.limit}")
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send)

    async def _too_large(self, send: Callable, size: str) -> None:
        err = ApiError(
            413,
            "body_too_large",
            f"the request body ({size} bytes) is over this server's limit of {self.limit} "
            "bytes; send fewer or shorter queries",
        )
        headers = [(b"content-type", JSON.encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": err.body()})


def _auth_dependency(key: str) -> Callable[..., None]:
    """The key check as a FastAPI dependency (so OpenAPI shows both header schemes)."""
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or X-API-Key: <key>")
    expected = key.encode()

    def check(
        cred: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header),
    ) -> None:
        check_key(
            expected, api_key if api_key is not None else (cred.credentials if cred else None)
        )

    return check


@asynccontextmanager
async def _wait_for_timeout(seconds: float) -> AsyncIterator[None]:  # pragma: no cover - 3.10
    """``asyncio.timeout`` for Python 3.10: cancel the current task after ``seconds``."""
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        yield
    except asyncio.CancelledError:
        if fired:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()


#: a deadline without an extra task per request (asyncio.wait_for makes one)
_timeout = getattr(asyncio, "timeout", _wait_for_timeout)


class _Service:
    """The served pipelines and the run loop shared by the routes."""

    def __init__(self, served: list[Served], settings: ServeSettings) -> None:
        self.settings = settings
        self.served = {s.name: s for s in served}
        self.routes = dict(self.served)
        for s in served:
            for alias in s.aliases:
                self.routes.setdefault(alias, s)
        self.slots: asyncio.Semaphore | None = None  # made inside the server's loop
        self.select_model: type[BaseModel] | None = None

    def get(self, name: str) -> Served:
        s = self.routes.get(name)
        if s is None:
            raise ApiError(
                404,
                "unknown_pipeline",
                f"no pipeline named '{name}'; this server serves: {', '.join(self.served)}",
            )
        return s

    def describe(self, s: Served, schema: dict[str, Any]) -> dict[str, Any]:
        p = s.pipeline
        return {
            "name": s.name,
            "aliases": list(s.aliases),
            "description": p.description,
            "stages": [{"name": n, "type": st.type_name} for n, st in p.stages.items()],
            "output": p.output_stage(),
            "endpoint": f"/v1/pipelines/{s.name}/select",
            "input_schema": schema,
        }

    async def select_raw(self, name: str, raw: bytes) -> bytes:
        """One select request, from its body bytes to the response bytes."""
        assert self.select_model is not None
        body = parse_body(self.select_model, raw)
        served = self.get(name)
        return dumps((await self.run(served, [_query(body)]))[0])

    async def _one(self, s: Served, q: Query) -> dict[str, Any]:
        assert self.slots is not None
        async with self.slots:
            result = await s.pipeline.arun(q)
        data = selection_payload(result)
        data["pipeline"] = s.name
        return data

    async def run(self, s: Served, queries: list[Query]) -> list[dict[str, Any]]:
        t = self.settings.timeout_s
        try:
            async with _timeout(t):
                if len(queries) == 1:
                    return [await self._one(s, queries[0])]
                return list(await asyncio.gather(*(self._one(s, q) for q in queries)))
        except (asyncio.TimeoutError, TimeoutError):
            raise ApiError(
                504,
                "timeout",
                f"pipeline '{s.name}' did not finish within {t:g} s; try again later or ask "
                "the operator to raise --timeout",
            ) from None
        except ApiError:
            raise
        except Exception as exc:
            raise api_error_for(exc, s.name) from None


def _query(req: Any) -> Query:
    try:
        return Query(req.query, id=req.id, metadata=req.metadata or {})
    except Exception as exc:  # blank text and the like: the client's to fix
        raise ApiError(422, "invalid_input", f"body.query: {exc}") from None


def _install_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: ApiError) -> Response:
        return Response(exc.body(), status_code=exc.status, media_type=JSON, headers=exc.headers)

    async def on_validation(_: Request, exc: RequestValidationError) -> Response:
        return await on_api_error(_, validation_error(list(exc.errors())))

    async def on_http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return await on_api_error(_, ApiError(exc.status_code, code, str(exc.detail)))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        err = ApiError(500, "internal_error", "internal error; see the server log")
        log.error("request %s %s failed", err.request_id, request.url.path, exc_info=exc)
        return await on_api_error(request, err)

    app.add_exception_handler(ApiError, on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)


def create_app(pipelines: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving ``pipelines``: a list of :class:`Served` (from :func:`load_served`) or
    of pipelines (named by ``pipeline.name``), or a ``{name: pipeline}`` mapping. Models load
    in the app's start-up (``warm_up``), before the server accepts a request."""
    import ragsel

    s = settings or ServeSettings()
    svc = _Service(as_served(pipelines), s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.slots = asyncio.Semaphore(s.max_concurrency)
        for served in svc.served.values():
            await asyncio.to_thread(served.pipeline.warm_up)
        gc.collect()
        gc.freeze()  # the loaded models are permanent: keep the cyclic GC off them
        log.info("serving %s", ", ".join(svc.served))
        yield

    app = FastAPI(
        title="ragsel",
        version=ragsel.__version__,
        summary="Evidence selection for RAG, as a service.",
        lifespan=lifespan,
        docs_url="/docs" if s.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if s.docs else None,
    )
    select_model, batch_model = request_models(s)
    svc.select_model = select_model
    app.add_middleware(FastSelect, select=svc.select_raw, api_key=s.api_key)
    app.add_middleware(BodyLimit, limit=s.max_body_bytes)  # added last: runs first
    _install_handlers(app)
    deps = [Depends(_auth_dependency(s.api_key))] if s.api_key else []
    _info_routes(app, svc, deps, select_model.model_json_schema())
    _select_routes(app, svc, deps, select_model, batch_model)
    return app


def _info_routes(app: FastAPI, svc: _Service, deps: list[Any], schema: dict[str, Any]) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz() -> Response:
        """Liveness: 200 once the models are loaded (no API key needed)."""
        return json_response({"status": "ok", "pipelines": list(svc.served)})

    @app.get("/v1/pipelines", tags=["pipelines"], dependencies=deps)
    async def list_pipelines() -> Response:
        """The served pipelines: names, descriptions, stages and the request schema."""
        return json_response({"pipelines": [svc.describe(x, schema) for x in svc.served.values()]})

    @app.get("/v1/pipelines/{name}", tags=["pipelines"], dependencies=deps, responses=_ERRORS)
    async def get_pipeline(name: str) -> Response:
        """One served pipeline (also by its alias)."""
        return json_response(svc.describe(svc.get(name), schema))


def _select_routes(
    app: FastAPI,
    svc: _Service,
    deps: list[Any],
    SelectRequest: type[BaseModel],  # noqa: N803 - a class
    BatchRequest: type[BaseModel],  # noqa: N803
) -> None:
    @app.post(
        "/v1/pipelines/{name}/select",
        tags=["select"],
        dependencies=deps,
        response_description=_SELECT_DOC,
        responses=_ERRORS,
        openapi_extra={
            "parameters": [_NAME_PARAM],
            "requestBody": {  # the model is registered by the batch route below
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/SelectRequest"}}},
            },
        },
    )
    async def select(request: Request) -> Response:
        """Select the evidence for one query."""
        # served by FastSelect in front of the app; this declaration documents it (OpenAPI)
        # and answers only if the fast path is bypassed
        body = await svc.select_raw(request.path_params["name"], await request.body())
        return Response(body, media_type=JSON)

    @app.post(
        "/v1/pipelines/{name}/select/batch",
        tags=["select"],
        dependencies=deps,
        response_description='`{"pipeline", "results": [one select record per query]}`',
        responses=_ERRORS,
    )
    async def select_batch(name: str, body: BatchRequest) -> Response:  # type: ignore[valid-type]
        """Select the evidence for several queries (run concurrently, results in order); the
        whole batch shares the request timeout."""
        served = svc.get(name)
        results = await svc.run(served, [_query(q) for q in body.queries])  # type: ignore[attr-defined]
        return json_response({"pipeline": served.name, "results": results})


_NAME_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "title": "Name"},
    "description": "A served pipeline's name or alias (GET /v1/pipelines lists them).",
}
_ERROR_DOCS = {
    400: "The body is not valid JSON.",
    401: "A valid API key is required (when the server has one).",
    404: "No pipeline of that name.",
    413: "The body is over the server's size limit.",
    422: "The body does not fit the schema (names the field), or the query is blank.",
    500: "A stage failed or the pipeline is misconfigured (no traceback; see the server log).",
    502: "A backend (e.g. an LLM endpoint) failed.",
    503: "A backend or the index is unavailable for now; retry.",
    504: "The request took longer than the server's timeout.",
}
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"description": d} for c, d in _ERROR_DOCS.items()}
