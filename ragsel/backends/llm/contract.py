"""A shared contract every LLM backend or adapter should pass (use it in your own tests).

``check_llm_contract(llm)`` calls the backend a few times (sync and async, string and
message-list prompts, optionally JSON) and asserts what stages rely on. Point it at a
deterministic model or a scripted server: it checks shapes and types, not answer quality.

    from ragsel.backends.llm.contract import check_llm_contract
    check_llm_contract(my_llm, json=True)
"""

from __future__ import annotations

import asyncio
from typing import Any

from ragsel.backends.llm.base import Completion, LLMOutputError

CONTRACT_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
CONTRACT_JSON_PROMPT = 'Reply with exactly this JSON and nothing else: {"answer": "Paris"}'


def _check_completion(c: Any, where: str) -> None:
    assert isinstance(c, Completion), f"{where}: returned {type(c).__name__}, not Completion"
    assert isinstance(c.text, str), f"{where}: text is {type(c.text).__name__}"
    for f in ("prompt_tokens", "completion_tokens"):
        v = getattr(c, f)
        assert v is None or (isinstance(v, int) and v >= 0), f"{where}: bad {f} {v!r}"
    assert c.latency_ms is None or c.latency_ms >= 0, f"{where}: negative latency"
    assert c.attempts >= 0 and isinstance(c.cached, bool), f"{where}: bad attempts/cached"


def check_llm_contract(llm: Any, *, json: bool = True, max_tokens: int = 8) -> None:
    """Assert the :class:`~ragsel.backends.llm.base.LLM` contract for ``llm``."""
    name = getattr(llm, "name", None)
    assert isinstance(name, str) and name, "an LLM needs a non-empty str name"
    assert "Bearer" not in name and "sk-" not in name, "name must not carry secrets"
    _check_completion(llm.complete("Say hello.", max_tokens=max_tokens), "complete(str)")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    _check_completion(
        llm.complete(msgs, temperature=0.0, max_tokens=max_tokens), "complete(messages)"
    )

    async def acall() -> Any:
        try:
            return await llm.acomplete(msgs, max_tokens=max_tokens)
        finally:  # the loop ends with this call: let the backend close its async resources
            aclose = getattr(llm, "aclose", None)
            if callable(aclose):
                await aclose()

    out = asyncio.run(acall())
    _check_completion(out, "acomplete(messages)")
    if json:
        try:
            c = llm.complete(CONTRACT_JSON_PROMPT, json_schema=CONTRACT_SCHEMA, max_tokens=32)
        except LLMOutputError:  # allowed: the model could not produce valid JSON
            return
        _check_completion(c, "complete(json_schema)")
        assert isinstance(c.data, dict) and isinstance(c.data.get("answer"), str), (
            "with json_schema, Completion.data must hold the validated JSON value "
            f"(got {c.data!r}); derive from BaseLLM to get this for free"
        )
