"""JSON output from LLMs: tolerant parsing, schema validation, one repair retry.

Models wrap JSON in code fences or chatter around it, so :func:`parse_json` extracts the first
JSON value from the text. Validation uses ``jsonschema`` when it is installed and otherwise a
small validator covering the keywords structured-output APIs accept (type, properties,
required, additionalProperties, items, enum, const, min/max bounds, anyOf/oneOf). When the
output is invalid, the model gets one repair turn that quotes the problem; if that fails too,
:class:`~ragsel.backends.llm.base.LLMOutputError` says what was wrong.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ragsel.backends.llm.base import Completion, GenParams, LLMOutputError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


class JSONProblem(ValueError):
    """Why a text is not a usable JSON value (parse error or schema violation)."""


def parse_json(text: str) -> Any:
    """The first JSON value in ``text`` (bare, in a ```json fence, or after stray words)."""
    try:
        return _parse_json(text)
    except RecursionError:
        raise JSONProblem("the output nests JSON too deeply to read") from None


def _parse_json(text: str) -> Any:
    s = (text or "").strip()
    if not s:
        raise JSONProblem("the output is empty; expected a JSON value")
    try:
        return json.loads(s)
    except json.JSONDecodeError as first:
        err = first
    candidates = [m.group(1).strip() for m in _FENCE.finditer(s)]
    starts = [i for i in (s.find("{"), s.find("[")) if i >= 0]
    if starts:
        candidates.append(s[min(starts) :])
    decoder = json.JSONDecoder()
    for cand in candidates:
        try:
            return decoder.raw_decode(cand)[0]
        except json.JSONDecodeError as exc:
            err = exc
    raise JSONProblem(
        f"the output is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
    )


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _small_validate(value: Any, schema: Mapping[str, Any], path: str) -> str | None:
    """First violation of ``schema`` by ``value`` as a message, or None (fallback validator)."""
    where = path or "the top-level value"
    if "const" in schema and value != schema["const"]:
        return f"{where} must be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {list(schema['enum'])!r}, got {value!r}"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES.get(t, lambda v: True)(value) for t in names):
            return f"{where} must be of type {'/'.join(names)}, got {type(value).__name__}"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            fails = [_small_validate(value, sub, path) for sub in schema[key]]
            ok = sum(f is None for f in fails)
            if ok == 0 or (key == "oneOf" and ok > 1):
                return f"{where} does not match {key} ({'; '.join(f for f in fails if f)})"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                return f"{where} is missing required property '{req}'"
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                msg = _small_validate(v, props[k], f"{path}.{k}" if path else k)
                if msg:
                    return msg
            elif extra is False:
                return f"{where} has an unexpected property '{k}'"
            elif isinstance(extra, Mapping):
                msg = _small_validate(v, extra, f"{path}.{k}" if path else k)
                if msg:
                    return msg
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{where} needs at least {schema['minItems']} items, got {len(value)}"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} allows at most {schema['maxItems']} items, got {len(value)}"
        if isinstance(schema.get("items"), Mapping):
            for i, v in enumerate(value):
                msg = _small_validate(v, schema["items"], f"{path}[{i}]")
                if msg:
                    return msg
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{where} must have at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where} must have at most {schema['maxLength']} characters"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where} must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where} must be <= {schema['maximum']}, got {value}"
    return None


def validate(value: Any, schema: Mapping[str, Any]) -> None:
    """Raise :class:`JSONProblem` naming the first violation of ``schema``."""
    try:
        import jsonschema
    except ImportError:  # the small validator covers what structured-output APIs accept
        msg = _small_validate(value, schema, "")
        if msg:
            raise JSONProblem(msg) from None
        return
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path).lstrip(".")
        raise JSONProblem(f"{where or 'the top-level value'}: {e.message}")


def parse_and_validate(text: str, schema: Mapping[str, Any]) -> Any:
    value = parse_json(text)
    validate(value, schema)
    return value


def repair_messages(
    messages: list[dict[str, str]], bad_text: str, problem: str, schema: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The conversation for the repair retry: the bad answer, then what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": bad_text[:4000]},
        {
            "role": "user",
            "content": (
                f"Your previous answer could not be used: {problem}. Reply again with only a "
                f"JSON value (no other text) that matches this JSON schema:\n"
                f"{json.dumps(schema, sort_keys=True)}"
            ),
        },
    ]


def _merge(first: Completion, second: Completion, data: Any) -> Completion:
    def add(a: Any, b: Any) -> Any:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return Completion(
        text=second.text,
        model=second.model or first.model,
        prompt_tokens=add(first.prompt_tokens, second.prompt_tokens),
        completion_tokens=add(first.completion_tokens, second.completion_tokens),
        latency_ms=add(first.latency_ms, second.latency_ms),
        cached=False,
        logprobs=second.logprobs,
        raw=second.raw,
        data=data,
        attempts=first.attempts + second.attempts,
        finish_reason=second.finish_reason,
    )


def _fail(backend: str, text: str, first: str, second: str) -> LLMOutputError:
    return LLMOutputError(
        f"the model's JSON output was invalid twice (first: {first}; after one repair "
        f"retry: {second}). Use a model that follows JSON instructions, or an endpoint "
        f"supporting response_format (vLLM, llama.cpp server, Ollama, OpenAI).",
        backend=backend,
        text=text,
        problem=second,
    )


def complete_with_schema(
    generate: Callable[[list[dict[str, str]], GenParams], Completion],
    messages: list[dict[str, str]],
    params: GenParams,
    *,
    backend: str,
) -> Completion:
    """Call ``generate``, validate its JSON, repair once, else raise LLMOutputError."""
    schema = params.json_schema or {}
    first = generate(messages, params)
    try:
        return _with_data(first, parse_and_validate(first.text, schema))
    except JSONProblem as exc:
        problem = str(exc)
    t0 = time.perf_counter()
    second = generate(
        repair_messages(messages, first.text, problem, schema), params.with_(json_repair=True)
    )
    second = _ensure_latency(second, t0)
    try:
        return _merge(first, second, parse_and_validate(second.text, schema))
    except JSONProblem as exc:
        raise _fail(backend, second.text, problem, str(exc)) from None


async def acomplete_with_schema(
    agenerate: Callable[[list[dict[str, str]], GenParams], Awaitable[Completion]],
    messages: list[dict[str, str]],
    params: GenParams,
    *,
    backend: str,
) -> Completion:
    """Async :func:`complete_with_schema`."""
    schema = params.json_schema or {}
    first = await agenerate(messages, params)
    try:
        return _with_data(first, parse_and_validate(first.text, schema))
    except JSONProblem as exc:
        problem = str(exc)
    t0 = time.perf_counter()
    second = await agenerate(
        repair_messages(messages, first.text, problem, schema), params.with_(json_repair=True)
    )
    second = _ensure_latency(second, t0)
    try:
        return _merge(first, second, parse_and_validate(second.text, schema))
    except JSONProblem as exc:
        raise _fail(backend, second.text, problem, str(exc)) from None


def _with_data(c: Completion, data: Any) -> Completion:
    from dataclasses import replace

    return replace(c, data=data)


def _ensure_latency(c: Completion, t0: float) -> Completion:
    if c.latency_ms is not None:
        return c
    from dataclasses import replace

    return replace(c, latency_ms=(time.perf_counter() - t0) * 1000)
