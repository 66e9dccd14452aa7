"""Import and start-up time: wall time of fresh processes (median of ``--n`` runs, interleaved)
for ragsel (``import ragsel``, ``ragsel --help``, ``ragsel validate pipelines/local.yaml``)
against importing each peer framework, with a bare interpreter (``python -c pass``) as floor.

    python -m eval.benchmarks.peers.startup [--n 7]

Every run is a new process, so nothing is cached in memory except the OS page cache (the
first warm-up round fills it for everyone). Writes ``results/startup.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks import _common

PY = sys.executable
CLI = str(Path(PY).with_name("ragsel"))


def commands() -> dict[str, tuple[list[str], str | None]]:
    """label -> (argv, module that must be importable or None)."""
    local = str(_common.REPO / "pipelines" / "local.yaml")
    return {
        "python -c pass (interpreter floor)": ([PY, "-c", "pass"], None),
        "python -c 'import ragsel'": ([PY, "-c", "import ragsel"], "ragsel"),
        "ragsel --help": ([CLI, "--help"], "ragsel"),
        "ragsel validate pipelines/local.yaml": ([CLI, "validate", local], "ragsel"),
        "python -c 'import langchain_core'": (
            [PY, "-c", "import langchain_core"],
            "langchain_core",
        ),
        "python -c 'import langchain_core.runnables'": (
            [PY, "-c", "import langchain_core.runnables"],
            "langchain_core",
        ),
        "python -c 'import llama_index.core'": (
            [PY, "-c", "import llama_index.core"],
            "llama_index.core",
        ),
        "python -c 'import haystack'": ([PY, "-c", "import haystack"], "haystack"),
    }


def time_commands(cmds: dict[str, list[str]], n: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each command, ``n`` interleaved rounds (rotating order)."""
    env = {**os.environ, **_common.OFFLINE_ENV}
    names = list(cmds)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(warmup + n):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            p = subprocess.run(
                cmds[name], capture_output=True, text=True, env=env, cwd=_common.REPO
            )
            dt = time.perf_counter() - t0
            if p.returncode:
                raise RuntimeError(f"{name} failed ({p.returncode}): {p.stderr[-2000:]}")
            if r >= warmup:
                out[name].append(dt)
    return out


def heaviest_imports(module: str = "ragsel", top: int = 6) -> list[tuple[str, float]]:
    """The top-level packages that dominate ``import module`` (``python -X importtime``):
    (package, cumulative ms), the reason behind the figure."""
    p = subprocess.run(
        [PY, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env={**os.environ, **_common.OFFLINE_ENV},
    )
    cum: dict[str, float] = {}
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if "." not in name and name not in (module, "site", "encodings"):  # a package
            cum[name] = max(cum.get(name, 0.0), int(parts[1]) / 1e3)
    return sorted(cum.items(), key=lambda kv: -kv[1])[:top]


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=7, help="runs per command (>= 5)")
    ap.add_argument("--out", type=Path, default=_common.results_dir("peers"))
    args = ap.parse_args(argv)
    cmds, skipped = {}, {}
    for label, (argv_, mod) in commands().items():
        if mod and not _common.has(mod):
            skipped[label] = f"not installed ({mod})"
        else:
            cmds[label] = argv_
    m0 = _common.machine()
    secs = time_commands(cmds, args.n)
    base = statistics.median(secs["python -c 'import ragsel'"])
    rows = [
        {
            "command": k,
            "median_ms": round(statistics.median(v) * 1e3, 1),
            "min_ms": round(min(v) * 1e3, 1),
            "max_ms": round(max(v) * 1e3, 1),
            "x_import_ragsel": round(statistics.median(v) / base, 2),
            "n": len(v),
        }
        for k, v in secs.items()
    ]
    for r in rows:
        print(
            f"{r['command']:<44} median {r['median_ms']:8.1f} ms  "
            f"(min {r['min_ms']:.0f}, max {r['max_ms']:.0f})  {r['x_import_ragsel']:.2f}x"
        )
    res = {
        "rows": rows,
        "skipped": skipped,
        "machine_start": m0,
        "import_ragsel_heaviest_ms": heaviest_imports("ragsel"),
        "machine_end": _common.machine(),
        "versions": _common.versions(),
        "command": f"python -m eval.benchmarks.peers.startup --n {args.n}",
    }
    _common.write_json("startup.json", res, args.out)
    return res


if __name__ == "__main__":
    main()
