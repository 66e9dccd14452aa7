"""Helpers shared by every benchmark under ``eval/benchmarks/{perf,peers,studies}``: where
things live (options override, then one environment variable each, then a repo-relative
default), percentiles, machine load and package versions, and :func:`write_json`, which gives
every result file the same header (the command that produced it, the machine, the time).

=======================  ================================================================
``$RAGSEL_INDEX``        the SciFact ragsel index (default ``<repo>/.ragsel/scifact-index``)
``$RAGSEL_DATA_DIR``     benchmark datasets (default ``<repo>/../shared/data``)
``$RAGSEL_BENCH_CACHE``  cached embeddings (default ``<repo>/.ragsel/bench-cache``)
=======================  ================================================================

Run a benchmark as a module from the repository root, e.g.
``python -m eval.benchmarks.perf.query_latency --index PATH``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import resource
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "eval" / "benchmarks"
PIPELINES = BENCH / "pipelines"
DEFAULT_INDEX = os.environ.get("RAGSEL_INDEX", str(REPO / ".ragsel" / "scifact-index"))
DATA = Path(os.environ.get("RAGSEL_DATA_DIR", REPO.parent / "shared" / "data"))
CACHE = Path(os.environ.get("RAGSEL_BENCH_CACHE", REPO / ".ragsel" / "bench-cache"))


def results_dir(group: str) -> Path:
    """``eval/benchmarks/<group>/results``: where a group's committed result files live."""
    return BENCH / group / "results"


def find_result(name: str, first: Path | None = None) -> Path | None:
    """A committed result file by name: in ``first`` if given, else in any group's results."""
    for d in ([first] if first else []) + [results_dir(g) for g in ("perf", "peers", "studies")]:
        if (d / name).is_file():
            return d / name
    return None


def command_line() -> str:
    """The command that is running, as one would type it (``python -m eval.benchmarks...``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec and spec.name else ["python", sys.argv[0]]
    return shlex.join(head + sys.argv[1:])


OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
}
for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

#: the packages whose versions every result records (all installed ones go to run_all's list)
PEERS = (
    "ragsel",
    "torch",
    "sentence-transformers",
    "onnxruntime",
    "chromadb",
    "bm25s",
    "PyStemmer",
    "numpy",
    "langchain-core",
    "langchain-classic",
    "langchain-community",
    "rank-bm25",
    "llama-index-core",
    "llama-index-retrievers-bm25",
    "haystack-ai",
)


def versions(packages: Sequence[str] = PEERS) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machine() -> dict:
    """CPU count, load averages and thread settings at the time of the call."""
    return {
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
    }


def pct(xs: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), p)) if len(xs) else float("nan")


def summary_ms(xs: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean of millisecond samples, rounded for tables."""
    return {
        "p50_ms": round(pct(xs, 50), 2),
        "p95_ms": round(pct(xs, 95), 2),
        "mean_ms": round(float(np.mean(xs)), 2) if len(xs) else float("nan"),
        "n": len(xs),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def _plain(o: object) -> object:
    """JSON for numpy scalars and arrays (as numbers), anything else as its string."""
    return o.tolist() if hasattr(o, "tolist") else str(o)


def with_header(data: dict) -> dict:
    """``data`` with the common result header first: command, machine, UTC time."""
    from datetime import datetime, timezone

    head = {
        "command": command_line(),
        "machine": machine(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {**head, **{k: v for k, v in data.items() if k not in head}}


def write_json(name: str | Path, data: dict, out_dir: Path | str | None = None) -> Path:
    """Write ``data`` (with the common header) as ``out_dir/name``; ``name`` may be a full
    path when ``out_dir`` is None."""
    path = Path(out_dir) / name if out_dir is not None else Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(with_header(data), indent=2, default=_plain) + "\n", encoding="utf-8"
    )
    return path


def has(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
