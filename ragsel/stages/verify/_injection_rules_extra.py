"""The second revision of the prompt-injection rule table (``EXTRA_RULES``: addressee,
command and output fragments, and the rules built from them). The table is assembled in
:mod:`._injection_rules`.
"""

from __future__ import annotations

import re

from ragsel.stages.verify._injection_rule import Rule, _r

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
