"""Sections of the eval report shared by ``summary.md`` and ``report.html``: pooled poisoning
detection beside the per-question means, and ragas results with why values are unmeasured."""

from __future__ import annotations

import html
import math
from typing import Any


def metric_label(metric: str) -> str:
    """Table header of a metric: ``ranked_*`` are marked as the ranking before the cut."""
    return (
        f"{metric[len('ranked_') :]} (ranking before cut)"
        if metric.startswith("ranked_")
        else metric
    )


def table_notes(report: Any) -> list[str]:
    """The sentences under the comparison table: how failures count, what is marked."""
    miss = any(s["queries"].get("failed_as_miss", True) for s in report.summary.values())
    notes = [
        "Failed queries count as misses (0) in quality metrics and evidence size."
        if miss
        else "Failed queries are excluded from means (--exclude-failed).",
        "NaN values (unmeasurable for a query) are excluded; † marks a cell whose n differs "
        "from another row's, so those rows cover different queries.",
    ]
    before = {
        p: sorted({r.get("ranked_before") for r in recs if r.get("ranked_before")})
        for p, recs in report.records.items()
    }
    if any(before.values()):
        where = "; ".join(f"`{p}`: {', '.join(st)}" for p, st in before.items() if st) + ")"
        notes.append(
            "`... (ranking before cut)`: ranking metrics of the ranked list that entered the "
            f"first cutoff/selector stage ({where}; the unmarked ones measure the final "
            "selection."
        )
    return notes


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}"


def detection_rows(report: Any) -> list[list[str]]:
    """Per pipeline: per-question mean P/R/F1 and the pooled (micro) P/R/F1. A question whose
    guard flagged nothing has per-question precision 0; pooling counts flags over all
    questions, so both views are shown."""
    rows = []
    for p in report.pipelines:
        s = report.summary[p]
        micro = s.get("detection_micro")
        if not micro:
            continue
        per_q = [s.get(f"detection_{m}", {}).get("mean") for m in ("precision", "recall", "f1")]
        pooled = [micro.get(m) for m in ("precision", "recall", "f1")]
        rows.append([p, *map(_fmt, per_q), *map(_fmt, pooled)])
    return rows


_DET_HEADER = [
    "pipeline",
    "precision (per-question mean)",
    "recall (per-question mean)",
    "F1 (per-question mean)",
    "precision (pooled)",
    "recall (pooled)",
    "F1 (pooled)",
]
_DET_NOTE = (
    "Per-question means count a question with no flags as precision 0; pooled figures sum "
    "flags and poisoned passages over all questions."
)


def detection_lines(report: Any) -> list[str]:
    rows = detection_rows(report)
    if not rows:
        return []
    out = ["", "## Poisoning detection", "", _DET_NOTE, ""]
    out += ["| " + " | ".join(_DET_HEADER) + " |", "|" + "---|" * len(_DET_HEADER)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _reasons(unmeasured: dict[str, int] | None) -> str:
    if not unmeasured:
        return ""
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(unmeasured.items()))


def ragas_rows(report: Any) -> list[list[str]]:
    rows = []
    for p, r in report.ragas.items():
        why = r.get("unmeasured") or {}
        for m, s in r["summary"].items():
            rows.append(
                [p, m, _fmt(s["mean"]), str(s["n"]), str(s["unmeasured"]), _reasons(why.get(m))]
            )
    return rows


_RAGAS_HEADER = ["pipeline", "metric", "mean", "n", "unmeasured", "why unmeasured"]


def ragas_lines(report: Any) -> list[str]:
    if not report.ragas:
        return []
    judge = {r.get("judge") for r in report.ragas.values()} - {None}
    out = ["", "## ragas", ""]
    if judge:
        out += [f"LLM judge: {', '.join(sorted(judge))}", ""]
    out += ["| " + " | ".join(_RAGAS_HEADER) + " |", "|" + "---|" * len(_RAGAS_HEADER)]
    return out + ["| " + " | ".join(r) + " |" for r in ragas_rows(report)]


def _html_table(table_id: str, header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sections_html(report: Any) -> list[str]:
    """The detection and ragas sections for report.html."""
    parts = []
    rows = detection_rows(report)
    if rows:
        parts.append("<h2>Poisoning detection</h2><p>" + html.escape(_DET_NOTE) + "</p>")
        parts.append(_html_table("detection", _DET_HEADER, rows))
    if report.ragas:
        parts.append("<h2>ragas</h2>")
        judge = {r.get("judge") for r in report.ragas.values()} - {None}
        if judge:
            parts.append(f"<p>LLM judge: {html.escape(', '.join(sorted(judge)))}</p>")
        parts.append(_html_table("ragas", _RAGAS_HEADER, ragas_rows(report)))
    return parts
