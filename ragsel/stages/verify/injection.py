"""Flag retrieved text that addresses the model instead of informing it (prompt injection).

A retrieved passage should state facts; text that tells *the model* what to do is an attack
surface (indirect prompt injection). :class:`InjectionGuard` scans each chunk with precompiled
rules in five families and records, for every flagged chunk, a :class:`~ragsel.types.Verdict`
with label ``INJECTION``, a confidence and the matched evidence text:

- ``override``   "ignore the previous instructions" and its paraphrases, in several languages
- ``role_tag``   chat-template and role markers (``<|im_start|>system``, ``[INST]``,
                 ``### System:``, ``<system>``, ``<<SYS>>``)
- ``persona``    system-prompt imitations ("you are now ...", "new instructions:", "developer
                 mode", "system prompt")
- ``steer``      instructions to answer a certain way ("you must respond that ...", "when asked
                 about X, say ...", "tell the user ...")
- ``hidden``     text a reader would not see: zero-width and bidi-override characters, Unicode
                 tag characters, HTML comments and hidden spans, base64 blobs that decode to an
                 instruction. Hidden content is decoded and scanned with the other rules; a
                 hidden instruction scores higher than either signal alone.
- ``cue``        weak cues (addressing a model, "your answer", sentence-initial imperatives,
                 control vocabulary, secrecy) that only flag when several co-occur.

Rules are precompiled regular expressions behind a substring prefilter (and, for rules that
need an AI addressee, one shared word-bounded gate), so the guard is fast and explainable; the
rule table is :mod:`ragsel.stages.verify._injection_rules`. Measured
(``eval/benchmarks/studies/injection_guard.py``; the threshold 0.65 was chosen on the training split
only: the attacks the rules were written against and half of each clean corpus): no flags on
the held-out half of the SciFact/PrivacyQA/HotpotQA/FinanceBench texts (3,208), recall
0.56-0.64 on two earlier held-out rounds of attack phrasings (0.32-0.36 before the second
revision) and 0.87 on a round written just before it, but 4 of 20 hand-written sentences
*about* chatbots and instructions are flagged. Regexes do not generalise to every new
wording: treat this guard as a cheap first filter, not a defence; it also cannot catch an
attack phrased as plain misinformation (that is the job of ``poison_cluster_guard`` and the
LLM verifier).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.stages.verify._injection_rules import RULES, Rule
from ragsel.types import Candidates, Event, ScoredChunk, Verdict

Family = Literal["override", "role_tag", "persona", "steer", "hidden", "cue"]
FAMILIES: tuple[Family, ...] = ("override", "role_tag", "persona", "steer", "hidden", "cue")


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that fired on a text, with the text it matched."""

    rule: str
    family: str
    confidence: float
    evidence: str


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e]")
_ZW_IN_LATIN = re.compile("[A-Za-z][\u200b\u200c\u200d\u2060\ufeff]+[A-Za-z]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]+")
_COMMENT = re.compile(r"<!--(.{0,2000}?)-->", re.DOTALL)
_HIDDEN_SPAN = re.compile(
    r"<([a-z]+)[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
    r"\bhidden\b)[^>]{0,200}>(.{0,2000}?)</\1>",
    re.IGNORECASE | re.DOTALL,
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_WS = re.compile(r"\s+")


def _snippet(text: str, start: int, end: int, pad: int = 30, limit: int = 160) -> str:
    s = text[max(0, start - pad) : min(len(text), end + pad)]
    s = _WS.sub(" ", s).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _normalise(text: str) -> str:
    # NFKC folds full-width and stylised letters; zero-width characters are removed so that
    # "ig\u200bnore previous instructions" still matches the override rules.
    if text.isascii():
        return text
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))


