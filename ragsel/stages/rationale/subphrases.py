"""Query sub-phrases as rationales: the query plus its named entities, quoted phrases and
clauses.

Why these three: a multi-hop question names each thing it needs evidence about ("Which
magazine was started first, *Arthur's Magazine* or *First for Women*?"); each name is a
search strategy of its own, so pairing gives every entity its best chunk even when the pooled
query similarity ranks one of them low. Clauses do the same for compound questions ("who can
see X, and how long is it kept"). A short single-clause question with no names yields only the
query itself: sub-phrases cannot invent facets that the question does not state (that is what
the LLM source or the PRF source is for). Pair it with ``rationale_selector``'s ``min_pair_z``
so a sub-phrase that matches every chunk about equally (a document name repeated
everywhere) does not pull in an arbitrary chunk.
"""

from __future__ import annotations

import re

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Query, Rationale, Rationales

STOPWORDS = frozenset(
    """
a an the of in on at to for from by with about as is are was were be been being do does did
what which who whom whose when where why how that this these those it its i you he she they we
my your our their me us them and or but if then than so not no can could would should will
shall may might must has have had there here into over under between during after before also
any all some such both either neither each other another same s t one ones much many more most
""".split()
)
_QUOTED = re.compile(r'"([^"]{2,}?)"|\u201c([^\u201d]{2,}?)\u201d')
_TOKEN = re.compile(r"[A-Za-z0-9][\w'&.-]*")
_CLAUSE_SPLIT = re.compile(
    r"[;:,?!()]|\s(?:and|or|but|while|whereas|which|that|who|whom|where|when|if|because|"
    r"although|though|than)\s",
    re.IGNORECASE,
)
_CONNECTORS = frozenset({"of", "the", "de", "and", "&", "for", "von", "van", "la", "le", "du"})


def content_words(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS and len(t) > 1]


def _key(text: str) -> str:
    # tokens keep inner dots ("U.S."), so strip a sentence's final one: a claim and the same
    # claim without its full stop are one rationale, not two
    return " ".join(w.rstrip(".'-&") for w in content_words(text))


def named_spans(text: str) -> list[str]:
    """Runs of capitalised words (connectors like 'of'/'the' allowed inside; a run breaks at
    punctuation), skipping a lone capitalised word at the start of a sentence (usually just
    grammar) and leading stopwords ("Were", "The"). "A B and C D" also yields "A B", "C D"."""
    tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    out: list[str] = []
    run: list[tuple[str, int]] = []

    def flush() -> None:
        while run and (run[-1][0].lower() in _CONNECTORS or run[-1][0].lower() in STOPWORDS):
            run.pop()
        while run and run[0][0].lower() in STOPWORDS:
            run.pop(0)
        if run:
            first_pos = run[0][1]
            before = text[:first_pos].rstrip(" \t\"'\u201c")
            sentence_start = not before or before[-1] in ".?!;:"
            if not (len(run) == 1 and sentence_start):
                span = text[run[0][1] : run[-1][1] + len(run[-1][0])]
                parts = [p.strip() for p in re.split(r"\s(?:and|&)\s", span)]
                if len(parts) > 1 and all(len(p.split()) >= 2 for p in parts):
                    out.extend(parts)
                else:
                    out.append(span)
        run.clear()

    prev_end = 0
    for tok, pos in tokens:
        if run and text[prev_end:pos].strip():  # punctuation between tokens ends a run
            flush()
        cap = tok[0].isupper() or (tok[0].isdigit() and bool(run))
        if cap or (run and tok.lower() in _CONNECTORS):
            run.append((tok, pos))
        else:
            flush()
        prev_end = pos + len(tok)
    flush()
    return out


def extract_subphrases(
    text: str,
    *,
    min_clause_words: int = 2,
    entities: bool = True,
    quotes: bool = True,
    clauses: bool = True,
) -> list[tuple[str, str]]:
    """``[(kind, phrase), ...]`` in a stable order: quoted phrases, entities, clauses;
    duplicates (case-insensitive) and phrases equal to the whole query removed."""
    found: list[tuple[str, str]] = []
    if quotes:
        for m in _QUOTED.finditer(text):
            found.append(("quote", (m.group(1) or m.group(2)).strip()))
    if entities:
        found += [("entity", e) for e in named_spans(text)]
    if clauses:
        for part in _CLAUSE_SPLIT.split(text):
            part = part.strip(" \t\n'\"\u201c\u201d.")
            if len(content_words(part)) >= min_clause_words:
                found.append(("clause", part))
    whole = _key(text)
    seen: set[str] = set()
    out = []
    for kind, phrase in found:
        key = _key(phrase)
        if not key or key in seen or key == whole:
            continue
        seen.add(key)
        out.append((kind, phrase))
    return out


@register_stage("subphrase_rationales")
class SubphraseRationales(Stage):
    """Rationales = the query and its sub-phrases (quoted phrases, named entities, clauses).

    Example: for "Were Scott Derrickson and Ed Wood of the same nationality?" the rationales
    are the question, "Scott Derrickson" and "Ed Wood". In YAML:
    ``{type: subphrase_rationales, max_phrases: 6}``.
    """

    config: Config

    class Config(StageConfig):
        include_query: bool = True  # the whole query is always the first rationale
        entities: bool = True
        quotes: bool = True
        clauses: bool = True
        min_clause_words: int = Field(2, ge=1, description="content words a clause needs")
        max_phrases: int = Field(6, ge=0, description="sub-phrases kept (query not counted)")

    blocking = False

    def _run(self, query: Query) -> Rationales:
        c = self.config
        phrases = extract_subphrases(
            query.text,
            min_clause_words=c.min_clause_words,
            entities=c.entities,
            quotes=c.quotes,
            clauses=c.clauses,
        )
        phrases = phrases[: c.max_phrases]
        items = []
        if c.include_query or not phrases:
            items.append(Rationale(query.text.strip(), label="query", source="subphrase"))
        for i, (kind, phrase) in enumerate(phrases, 1):
            items.append(Rationale(phrase, label=f"{kind}{i}", source="subphrase"))
        return Rationales(
            tuple(items),
            source="subphrase",
            notes={
                "n_subphrases": len(phrases),
                "kinds": [k for k, _ in phrases],
                **({"only_query": True} if not phrases else {}),
            },
        )
