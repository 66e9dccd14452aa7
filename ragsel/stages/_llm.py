"""What every LLM-calling stage shares: where its LLM comes from, its prompt templates, and
keeping prompts inside the model's context.

An LLM stage gets its model in one of three ways (first match wins):

1. ``stage.use_llm(llm)`` in Python (any object with ``name``/``complete``/``acomplete``,
   e.g. :class:`ragsel.testing.FakeLLM` or a backend from :func:`ragsel.backends.llm.load_llm`),
2. ``llm: {backend: component, component: name}`` (or ``llm: "component:name"``), bound at
   load time from ``load_pipeline(..., components={name: llm})`` (LangChain/LlamaIndex models
   go through the connectors),
3. ``llm: {...}`` in the config: an :class:`~ragsel.backends.llm.LLMSpec` loaded lazily on
   first use (so validating a YAML file never connects anywhere).

Time: ``stage_timeout`` bounds one run of the stage: every LLM request it makes must end by
then (the OpenAI-compatible client stops attempts and retries at that point, see
:data:`ragsel.backends.llm.base.REQUEST_DEADLINE`), and no new request starts after it; the
request that runs out raises :class:`~ragsel.errors.BackendTimeout` naming the stage. Each
finished call, retry and timeout is a :mod:`ragsel.progress` event (the CLI prints them).

Prompt templates are text files in ``ragsel/prompts/`` (package data). ``{{name}}`` marks a
slot; an optional ``[system]`` section comes before a ``[user]`` section. Users override any
template of a stage with ``prompts: {<template name>: path/to/file.txt}``; a template that
lacks a slot the stage fills, or has one it does not know, is a ConfigError naming both.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ragsel.backends.llm.base import (
    Completion,
    ContextLengthError,
    context_window,
    count_tokens,
)
from ragsel.backends.llm.config import LLMSpec
from ragsel.errors import BackendError, ConfigError, RagselError
from ragsel.stage import Stage, StageConfig
from ragsel.stages._llm_clock import after_call, before_call, report_timeout, timed
from ragsel.stages._llm_clock import in_context as in_context  # re-exported for LLM stages

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.M)
TRUNCATION_MARK = " …[truncated]"


class LLMStageConfig(StageConfig):
    """Config fields shared by LLM stages (stages change the defaults they need)."""

    llm: LLMSpec | None = Field(
        None, description="the model to call (endpoint or local backend); loaded on first use"
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, description="maximum tokens the model may write")
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="override built-in prompt templates: {template name: path to a .txt file}",
    )
    stage_timeout: float | None = Field(
        None,
        gt=0,
        description="seconds one run of this stage may spend on LLM calls in total "
        "(requests, retries, waits); the request that runs out fails with a timeout. "
        "None = only the LLM's own timeout/deadline",
    )
    max_prompt_tokens: int | None = Field(
        None,
        ge=64,
        description="token budget of one prompt; evidence is truncated to fit, "
        "never the instructions. Default: the model's context window minus max_tokens when "
        "the backend knows it, else no limit",
    )

    @field_validator("prompts")
    @classmethod
    def _paths_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        for k, p in v.items():
            if not str(p).strip():
                raise ValueError(f"prompts.{k}: empty path")
        return v


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt file: optional system part and a user part with ``{{slot}}`` placeholders."""

    name: str
    system: str
    user: str
    source: str

    @property
    def slots(self) -> set[str]:
        return set(_SLOT.findall(self.system)) | set(_SLOT.findall(self.user))

    @classmethod
    def parse(cls, name: str, text: str, source: str) -> PromptTemplate:
        parts = _SECTION.split(text)
        if len(parts) == 1:
            return cls(name, "", text.strip(), source)
        sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
        if "user" not in sections:
            raise ConfigError(
                f"prompt template {source} has a [system] section but no [user] section"
            )
        return cls(name, sections.get("system", ""), sections["user"], source)

    def render(self, **values: str) -> list[dict[str, str]]:
        def sub(text: str) -> str:
            return _SLOT.sub(lambda m: str(values.get(m.group(1), "")), text)

        msgs = [{"role": "system", "content": sub(self.system)}] if self.system else []
        return msgs + [{"role": "user", "content": sub(self.user)}]


