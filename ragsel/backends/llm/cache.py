"""Disk cache of completions, so re-running an evaluation costs nothing.

One SQLite file in a folder (default ``.ragsel/llm-cache``; ``$RAGSEL_LLM_CACHE_DIR``
overrides it, ``RAGSEL_LLM_CACHE=0`` turns caching off everywhere). The key is a SHA-256 of
(backend, model, the backend's output-changing settings, temperature, max_tokens, logprobs,
JSON schema, messages) — never the endpoint's address or API key, so the same model behind
another URL shares the cache (use ``cache_namespace`` to separate deployments). Errors are not
cached. Hits come back with ``Completion.cached = True`` and ``attempts = 0``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragsel.backends.llm.base import Completion, Messages, as_messages
from ragsel.backends.llm.config import ENV_CACHE, ENV_CACHE_DIR

DEFAULT_CACHE_DIR = ".ragsel/llm-cache"
_FORMAT = "ragsel-llm-cache/1"


def cache_disabled_by_env() -> bool:
    return os.environ.get(ENV_CACHE, "").strip().lower() in ("0", "off", "false", "no")


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR)


class LLMCache:
    """A completion store in ``<directory>/completions.sqlite``; safe across threads and
    processes (WAL journal). ``hits`` / ``misses`` count lookups made through this object.

    ``LLMCache(".ragsel/llm-cache").get(key)``; usually used through :class:`CachedLLM`.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / "completions.sqlite"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.hits = self.misses = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, "
                "value TEXT NOT NULL, created REAL NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    @staticmethod
    def make_key(identity: Mapping[str, Any], messages: Messages, params: Mapping[str, Any]) -> str:
        blob = json.dumps(
            {
                "format": _FORMAT,
                "identity": identity,
                "messages": as_messages(messages),
                "params": params,
            },
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = (
                self._db().execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
            )
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        v = json.loads(row[0])
        return Completion(
            text=v["text"],
            model=v.get("model", ""),
            prompt_tokens=v.get("prompt_tokens"),
            completion_tokens=v.get("completion_tokens"),
            logprobs=v.get("logprobs"),
            data=v.get("data"),
            finish_reason=v.get("finish_reason"),
            cached=True,
            attempts=0,
            raw={"cached_latency_ms": v.get("latency_ms")},
        )

    def put(self, key: str, c: Completion) -> None:
        value = json.dumps(
            {
                "text": c.text,
                "model": c.model,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "logprobs": c.logprobs,
                "data": c.data,
                "finish_reason": c.finish_reason,
                "latency_ms": c.latency_ms,
            },
            ensure_ascii=False,
            default=str,
        )
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?)", (key, value, time.time())
            )
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            db = self._db()
            db.execute("DELETE FROM completions")
            db.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class CachedLLM:
    """Wraps any LLM with the disk cache; other attributes (``score_perplexity``,
    ``context_window``, ``stats``...) pass through to the wrapped backend.

    ``CachedLLM(OpenAICompatLLM(...), LLMCache(tmp_dir))``
    """

    def __init__(self, inner: Any, cache: LLMCache, namespace: str = "") -> None:
        self.inner, self.cache, self.namespace = inner, cache, namespace
        self.name: str = inner.name

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":  # not yet set (e.g. during unpickling)
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def __repr__(self) -> str:
        return f"CachedLLM({self.inner!r}, cache={str(self.cache.directory)!r})"

    def _key(
        self,
        messages: Messages,
        temperature: float | None,
        max_tokens: int | None,
        json_schema: Mapping[str, Any] | None,
        logprobs: bool,
    ) -> str:
        identity_fn = getattr(self.inner, "cache_identity", None)
        identity = dict(identity_fn()) if callable(identity_fn) else {"name": self.name}
        identity["namespace"] = self.namespace
        # resolve per-call defaults so an explicit value and the default share an entry
        if temperature is None:
            temperature = getattr(self.inner, "temperature", None)
        if max_tokens is None:
            max_tokens = getattr(self.inner, "max_tokens", None)
        params = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "json_schema": json_schema,
            "logprobs": bool(logprobs),
        }
        return self.cache.make_key(identity, messages, params)

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion:
        t0 = time.perf_counter()
        key = self._key(messages, temperature, max_tokens, json_schema, logprobs)
        hit = self.cache.get(key)
        if hit is not None:
            return replace(hit, latency_ms=(time.perf_counter() - t0) * 1000)
        out = self.inner.complete(
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            json_schema=json_schema,
            logprobs=logprobs,
        )
        self.cache.put(key, out)
        return out

    async def acomplete(
        self,
        messages: Messages,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        logprobs: bool = False,
    ) -> Completion:
        t0 = time.perf_counter()
        key = self._key(messages, temperature, max_tokens, json_schema, logprobs)
        hit = self.cache.get(key)
        if hit is not None:  # a local SQLite read: fast enough to do inline
            return replace(hit, latency_ms=(time.perf_counter() - t0) * 1000)
        out = await self.inner.acomplete(
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            json_schema=json_schema,
            logprobs=logprobs,
        )
        self.cache.put(key, out)
        return out
