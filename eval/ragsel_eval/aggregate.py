"""Per-query records -> per-pipeline summaries with CIs, paired comparisons, fixed-k curves.

Failed queries are listed (query, error) and left out of every mean; NaN values (unmeasurable
for that query) are counted as ``unmeasured`` and left out too. Comparisons pair each pipeline
with the first one on the queries both measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel_eval.metrics.robustness import micro_detection
from ragsel_eval.metrics.stats import paired_test, summarize

#: The order metrics appear in tables; those never measured in a run are left out.
HEADLINE = (
    "ndcg@10",
    "recall@10",
    "recall@100",
    "mrr@10",
    "map",
    "precision",
    "recall",
    "f1",
    "found",
    "chunks",
    "tokens",
    "pool_recall",
    "detection_precision",
    "detection_recall",
    "detection_f1",
    "gold_retention",
    "attack_success",
    "attack_majority",
    "em",
    "answer_f1",
    "answer_contains",
)
#: Metrics compared with a paired test (when measured).
COMPARED = (
    "ndcg@10",
    "recall@100",
    "f1",
    "recall",
    "precision",
    "chunks",
    "detection_f1",
    "gold_retention",
    "attack_success",
    "answer_f1",
)
LOWER_IS_BETTER = {"chunks", "tokens", "attack_success", "attack_majority", "latency_ms"}


def _values(recs: list[dict], metric: str) -> list[float]:
    return [
        r["metrics"].get(metric, float("nan")) if r["status"] == "ok" else float("nan")
        for r in recs
    ]


def metric_names(records: dict[str, list[dict]]) -> list[str]:
    seen: set[str] = set()
    for recs in records.values():
        for r in recs:
            if r["status"] == "ok":
                seen.update(k for k, v in r["metrics"].items() if v == v)  # not NaN
    ordered = [m for m in HEADLINE if m in seen]
    return ordered + sorted(seen - set(ordered))


def aggregate(
    records: dict[str, list[dict]], pipelines: Sequence[str], *, seed: int = 0
) -> dict[str, Any]:
    names = metric_names(records)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    failures: dict[str, list[dict[str, str]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for p in pipelines:
        recs = records[p]
        ok = [r for r in recs if r["status"] == "ok"]
        s = {m: summarize(_values(recs, m), seed=seed) for m in names}
        lat = np.array([r["latency_ms"] for r in ok], dtype=float)
        s["latency_ms"] = {
            "mean": float(lat.mean()) if lat.size else float("nan"),
            "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "n": int(lat.size),
        }
        s["queries"] = {"total": len(recs), "ok": len(ok), "failed": len(recs) - len(ok)}
        if any("detection_tp" in r["metrics"] for r in ok):
            s["detection_micro"] = micro_detection(
                {
                    "tp": r["metrics"]["detection_tp"],
                    "flagged": r["metrics"]["detection_flagged"],
                    "poisoned": r["metrics"]["detection_poisoned"],
                }
                for r in ok
                if "detection_tp" in r["metrics"]
            )
        summary[p] = s
        failures[p] = [
            {"query_id": r["query_id"], "error": r.get("error", "")}
            for r in recs
            if r["status"] != "ok"
        ]
        with_curve = [r["curve"] for r in ok if r.get("curve", {}).get("k")]
        if with_curve:
            ks = with_curve[0]["k"]
            curves[p] = {"k": ks}
            for key in ("precision", "recall", "chunks"):
                arr = np.array([c[key] for c in with_curve], dtype=float)
                curves[p][key] = [float(x) for x in np.nanmean(arr, axis=0)]
    comparisons = []
    base = pipelines[0]
    for other in pipelines[1:]:
        for m in COMPARED:
            if m not in names:
                continue
            t = paired_test(_values(records[base], m), _values(records[other], m), seed=seed)
            if t.n == 0:
                continue
            a, b = _values(records[base], m), _values(records[other], m)
            if all(x == y for x, y in zip(a, b) if x == x and y == y):
                continue  # identical on every query both measured: nothing to test
            comparisons.append(
                {
                    "baseline": base,
                    "pipeline": other,
                    "metric": m,
                    "lower_is_better": m in LOWER_IS_BETTER,
                    **t.as_dict(),
                }
            )
    return {
        "summary": summary,
        "failures": failures,
        "curves": curves,
        "comparisons": comparisons,
        "metrics": names,
    }