def builtin_template_text(name: str) -> str:
    return (resources.files("ragsel") / "prompts" / f"{name}.txt").read_text(encoding="utf-8")


class LLMStage(Stage):
    """Base of stages that call an LLM: model resolution, templates, budgets, usage notes,
    the per-run deadline (``stage_timeout``) and progress events.

    Subclasses declare ``templates = {template name: required slots}`` and implement
    ``_run`` (and ``_arun`` when they make independent calls that can overlap); both are
    wrapped so a run has a clock (:mod:`ragsel.stages._llm_clock`). Worker threads get it
    through :func:`in_context`.
    """

    config: LLMStageConfig

    Config: ClassVar[type[StageConfig]] = LLMStageConfig
    templates: ClassVar[Mapping[str, frozenset[str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("_run", "_arun"):
            if name in cls.__dict__:
                setattr(cls, name, timed(cls.__dict__[name]))

    def _setup(self) -> None:
        cfg = self.config
        unknown = set(cfg.prompts) - set(self.templates)
        if unknown:
            raise ConfigError(
                f"prompts: unknown template name(s) {sorted(unknown)}; this "
                f"stage's templates are {sorted(self.templates)}",
                stage=self.type_name,
                field="prompts",
            )
        self._llm_obj: Any = None
        self._lock = threading.Lock()
        self._templates: dict[str, PromptTemplate] = {}

    # --- the model ------------------------------------------------------------------------
    def use_llm(self, llm: Any) -> LLMStage:
        """Use this LLM object (anything with ``name``, ``complete``, ``acomplete``)."""
        if not (callable(getattr(llm, "complete", None)) and hasattr(llm, "acomplete")):
            raise ConfigError(
                f"{type(llm).__name__} is not an LLM: it needs complete() and "
                "acomplete() (see ragsel.backends.llm.base.LLM)",
                stage=self.name,
            )
        self._llm_obj = llm
        return self

    def bind_components(self, components: Mapping[str, Any]) -> None:
        spec = self.config.llm
        if spec is not None and spec.backend == "component":
            from ragsel.backends.llm import load_llm

            self._llm_obj = load_llm(spec, components=components, stage=self.name)

    def warm_up(self) -> None:
        """Resolve the LLM (no request is sent; local models still load on first call), so
        a missing endpoint or model is reported before any retrieval work is done."""
        _ = self.llm

    @property
    def llm(self) -> Any:
        if self._llm_obj is not None:
            return self._llm_obj
        with self._lock:
            if self._llm_obj is None:
                spec = self.config.llm
                if spec is None:
                    raise ConfigError(
                        "no LLM configured: set 'llm:' in the stage config "
                        "(e.g. {backend: openai, base_url: ..., model: ...}) or "
                        "call use_llm()",
                        stage=self.name,
                        field="llm",
                    )
                from ragsel.backends.llm import load_llm

                # names the env variable to set when the endpoint is missing
                self._llm_obj = load_llm(spec, stage=self.name)
        return self._llm_obj

    # --- prompts --------------------------------------------------------------------------
    def template(self, name: str) -> PromptTemplate:
        tpl = self._templates.get(name)
        if tpl is not None:
            return tpl
        override = self.config.prompts.get(name)
        if override is not None:
            path = Path(override).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot read prompt template {path}: {exc}",
                    stage=self.name,
                    field=f"prompts.{name}",
                ) from exc
            tpl = PromptTemplate.parse(name, text, str(path))
        else:
            tpl = PromptTemplate.parse(
                name, builtin_template_text(name), f"ragsel/prompts/{name}.txt"
            )
        allowed = self.templates[name]
        missing, extra = allowed - tpl.slots, tpl.slots - allowed
        if missing or extra:
            parts = []
            if missing:
                parts.append(
                    "missing slot(s) " + ", ".join("{{" + s + "}}" for s in sorted(missing))
                )
            if extra:
                parts.append("unknown slot(s) " + ", ".join("{{" + s + "}}" for s in sorted(extra)))
            raise ConfigError(
                f"prompt template {tpl.source}: {'; '.join(parts)} (slots "
                f"available: {', '.join(sorted(allowed))})",
                stage=self.name,
                field=f"prompts.{name}",
            )
        self._templates[name] = tpl
        return tpl

    def prompt_budget(self) -> int | None:
        """Tokens one prompt may use: the configured budget, capped by the model's context
        window minus the answer's ``max_tokens`` when the backend knows its window."""
        budget = self.config.max_prompt_tokens
        window = context_window(self.llm)
        if window is not None:
            room = window - self.config.max_tokens
            budget = room if budget is None else min(budget, room)
        return budget

    def render_fitted(
        self,
        name: str,
        evidence: Mapping[str, Sequence[tuple[str, str]]],
        wrap: Callable[[str, str], str],
        budget: int | None = None,
        **values: str,
    ) -> tuple[list[dict[str, str]], dict[str, int]]:
        """Render template ``name``, filling each slot of ``evidence`` (slot -> ``(id, text)``
        pairs; slots and pairs in priority order, most important first) with its wrapped
        passages, truncating passage texts -- never the instructions -- so the prompt fits
        ``budget`` tokens (default :meth:`prompt_budget`). Returns the messages and
        ``{"truncated": n, "omitted": n}``."""
        tpl = self.template(name)
        budget = self.prompt_budget() if budget is None else budget
        flat = [(slot, i, t) for slot, pairs in evidence.items() for i, t in pairs]

        def fill(texts: Sequence[str | None]) -> list[dict[str, str]]:
            parts: dict[str, list[str]] = {slot: [] for slot in evidence}
            for (slot, i, _), t in zip(flat, texts):
                if t is not None:
                    parts[slot].append(wrap(i, t))
            return tpl.render(**{s: "\n".join(p) for s, p in parts.items()}, **values)

        if budget is None:
            return fill([t for _, _, t in flat]), {"truncated": 0, "omitted": 0}
        llm = self.llm

        def tokens(msgs: list[dict[str, str]]) -> int:
            return sum(count_tokens(llm, m["content"]) for m in msgs) + 4 * len(msgs)

        fixed = tokens(fill([""] * len(flat)))
        room = budget - fixed
        if room < 16:
            raise ConfigError(
                f"the prompt's instructions alone need {fixed} tokens but the budget is "
                f"{budget}; instructions are never truncated. Raise max_prompt_tokens, lower "
                "max_tokens, or use a model with a longer context",
                stage=self.name,
                field="max_prompt_tokens",
            )
        texts, stats = fit_texts([t for _, _, t in flat], room, lambda s: count_tokens(llm, s))
        return fill(texts), stats

    # --- calling --------------------------------------------------------------------------
    def _call_kwargs(self, **overrides: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        kw.update(overrides)
        return kw

    def complete(self, messages: Any, **overrides: Any) -> Completion:
        """Call the model; non-ragsel exceptions from a foreign LLM object become
        BackendError so the stage fails with a clear, typed error."""
        llm = self.llm
        token, ok = before_call(self), False
        try:
            out = llm.complete(messages, **self._call_kwargs(**overrides))
            ok = True
            return out
        except RagselError as exc:
            report_timeout(self, exc)
            raise
        except Exception as exc:
            raise BackendError(
                f"{type(exc).__name__}: {exc}",
                backend=str(getattr(llm, "name", type(llm).__name__)),
            ) from exc
        finally:
            after_call(self, token, ok)

    async def acomplete(self, messages: Any, **overrides: Any) -> Completion:
        llm = self.llm
        token, ok = before_call(self), False
        try:
            out = await llm.acomplete(messages, **self._call_kwargs(**overrides))
            ok = True
            return out
        except RagselError as exc:
            report_timeout(self, exc)
            raise
        except Exception as exc:
            raise BackendError(
                f"{type(exc).__name__}: {exc}",
                backend=str(getattr(llm, "name", type(llm).__name__)),
            ) from exc
        finally:
            after_call(self, token, ok)

    def complete_fitted(
        self,
        render: Callable[[int | None], tuple[list[dict[str, str]], dict[str, int]]],
        **overrides: Any,
    ) -> tuple[Completion, dict[str, int]]:
        """Call the model with ``render(budget)``'s messages (``budget=None``: the configured
        one). If the backend still reports the prompt too long for its context (a server
        whose window we were not told), re-render once with half the tokens and retry: the
        evidence shrinks, the instructions stay whole."""
        msgs, fit = render(None)
        try:
            return self.complete(msgs, **overrides), fit
        except ContextLengthError:
            msgs, fit = render(self._half_budget(msgs))
        return self.complete(msgs, **overrides), {**fit, "context_retries": 1}

    async def acomplete_fitted(
        self,
        render: Callable[[int | None], tuple[list[dict[str, str]], dict[str, int]]],
        **overrides: Any,
    ) -> tuple[Completion, dict[str, int]]:
        msgs, fit = render(None)
        try:
            return await self.acomplete(msgs, **overrides), fit
        except ContextLengthError:
            msgs, fit = render(self._half_budget(msgs))
        return await self.acomplete(msgs, **overrides), {**fit, "context_retries": 1}

    def _half_budget(self, msgs: list[dict[str, str]]) -> int:
        used = sum(count_tokens(self.llm, m["content"]) for m in msgs)
        return max(64, used // 2)

    @property
    def model_name(self) -> str:
        return str(getattr(self._llm_obj, "name", "") or "")


def fit_texts(
    texts: Sequence[str], budget: int, count: Callable[[str], int], *, min_tokens: int = 24
) -> tuple[list[str | None], dict[str, int]]:
    """Shorten ``texts`` so their token total fits ``budget``: short texts stay whole, long
    ones share the rest equally (water-filling); when even ``min_tokens`` each does not fit,
    the last texts are omitted (``None``). Order = importance, first most important."""
    sizes = [count(t) for t in texts]
    if sum(sizes) <= budget:
        return list(texts), {"truncated": 0, "omitted": 0}
    n = len(texts)
    while n > 1 and sum(min(sizes[i], min_tokens) for i in range(n)) > budget:
        n -= 1
    out: list[str | None] = [None] * len(texts)
    order = sorted(range(n), key=lambda i: sizes[i])
    left, remaining = budget, n
    shares: dict[int, int] = {}
    for i in order:
        share = left // remaining
        shares[i] = min(sizes[i], share)
        left -= shares[i]
        remaining -= 1
    truncated = 0
    for i in range(n):
        if shares[i] >= sizes[i]:
            out[i] = texts[i]
            continue
        truncated += 1
        out[i] = _truncate_to(texts[i], shares[i], count)
    return out, {"truncated": truncated, "omitted": len(texts) - n}


def _truncate_to(text: str, tokens: int, count: Callable[[str], int]) -> str:
    mark_cost = count(TRUNCATION_MARK)
    target = max(1, tokens - mark_cost)
    chars = max(1, int(len(text) * target / max(count(text), 1)))
    cut = text[:chars]
    while chars > 1 and count(cut) > target:
        chars = int(chars * 0.9)
        cut = text[:chars]
    space = cut.rfind(" ")
    if space > chars * 0.8:  # end on a word boundary when it costs little
        cut = cut[:space]
    return cut.rstrip() + TRUNCATION_MARK


async def gather_limited(factories: Sequence[Callable[[], Any]], limit: int) -> list[Any]:
    """Run coroutine factories with at most ``limit`` in flight; results keep input order."""
    sem = asyncio.Semaphore(max(1, limit))

    async def one(f: Callable[[], Any]) -> Any:
        async with sem:
            return await f()

    return list(await asyncio.gather(*(one(f) for f in factories)))


def escape_delimiters(text: str, tags: Sequence[str]) -> str:
    """Neutralise our own delimiter tags inside evidence so a chunk cannot close the context
    block and speak as the instructions (prompt injection through retrieved text)."""
    for tag in tags:
        replacement = "‹\\1" + tag.replace("\\", "\\\\")  # "‹" + the slash + the tag
        text = re.sub(rf"<(/?)\s*{tag}\b", replacement, text, flags=re.I)
    return text
