"""The first revision of the prompt-injection rule table (``BASE_RULES``) and the pattern
fragments it is built from. The table is assembled in :mod:`._injection_rules`.
"""

from __future__ import annotations

from ragsel.stages.verify._injection_rule import Rule, _r

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
