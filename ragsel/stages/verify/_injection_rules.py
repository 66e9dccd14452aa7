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

The table lives in three modules: :mod:`._injection_rule` (the :class:`Rule` record and its
constructor), :mod:`._injection_rules_base` (``BASE_RULES``) and :mod:`._injection_rules_extra`
(``EXTRA_RULES``); this module joins them into ``RULES``.
"""

from __future__ import annotations

from ragsel.stages.verify._injection_rule import Rule
from ragsel.stages.verify._injection_rules_base import BASE_RULES
from ragsel.stages.verify._injection_rules_extra import EXTRA_RULES

__all__ = ["BASE_RULES", "EXTRA_RULES", "RULES", "Rule"]

RULES: tuple[Rule, ...] = BASE_RULES + EXTRA_RULES
