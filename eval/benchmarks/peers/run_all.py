"""The one command for the framework comparison (issue 8): runs every benchmark below, records
the version of every installed package, and writes ``eval/benchmarks/peers/results/README.md`` (one
Markdown report: every table, the command behind each, the machine load) and PNG plots.

    OMP_NUM_THREADS=1 python -m eval.benchmarks.peers.run_all --index "$RAGSEL_INDEX"
    python -m eval.benchmarks.peers.run_all --quick            # small sizes, a couple of minutes
    python -m eval.benchmarks.peers.run_all --report-only      # rebuild README.md from results/*.json
    python -m eval.benchmarks.peers.run_all --only hybrid,scaling --extra "scaling=--queries 50"

Steps (each a script in this folder, run in its own process; each interleaves its own
repetitions so drift hits every contender equally; the steps themselves run one after another):

=====================  =====================================================================
``startup``            import / CLI start-up vs peers (startup.py)
``overhead``           ragsel-only 6 no-op stages: plain calls, run, arun (overhead.py)
``frameworks_overhead``the same 6 no-op steps in every framework (frameworks_overhead.py)
``hybrid``             BM25 + MiniLM + RRF on SciFact in every framework (frameworks_hybrid.py)
``throughput``         run_batch q/s at concurrency 1/4/16; embedding vs raw (throughput.py)
``scaling``            latency, disk, RSS at 1k/5k/50k chunks (scaling.py)
``latency``            the local pipeline's per-stage latency (query_latency.py)
``quality``            SciFact nDCG of BM25/dense/hybrid, settings chosen on train
                       (scifact_quality.py; slow, only with ``--with-quality``)
=====================  =====================================================================
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from eval.benchmarks import _common
from eval.benchmarks.peers import _report


def steps(index: str, out: Path, quick: bool) -> dict[str, list[str]]:
    """step -> argv (relative to this folder); ``quick`` shrinks every size."""
    q = quick
    return {
        "startup": ["eval.benchmarks.peers.startup", "--n", "5" if q else "7", "--out", str(out)],
        "overhead": [
            "eval.benchmarks.perf.overhead",
            "--n",
            "300" if q else "3000",
            "--repeats",
            "2" if q else "5",
        ],
        "frameworks_overhead": [
            "eval.benchmarks.peers.frameworks_overhead",
            "--n",
            "200" if q else "1000",
            "--repeats",
            "2" if q else "5",
            "--out",
            str(out),
        ],
        "hybrid": [
            "eval.benchmarks.peers.frameworks_hybrid",
            "--index",
            index,
            "--out",
            str(out),
            "--jobs",
            "3",
        ]
        + (["--limit", "30", "--latency-queries", "10"] if q else []),
        "throughput": ["eval.benchmarks.perf.throughput", "--index", index, "--out", str(out)]
        + (["--limit", "32", "--repeats", "1", "--raw-texts", "64", "--rounds", "1"] if q else []),
        "scaling": ["eval.benchmarks.perf.scaling", "--index", index, "--out", str(out)]
        + (["--sizes", "1000,5000", "--queries", "20"] if q else []),
        "latency": [
            "eval.benchmarks.perf.query_latency",
            "--index",
            index,
            "--out",
            str(out / "query_latency.json"),
        ]
        + (["--queries", "30"] if q else []),
        "quality": [
            "eval.benchmarks.studies.scifact_quality",
            "--index",
            index,
            "--skip-bm25-variants",
            "--out",
            str(out / "scifact_quality.json"),
        ],
    }


def all_versions() -> dict[str, str]:
    """Every installed distribution and its version (sorted by name)."""
    seen = {}
    for d in md.distributions():
        name = d.metadata.get("Name")
        if name:
            seen[name] = d.version
    return dict(sorted(seen.items(), key=lambda kv: kv[0].lower()))


def run_step(name: str, argv: list[str], out: Path) -> dict:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load0 = _common.machine()["load_avg"]
    t0 = time.perf_counter()
    print(f"== {name}: python eval/benchmarks/{' '.join(argv)}", flush=True)
    p = subprocess.run(
        [sys.executable, "-m", argv[0], *argv[1:]],
        cwd=_common.REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **_common.OFFLINE_ENV},
    )
    took = time.perf_counter() - t0
    (logs / f"{name}.log").write_text(
        f"$ python eval/benchmarks/{' '.join(argv)}\n\n{p.stdout}\n--- stderr ---\n{p.stderr}",
        encoding="utf-8",
    )
    if name == "overhead":  # it only prints: keep its table
        (out / "overhead.txt").write_text(p.stdout, encoding="utf-8")
    status = "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
    print(
        f"   {status} in {took:.0f} s" + ("" if p.returncode == 0 else f"\n{p.stderr[-1500:]}"),
        flush=True,
    )
    return {
        "step": name,
        "command": "python eval/benchmarks/" + " ".join(argv),
        "status": status,
        "seconds": round(took, 1),
        "load_avg_before": load0,
        "load_avg_after": _common.machine()["load_avg"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=_common.DEFAULT_INDEX, help="a SciFact ragsel index")
    ap.add_argument("--out", type=Path, default=_common.results_dir("peers"))
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated steps to run")
    ap.add_argument("--with-quality", action="store_true", help="also run scifact_quality")
    ap.add_argument("--report-only", action="store_true", help="only rebuild README.md")
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="STEP=ARGS",
        help="extra arguments for one step (they override its defaults), e.g. "
        "--extra 'hybrid=--latency-queries 50 --jobs 4'",
    )
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runlog_path = out / "run_all.json"
    runlog = json.loads(runlog_path.read_text()) if runlog_path.is_file() else {"steps": {}}
    if not args.report_only:
        plan = steps(args.index, out, args.quick)
        for item in args.extra:
            step, _, extra = item.partition("=")
            if step not in plan:
                ap.error(f"--extra: unknown step {step!r}; choose from {', '.join(plan)}")
            plan[step] = plan[step] + extra.split()
        chosen = [s for s in args.only.split(",") if s] or [
            s for s in plan if s != "quality" or args.with_quality
        ]
        unknown = set(chosen) - set(plan)
        if unknown:
            ap.error(f"unknown step(s) {sorted(unknown)}; choose from {', '.join(plan)}")
        runlog.update(
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            quick=args.quick,
            index=args.index,
            machine_start=_common.machine(),
        )
        for name in chosen:
            runlog["steps"][name] = run_step(name, plan[name], out)
        runlog.update(
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            machine_end=_common.machine(),
        )
        if runlog_path.is_file():  # another run_all may have finished meanwhile: keep its steps
            mine = runlog["steps"]
            runlog["steps"] = {**json.loads(runlog_path.read_text()).get("steps", {}), **mine}
        _common.write_json("run_all.json", runlog, out)
        _common.write_json("versions.json", all_versions(), out)
    readme = _report.write_report(out, runlog)
    print(f"wrote {readme}")
    failed = [s for s, r in runlog.get("steps", {}).items() if r["status"] != "ok"]
    return 1 if failed and not args.report_only else 0


if __name__ == "__main__":
    raise SystemExit(main())
