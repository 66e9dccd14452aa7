"""Tolerant parsing of LLM-written rationales (METEORA).

Models answer in many shapes even when asked for one. :func:`parse_rationales` accepts, in
this order of preference:

1. XML tags: ``<rationale label="...">text <flag>...</flag></rationale>`` (also nested
   ``<label>``/``<text>``/``<flags>`` tags),
2. JSON: ``{"rationales": [{"label", "text", "flags"}]}`` or a bare list,
3. ``Rationale N:`` blocks,
4. numbered or bulleted lists (``1.``, ``2)``, ``-``, ``*``).

Preambles and closing chatter ("Sure! Here are ...") are ignored because only recognised items
count. Inside an item, a label may be given as ``[Label]``, ``**Label**``, ``Label: ...`` on a
short first line, or ``Label - text``; flag instructions as lines or sentences starting with
``Flag``/``Flags``/``Reject if``/``Flag instruction(s)``. Every skipped or repaired item is
reported in ``problems`` so the stage can put it in the trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ragsel.types import Rationale

_XML_ITEM = re.compile(
    r"<rationale\b([^>]*)>(.*?)(?:</rationale\s*>|(?=<rationale\b)|\Z)", re.S | re.I
)
_XML_ATTR = re.compile(r"""(\w+)\s*=\s*["']([^"']*)["']""")
_XML_TAG = r"<{0}\b[^>]*>(.*?)</{0}\s*>"
_TAGS = re.compile(r"</?\w+[^>]*>")
_RATIONALE_N = re.compile(
    r"^\s*(?:[#*_]+\s*)?rationale\s*(?:#\s*)?(\d+)\s*[*_]*\s*[:.)\-–—]?\s*[*_]*", re.I | re.M
)
_NUMBERED = re.compile(r"^\s*(?:\*\*)?(?:\(?(\d{1,2})[.):]|[-*•])\s+", re.M)
_FLAG_LINE = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:\*\*|__)?\s*(?:flag(?:ging)?\s*(?:instructions?|if|when|rules?)?|"
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


def _from_xml(raw: str, problems: list[str]) -> list[Rationale]:
    out = []
    for i, m in enumerate(_XML_ITEM.finditer(raw), 1):
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


def _from_json(raw: str, problems: list[str]) -> list[Rationale] | None:
    start = min((i for i in (raw.find("{"), raw.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(raw[start:])
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("rationales", data.get("items"))
    if not isinstance(data, list):
        return None
    out = []
    for i, entry in enumerate(data, 1):
        if isinstance(entry, str):
            r = _item(entry)
        elif isinstance(entry, dict):
            text = str(entry.get("text") or entry.get("rationale") or entry.get("strategy") or "")
            flags = entry.get("flags") or entry.get("flag") or entry.get("flag_instructions") or []
            flags = [flags] if isinstance(flags, str) else [str(f) for f in flags]
            r = _item(
                text,
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
    numbered = any(re.match(r"^\s*(?:\*\*)?\(?\d{1,2}[.):]\s+", ln) for ln in lines)
    head = re.compile(r"^\s*(?:\*\*)?\(?\d{1,2}[.):]\s+" if numbered else r"^\s*[-*•]\s+")
    blocks: list[list[str]] = []
    for ln in lines:
        m = head.match(ln)
        if m and not (numbered is False and _FLAG_LINE.match(ln[m.end() :])):
            blocks.append([ln[m.end() :]])
        elif blocks:
            blocks[-1].append(ln)
    return ["\n".join(b) for b in blocks]


def parse_rationales(raw: str, *, limit: int | None = None) -> ParsedRationales:
    """Parse rationales from an LLM's answer; see the module docstring for the formats."""
    res = ParsedRationales()
    if not raw or not raw.strip():
        res.problems.append("the model returned an empty answer")
        return res
    problems: list[str] = []
    items: list[Rationale] | None = None
    if re.search(r"<rationale\b", raw, re.I):
        items, res.format = _from_xml(raw, problems), "xml"
    if not items:
        js = _from_json(raw, problems) if re.search(r"[\[{]", raw) else None
        if js:
            items, res.format = js, "json"
    if not items and _RATIONALE_N.search(raw):
        items = [r for r in (_item(_trim_trailer(b)) for b in _blocks(raw, _RATIONALE_N)) if r]
        res.format = "rationale_n"
    if not items:
        blocks = _numbered_blocks(raw)
        items = [r for r in (_item(_trim_trailer(b)) for b in blocks) if r]
        res.format = "list" if items else "none"
    if not items:
        problems.append(
            "no rationale found in the model's answer (expected <rationale> tags, "
            f"'Rationale N:' blocks or a numbered list): {raw.strip()[:160]!r}"
        )
    seen: set[str] = set()
    unique = []
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
