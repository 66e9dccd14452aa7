"""The :class:`Rule` record of the prompt-injection rule table and ``_r``, the compact
constructor the rule modules use (:mod:`._injection_rules_base`, :mod:`._injection_rules_extra`).
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
