"""Small helpers shared by the framework-comparison benchmarks (``frameworks_hybrid``,
``throughput``, ``scaling``, ``startup``, ``run_all``): paths, percentiles, machine load and
package versions, so every result file records the conditions it was measured under.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "eval" / "benchmarks" / "results"
DEFAULT_INDEX = os.environ.get("RAGSEL_INDEX", "/work/cache/scifact-index")

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

if str(REPO / "eval") not in sys.path:  # ragsel_eval lives in eval/
    sys.path.insert(0, str(REPO / "eval"))

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


def write_json(name: str, data: dict, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def has(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
