"""Per-query records -> per-pipeline summaries with CIs, paired comparisons, fixed-k curves.

Failed queries are listed (query, error) and, by default, count as misses: a quality metric
(ranking, selection, answers) is 0 and the evidence size 0 for them, wherever another
pipeline could measure the metric on that query, so every row covers the same queries
(``failed_as_miss=False`` leaves them out instead; rows whose n then differs are marked in
the reports). NaN values (unmeasurable for that query) are counted as ``unmeasured`` and
left out. Comparisons pair each pipeline with the first one on the queries both measured.
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
    "ranked_ndcg@10",
    "ranked_recall@10",
    "ranked_recall@100",
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


#: Metrics a failed query scores 0 on when counted as a miss (robustness metrics stay NaN).
_MISS_PREFIXES = ("ndcg@", "recall@", "mrr@", "map", "precision@", "ranked_")
_MISS_NAMES = frozenset(
    ("precision", "recall", "f1", "found", "pool_recall", "chunks", "tokens", "candidates")
    + ("em", "answer_f1", "answer_contains")
)
NAN = float("nan")


def counts_as_miss(metric: str) -> bool:
    return metric in _MISS_NAMES or metric.startswith(_MISS_PREFIXES)


def _values(
    recs: list[dict], metric: str, measurable: set[tuple[str, str]] | None = None
) -> list[float]:
    """Per-query values; a failed query is 0 when ``measurable`` holds (query, metric)."""
    out = []
    for r in recs:
        if r["status"] == "ok":
            out.append(r["metrics"].get(metric, NAN))
        elif measurable is not None and (r["query_id"], metric) in measurable:
            out.append(0.0)
        else:
            out.append(NAN)
    return out


def _measurable(records: dict[str, list[dict]], names: Sequence[str]) -> set[tuple[str, str]]:
    """(query, metric) pairs some pipeline measured: where a failure counts as a miss."""
    miss = [m for m in names if counts_as_miss(m)]
    out: set[tuple[str, str]] = set()
    for recs in records.values():
        for r in recs:
            if r["status"] == "ok":
                met = r["metrics"]
                out.update((r["query_id"], m) for m in miss if met.get(m, NAN) == met.get(m, NAN))
    return out


def metric_names(records: dict[str, list[dict]]) -> list[str]:
    seen: set[str] = set()
    for recs in records.values():
        for r in recs:
            if r["status"] == "ok":
                seen.update(k for k, v in r["metrics"].items() if v == v)  # not NaN
    ordered = [m for m in HEADLINE if m in seen]
    return ordered + sorted(seen - set(ordered))


def aggregate(
    records: dict[str, list[dict]],
    pipelines: Sequence[str],
    *,
    seed: int = 0,
    failed_as_miss: bool = True,
) -> dict[str, Any]:
    names = metric_names(records)
    measurable = _measurable(records, names) if failed_as_miss else None
    summary: dict[str, dict[str, dict[str, float]]] = {}
    failures: dict[str, list[dict[str, str]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for p in pipelines:
        recs = records[p]
        ok = [r for r in recs if r["status"] == "ok"]
        s = {m: summarize(_values(recs, m, measurable), seed=seed) for m in names}
        lat = np.array([r["latency_ms"] for r in ok], dtype=float)
        s["latency_ms"] = {
            "mean": float(lat.mean()) if lat.size else float("nan"),
            "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "n": int(lat.size),
        }
        s["queries"] = {
            "total": len(recs),
            "ok": len(ok),
            "failed": len(recs) - len(ok),
            "failed_as_miss": failed_as_miss,
        }
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
            a = _values(records[base], m, measurable)
            b = _values(records[other], m, measurable)
            t = paired_test(a, b, seed=seed)
            if t.n == 0:
                continue
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