def _decode_base64(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
    return decoded if decoded and printable / len(decoded) > 0.95 else None


def scan_rules(
    text: str, rules: Iterable[Rule] = RULES, families: frozenset[str] | None = None
) -> list[Match]:
    """Every rule (of the enabled ``families``) that matches ``text``, with its evidence."""
    out = []
    low = text.lower()
    gates: dict[int, bool] = {}
    for rule in rules:
        if families is not None and rule.family not in families:
            continue
        if rule.anchors and not any(a in low for a in rule.anchors):
            continue
        if rule.gate is not None:
            key = id(rule.gate)
            if key not in gates:
                gates[key] = rule.gate.search(text) is not None
            if not gates[key]:
                continue
        m = rule.pattern.search(text)
        if m:
            out.append(
                Match(rule.name, rule.family, rule.confidence, _snippet(text, m.start(), m.end()))
            )
    return out


def _hidden_payloads(text: str) -> list[tuple[str, str, float]]:
    """``(kind, decoded hidden content, confidence of the carrier alone)`` found in ``text``."""
    found: list[tuple[str, str, float]] = []
    if not text.isascii():  # invisible characters are all non-ASCII: skip these scans
        tags = _TAG_CHARS.findall(text)
        if tags:  # Unicode tag characters mirror ASCII invisibly ("ASCII smuggling")
            decoded = "".join(
                chr(ord(c) - 0xE0000) for c in "".join(tags) if 0xE0020 <= ord(c) <= 0xE007E
            )
            found.append(("unicode tag characters", decoded, 0.9))
        n_zw = len(_ZERO_WIDTH.findall(text.lstrip("\ufeff")))
        if n_zw:
            # A few ZWJ/ZWNJ are normal in emoji and some scripts; many, or ones inside Latin
            # words, are how text is hidden from a human reader or a naive filter.
            inside = _ZW_IN_LATIN.search(text)
            conf = 0.75 if (n_zw >= 3 and inside) else 0.5 if inside or n_zw >= 8 else 0
            if conf:
                found.append((f"{n_zw} zero-width characters", "", conf))
        if _BIDI.search(text):
            found.append(("bidirectional override characters", "", 0.6))
    if "<!--" in text:
        for m in _COMMENT.finditer(text):
            found.append(("HTML comment", m.group(1), 0.45))
    if "<" in text:
        for m in _HIDDEN_SPAN.finditer(text):
            found.append(("hidden HTML element", m.group(2), 0.7))
    for token in text.split():
        if len(token) >= 24:
            for m in _BASE64.finditer(token):
                b64 = _decode_base64(m.group(0))
                if b64:
                    found.append(("base64 text", b64, 0.3))
    return found


def scan(text: str, families: frozenset[str] | None = None) -> list[Match]:
    """All injection signals in ``text``: visible rule matches and hidden payloads.

    A hidden payload that itself contains an instruction is reported as one ``hidden`` match
    with high confidence and the decoded instruction as evidence.
    """
    norm = _normalise(text)
    matches = scan_rules(norm, families=families)
    if families is not None and "hidden" not in families:
        return matches
    matches = [m for m in matches if m.family != "hidden"]  # re-reported below with payload
    for kind, payload, conf in _hidden_payloads(text):
        inner = scan_rules(_normalise(payload), families=families) if payload.strip() else []
        inner = [m for m in inner if m.family != "hidden"]
        if inner:
            best = max(inner, key=lambda m: m.confidence)
            matches.append(
                Match(
                    f"hidden_{best.rule}",
                    "hidden",
                    min(1.0, max(0.9, best.confidence + 0.05)),
                    f"{kind}: {best.evidence}",
                )
            )
        elif conf >= 0.3 and kind != "base64 text":
            shown = _snippet(payload, 0, len(payload)) if payload.strip() else ""
            matches.append(
                Match(
                    kind.replace(" ", "_"), "hidden", conf, f"{kind}{': ' + shown if shown else ''}"
                )
            )
    return matches


def combine(matches: list[Match]) -> float:
    """Noisy-OR of the strongest match per family: independent signals reinforce."""
    best: dict[str, float] = {}
    cue = 1.0
    for m in matches:
        if m.family == "cue":  # weak cues add up among themselves
            cue *= 1.0 - m.confidence
        else:
            best[m.family] = max(best.get(m.family, 0.0), m.confidence)
    if cue < 1.0:
        best["cue"] = min(0.85, 1.0 - cue)
    p_clean = 1.0
    for c in best.values():
        p_clean *= 1.0 - c
    return round(1.0 - p_clean, 4)


@register_stage("injection_guard")
class InjectionGuard(Stage):
    """Flag chunks whose text addresses the model (prompt injection) — LLM-free, regex based.

    Each flagged chunk gets a ``Verdict(label="INJECTION", confidence, reason, evidence)``:
    the reason names the rules that fired, the evidence quotes the matched text (for hidden
    payloads, the decoded instruction). ``mode: drop`` removes flagged chunks (the verdict is
    on ``Dropped.verdict``); ``mode: annotate`` keeps them with the verdict on
    ``ScoredChunk.verdicts`` so a later stage or the user decides.

    Example::

        InjectionGuard(mode="drop", threshold=0.6)
        # YAML: {type: injection_guard, mode: annotate, families: [override, role_tag]}
    """

    config: Config

    class Config(StageConfig):
        mode: Literal["drop", "annotate"] = Field(
            "drop", description="drop flagged chunks, or keep them annotated with a verdict"
        )
        threshold: float = Field(
            0.65,
            ge=0.0,
            le=1.0,
            description="combined confidence at or above which a chunk is flagged",
        )
        families: list[Family] = Field(
            default_factory=lambda: list(FAMILIES),
            description="rule families to apply: override, role_tag, persona, steer, hidden, cue",
        )

    blocking = False  # pure regex work, microseconds per chunk

    def _setup(self) -> None:
        self._families = frozenset(self.config.families)

    def judge(self, chunk_id: str, text: str) -> Verdict:
        """The verdict for one text (flagged or not), with the matched evidence."""
        matches = scan(text, self._families)
        conf = combine(matches)
        flagged = bool(matches) and conf >= self.config.threshold
        matches.sort(key=lambda m: -m.confidence)
        reason = (
            "; ".join(f"{m.family}:{m.rule}" for m in matches)
            if matches
            else "no injection pattern"
        )
        evidence = " | ".join(m.evidence for m in matches[:4])
        return Verdict(
            chunk_id,
            self.name,
            flagged,
            "INJECTION" if flagged else "OK",
            conf if matches else 0.0,
            reason,
            evidence,
        )

    def _run(self, candidates: Candidates) -> Candidates:
        keep: list[ScoredChunk] = []
        reasons: dict[str, str] = {}
        verdicts: dict[str, Verdict] = {}
        for sc in candidates.items:
            v = self.judge(sc.chunk.id, sc.chunk.text)
            if not v.flagged:
                keep.append(sc)
                continue
            verdicts[sc.chunk.id] = v
            if self.config.mode == "drop":
                reasons[sc.chunk.id] = f"prompt injection ({v.reason})"
            else:
                keep.append(
                    sc.with_event(
                        Event(
                            self.name,
                            "flagged",
                            f"prompt injection ({v.reason})",
                            sc.score,
                            {"confidence": v.confidence},
                        ),
                        verdicts=sc.verdicts + (v,),
                    )
                )
        return candidates.derive(
            self.name,
            keep,
            drop_reasons=reasons,
            verdicts=verdicts,
            note={
                "mode": self.config.mode,
                "flagged": sorted(verdicts),
                "scanned": len(candidates.items),
            },
        )
