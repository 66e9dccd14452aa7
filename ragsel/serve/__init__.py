"""``ragsel serve``: one selection service for many apps (FastAPI + uvicorn, ``serve`` extra).

::

    POST /v1/pipelines/{name}/select        {"query": "..."}  -> the selection as JSON
    POST /v1/pipelines/{name}/select/batch  {"queries": [{"query": "..."}, ...]}
    GET  /v1/pipelines[/{name}]             names, descriptions, stages, request schema
    GET  /healthz                           liveness (no key needed)
    GET  /docs, /openapi.json               OpenAPI

Models load once when the app starts; requests run with ``Pipeline.arun`` under a per-request
timeout and a cap on runs in flight. Errors are JSON ``{"error": {...}}`` with a 4xx status
for the client's mistakes and never carry a traceback.

Library use (``fastapi`` is imported only by :func:`create_app`)::

    from ragsel.serve import ServeSettings, create_app, load_served
    app = create_app(load_served(["pipelines/local.yaml"]), ServeSettings(timeout_s=10))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragsel.serve.settings import API_KEY_ENV, Served, ServeSettings, load_served

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["API_KEY_ENV", "ServeSettings", "Served", "create_app", "load_served"]


def create_app(pipelines: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The ASGI app serving ``pipelines`` (see :func:`ragsel.serve.app.create_app`)."""
    from ragsel.serve.app import create_app as _create

    return _create(pipelines, settings)
