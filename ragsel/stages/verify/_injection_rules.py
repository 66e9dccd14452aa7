"""The rule table of :mod:`ragsel.stages.verify.injection` (patterns only; the scanning,
scoring and the stage live there).

Each rule is worded so that ordinary prose (abstracts, policies, encyclopaedia text) rarely
matches: it must address the model ("you", an imperative + "instructions", a role marker, a
vocative "Assistant, ..."). Rules of the ``cue`` family are weak signals that flag only in
combination. The second revision (``EXTRA_RULES``) was written from general knowledge of
indirect prompt-injection phrasing -- imperatives addressed to an AI, "disregard/forget/
override ... instructions/context", "you must answer", "new instructions:", fake role
markers, authority claims, requests to leak the prompt -- and checked only on the benchmark's
training split (``eval/benchmarks/studies/injection_guard.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    family: str
    pattern: re.Pattern[str]
    confidence: float
    #: lower-case substrings of which one must occur before the regex runs: a C-speed
    #: prefilter that skips most rules on most clean texts.
    anchors: tuple[str, ...] = ()
    #: a cheap regex that must also match first (evaluated once per text and shared by the
    #: rules that name it): word-bounded where a substring anchor is too weak ("ai" in "said").
    gate: re.Pattern[str] | None = None


def _r(
    name: str,
    family: str,
    conf: float,
    pattern: str,
    anchors: str = "",
    gate: re.Pattern[str] | None = None,
) -> Rule:
    return Rule(
        name,
        family,
        re.compile(pattern, re.IGNORECASE | re.UNICODE),
        conf,
        tuple(a.replace("_", " ") for a in anchors.split()),
        gate,
    )


_PRIOR = (
    r"(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial|"
    r"system|all|any|every|your|the|these|those|other)"
)
_ORDERS = (
    r"(?:instructions?|prompts?|directions?|directives?|rules?|guidelines?|commands?|"
    r"orders?|context|constraints?|guardrails?|messages?|programming|restrictions?|"
    r"training|polic(?:y|ies))"
)
_MODEL = (
    r"(?:the\s+|any\s+|all\s+)?(?:ai|assistant|chatbot|bot|llms?|language\s+models?|"
    r"ai\s+(?:models?|systems?|assistants?)|gpt|chatgpt)"
)
_MODEL_ANCHORS = "ai assistant chatbot bot llm language_model gpt"
_IGNORE = (
    r"(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|discard|abandon|"
    r"neglect|overlook|set\s+aside|put\s+aside|throw\s+out)"
)
_IGNORE_ANCHORS = (
    "ignor disregard forget overrid overrul bypass skip drop discard abandon "
    "neglect overlook aside throw"
)

# Each rule is worded so that ordinary prose (abstracts, policies, encyclopaedia text) rarely
# matches: it must address the model ("you", imperative + "instructions", a role marker).
# The last argument lists prefilter anchors ("_" = space).
BASE_RULES: tuple[Rule, ...] = (
    # --- override ------------------------------------------------------------------------
    _r(
        "ignore_instructions",
        "override",
        0.95,
        rf"\b{_IGNORE}\b(?:\s+\w+){{0,3}}?\s+{_PRIOR}\b(?:\s+\w+){{0,3}}?\s+{_ORDERS}\b",
        _IGNORE_ANCHORS,
    ),
    _r(
        "ignore_sources",
        "override",
        0.8,
        rf"\b{_IGNORE}\s+(?:all\s+)?(?:the\s+)?(?:other|remaining|retrieved|conflicting|"
        rf"previous|above|provided)\s+(?:documents?|sources?|passages?|results?|context|"
        rf"information|texts?|evidence)\b|\bregardless\s+of\s+(?:the\s+|any\s+)?(?:other|"
        rf"retrieved|provided)\s+(?:documents?|sources?|passages?|context|evidence)\b|"
        rf"\bno\s+matter\s+what\s+(?:the\s+)?(?:other\s+)?(?:sources?|documents?|context|"
        rf"passages?|evidence)\s+(?:says?|states?|shows?)\b",
        _IGNORE_ANCHORS + " regardless no_matter",
    ),
    _r(
        "ignore_what_you_were_told",
        "override",
        0.9,
        r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all|what)\s+(?:that\s+)?"
        r"(?:you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed)|(?:was\s+)?"
        r"(?:said|written|stated)\s+(?:above|before|earlier)|above|before)",
        "ignor disregard forget",
    ),
    _r(
        "do_not_follow",
        "override",
        0.9,
        rf"\b(?:do\s+not|don'?t|stop|no\s+longer)\s+(?:follow\w*|obey\w*|adher\w*\s+to|"
        rf"comply\w*\s+with)(?:\s+[\w']+){{0,3}}?\s+{_ORDERS}\b",
        "follow obey adher comply",
    ),
    _r(
        "ignore_question",
        "override",
        0.8,
        rf"\b{_IGNORE}\s+the\s+(?:user'?s?\s+)?(?:question|query|request)\b",
        _IGNORE_ANCHORS,
    ),
    _r(
        "instructions_changed",
        "override",
        0.85,
        r"\byour\s+(?:instructions?|rules|guidelines|task|orders|directives?)\s+(?:have|has)\s+"
        r"(?:changed|been\s+(?:updated|replaced|changed|revoked))",
        "your",
    ),
    _r(
        "pay_no_attention",
        "override",
        0.85,
        rf"\bpay\s+no\s+attention\s+to\s+(?:\w+\s+){{0,3}}{_ORDERS}\b",
        "attention",
    ),
    _r(
        "instead_follow",
        "override",
        0.8,
        r"\b(?:instead|rather)\b[^.\n]{0,40}\b(?:follow|obey|execute)\s+(?:these|the\s+following|"
        r"my|new)\b",
        "instead rather",
    ),
    _r(
        "new_instructions",
        "override",
        0.85,
        r"\b(?:new|updated|revised|real|actual|true|secret|hidden|important)\s+"
        r"(?:system\s+)?(?:instructions?|directives?|prompt)\s*[:\-]|\b(?:assistant|ai|model|"
        r"llm|chatbot|system|admin|developer)\s+(?:instructions?|directives?|rules|override|"
        r"message|notice|update|alert)\s*:",
        "instruction directive prompt rules override message notice update alert",
    ),
    # other languages (the phrase translated literally; cheap and catches copy-paste attacks)
    _r(
        "ignore_fr",
        "override",
        0.9,
        r"\b(?:ignore[rz]?|oublie[rz]?)\s+(?:toutes\s+)?(?:les|tes|vos)\s+(?:\w+\s+)?"
        r"(?:instructions?|consignes?|directives?|r[eè]gles?)\b|\b(?:ignore[rz]?|oublie[rz]?)\s+"
        r"tout\s+ce\s+qui\s+(?:pr[ée]c[èe]de|a\s+[ée]t[ée]\s+dit)",
        "ignor oubli",
    ),
    _r(
        "ignore_es_pt_it",
        "override",
        0.9,
        r"\b(?:ignora|ignore|olvida|olvide|esqueça|esquece|dimentica)\s+(?:todas\s+|todos\s+|"
        r"tutte\s+)?(?:las|los|as|os|le)\s+(?:\w+\s+)?(?:instrucciones|instruções|istruzioni|"
        r"[oó]rdenes|reglas|regras|regole)\b",
        "ignor olvid esque dimentic",
    ),
    _r(
        "ignore_de",
        "override",
        0.9,
        r"\b(?:ignorier(?:e|en)?|vergiss|vergessen\s+sie)\s+(?:alle\s+)?(?:\w+\s+)?"
        r"(?:anweisungen|instruktionen|regeln|vorgaben|befehle)\b|\bvergiss\s+alles\b",
        "ignorier vergiss vergessen",
    ),
    _r(
        "ignore_nl",
        "override",
        0.9,
        r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:\w+\s+)?(?:instructies|regels)\b",
        "negeer vergeet",
    ),
    _r(
        "ignore_ru",
        "override",
        0.9,
        r"(?:игнорируй|игнорируйте|забудь|забудьте)\s+(?:все\s+)?(?:\w+\s+)?"
        r"(?:инструкции|указания|правила)",
        "игнорир забуд",
    ),
    _r(
        "ignore_zh_ja",
        "override",
        0.9,
        r"(?:忽略|无视|忽视|無視|忘记|忘掉).{0,8}(?:指令|指示|说明|提示|规则)|"
        r"(?:以前|前|上記|これまで)の(?:指示|命令|指令).{0,4}(?:無視|忘れ)",
        "忽略 无视 忽视 無視 忘记 忘掉 忘れ",
    ),
    # --- role tags and chat-template tokens ---------------------------------------------
    _r(
        "chatml",
        "role_tag",
        0.95,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|"
        r"eot_id|start_header_id|end_header_id|begin_of_text)\|>",
        "<|",
    ),
    _r(
        "inst_tags",
        "role_tag",
        0.9,
        r"\[/?INST\]|<<\s*/?SYS\s*>>|\[(?:system|assistant|"
        r"instructions?|developer)\]\s*[(:]",
        "inst] << ]",
    ),
    _r(
        "markdown_role",
        "role_tag",
        0.85,
        r"(?:^|\n)\s*#{2,4}\s*(?:system|instruction|instructions|assistant|user|human|"
        r"response)\s*:?",
        "##",
    ),
    _r(
        "xml_role",
        "role_tag",
        0.85,
        r"</?\s*(?:system|system[_-]?prompt|instructions?|assistant|admin|developer)\s*>",
        "<",
    ),
    _r(
        "turn_marker",
        "role_tag",
        0.6,
        r"(?:^|\n)\s*(?:system|assistant|developer)\s*:\s+\S",
        "system: assistant: developer:",
    ),
    # --- persona / system-prompt imitation ----------------------------------------------
    _r(
        "you_are_now",
        "persona",
        0.85,
        r"\byou\s+are\s+(?:now|no\s+longer|henceforth)\b|\bfrom\s+now\s+on,?\s+(?:you|the\s+"
        r"(?:assistant|model|ai))\b",
        "you_are from_now",
    ),
    _r(
        "you_are_assistant",
        "persona",
        0.7,
        r"\byou\s+are\s+(?:an?|the)\s+(?:helpful\s+|ai\s+|large\s+)*(?:assistant|language\s+"
        r"model|llm|chatbot|ai)\b",
        "you_are",
    ),
    # "developer mode" alone is a console feature (a training-split hard negative); it counts
    # as a signal only as a command (switch_mode below)
    _r(
        "system_prompt_words",
        "persona",
        0.7,
        r"\b(?:system\s+prompt|jailbreak(?:ed)?|do\s+anything\s+now|god\s+mode|dan\s+mode)\b",
        "system_prompt jailbreak anything_now god_mode dan_mode",
    ),
    _r("developer_mode", "cue", 0.35, r"\bdeveloper\s+mode\b", "developer_mode"),
    _r(
        "role_switch",
        "persona",
        0.75,
        r"\b(?:your\s+new\s+(?:role|task|goal|persona|instructions?|objective)|"
        r"(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:were|are)|an?\s+(?:unfiltered|"
        r"unrestricted|evil|malicious)))\b",
        "your_new act_as behave_as respond_as",
    ),
    _r(
        "note_to_ai",
        "persona",
        0.85,
        r"\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|"
        r"llm|language\s+model|chatbot|model|bot)\b|\b(?:dear|hey|attention)\s+(?:ai|assistant|"
        r"chatgpt|llm|language\s+model)\b",
        "note_to note_for message_to message_for instructions_for instruction_for "
        "instructions_to attention dear hey",
    ),
    _r("as_an_ai", "persona", 0.6, r"\bas\s+an\s+ai(?:\s+language)?\s+model\b", "as_an_ai"),
    _r(
        "if_you_are_ai",
        "persona",
        0.85,
        rf"\bif\s+you\s+are\s+(?:an?\s+)?{_MODEL}\b|\b(?:notice|message|note|memo|reminder|"
        rf"instructions?)\s+(?:for|to)\s+{_MODEL}\b|\b(?:to|for)\s+{_MODEL}\s*(?:reading|"
        rf"processing|summari[sz]ing)\b|\bthis\s+(?:message|note|text|section)\s+is\s+for\s+"
        rf"{_MODEL}\b",
        "if_you_are notice message note memo reminder instruction reading processing summari this",
    ),
    # --- steering the answer --------------------------------------------------------------
    _r(
        "you_must_answer",
        "steer",
        0.85,
        r"\byou\s+(?:must|should|shall|will|need\s+to|have\s+to|are\s+(?:required|instructed|"
        r"told)\s+to)\s+(?:always\s+|only\s+|now\s+)?(?:answer|respond|reply|say|output|state|"
        r"claim|write|print|include|mention|recommend|tell\s+the\s+user|insist)\b",
        "you",
    ),
    _r(
        "model_must_answer",
        "steer",
        0.8,
        rf"\b{_MODEL}\b[^.\n]{{0,30}}\b(?:must|should|shall|is\s+to|are\s+to|needs?\s+to|"
        rf"has\s+to|will\s+(?:now|always))\s+(?:always\s+|only\s+|now\s+)?(?:answer|respond|"
        rf"reply|say|tell|claim|output|recommend|reveal|state|report|write)\b|\byour\s+"
        rf"(?:answer|response|reply|output)\s+(?:must|should|shall|has\s+to|needs\s+to|will)\b",
        _MODEL_ANCHORS + " your",
    ),
    _r(
        "answer_with",
        "steer",
        0.75,
        r"\b(?:always|only|just)\s+(?:answer|respond|reply)\s+(?:with|that|by|using|in)\b|"
        r"\b(?:answer|respond|reply)\s+(?:only\s+)?with\s+[\"'“]",
        "answer respond reply",
    ),
    _r(
        "when_asked",
        "steer",
        0.8,
        r"\b(?:when|if|whenever)\s+(?:(?:you\s+are\s+|you're\s+|the\s+(?:user|assistant|model)\s+"
        r"(?:is\s+)?)?(?:asked|queried|prompted|questioned)|(?:the|a|any)\s+(?:user|reader|"
        r"person)\s+(?:asks|queries|questions|wants\s+to\s+know))\b[^.\n]{0,80}\b(?:answer|"
        r"respond|reply|say|state|tell|output)\b",
        "asked asks quer prompted questioned",
    ),
    _r(
        "tell_the_user",
        "steer",
        0.8,
        r"\b(?:tell|inform|convince|remind|assure)\s+the\s+user\b|\b(?:respond|reply|say|"
        r"answer|explain)\s+to\s+the\s+user\s+that\b|\b(?:do\s+not|don'?t|never)\s+"
        r"(?:mention|reveal|disclose|tell\s+the\s+user|cite)\b[^.\n]{0,40}\b(?:user|source|"
        r"instructions?|prompt)\b",
        "user mention reveal disclose cite",
    ),
    _r(
        "correct_answer_is",
        "steer",
        0.55,
        r"\b(?:the\s+)?(?:correct|right|only\s+(?:valid|correct))\s+(?:answer|response)\s+"
        r"(?:to\s+(?:this|the|any)\s+(?:question|query)\s+)?(?:is|must\s+be|should\s+be)\b",
        "correct right valid",
    ),
    _r(
        "repeat_after",
        "steer",
        0.8,
        r"\b(?:repeat\s+after\s+me|print\s+(?:the\s+following|exactly)|output\s+(?:the\s+"
        r"following|exactly|only)|say\s+exactly)\b",
        "repeat print output say",
    ),
    # --- weak cues: none flags alone; three kinds together (noisy-OR) reach the threshold.
    # They catch phrasings no rule above anticipates, at the price of a few flags on text that
    # talks *about* chatbots.
    _r(
        "cue_addressee",
        "cue",
        0.35,
        r"\b(?:assistants?|chatbots?|language\s+models?|llms?|ai\s+(?:models?|systems?|agents?|"
        r"tools?)|automated\s+(?:tools?|readers?|systems?|agents?)|summari[sz]ers?|you,?\s+the\s+"
        r"(?:model|ai|assistant|reader)|whoever\s+(?:processes|reads)|operator)\b",
        "assistant chatbot language_model llm ai_ automated summari you whoever operator",
    ),
    _r(
        "cue_your_output",
        "cue",
        0.4,
        r"\b(?:your|the\s+assistant'?s)\s+(?:answer|response|reply|summary|output)s?\b|"
        r"\b(?:in|to)\s+(?:every|each|any|all)\s+(?:answer|response|reply|summary|output)s?\b|"
        r"\b(?:begin|start|end)\s+your\s+\w+|\brespond\s+as\s+(?:though|if)\b",
        "your assistant every each any all begin start end respond",
    ),
    _r(
        "cue_imperative",
        "cue",
        0.3,
        r"(?:^|[.!?:]\s+|\n)(?:please\s+|kindly\s+)?(?:ignore|disregard|forget|pretend|act\s+as|"
        r"respond|reply|answer|say|tell|print|output|append|insert|omit|skip|change|rate|treat|"
        r"begin\s+your|never|always|do\s+not|don't|make\s+sure|ensure|remember|quote|reveal|"
        r"state|claim|conclude|promote|comply|do\s+what)\b",
        "ignor disregard forget pretend act respond reply answer say tell print output append "
        "insert omit skip change rate treat begin never always do_not don't make_sure ensure "
        "remember quote reveal state claim conclude promote comply do_what",
    ),
    _r(
        "cue_control",
        "cue",
        0.35,
        r"\b(?:instructions?|directives?|system\s+(?:message|notice|prompt)|take\s+precedence|"
        r"top\s+priority|authoritative|override|retrieved\s+(?:passages?|documents?)|other\s+"
        r"(?:retrieved\s+)?(?:documents?|passages?|sources?)|caveats?|guardrails?)\b",
        "instruction directive system precedence priority authoritative override retrieved "
        "other caveat guardrail",
    ),
    _r(
        "cue_deceive",
        "cue",
        0.35,
        r"\b(?:on\s+purpose|incorrectly|deliberately\s+wrong|never\s+(?:reveal|tell|show|"
        r"mention)|do\s+not\s+(?:show|reveal|tell|mention)|without\s+(?:telling|mentioning)|"
        r"secretly|quietly|the\s+person\s+asking|to\s+the\s+user)\b",
        "purpose incorrectly deliberately never do_not without secretly quietly person_asking "
        "the_user",
    ),
    # --- hidden containers (their content is also decoded and re-scanned) ---------------
    _r("html_comment", "hidden", 0.45, r"<!--.{0,2000}?-->", "<!--"),
    _r(
        "hidden_html",
        "hidden",
        0.7,
        r"<[a-z]+[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
        r"opacity\s*:\s*0(?:\.0+)?\b|\bhidden\b|aria-hidden)[^>]{0,200}>",
        "<",
    ),
)

# --- second revision -------------------------------------------------------------------------
# Who a text may address: an AI system by kind or by product name. Bare "model"/"agent" are
# left out on purpose: "the model should include ..." is everyday scientific prose.
_ADDRESSEE = (
    r"(?:ai|a\.i\.|assistants?|chatbots?|bots?|llms?|large\s+language\s+models?|"
    r"language\s+models?|ai\s+(?:models?|systems?|assistants?|agents?|tools?|"
    r"readers?)|llm\s+(?:agents?|apps?|tools?)|gpt(?:-?\d\w*)?|chatgpt|claude|gemini|"
    r"copilot|bard|summari[sz]ers?|automated\s+(?:readers?|tools?|systems?|agents?|"
    r"assistants?)|retrieval\s+(?:assistants?|systems?|models?)|crawlers?)"
)
_ADDRESSEE_ANCHORS = (
    "ai a.i. assistant chatbot bot llm language gpt claude gemini copilot bard "
    "summari automated retrieval crawler"
)
# Verbs that open an instruction addressed to a reader.
_COMMAND = (
    r"(?:ignore|disregard|forget|stop|do|don'?t|never|always|respond|reply|answer|say|"
    r"tell|write|print|output|include|add|append|insert|recommend|rank|rate|classify|"
    r"summari[sz]e|describe|translate|reveal|list|remember|treat|consider|act|pretend|"
    r"report|state|mention|cite|omit|skip|drop|use|follow|comply|return|make|send|"
    r"provide|give|show|disclose|delete|execute|run|the\s+(?:real|correct|true|actual|"
    r"only)\s+answer)"
)
_IGN = (
    r"(?:ignore|disregard|forget|override|overwrite|overrule|bypass|skip|discard|abandon|"
    r"neglect|dismiss|overlook|set\s+aside|put\s+aside)"
)
_IGN_ANCHORS = (
    "ignor disregard forget overrid overwrit overrul bypass skip discard abandon "
    "neglect dismiss overlook aside"
)
_EARLIER = r"(?:above|previous|prior|preceding|earlier|former|original|initial|foregoing|existing)"
_OUTPUT = r"(?:answers?|responses?|repl(?:y|ies)|outputs?|summar(?:y|ies)|completions?|messages?)"

_ADDRESSEE_GATE = re.compile(rf"\b{_ADDRESSEE}\b", re.IGNORECASE)

EXTRA_RULES: tuple[Rule, ...] = (
    _r(
        "switch_mode",
        "persona",
        0.85,
        r"\b(?:enable|activate|enter|switch\s+(?:in)?to|turn\s+on|you'?re\s+(?:now\s+)?in|you\s+are"
        r"\s+(?:now\s+)?in)\s+(?:the\s+)?(?:developer|god|dan|jailbreak|unrestricted|maintenance|"
        r"debug|admin|root|unfiltered)\s+mode\b",
        "mode",
    ),
    # --- override: an imperative that voids what came before -----------------------------
    _r(
        "ignore_earlier_anything",
        "override",
        0.75,
        rf"\b{_IGN}\s+(?:(?:all|any|everything|each)\s+(?:of\s+)?)?(?:(?:your|the|these|those|"
        rf"this)\s+)?{_EARLIER}\b|\b{_IGN}\s+(?:your|the\s+system'?s?)\s+(?:\w+\s+)?"
        rf"(?:context|prompt|task|training|programming|guidance|polic(?:y|ies)|configuration|"
        rf"setup|persona|conversation|memory)\b|\b{_IGN}\s+(?:everything|anything|all)\s+"
        rf"(?:above|before|else|so\s+far)\b",
        _IGN_ANCHORS,
    ),
    _r(
        "ignore_what_sources_say",
        "override",
        0.8,
        rf"\b{_IGN}\s+(?:what|whatever|anything)\s+(?:the\s+|any\s+)?(?:other\s+|remaining\s+|"
        rf"retrieved\s+|provided\s+|previous\s+)?(?:documents?|sources?|passages?|context|"
        rf"results?|texts?|pages?|articles?|evidence)\s+(?:says?|claims?|states?|tells?|shows?|"
        rf"said|claimed|suggests?)\b",
        _IGN_ANCHORS,
    ),
    _r(
        "ignore_what_you_received",
        "override",
        0.8,
        rf"\b{_IGN}\s+(?:whatever|any|all|everything|anything|the)\s+(?:[\w']+\s+){{0,2}}?"
        rf"(?:(?:that\s+)?you\s+(?:(?:have|had|'ve)\s+)?(?:received|were\s+given|got|been\s+"
        rf"given|were\s+told|learned)|(?:that\s+)?(?:was|were|has\s+been)\s+(?:given|said|"
        rf"written|provided)\s+(?:to\s+you|before|earlier|above))\b",
        _IGN_ANCHORS,
    ),
    _r(
        "pretend_context",
        "override",
        0.7,
        r"(?:^|[.!?:;]\s+|\n|[(\[]\s*)(?:please\s+)?(?:pretend|act\s+as\s+(?:if|though)|"
        r"assume|imagine|behave\s+as\s+(?:if|though))\b[^.\n]{0,60}\b(?:documents?|sources?|"
        r"passages?|context|instructions?|rules|guidelines|system\s+prompt|conversation|"
        r"restrictions?|filters?)\b",
        "pretend act_as assume imagine behave",
    ),
    _r(
        "new_task",
        "override",
        0.85,
        r"\b(?:new|real|actual|true|updated|revised|primary)\s+(?:goal|task|objective|mission|"
        r"role|job|purpose|priority|instructions?|directives?|orders?)\s*[:\-\u2013\u2014]|"
        r"\b(?:begin|start)\s+(?:a\s+|the\s+)?new\s+(?:prompt|instructions?|session|"
        r"conversation|task|context)\b|\bend\s+of\s+(?:the\s+)?(?:document|context|prompt|"
        r"input|text|data|file)\b[^\n]{0,40}\b(?:instructions?|system|assistant|respond|reply|"
        r"answer|you)\b",
        "goal task objective mission role job purpose priority instruction "
        "directive order new end_of",
    ),
    _r(
        "rules_suspended",
        "override",
        0.85,
        r"\byour\s+(?:\w+\s+)?(?:guidelines|rules|instructions|restrictions|filters?|polic(?:y|"
        r"ies)|safety\s+\w+|constraints|limitations|programming|guardrails|task|orders)\s+"
        r"(?:are|is|have\s+been|has\s+been|were|was)\s+(?:now\s+|hereby\s+)?(?:suspended|"
        r"disabled|lifted|removed|void|revoked|cancell?ed|overridden|replaced|no\s+longer\s+"
        r"(?:valid|active|apply|applicable|in\s+effect))\b",
        "your",
    ),
    _r(
        "overrides_earlier",
        "override",
        0.75,
        rf"\b(?:this|the\s+following|these\s+(?:lines?|words|instructions?))\s+(?:text\s+|"
        rf"message\s+|note\s+|instruction\s+)?(?:overrides?|supersedes?|replaces?|takes?\s+"
        rf"precedence\s+over|cancels?)\s+(?:all\s+|any\s+|every\s+)?(?:the\s+)?(?:{_EARLIER}\s+|"
        rf"other\s+)?(?:context|instructions?|documents?|sources?|messages?|prompts?|rules|"
        rf"guidelines|information|passages?|everything)\b",
        "overrid supersed replac precedence cancel",
    ),
    # --- persona / addressing the model ----------------------------------------------------
    _r(
        "vocative_model",
        "persona",
        0.75,
        rf"(?:^|[.!?;]\s+|\n|[(\[<]\s*|-->\s*|<!--\s*)(?:(?:hey|hi|hello|dear|attention|"
        rf"note|psst|ok|okay|listen)\s*,?\s+)?(?:(?:the|any|all|every|each)\s+)?{_ADDRESSEE}"
        rf"\s*[,:!]\s*(?:[^.\n]{{0,60}}?\b(?:you|your)\b|(?:please\s+)?{_COMMAND}\b)",
        _ADDRESSEE_ANCHORS,
        _ADDRESSEE_GATE,
    ),
    _r(
        "addressee_processing",
        "persona",
        0.8,
        rf"\b(?:to|for)\s+(?:the\s+|any\s+|all\s+|every\s+|each\s+)?{_ADDRESSEE}\s+(?:that\s+"
        rf"(?:is\s+|are\s+)?)?(?:reading|processing|parsing|summari[sz]ing|visiting|crawling|"
        rf"indexing|analy[sz]ing|ingesting|scanning|reads?|processe?s?|answering|using)\b|"
        rf"\bif\s+(?:an?\s+|any\s+)?{_ADDRESSEE}\s+(?:is\s+|are\s+)?(?:reading|processing|"
        rf"parsing|summari[sz]ing|sees?|reads?)\b|\b{_ADDRESSEE}\s+(?:reading|processing|"
        rf"parsing|summari[sz]ing|visiting|crawling)\s+this\b",
        _ADDRESSEE_ANCHORS,
        _ADDRESSEE_GATE,
    ),
    _r(
        "instructions_for_model",
        "persona",
        0.8,
        rf"\b(?:instructions?|directives?|prompt|orders|rules|notes?|message|memo)\s+(?:\(\w+\)"
        rf"\s+)?(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{_ADDRESSEE}\b|\b(?:{_ADDRESSEE}|model)"
        rf"\s+(?:instructions?|directives?|orders)\s*(?:\([^)]{{0,30}}\)\s*)?[:\-]",
        "instruction directive prompt order rules note message memo",
    ),
    _r(
        "authority_claim",
        "persona",
        0.75,
        r"\b(?:this\s+is|i\s+am|i'm|speaking\s+as|as)\s+(?:the|your)\s+(?:system\s+)?"
        r"(?:administrator|admin|developer|operator|owner|creator|supervisor)\b[^.\n]{0,80}\b"
        r"(?:you|your|instruct|authori[sz]\w*|grant\w*|overrid\w*|bypass|reveal|comply)\b|"
        r"\bi\s+(?:hereby\s+)?(?:instruct|order|command|direct|authori[sz]e|require)\s+you\s+to\b",
        "administrator admin developer operator owner creator supervisor instruct order command "
        "direct authori require",
    ),
    # --- steering the answer ---------------------------------------------------------------
    _r(
        "model_obligation",
        "steer",
        0.5,
        rf"\b{_ADDRESSEE}\b(?:\s+[\w']+){{0,4}}?\s+(?:must|should|shall|needs?\s+to|has\s+to|"
        rf"have\s+to|(?:is|are)\s+(?:required|instructed|expected|told)\s+to)\s+(?:now\s+|"
        rf"always\s+|only\s+|never\s+|not\s+)*(?:answer|respond|reply|say|tell|state|claim|"
        rf"output|recommend|reveal|report|write|include|mention|classify|rank|rate|append|cite|"
        rf"describe|treat|ignore|disclose|summari[sz]e|translate|follow|obey|comply|conclude)\b",
        _ADDRESSEE_ANCHORS,
        _ADDRESSEE_GATE,
    ),
    _r(
        "shape_the_output",
        "steer",
        0.8,
        rf"\byour\s+{_OUTPUT}\s+(?:should|must|shall|has\s+to|needs\s+to|will|is\s+to)\s+"
        rf"(?:always\s+|only\s+)?(?:begin|start|end|open|close|include|contain|mention|state|say|"
        rf"read|recommend|claim|cite|be)\b|\b(?:copy|paste|insert|include|add|append|put|place|"
        rf"repeat|embed)\b[^.\n]{{0,60}}\b(?:in|into|to|at\s+the\s+(?:start|end|beginning|top|"
        rf"bottom)\s+of)\s+(?:your|every|each|all|any)\s+{_OUTPUT}|\b(?:replace|change|rewrite|"
        rf"modify|alter|translate|format)\s+(?:your|the\s+assistant'?s?)\s+{_OUTPUT}",
        "your every each all any assistant",
    ),
    _r(
        "regardless_of_user",
        "steer",
        0.7,
        r"\b(?:regardless\s+of|no\s+matter|irrespective\s+of)\s+(?:what\s+)?(?:the\s+)?"
        r"(?:user|question|query|request|person\s+asking|prompt|instructions?)\b|\bno\s+matter\s+"
        r"what\s+(?:the\s+)?(?:user\s+)?(?:asks?|says?|wants?)\b",
        "regardless matter irrespective",
    ),
    _r(
        "request_void",
        "override",
        0.75,
        r"\b(?:the\s+)?(?:user'?s?|original)\s+(?:request|question|query|prompt|task)\s+(?:is|has\s+"
        r"been|was)\s+(?:void|cancell?ed|irrelevant|invalid|revoked|replaced|withdrawn)\b",
        "request question query prompt task",
    ),
    _r(
        "leak_prompt",
        "steer",
        0.8,
        r"\b(?:reveal|print|output|show|display|repeat|leak|dump|disclose|share|send|list|tell\s+me|"
        r"give\s+me)\s+(?:me\s+)?(?:your|the\s+(?:full\s+|entire\s+|whole\s+)?(?:system|hidden|"
        r"initial|original|secret))\s+(?:\w+\s+){0,2}?(?:prompt|instructions|configuration|config|"
        r"rules|guidelines|conversation\s+history|chat\s+history|memory|messages|api\s+keys?|"
        r"passwords?|credentials|secrets?|context)\b|\b(?:reveal|output|print|dump|leak|send)\s+"
        r"(?:me\s+)?the\s+(?:admin|administrator|root|user'?s?)\s+(?:password|credentials|"
        r"api\s+key|token)s?\b",
        "reveal print output show display repeat leak dump disclose share send list tell give",
    ),
    _r(
        "secrecy",
        "steer",
        0.75,
        r"\b(?:do\s+not|don'?t|never|must\s+not|should\s+not)\s+(?:tell|inform|reveal\s+to|"
        r"disclose\s+to|show|let)\s+(?:the\s+)?(?:user|reader|person\s+asking|human|customer)s?"
        r"\b|\bwithout\s+(?:telling|informing|alerting|notifying)\s+the\s+(?:user|reader|human|"
        r"person)\b",
        "not don't never without",
    ),
    # --- role markers ----------------------------------------------------------------------
    _r(
        "bracket_role",
        "role_tag",
        0.85,
        r"\[\[\s*(?:system|assistant|user|developer|admin|instructions?)\s*\]\]|={2,}\s*"
        r"(?:system|assistant|user|developer|admin|instructions?)\s*={2,}|<\|?\s*(?:im_start|"
        r"im_end|im_sep)\s*\|?>|\[(?:system|assistant|admin|developer)\]\(#|\{\{\s*(?:system|"
        r"assistant)\s*\}\}",
        "[[ == im_ ]( {{",
    ),
    _r(
        "turn_then_command",
        "role_tag",
        0.75,
        rf"(?:^|[.!?]\s+|\n)\s*(?:system|assistant|developer|admin|user)\s*:\s*(?:[^.\n]{{0,40}}?"
        rf"\b(?:you|your)\b|(?:please\s+)?{_COMMAND}\b|(?:sure|ok|okay|of\s+course|i\s+will|"
        rf"i'll|i\s+have\s+been)\b)",
        "system: assistant: developer: admin: user:",
    ),
    # --- weak cues (flag only together) ----------------------------------------------------
    _r(
        "cue_self_reference",
        "cue",
        0.3,
        r"\bthis\s+(?:page|document|passage|text|site|website|paragraph|snippet|email|message|"
        r"listing|review|note|content)\b(?!\s+(?:describes|reports|presents|reviews|summari[sz]es|"
        r"examines|discusses|shows|provides))",
        "this",
    ),
    _r(
        "cue_override_verb",
        "cue",
        0.3,
        rf"(?:^|[.!?:;]\s+|\n)(?:please\s+|kindly\s+|now\s+)?{_IGN}\b",
        _IGN_ANCHORS,
    ),
    _r(
        "cue_quoted_payload",
        "cue",
        0.3,
        r"\b(?:say|answer|respond|reply|output|print|write|state|with)\s*:?\s*[\"'\u201c\u2018]"
        r"[^\"'\u201d\u2019\n]{1,60}[\"'\u201d\u2019]",
        "say answer respond reply output print write state with",
    ),
    _r(
        "cue_named_model",
        "cue",
        0.35,
        r"\b(?:chatgpt|claude|gemini|copilot|bard|gpt-?\d)\b",
        "chatgpt claude gemini copilot bard gpt",
    ),
)

RULES: tuple[Rule, ...] = BASE_RULES + EXTRA_RULES
