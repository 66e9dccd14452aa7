"""Reading the LLM verifier's answers: one verdict per check, each against its own threshold.

The verifier asks for one JSON object per check, keyed by the check's name::

    {"INSTRUCTION": {"flagged": true, "confidence": 0.9, "reason": "...", "evidence": "..."},
     "FACTUAL": {"flagged": false, "confidence": 0.7, "reason": "..."}}

Models also answer with a list of ``{"check": ..., ...}`` entries, or with one verdict for
everything (``{"flagged": .., "label": "FACTUAL", ...}``, the older single-verdict shape);
:func:`read_verdicts` understands all three. A check the answer says nothing about is a
``PARSE_ERROR`` for that check (flagged unless ``fail_open``): fail closed, per check, so a
lenient verdict on one check never stands in for another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragsel.types import Verdict

_TRUE = {"true", "yes", "y", "1", "flag", "flagged", "reject"}
_FALSE = {"false", "no", "n", "0", "ok", "accept", "keep"}

_ONE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flagged": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
        "evidence": {"type": "string"},
    },
    "required": ["flagged", "confidence", "reason"],
}


def verdicts_schema(checks: Sequence[str]) -> dict[str, Any]:
    """JSON schema of an answer with one verdict per check (keys: upper-case check names)."""
    return {
        "type": "object",
        "properties": {c: _ONE for c in checks},
        "required": list(checks),
    }


class VerdictReader:
    """Turns one parsed answer into one :class:`Verdict` per asked check.

    ``thresholds``: check -> the confidence a flag must exceed (strictly) to count.
    """

    def __init__(self, stage: str, thresholds: Mapping[str, float], fail_open: bool) -> None:
        self.stage, self.thresholds, self.fail_open = stage, thresholds, fail_open

    def parse_error(self, chunk_id: str, check: str, why: str, text: str) -> Verdict:
        flagged = not self.fail_open
        return Verdict(
            chunk_id,
            self.stage,
            flagged,
            "PARSE_ERROR",
            1.0,
            f"unusable verifier output for {check} ({why}); "
            + ("dropped: fail closed" if flagged else "kept: fail_open"),
            text.strip()[:200],
        )

    def read(self, chunk_id: str, data: Any, checks: Sequence[str], text: str) -> list[Verdict]:
        """One verdict per check in ``checks`` from the answer ``data`` (parsed JSON)."""
        if isinstance(data, list):
            if len(data) == 1 and isinstance(data[0], dict) and not _entry_check(data[0], checks):
                data = data[0]
            else:
                data = _keyed_from_list(data, checks)
        if not isinstance(data, dict):
            why = f"expected a JSON object, got {type(data).__name__}"
            return [self.parse_error(chunk_id, checks[0], why, text)]
        keyed = _keyed(data, checks)
        if keyed:
            out = []
            for check in checks:
                entry = keyed.get(check)
                if entry is None:
                    why = f"no verdict for {check} in the answer"
                    out.append(self.parse_error(chunk_id, check, why, text))
                else:
                    out.append(self._one(chunk_id, check, entry, text, checks))
            return out
        return self._single(chunk_id, data, checks, text)

    def _single(
        self, chunk_id: str, data: dict[str, Any], checks: Sequence[str], text: str
    ) -> list[Verdict]:
        """One verdict for everything: it judges the check its label names (the first asked
        when the label is unknown); a clean answer clears every check."""
        label = str(data.get("label") or "").strip().upper()
        first = self._one(chunk_id, label if label in checks else checks[0], data, text, checks)
        if first.label == "PARSE_ERROR":
            return [first]
        raw = _flag_of(data, label, checks)
        if raw:
            return [first] + [
                Verdict(chunk_id, self.stage, False, c, first.confidence, "not judged separately")
                for c in checks
                if c != first.label
            ]
        return [self._one(chunk_id, c, data, text, checks) for c in checks]

    def _one(
        self, chunk_id: str, check: str, entry: Any, text: str, checks: Sequence[str]
    ) -> Verdict:
        if isinstance(entry, bool):
            entry = {"flagged": entry}
        if not isinstance(entry, dict):
            why = f"the {check} verdict is a {type(entry).__name__}, not an object"
            return self.parse_error(chunk_id, check, why, text)
        label = str(entry.get("label") or "").strip().upper()
        raw = _flag_of(entry, label, checks)
        if raw is None:
            return self.parse_error(chunk_id, check, "no 'flagged' true/false in the answer", text)
        try:
            conf = float(entry.get("confidence", 1.0))
        except (TypeError, ValueError):
            why = f"confidence {entry.get('confidence')!r} is not a number"
            return self.parse_error(chunk_id, check, why, text)
        if conf != conf:
            return self.parse_error(chunk_id, check, "confidence is NaN", text)
        if 1.0 < conf <= 100.0:  # a percentage
            conf /= 100.0
        conf = min(max(conf, 0.0), 1.0)
        reason = str(entry.get("reason") or "").strip()[:500]
        evidence = str(entry.get("evidence") or "").strip()[:300]
        threshold = self.thresholds[check]
        flagged = raw and conf > threshold
        if raw and not flagged:
            reason = f"not flagged: confidence {conf:.2f} <= threshold {threshold:.2f}; {reason}"
        return Verdict(chunk_id, self.stage, flagged, check, conf, reason, evidence)


def _flag_of(entry: Mapping[str, Any], label: str, checks: Sequence[str]) -> bool | None:
    raw = entry.get("flagged", entry.get("flag"))
    if isinstance(raw, str):
        low = raw.strip().lower()
        raw = True if low in _TRUE else False if low in _FALSE else None
    if isinstance(raw, bool):
        return raw
    if label == "OK":
        return False
    if label in checks:  # no usable "flagged" but a clear label
        return True
    return None


def _entry_check(entry: Mapping[str, Any], checks: Sequence[str]) -> str | None:
    name = str(entry.get("check") or entry.get("name") or "").strip().upper()
    return name if name in checks else None


def _keyed_from_list(data: list[Any], checks: Sequence[str]) -> dict[str, Any] | list[Any]:
    out = {}
    for entry in data:
        if isinstance(entry, dict) and (name := _entry_check(entry, checks)):
            out[name] = entry
    return out or data


def _keyed(data: Mapping[str, Any], checks: Sequence[str]) -> dict[str, Any]:
    """Entries keyed by check name (any case; also under "verdicts"/"checks")."""
    for wrap in ("verdicts", "checks", "results"):
        inner = data.get(wrap)
        if isinstance(inner, list):
            inner = _keyed_from_list(inner, checks)
        if isinstance(inner, dict):
            data = inner
            break
    return {k.strip().upper(): v for k, v in data.items() if k.strip().upper() in checks}
