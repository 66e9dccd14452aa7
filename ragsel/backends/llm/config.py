"""``LLMSpec``: which LLM a stage uses, as a serialisable config value.

Stages embed it as a nested field (``llm: LLMSpec``) and call :func:`ragsel.backends.llm.load_llm`
on first use, so validating a pipeline never needs the model, the endpoint or the env.

YAML::

    llm:
      backend: openai              # openai | transformers | llama_cpp | component
      model: ${RAGSEL_LLM_MODEL}   # optional: defaults to the env variable
      base_url: http://localhost:8000/v1   # optional: defaults to $RAGSEL_LLM_BASE_URL
      temperature: 0.0
      max_tokens: 512

A string is a shorthand: ``llm: openai`` / ``llm: "openai:qwen2.5-7b"`` /
``llm: "transformers:smollm2"`` / ``llm: "component:my_chat_model"``. The API key is never part
of a spec: ``api_key_env`` names the environment variable that holds it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragsel.redact import redact_url

#: Environment variables read when the spec leaves the value unset (the shipped pipelines'
#: defaults; any other can be used through ``${VAR}`` in YAML).
ENV_BASE_URL = "RAGSEL_LLM_BASE_URL"
ENV_MODEL = "RAGSEL_LLM_MODEL"
ENV_API_KEY = "RAGSEL_LLM_API_KEY"
#: Disk cache folder (default ``.ragsel/llm-cache``) and a global off switch (``0``/``off``).
ENV_CACHE_DIR = "RAGSEL_LLM_CACHE_DIR"
ENV_CACHE = "RAGSEL_LLM_CACHE"

Backend = Literal["openai", "transformers", "llama_cpp", "component"]


class LLMSpec(BaseModel):
    """How to reach an LLM and the default generation settings for its calls.

    ``LLMSpec(backend="openai", base_url="http://localhost:8000/v1", model="qwen2.5")``,
    ``LLMSpec(backend="transformers", model="smollm2")``,
    ``LLMSpec(backend="component", component="my_llm")`` (an object passed to
    ``load_pipeline(components={"my_llm": ...})``: a ragsel LLM, or a LangChain chat model /
    LlamaIndex LLM through the connectors).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = Field("openai", description="which client talks to the model")
    model: str | None = Field(
        None,
        description="model name (openai: default $RAGSEL_LLM_MODEL), or a local "
        "directory / .gguf file / 'smollm2' (transformers, llama_cpp)",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint ending in /v1; default $RAGSEL_LLM_BASE_URL"
    )
    api_key_env: str = Field(
        ENV_API_KEY, description="env variable holding the API key (may be unset for local servers)"
    )
    api_key_header: str = Field(
        "Authorization",
        description="header carrying the key: "
        "Authorization (sent as 'Bearer <key>') or e.g. api-key "
        "(Azure; sent as is)",
    )
    component: str | None = Field(None, description="backend=component: name of the bound object")
    # generation defaults (each call may override temperature / max_tokens)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = Field(None, description="sampling seed sent to the server / used locally")
    top_logprobs: int = Field(
        5, ge=0, le=20, description="alternatives per token when logprobs are requested"
    )
    json_mode: Literal["auto", "json_schema", "json_object", "off"] = Field(
        "auto",
        description="how JSON output is requested from the server; auto falls back "
        "json_schema -> json_object -> prompt-only when the server rejects it",
    )
    context_window: int | None = Field(
        None, ge=16, description="model context size in tokens (stages truncate evidence to fit)"
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="extra request fields, e.g. {top_p: 0.9}"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers (not for secrets: use api_key_env)"
    )
    # reliability
    timeout: float = Field(
        60.0,
        gt=0,
        description="seconds one attempt may take in total, to the last byte of the answer "
        "(not per read: a server trickling bytes is cut off)",
    )
    deadline: float | None = Field(
        None,
        gt=0,
        description="seconds one request may take in total, retries and backoff included "
        "(None: only the attempts' own limits; a stage's stage_timeout may cut it shorter)",
    )
    connect_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(
        3, ge=0, description="retries on 429, 5xx, timeouts and connection errors"
    )
    backoff_initial: float = Field(
        0.5, ge=0, description="first retry delay in seconds; doubles each retry, with jitter"
    )
    backoff_max: float = Field(20.0, ge=0)
    retry_after_max: float = Field(60.0, ge=0, description="cap on a server's Retry-After")
    concurrency: int = Field(4, ge=1, description="requests in flight per endpoint")
    # disk cache
    cache: bool | None = Field(
        None, description="cache completions on disk; default on, except for backend=component"
    )
    cache_dir: str | None = Field(
        None, description="default $RAGSEL_LLM_CACHE_DIR or .ragsel/llm-cache"
    )
    cache_namespace: str = Field(
        "", description="separates caches of different deployments serving the same model name"
    )
    # local models
    threads: int | None = Field(None, ge=1, description="CPU threads (transformers, llama_cpp)")
    device: str = Field("cpu", description="transformers device")
    gguf_file: str | None = Field(None, description="GGUF file name inside the model folder")
    n_ctx: int = Field(4096, ge=64, description="llama_cpp context size")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        backend, _, rest = data.partition(":")
        if backend not in ("openai", "transformers", "llama_cpp", "component"):
            raise ValueError(
                f"unknown LLM backend '{backend}' in '{data}': use openai, "
                "transformers, llama_cpp or component (e.g. 'openai:my-model')"
            )
        if backend == "component":
            return {"backend": backend, "component": rest or None}
        return {"backend": backend, "model": rest or None}

    @model_validator(mode="after")
    def _check(self) -> LLMSpec:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got '{redact_url(self.base_url)}'"
            )
        secret = {
            "authorization",
            "api-key",
            "x-api-key",
            "proxy-authorization",
            self.api_key_header.lower(),
        }
        bad = sorted(h for h in self.headers if h.lower() in secret)
        if bad:
            raise ValueError(
                f"headers {bad} would put a secret into the config: keep the key "
                "in an environment variable named by api_key_env (and set "
                "api_key_header if the server expects another header)"
            )
        return self

    def cache_enabled(self) -> bool:
        return self.backend != "component" if self.cache is None else self.cache
