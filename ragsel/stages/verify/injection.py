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

Rules are precompiled regular expressions behind a substring prefilter, so the guard is fast
and explainable. Measured (``eval/benchmarks/injection_guard.py``): no flags on 6,415 clean
SciFact/PrivacyQA/HotpotQA/FinanceBench texts; 96-100% recall on attack phrasings of the kinds
the rules were written for (visible, hidden, prepended to PoisonedRAG passages), but only about
a third of freshly written held-out phrasings. Regexes do not generalise to new wording: treat
this guard as a cheap first filter, not a defence; it also cannot catch an attack phrased as
plain misinformation (that is the job of ``poison_cluster_guard`` and the LLM verifier).
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
from ragsel.types import Candidates, Event, ScoredChunk, Verdict

Family = Literal["override", "role_tag", "persona", "steer", "hidden", "cue"]
FAMILIES: tuple[str, ...] = ("override", "role_tag", "persona", "steer", "hidden", "cue")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    family: str
    pattern: re.Pattern[str]
    confidence: float
    #: lower-case substrings of which one must occur before the regex runs: a C-speed
    #: prefilter that skips most rules on most clean texts.
    anchors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that fired on a text, with the text it matched."""

    rule: str
    family: str
    confidence: float
    evidence: str


def _r(name: str, family: str, conf: float, pattern: str, anchors: str = "") -> Rule:
    return Rule(name, family, re.compile(pattern, re.IGNORECASE | re.UNICODE), conf,
                tuple(a.replace("_", " ") for a in anchors.split()))


_PRIOR = (r"(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial|"
          r"system|all|any|every|your|the|these|those|other)")
_ORDERS = (r"(?:instructions?|prompts?|directions?|directives?|rules?|guidelines?|commands?|"
           r"orders?|context|constraints?|guardrails?|messages?|programming|restrictions?|"
           r"training|polic(?:y|ies))")
_MODEL = (r"(?:the\s+|any\s+|all\s+)?(?:ai|assistant|chatbot|bot|llms?|language\s+models?|"
          r"ai\s+(?:models?|systems?|assistants?)|gpt|chatgpt)")
_MODEL_ANCHORS = "ai assistant chatbot bot llm language_model gpt"
_IGNORE = (r"(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|discard|abandon|"
           r"neglect|overlook|set\s+aside|put\s+aside|throw\s+out)")
_IGNORE_ANCHORS = ("ignor disregard forget overrid overrul bypass skip drop discard abandon "
                   "neglect overlook aside throw")

# Each rule is worded so that ordinary prose (abstracts, policies, encyclopaedia text) rarely
# matches: it must address the model ("you", imperative + "instructions", a role marker).
# The last argument lists prefilter anchors ("_" = space).
RULES: tuple[Rule, ...] = (
    # --- override ------------------------------------------------------------------------
    _r("ignore_instructions", "override", 0.95,
       rf"\b{_IGNORE}\b(?:\s+\w+){{0,3}}?\s+{_PRIOR}\b(?:\s+\w+){{0,3}}?\s+{_ORDERS}\b",
       _IGNORE_ANCHORS),
    _r("ignore_sources", "override", 0.8,
       rf"\b{_IGNORE}\s+(?:all\s+)?(?:the\s+)?(?:other|remaining|retrieved|conflicting|"
       rf"previous|above|provided)\s+(?:documents?|sources?|passages?|results?|context|"
       rf"information|texts?|evidence)\b|\bregardless\s+of\s+(?:the\s+|any\s+)?(?:other|"
       rf"retrieved|provided)\s+(?:documents?|sources?|passages?|context|evidence)\b|"
       rf"\bno\s+matter\s+what\s+(?:the\s+)?(?:other\s+)?(?:sources?|documents?|context|"
       rf"passages?|evidence)\s+(?:says?|states?|shows?)\b",
       _IGNORE_ANCHORS + " regardless no_matter"),
    _r("ignore_what_you_were_told", "override", 0.9,
       r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all|what)\s+(?:that\s+)?"
       r"(?:you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed)|(?:was\s+)?"
       r"(?:said|written|stated)\s+(?:above|before|earlier)|above|before)",
       "ignor disregard forget"),
    _r("do_not_follow", "override", 0.9,
       rf"\b(?:do\s+not|don'?t|stop|no\s+longer)\s+(?:follow\w*|obey\w*|adher\w*\s+to|"
       rf"comply\w*\s+with)(?:\s+[\w']+){{0,3}}?\s+{_ORDERS}\b", "follow obey adher comply"),
    _r("ignore_question", "override", 0.8,
       rf"\b{_IGNORE}\s+the\s+(?:user'?s?\s+)?(?:question|query|request)\b", _IGNORE_ANCHORS),
    _r("instructions_changed", "override", 0.85,
       r"\byour\s+(?:instructions?|rules|guidelines|task|orders|directives?)\s+(?:have|has)\s+"
       r"(?:changed|been\s+(?:updated|replaced|changed|revoked))", "your"),
    _r("pay_no_attention", "override", 0.85,
       rf"\bpay\s+no\s+attention\s+to\s+(?:\w+\s+){{0,3}}{_ORDERS}\b", "attention"),
    _r("instead_follow", "override", 0.8,
       r"\b(?:instead|rather)\b[^.\n]{0,40}\b(?:follow|obey|execute)\s+(?:these|the\s+following|"
       r"my|new)\b", "instead rather"),
    _r("new_instructions", "override", 0.85,
       r"\b(?:new|updated|revised|real|actual|true|secret|hidden|important)\s+"
       r"(?:system\s+)?(?:instructions?|directives?|prompt)\s*[:\-]|\b(?:assistant|ai|model|"
       r"llm|chatbot|system|admin|developer)\s+(?:instructions?|directives?|rules|override|"
       r"message|notice|update|alert)\s*:", "instruction directive prompt rules override "
       "message notice update alert"),
    # other languages (the phrase translated literally; cheap and catches copy-paste attacks)
    _r("ignore_fr", "override", 0.9,
       r"\b(?:ignore[rz]?|oublie[rz]?)\s+(?:toutes\s+)?(?:les|tes|vos)\s+(?:\w+\s+)?"
       r"(?:instructions?|consignes?|directives?|r[eè]gles?)\b|\b(?:ignore[rz]?|oublie[rz]?)\s+"
       r"tout\s+ce\s+qui\s+(?:pr[ée]c[èe]de|a\s+[ée]t[ée]\s+dit)", "ignor oubli"),
    _r("ignore_es_pt_it", "override", 0.9,
       r"\b(?:ignora|ignore|olvida|olvide|esqueça|esquece|dimentica)\s+(?:todas\s+|todos\s+|"
       r"tutte\s+)?(?:las|los|as|os|le)\s+(?:\w+\s+)?(?:instrucciones|instruções|istruzioni|"
       r"[oó]rdenes|reglas|regras|regole)\b", "ignor olvid esque dimentic"),
    _r("ignore_de", "override", 0.9,
       r"\b(?:ignorier(?:e|en)?|vergiss|vergessen\s+sie)\s+(?:alle\s+)?(?:\w+\s+)?"
       r"(?:anweisungen|instruktionen|regeln|vorgaben|befehle)\b|\bvergiss\s+alles\b",
       "ignorier vergiss vergessen"),
    _r("ignore_nl", "override", 0.9,
       r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:\w+\s+)?(?:instructies|regels)\b",
       "negeer vergeet"),
    _r("ignore_ru", "override", 0.9,
       r"(?:игнорируй|игнорируйте|забудь|забудьте)\s+(?:все\s+)?(?:\w+\s+)?"
       r"(?:инструкции|указания|правила)", "игнорир забуд"),
    _r("ignore_zh_ja", "override", 0.9,
       r"(?:忽略|无视|忽视|無視|忘记|忘掉).{0,8}(?:指令|指示|说明|提示|规则)|"
       r"(?:以前|前|上記|これまで)の(?:指示|命令|指令).{0,4}(?:無視|忘れ)",
       "忽略 无视 忽视 無視 忘记 忘掉 忘れ"),
    # --- role tags and chat-template tokens ---------------------------------------------
    _r("chatml", "role_tag", 0.95, r"<\|(?:im_start|im_end|system|user|assistant|endoftext|"
                                   r"eot_id|start_header_id|end_header_id|begin_of_text)\|>",
       "<|"),
    _r("inst_tags", "role_tag", 0.9, r"\[/?INST\]|<<\s*/?SYS\s*>>|\[(?:system|assistant|"
                                     r"instructions?|developer)\]\s*[(:]", "inst] << ]"),
    _r("markdown_role", "role_tag", 0.85,
       r"(?:^|\n)\s*#{2,4}\s*(?:system|instruction|instructions|assistant|user|human|"
       r"response)\s*:?", "##"),
    _r("xml_role", "role_tag", 0.85,
       r"</?\s*(?:system|system[_-]?prompt|instructions?|assistant|admin|developer)\s*>", "<"),
    _r("turn_marker", "role_tag", 0.6,
       r"(?:^|\n)\s*(?:system|assistant|developer)\s*:\s+\S",
       "system: assistant: developer:"),
    # --- persona / system-prompt imitation ----------------------------------------------
    _r("you_are_now", "persona", 0.85,
       r"\byou\s+are\s+(?:now|no\s+longer|henceforth)\b|\bfrom\s+now\s+on,?\s+(?:you|the\s+"
       r"(?:assistant|model|ai))\b", "you_are from_now"),
    _r("you_are_assistant", "persona", 0.7,
       r"\byou\s+are\s+(?:an?|the)\s+(?:helpful\s+|ai\s+|large\s+)*(?:assistant|language\s+"
       r"model|llm|chatbot|ai)\b", "you_are"),
    _r("system_prompt_words", "persona", 0.7,
       r"\b(?:system\s+prompt|developer\s+mode|jailbreak(?:ed)?|do\s+anything\s+now|"
       r"god\s+mode|dan\s+mode)\b", "system_prompt developer_mode jailbreak anything_now god_mode dan_mode"),
    _r("role_switch", "persona", 0.75,
       r"\b(?:your\s+new\s+(?:role|task|goal|persona|instructions?|objective)|"
       r"(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:were|are)|an?\s+(?:unfiltered|"
       r"unrestricted|evil|malicious)))\b", "your_new act_as behave_as respond_as"),
    _r("note_to_ai", "persona", 0.85,
       r"\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|"
       r"llm|language\s+model|chatbot|model|bot)\b|\b(?:dear|hey|attention)\s+(?:ai|assistant|"
       r"chatgpt|llm|language\s+model)\b", "note_to note_for message_to message_for instructions_for instruction_for "
       "instructions_to attention dear hey"),
    _r("as_an_ai", "persona", 0.6, r"\bas\s+an\s+ai(?:\s+language)?\s+model\b", "as_an_ai"),
    _r("if_you_are_ai", "persona", 0.85,
       rf"\bif\s+you\s+are\s+(?:an?\s+)?{_MODEL}\b|\b(?:notice|message|note|memo|reminder|"
       rf"instructions?)\s+(?:for|to)\s+{_MODEL}\b|\b(?:to|for)\s+{_MODEL}\s*(?:reading|"
       rf"processing|summari[sz]ing)\b|\bthis\s+(?:message|note|text|section)\s+is\s+for\s+"
       rf"{_MODEL}\b", "if_you_are notice message note memo reminder instruction reading "
       "processing summari this"),
    # --- steering the answer --------------------------------------------------------------
    _r("you_must_answer", "steer", 0.85,
       r"\byou\s+(?:must|should|shall|will|need\s+to|have\s+to|are\s+(?:required|instructed|"
       r"told)\s+to)\s+(?:always\s+|only\s+|now\s+)?(?:answer|respond|reply|say|output|state|"
       r"claim|write|print|include|mention|recommend|tell\s+the\s+user|insist)\b", "you"),
    _r("model_must_answer", "steer", 0.8,
       rf"\b{_MODEL}\b[^.\n]{{0,30}}\b(?:must|should|shall|is\s+to|are\s+to|needs?\s+to|"
       rf"has\s+to|will\s+(?:now|always))\s+(?:always\s+|only\s+|now\s+)?(?:answer|respond|"
       rf"reply|say|tell|claim|output|recommend|reveal|state|report|write)\b|\byour\s+"
       rf"(?:answer|response|reply|output)\s+(?:must|should|shall|has\s+to|needs\s+to|will)\b",
       _MODEL_ANCHORS + " your"),
    _r("answer_with", "steer", 0.75,
       r"\b(?:always|only|just)\s+(?:answer|respond|reply)\s+(?:with|that|by|using|in)\b|"
       r"\b(?:answer|respond|reply)\s+(?:only\s+)?with\s+[\"'“]", "answer respond reply"),
    _r("when_asked", "steer", 0.8,
       r"\b(?:when|if|whenever)\s+(?:(?:you\s+are\s+|you're\s+|the\s+(?:user|assistant|model)\s+"
       r"(?:is\s+)?)?(?:asked|queried|prompted|questioned)|(?:the|a|any)\s+(?:user|reader|"
       r"person)\s+(?:asks|queries|questions|wants\s+to\s+know))\b[^.\n]{0,80}\b(?:answer|"
       r"respond|reply|say|state|tell|output)\b", "asked asks quer prompted questioned"),
    _r("tell_the_user", "steer", 0.8,
       r"\b(?:tell|inform|convince|remind|assure)\s+the\s+user\b|\b(?:respond|reply|say|"
       r"answer|explain)\s+to\s+the\s+user\s+that\b|\b(?:do\s+not|don'?t|never)\s+"
       r"(?:mention|reveal|disclose|tell\s+the\s+user|cite)\b[^.\n]{0,40}\b(?:user|source|"
       r"instructions?|prompt)\b", "user mention reveal disclose cite"),
    _r("correct_answer_is", "steer", 0.55,
       r"\b(?:the\s+)?(?:correct|right|only\s+(?:valid|correct))\s+(?:answer|response)\s+"
       r"(?:to\s+(?:this|the|any)\s+(?:question|query)\s+)?(?:is|must\s+be|should\s+be)\b",
       "correct right valid"),
    _r("repeat_after", "steer", 0.8,
       r"\b(?:repeat\s+after\s+me|print\s+(?:the\s+following|exactly)|output\s+(?:the\s+"
       r"following|exactly|only)|say\s+exactly)\b", "repeat print output say"),
    # --- weak cues: none flags alone; three kinds together (noisy-OR) reach the threshold.
    # They catch phrasings no rule above anticipates, at the price of a few flags on text that
    # talks *about* chatbots.
    _r("cue_addressee", "cue", 0.35,
       r"\b(?:assistants?|chatbots?|language\s+models?|llms?|ai\s+(?:models?|systems?|agents?|"
       r"tools?)|automated\s+(?:tools?|readers?|systems?|agents?)|summari[sz]ers?|you,?\s+the\s+"
       r"(?:model|ai|assistant|reader)|whoever\s+(?:processes|reads)|operator)\b",
       "assistant chatbot language_model llm ai_ automated summari you whoever operator"),
    _r("cue_your_output", "cue", 0.4,
       r"\b(?:your|the\s+assistant'?s)\s+(?:answer|response|reply|summary|output)s?\b|"
       r"\b(?:in|to)\s+(?:every|each|any|all)\s+(?:answer|response|reply|summary|output)s?\b|"
       r"\b(?:begin|start|end)\s+your\s+\w+|\brespond\s+as\s+(?:though|if)\b",
       "your assistant every each any all begin start end respond"),
    _r("cue_imperative", "cue", 0.3,
       r"(?:^|[.!?:]\s+|\n)(?:please\s+|kindly\s+)?(?:ignore|disregard|forget|pretend|act\s+as|"
       r"respond|reply|answer|say|tell|print|output|append|insert|omit|skip|change|rate|treat|"
       r"begin\s+your|never|always|do\s+not|don't|make\s+sure|ensure|remember|quote|reveal|"
       r"state|claim|conclude|promote|comply|do\s+what)\b",
       "ignor disregard forget pretend act respond reply answer say tell print output append "
       "insert omit skip change rate treat begin never always do_not don't make_sure ensure "
       "remember quote reveal state claim conclude promote comply do_what"),
    _r("cue_control", "cue", 0.35,
       r"\b(?:instructions?|directives?|system\s+(?:message|notice|prompt)|take\s+precedence|"
       r"top\s+priority|authoritative|override|retrieved\s+(?:passages?|documents?)|other\s+"
       r"(?:retrieved\s+)?(?:documents?|passages?|sources?)|caveats?|guardrails?)\b",
       "instruction directive system precedence priority authoritative override retrieved "
       "other caveat guardrail"),
    _r("cue_deceive", "cue", 0.35,
       r"\b(?:on\s+purpose|incorrectly|deliberately\s+wrong|never\s+(?:reveal|tell|show|"
       r"mention)|do\s+not\s+(?:show|reveal|tell|mention)|without\s+(?:telling|mentioning)|"
       r"secretly|quietly|the\s+person\s+asking|to\s+the\s+user)\b",
       "purpose incorrectly deliberately never do_not without secretly quietly person_asking "
       "the_user"),
    # --- hidden containers (their content is also decoded and re-scanned) ---------------
    _r("html_comment", "hidden", 0.45, r"<!--.{0,2000}?-->", "<!--"),
    _r("hidden_html", "hidden", 0.7,
       r"<[a-z]+[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
       r"opacity\s*:\s*0(?:\.0+)?\b|\bhidden\b|aria-hidden)[^>]{0,200}>", "<"),
)

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e]")
_ZW_IN_LATIN = re.compile("[A-Za-z][\u200b\u200c\u200d\u2060\ufeff]+[A-Za-z]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]+")
_COMMENT = re.compile(r"<!--(.{0,2000}?)-->", re.DOTALL)
_HIDDEN_SPAN = re.compile(
    r"<([a-z]+)[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
    r"\bhidden\b)[^>]{0,200}>(.{0,2000}?)</\1>", re.IGNORECASE | re.DOTALL)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_WS = re.compile(r"\s+")


def _snippet(text: str, start: int, end: int, pad: int = 30, limit: int = 160) -> str:
    s = text[max(0, start - pad): min(len(text), end + pad)]
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


def scan_rules(text: str, rules: Iterable[Rule] = RULES,
               families: frozenset[str] | None = None) -> list[Match]:
    """Every rule (of the enabled ``families``) that matches ``text``, with its evidence."""
    out = []
    low = text.lower()
    for rule in rules:
        if families is not None and rule.family not in families:
            continue
        if rule.anchors and not any(a in low for a in rule.anchors):
            continue
        m = rule.pattern.search(text)
        if m:
            out.append(Match(rule.name, rule.family, rule.confidence,
                             _snippet(text, m.start(), m.end())))
    return out


def _hidden_payloads(text: str) -> list[tuple[str, str, float]]:
    """``(kind, decoded hidden content, confidence of the carrier alone)`` found in ``text``."""
    found: list[tuple[str, str, float]] = []
    if not text.isascii():  # invisible characters are all non-ASCII: skip these scans
        tags = _TAG_CHARS.findall(text)
        if tags:  # Unicode tag characters mirror ASCII invisibly ("ASCII smuggling")
            decoded = "".join(chr(ord(c) - 0xE0000) for c in "".join(tags)
                              if 0xE0020 <= ord(c) <= 0xE007E)
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
                decoded = _decode_base64(m.group(0))
                if decoded:
                    found.append(("base64 text", decoded, 0.3))
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
            matches.append(Match(f"hidden_{best.rule}", "hidden",
                                 min(1.0, max(0.9, best.confidence + 0.05)),
                                 f"{kind}: {best.evidence}"))
        elif conf >= 0.3 and kind != "base64 text":
            shown = _snippet(payload, 0, len(payload)) if payload.strip() else ""
            matches.append(Match(kind.replace(" ", "_"), "hidden", conf,
                                 f"{kind}{': ' + shown if shown else ''}"))
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

    class Config(StageConfig):
        mode: Literal["drop", "annotate"] = Field(
            "drop", description="drop flagged chunks, or keep them annotated with a verdict")
        threshold: float = Field(
            0.6, ge=0.0, le=1.0,
            description="combined confidence at or above which a chunk is flagged")
        families: list[Family] = Field(
            default_factory=lambda: list(FAMILIES),
            description="rule families to apply: override, role_tag, persona, steer, hidden, "
                        "cue")

    blocking = False  # pure regex work, microseconds per chunk

    def _setup(self) -> None:
        self._families = frozenset(self.config.families)

    def judge(self, chunk_id: str, text: str) -> Verdict:
        """The verdict for one text (flagged or not), with the matched evidence."""
        matches = scan(text, self._families)
        conf = combine(matches)
        flagged = bool(matches) and conf >= self.config.threshold
        matches.sort(key=lambda m: -m.confidence)
        reason = ("; ".join(f"{m.family}:{m.rule}" for m in matches) if matches
                  else "no injection pattern")
        evidence = " | ".join(m.evidence for m in matches[:4])
        return Verdict(chunk_id, self.name, flagged, "INJECTION" if flagged else "OK",
                       conf if matches else 0.0, reason, evidence)

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
                keep.append(sc.with_event(
                    Event(self.name, "flagged", f"prompt injection ({v.reason})", sc.score,
                          {"confidence": v.confidence}),
                    verdicts=sc.verdicts + (v,)))
        return candidates.derive(
            self.name, keep, drop_reasons=reasons, verdicts=verdicts,
            note={"mode": self.config.mode, "flagged": sorted(verdicts),
                  "scanned": len(candidates.items)})
