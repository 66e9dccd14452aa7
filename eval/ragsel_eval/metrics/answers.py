"""Answer metrics with SQuAD's normalisation (lower-case, drop punctuation, articles and extra
whitespace): exact match and token F1, each the best over the gold answers.

>>> exact_match("The Eiffel Tower!", ["eiffel tower"])
1.0
>>> token_f1("in Paris, France", ["Paris"])
0.5
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    if not golds:
        return float("nan")
    n = normalize_answer(prediction)
    return float(any(n == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    if not golds:
        return float("nan")
    return max(_f1(prediction, g) for g in golds)


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1 when a normalised gold answer occurs in the normalised prediction (accuracy for
    long-form answers)."""
    if not golds:
        return float("nan")
    n = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in n for g in golds if normalize_answer(g)))
