"""The README results table: SciFact (ranking), PrivacyQA (evidence selection) and PoisonedRAG
(robustness), each produced by ``ragsel_eval.runner.run_eval`` with the pipelines below.

Run (from the repository root)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.results_table \\
        [--scifact-index "$RAGSEL_INDEX"] [--limit N] [--only scifact,privacyqa]

Each section writes its full report folder (results.json, summary.md, report.html) under
``--out`` (default ``.ragsel/results-table``; per-query results and indexes are cached there,
so an interrupted run resumes) and the table goes to ``eval/benchmarks/studies/results/results_table.md``
(+ ``.json``). Figures are means over queries with 95% bootstrap CIs; settings are the shipped
pipeline files, not tuned on these test queries (SciFact: BEIR test split).

Published SciFact nDCG@10 references (../shared/ANCHORS.md): BM25 0.665 (BEIR) / 0.679
(Anserini), all-MiniLM-L6-v2 dense 0.645.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ragsel_eval.report import _clean
from ragsel_eval.runner import run_eval

from eval.benchmarks._common import PIPELINES as BENCH
from eval.benchmarks._common import REPO, results_dir, write_json

SECTIONS = {
    "scifact": {
        "dataset": "scifact",
        "chunker": "document",
        "pipelines": [
            BENCH / "bm25.yaml",
            BENCH / "dense.yaml",
            BENCH / "hybrid.yaml",
            REPO / "pipelines" / "local.yaml",
        ],
        "metrics": ["ndcg@10", "recall@100", "chunks"],
    },
    "privacyqa": {
        "dataset": "privacyqa",
        "chunker": "words:256",
        "pipelines": [
            BENCH / "hybrid-top3.yaml",
            REPO / "pipelines" / "local.yaml",
            REPO / "pipelines" / "meteora-local.yaml",
        ],
        "metrics": ["precision", "recall", "f1", "chunks"],
    },
    "poisonedrag": {
        "dataset": "poisonedrag",
        "chunker": "document",
        "pipelines": [BENCH / "dense-top5.yaml", BENCH / "guard-densest-top5.yaml"],
        "metrics": [
            "detection_f1",
            "gold_retention",
            "attack_success",
            "attack_majority",
            "recall",
        ],
    },
}


def _cell(s: dict | None, metric: str = "") -> str:
    if not s or not s.get("n"):
        return "–"
    m = s["mean"]
    if s.get("ci_low") is None or (isinstance(s["ci_low"], float) and math.isnan(s["ci_low"])):
        return f"{m:.3f}"
    fmt = "{:.1f}" if m >= 10 or metric in ("chunks", "tokens") else "{:.3f}"
    return f"{fmt.format(m)} [{fmt.format(s['ci_low'])}–{fmt.format(s['ci_high'])}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / ".ragsel" / "results-table"))
    ap.add_argument(
        "--scifact-index",
        default=None,
        help="reuse a `ragsel index` of scifact/corpus.jsonl (chunker document)",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N queries of each dataset")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--table", default=str(results_dir("studies") / "results_table.md"))
    args = ap.parse_args(argv)
    lines = [
        "| dataset (queries) | pipeline | figures: mean [95% CI] | latency p50 ms | failed |",
        "|---|---|---|---|---|",
    ]
    dump: dict = {}
    for name in args.only.split(","):
        sec = SECTIONS[name]
        pipes = [p for p in sec["pipelines"] if p.exists()]
        t0 = time.perf_counter()
        rep = run_eval(
            pipes,
            sec["dataset"],
            out_dir=Path(args.out) / name,
            limit=args.limit,
            chunker=None if (name == "scifact" and args.scifact_index) else sec["chunker"],
            engine=args.engine,
            index=args.scifact_index if name == "scifact" else None,
            progress=True,
        )
        took = time.perf_counter() - t0
        dump[name] = {
            "dataset": rep.dataset,
            "summary": rep.summary,
            "comparisons": rep.comparisons,
            "seconds": round(took, 1),
            "report": rep.files.get("html"),
        }
        for p in rep.pipelines:
            s = rep.summary[p]
            figs = "; ".join(f"{m} {_cell(s.get(m), m)}" for m in sec["metrics"])
            q = s["queries"]
            lines.append(
                f"| {rep.dataset['name']} ({q['total']}) | {p} | {figs} | "
                f"{s['latency_ms']['p50']:.0f} | {q['failed']} |"
            )
        print("\n".join(lines), flush=True)
    table = "\n".join(lines) + "\n"
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text(table, encoding="utf-8")
    write_json(Path(args.table).with_suffix(".json"), _clean(dump))
    print(f"\nwritten: {args.table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
