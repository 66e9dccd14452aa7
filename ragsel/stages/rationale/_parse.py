"""Tolerant parsing of LLM-written rationales (METEORA).

Models answer in many shapes even when asked for one. :func:`parse_rationales` accepts, in
this order of preference:

1. XML tags: ``<rationale label="...">text <flag>...</flag></rationale>``, numbered tags
   ``<rationale_1>...</rationale_1>`` (also nested ``<label>``/``<text>``/``<flags>`` tags, or
   ``Label:``/``Rationale:``/``Flag instructions:`` lines inside), also inside a code fence,
2. JSON: ``{"rationales": [{"label", "text", "flags"}]}`` or a bare list, fenced or not, with
   trailing commas, commentary around it, or cut off (complete entries are kept),
3. ``Rationale N:`` blocks (``### Rationale 1: label``, ``**Rationale #1 — label**``,
   ``Rationale 1 - label: text``),
4. numbered or bulleted lists (``1.``, ``2)``, ``## 1. label``, ``-``, ``*``).

Reasoning blocks (``<think>...</think>``, ``<thinking>``, ``<reasoning>``) are removed first;
an answer that is only an unclosed reasoning block yields nothing and says so. Preambles and
closing chatter ("Sure! Here are ...") are ignored because only recognised items
count. With ``truncated=True`` (the model stopped at ``max_tokens``) an item the cut went
through is dropped rather than passed on half-written. Inside an item, a label may be given as ``[Label]``, ``**Label**``, ``Label: ...`` on a
short first line, or ``Label - text``; flag instructions as lines or sentences starting with
``Flag``/``Flags``/``Reject if``/``Flag instruction(s)``. Every skipped or repaired item is
reported in ``problems`` so the stage can put it in the trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ragsel.types import Rationale

_XML_OPEN = r"<rationale(?:[_\-]?\d+)?(?![\w-])"
_XML_ITEM = re.compile(
    _XML_OPEN + r"([^>]*)>(.*?)(?:(</rationale(?:[_\-]?\d+)?\s*>)|(?=" + _XML_OPEN + r")|\Z)",
    re.S | re.I,
)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1\s*>", re.S | re.I)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)
_XML_ATTR = re.compile(r"""(\w+)\s*=\s*["']([^"']*)["']""")
_XML_TAG = r"<{0}\b[^>]*>(.*?)</{0}\s*>"
_TAGS = re.compile(r"</?\w+[^>]*>")
_RATIONALE_N = re.compile(
    r"^\s*(?:[#*_]+\s*)?(?:rationale|search\s+strategy|strategy)\s*(?:#\s*)?(\d+)\s*[*_]*\s*[:.)\-–—]?\s*[*_]*",
    re.I | re.M,
)
_MAX_JSON_STARTS = 2000  # brackets tried as the start of the JSON (bounds hostile answers)
_LIST_HEAD = r"^\s*(?:#{1,6}\s*)?(?:\*\*)?\(?\d{1,2}[.):](?:\s+|$)"
_ENDS_WELL = re.compile(r"[.!?)\]\"'”’*`]\s*$")
_FLAG_LINE = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:\*\*|__)?\s*(?:flag(?:s|ging)?\s*(?:instructions?|if|when|rules?)?|"
    r"flags|reject\s+(?:if|when)|red\s*flags?)\s*(?:\*\*|__)?\s*[:\-–—]?\s*",
    re.I,
)
_FLAG_SENTENCE = re.compile(r"(?<=[.!?;])\s+((?:flag|reject)\b[^\n]*)$", re.I | re.S)
_BRACKET_LABEL = re.compile(r"^\s*\[([^\]\n]{1,60})\]\s*[:\-–—]?\s*")
_BOLD_LABEL = re.compile(r"^\s*(?:\*\*|__)([^*_\n]{1,60})(?:\*\*|__)\s*[:\-–—]?\s*")
_KEY_LABEL = re.compile(r"^\s*(?:label|title|name|strategy)\s*[:=]\s*(.+)$", re.I | re.M)
_KEY_TEXT = re.compile(r"^\s*(?:text|rationale|description|search strategy)\s*[:=]\s*", re.I)
_COLON_LABEL = re.compile(r"^\s*([A-Z][^:\n]{0,50}?)\s*[:\-–—]\s+(?=\S)")


@dataclass
class ParsedRationales:
    """What :func:`parse_rationales` found: the rationales, the format it recognised, and a
    list of human-readable problems (skipped items, missing labels or flags)."""

    items: list[Rationale] = field(default_factory=list)
    format: str = "none"
    problems: list[str] = field(default_factory=list)


def _clean(text: str) -> str:
    text = _TAGS.sub(" ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n", text)
    return text.strip().strip("*_").strip()


def _split_flags(body: str) -> tuple[str, list[str]]:
    """Separate flag-instruction lines/sentences from the strategy text."""
    text_lines, flags = [], []
    in_flags = False
    for line in body.splitlines():
        m = _FLAG_LINE.match(line)
        if m and (m.end() < len(line) or line.strip().endswith(":")):
            rest = line[m.end() :].strip()
            cond = re.search(r"\b(if|when)\b", m.group(0), re.I)
            if rest:
                flags.append(f"Flag {cond.group(1).lower()} {rest}" if cond else rest)
            in_flags = True
            continue
        if in_flags and re.match(r"^\s*[-*•]\s+", line):  # a bulleted list under "Flags:"
            flags.append(re.sub(r"^\s*[-*•]\s+", "", line).strip())
            continue
        in_flags = False
        text_lines.append(line)
    text = "\n".join(text_lines).strip()
    if not flags:
        m = _FLAG_SENTENCE.search(text)
        if m:
            flags.append(m.group(1).strip())
            text = text[: m.start()].strip()
    return text, [_clean(f) for f in flags if _clean(f)]


def _split_label(text: str) -> tuple[str, str]:
    """A short label at the start of an item (``[Label]``, ``**Label**``, ``Label: ...``)."""
    m = _KEY_LABEL.search(text)
    if m:
        rest = (text[: m.start()] + text[m.end() :]).strip()
        rest = _KEY_TEXT.sub("", rest, count=1).strip()
        return _clean(m.group(1)), rest
    for pat in (_BRACKET_LABEL, _BOLD_LABEL):
        m = pat.match(text)
        if m and text[m.end() :].strip():
            return _clean(m.group(1)).rstrip(":"), text[m.end() :].strip()
    first, _, rest = text.partition("\n")
    if rest.strip() and len(first.split()) <= 8 and not first.rstrip().endswith("."):
        return _clean(first).rstrip(":"), rest.strip()
    m = _COLON_LABEL.match(text)
    if m and len(m.group(1).split()) <= 6:
        return _clean(m.group(1)), text[m.end() :].strip()
    return "", _KEY_TEXT.sub("", text, count=1).strip()


def _item(body: str, label: str = "", flags: list[str] | None = None) -> Rationale | None:
    text, found_flags = _split_flags(body)
    if not label:
        label, text = _split_label(text)
    text = _clean(text)
    all_flags = list(flags or []) + found_flags
    if not text:
        return None
    return Rationale(text=text, label=_clean(label)[:60], flags=tuple(all_flags), source="llm")


def _from_xml(raw: str, problems: list[str], truncated: bool = False) -> list[Rationale]:
    out = []
    matches = list(_XML_ITEM.finditer(raw))
    for i, m in enumerate(matches, 1):
        if truncated and i == len(matches) and m.group(3) is None:
            problems.append(f"item {i}: cut off by the length limit (no closing tag), skipped")
            continue
        attrs = dict(_XML_ATTR.findall(m.group(1)))
        body = m.group(2)
        label = attrs.get("label") or attrs.get("name") or attrs.get("title") or ""
        lab = re.search(_XML_TAG.format("label"), body, re.S | re.I)
        if lab:
            label = label or lab.group(1)
            body = body.replace(lab.group(0), " ")
        flags = [
            f
            for f in (_clean(x) for x in re.findall(_XML_TAG.format("flags?"), body, re.S | re.I))
            if f
        ]
        body = re.sub(_XML_TAG.format("flags?"), " ", body, flags=re.S | re.I)
        txt = re.search(_XML_TAG.format("text"), body, re.S | re.I)
        if txt:
            body = txt.group(1)
        r = _item(body, label, flags)
        if r is None:
            problems.append(f"item {i}: empty <rationale> skipped")
        else:
            out.append(r)
    return out


def _json_entries(raw: str) -> tuple[list[Any] | None, bool]:
    """The first JSON list of rationale entries in ``raw`` (or the ``rationales``/``items``
    list of an object), trying every ``[``/``{`` in turn so a bracketed word before it does not
    hide it. When no complete value parses (a trailing comma, a cut-off answer), the complete
    ``{...}`` entries are salvaged one by one; the second value says so."""
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"[\[{]", raw)][:_MAX_JSON_STARTS]
    pos = 0
    for start in starts:
        if start < pos:  # inside a value already decoded (e.g. a "flags" list)
            continue
        try:
            data, end = decoder.raw_decode(raw[start:])
        except (ValueError, RecursionError):
            break  # a broken value: every later bracket may be inside it; salvage below
        pos = start + end
        if isinstance(data, dict):
            data = data.get("rationales", data.get("items"))
        if isinstance(data, list) and any(isinstance(e, (dict, str)) for e in data):
            return data, False
    salvaged, pos = [], 0
    for start in (i for i in starts if raw[i] == "{"):
        if start < pos:
            continue
        try:
            data, end = decoder.raw_decode(raw[start:])
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            continue
        if isinstance(data, dict) and _entry_text(data):
            salvaged.append(data)
            pos = start + end
    return (salvaged, True) if salvaged else (None, False)


def _entry_text(entry: dict[str, Any]) -> str:
    return str(entry.get("text") or entry.get("rationale") or entry.get("strategy") or "")


def _from_json(raw: str, problems: list[str]) -> list[Rationale] | None:
    data, salvaged = _json_entries(raw)
    if data is None:
        return None
    if salvaged:
        problems.append(f"the JSON is incomplete or invalid; {len(data)} complete entries kept")
    out = []
    for i, entry in enumerate(data, 1):
        if isinstance(entry, str):
            r = _item(entry)
        elif isinstance(entry, dict):
            flags = entry.get("flags") or entry.get("flag") or entry.get("flag_instructions") or []
            flags = [flags] if isinstance(flags, str) else [str(f) for f in flags]
            r = _item(
                _entry_text(entry),
                str(entry.get("label") or entry.get("title") or ""),
                [f for f in (_clean(x) for x in flags) if f],
            )
        else:
            r = None
        if r is None:
            problems.append(f"item {i}: JSON entry without text skipped")
        else:
            out.append(r)
    return out


def _blocks(raw: str, pattern: re.Pattern[str]) -> list[str]:
    starts = [m for m in pattern.finditer(raw)]
    blocks = []
    for m, nxt in zip(starts, starts[1:] + [None]):
        blocks.append(raw[m.end() : nxt.start() if nxt else len(raw)])
    return blocks


def _trim_trailer(block: str) -> str:
    """Drop closing chatter after the last item ("Let me know if ..."), separated by a blank
    line and not a flag line."""
    parts = re.split(r"\n\s*\n", block.strip())
    keep = [parts[0]]
    for p in parts[1:]:
        if _FLAG_LINE.match(p) or p.lstrip().startswith(("-", "*", "•")):
            keep.append(p)
        else:
            break
    return "\n".join(keep)


def _numbered_blocks(raw: str) -> list[str]:
    """Top-level numbered (or bulleted) items; bullets nested under a numbered item (flags)
    stay with it."""
    lines = raw.splitlines()
    numbered = any(re.match(_LIST_HEAD, ln) for ln in lines)
    head = re.compile(_LIST_HEAD if numbered else r"^\s*[-*•]\s+")
    blocks: list[list[str]] = []
    for ln in lines:
        m = head.match(ln)
        if m and not (numbered is False and _FLAG_LINE.match(ln[m.end() :])):
            blocks.append([ln[m.end() :]])
        elif blocks:
            blocks[-1].append(ln)
    return ["\n".join(b) for b in blocks]


def _strip_reasoning(raw: str, problems: list[str]) -> str:
    """Remove ``<think>`` blocks; an unclosed one swallows the rest of the answer."""
    raw = _THINK.sub("\n", raw)
    m = _THINK_OPEN.search(raw)
    if m:
        problems.append(
            "the answer ends inside an unclosed reasoning block (<think>...): the model "
            "spent its tokens thinking; raise max_tokens or disable its reasoning mode"
        )
        raw = raw[: m.start()]
    return raw


def _find_items(raw: str, problems: list[str], truncated: bool) -> tuple[list[Rationale], str]:
    if re.search(_XML_OPEN, raw, re.I):
        items = _from_xml(raw, problems, truncated)
        if items:
            return items, "xml"
    if re.search(r"[\[{]", raw):
        js = _from_json(raw, problems)
        if js:
            return js, "json"
    if _RATIONALE_N.search(raw):
        blocks, fmt = _blocks(raw, _RATIONALE_N), "rationale_n"
    else:
        blocks, fmt = _numbered_blocks(raw), "list"
    blocks = [_trim_trailer(b) for b in blocks]
    if truncated and blocks and not _ENDS_WELL.search(blocks[-1]):
        problems.append(f"item {len(blocks)}: cut off by the length limit, skipped")
        blocks.pop()
    items = [r for r in (_item(b) for b in blocks) if r]
    return items, fmt if items else "none"


def parse_rationales(
    raw: str, *, limit: int | None = None, truncated: bool = False
) -> ParsedRationales:
    """Parse rationales from an LLM's answer; see the module docstring for the formats.
    ``truncated``: the model stopped at its token limit (``finish_reason == "length"``)."""
    res = ParsedRationales()
    if not raw or not raw.strip():
        res.problems.append("the model returned an empty answer")
        return res
    problems: list[str] = []
    raw = _strip_reasoning(raw.replace("\r\n", "\n").replace("\r", "\n"), problems)
    items, res.format = _find_items(raw, problems, truncated)
    if not items:
        problems.append(
            "no rationale found in the model's answer (expected <rationale> tags, "
            f"'Rationale N:' blocks or a numbered list): {raw.strip()[:160]!r}"
        )
    seen: set[str] = set()
    unique: list[Rationale] = []
    for i, r in enumerate(items, 1):
        key = r.text.lower()
        if key in seen:
            problems.append(f"item {i}: duplicate rationale skipped")
            continue
        seen.add(key)
        if not r.label:
            r = Rationale(r.text, f"r{len(unique) + 1}", r.flags, r.source)
            problems.append(f"item {i}: no label given, named {r.label!r}")
        if not r.flags:
            problems.append(f"item {i}: no flag instructions")
        unique.append(r)
    if limit is not None and len(unique) > limit:
        problems.append(f"{len(unique) - limit} extra rationale(s) beyond {limit} ignored")
        unique = unique[:limit]
    res.items, res.problems = unique, problems
    return res
