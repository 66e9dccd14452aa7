"""Helpers shared by the LLM query-rewrite stages: list parsing and attaching rewrites."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ragsel.types import Query

_ITEM = re.compile(r"^\s*(?:(?:\d{1,2}|[a-z])[.):]|[-*•])\s+(.*\S)\s*$", re.I)
_CHATTER = re.compile(
    r"^(sure|here (are|is)|okay|ok|certainly|of course|i hope|let me know|"
    r"note:|these (rewrites|questions))\b",
    re.I,
)


def parse_lines(text: str, limit: int) -> list[str]:
    """Items of a numbered/bulleted list, or plain lines when there is no list marker;
    preambles and closing chatter are skipped, quotes and markdown stripped."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    items = [m.group(1) for m in (_ITEM.match(ln) for ln in lines) if m]
    if not items:
        items = [
            ln.strip()
            for ln in lines
            if not _CHATTER.match(ln.strip()) and not ln.rstrip().endswith(":")
        ]
    out: list[str] = []
    for it in items:
        it = it.strip().strip("*_").strip().strip('"“”').strip()
        it = re.sub(r"^(?:rewrite|query|sub-?question)\s*\d*\s*[:.-]\s*", "", it, flags=re.I)
        if it and it.lower() not in {o.lower() for o in out}:
            out.append(it)
    return out[:limit]


def add_rewrites(query: Query, stage: str, new: Sequence[str], info: dict[str, Any]) -> Query:
    """``query`` with ``new`` appended to its rewrites (no duplicates, not the query itself)
    and what ``stage`` did recorded in ``metadata["rewrites_by"][stage]``."""
    known = {query.text.strip().lower(), *(r.strip().lower() for r in query.rewrites)}
    added = []
    for r in new:
        key = r.strip().lower()
        if key and key not in known:
            known.add(key)
            added.append(r.strip())
    by = dict(query.metadata.get("rewrites_by", {}))
    by[stage] = {**info, "added": len(added)}
    return replace(
        query,
        rewrites=query.rewrites + tuple(added),
        metadata={**query.metadata, "rewrites_by": by},
    )


def finish_list(stage: Any, query: Query, completion: Any, what: str) -> Query:
    """Parse a list answer of ``stage`` (config ``n``, ``on_empty``) into rewrites."""
    from ragsel.backends.llm.base import LLMOutputError, usage_summary

    items = parse_lines(completion.text, stage.config.n)
    if not items and stage.config.on_empty == "error":
        raise LLMOutputError(
            f"the model gave no usable {what}: {completion.text.strip()[:160]!r}",
            backend=stage.model_name,
            text=completion.text,
            problem=f"no {what}",
        )
    info = {"asked": stage.config.n, "parsed": len(items), **usage_summary([completion])}
    return add_rewrites(query, stage.name, items, info)
