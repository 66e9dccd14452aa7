"""Load test of ``ragsel serve`` on loopback against calling ``Pipeline.run`` in-process.

The shipped ``pipelines/local.yaml`` over the SciFact index is served by a real
``ragsel serve`` process (uvicorn, 127.0.0.1, any free port); this process is the client. At
concurrency 1, 4 and 16 it sends SciFact test claims from that many threads (one keep-alive
``http.client`` connection each, timed until the full response body is read) and,
interleaved with it, runs the same queries in-process on the same pipeline loaded here
(``gc.freeze()`` after warm-up, as the server does): ``Pipeline.run`` from that many threads,
and ``Pipeline.arun`` from that many asyncio tasks (what the server calls: BM25 and dense
retrieval overlap in it). The three modes' blocks reverse order every round, so drift on the
shared machine hits all of them.

Reported per concurrency: throughput (requests/s), p50/p95 latency, errors, and the service's
added p50 two ways: (a) HTTP p50 minus in-process p50 (``run`` and ``arun``), paired per
round; (b) per request, the client's latency minus the pipeline's own ``total_ms`` from the
response trace (HTTP, validation, JSON; the least noisy reading at concurrency 1; above it,
it also holds the time a request waits for a free slot or worker thread). Target (issue 17): the service adds
<= 2 ms p50 per request, and 16 concurrent clients get no errors.

    python -m eval.benchmarks.perf.serve_load --index "$RAGSEL_INDEX"
    python -m eval.benchmarks.perf.serve_load --requests 60 --rounds 3 --max-seconds 300

Bounded: ``--requests`` per block, ``--rounds``, and ``--max-seconds`` (no new block starts
after it). ``--pipeline eval/benchmarks/pipelines/serve_fixed_cost.yaml`` serves a model-free
pipeline instead: what remains is the service's fixed cost per request. Writes
``results/serve_load.json`` (``--name`` to change).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from eval.benchmarks import _common

LEVELS = (1, 4, 16)
LOCAL = _common.REPO / "pipelines" / "local.yaml"


def run_threads(n_threads: int, queries: Sequence[str], call: Callable[[str], float]) -> dict:
    """Send ``queries`` from ``n_threads`` threads (each takes the next query); returns
    per-request latencies (ms), wall seconds, errors and what ``call`` returned extra."""
    lock, it = threading.Lock(), iter(range(len(queries)))
    lat: list[float] = []
    inner: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                extra = call(queries[i])
            except Exception as exc:  # counted, never hidden
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            dt = (time.perf_counter() - t0) * 1000
            if isinstance(extra, tuple):  # (latency the call measured itself, inner ms)
                dt, extra = extra
            with lock:
                lat.append(dt)
                if extra is not None:
                    inner.append(extra)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"lat": lat, "wall": time.perf_counter() - t0, "errors": errors, "inner": inner}


class HttpClient:
    """One keep-alive connection per thread; a request returns the pipeline's ``total_ms``."""

    def __init__(self, host: str, port: int, name: str) -> None:
        self.host, self.port = host, port
        self.path = f"/v1/pipelines/{name}/select"
        self.local = threading.local()

    def __call__(self, query: str) -> tuple[float, float]:
        """(ms until the whole response body is read, the pipeline's ``total_ms``)."""
        t0 = time.perf_counter()
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        body = json.dumps({"query": query}).encode()
        try:
            conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            ms = (time.perf_counter() - t0) * 1000
        except (OSError, http.client.HTTPException):
            self.local.conn = None
            conn.close()
            raise
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        return ms, float(json.loads(data)["total_ms"])


def run_async(n_tasks: int, queries: Sequence[str], pipe) -> dict:
    """``pipe.arun`` from ``n_tasks`` asyncio tasks in one event loop (how the server runs
    it, without HTTP)."""
    import asyncio

    async def go() -> dict:
        it = iter(range(len(queries)))
        lat: list[float] = []
        errors: list[str] = []

        async def worker() -> None:
            for i in it:  # one thread: the shared iterator needs no lock
                t0 = time.perf_counter()
                try:
                    await pipe.arun(queries[i])
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(n_tasks)))
        return {"lat": lat, "wall": time.perf_counter() - t0, "errors": errors, "inner": []}

    return asyncio.run(go())


def start_server(
    pipeline: Path, index: str, max_concurrency: int
) -> tuple[subprocess.Popen, str, int]:
    cmd = [
        sys.executable,
        "-m",
        "ragsel.cli.main",
        "serve",
        str(pipeline),
        "--var",
        f"RAGSEL_INDEX={index}",
        "--port",
        "0",
        "--max-concurrency",
        str(max_concurrency),
        "--timeout",
        "120",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if m:
            host, port = m.group(1), int(m.group(2))
            break
    else:
        raise RuntimeError("ragsel serve did not start:\n" + "".join(lines))
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # drain
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # listens once models load
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc, host, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("ragsel serve did not become healthy:\n" + "".join(lines[-20:]))


def summarise(blocks: list[dict]) -> dict:
    lat = [x for b in blocks for x in b["lat"]]
    n = sum(len(b["lat"]) for b in blocks)
    wall = sum(b["wall"] for b in blocks)
    return {
        "requests": n,
        "errors": sum(len(b["errors"]) for b in blocks),
        "first_errors": [e for b in blocks for e in b["errors"]][:3],
        "throughput_rps": round(n / wall, 1) if wall else None,
        "throughput_rps_per_round": [round(len(b["lat"]) / b["wall"], 1) for b in blocks],
        **_common.summary_ms(lat),
        "p50_ms_per_round": [round(_common.pct(b["lat"], 50), 2) for b in blocks],
    }


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=_common.DEFAULT_INDEX)
    ap.add_argument("--pipeline", type=Path, default=LOCAL, help="pipeline YAML to serve")
    ap.add_argument("--requests", type=int, default=100, help="requests per block")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--levels", type=int, nargs="+", default=list(LEVELS), help="concurrencies")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=_common.results_dir("perf"))
    ap.add_argument("--name", default="serve_load.json", help="result file name")
    args = ap.parse_args(argv)
    # the model-free pipeline uses ragsel.testing's fake retriever, which registers only on
    # request (here and in the server process, which inherits the environment)
    os.environ.setdefault("RAGSEL_TEST_STAGES", "1")

    from ragsel_eval.datasets.beir import load_beir

    from ragsel.serve import load_served

    queries = [q.text for q in load_beir(_common.DATA / "scifact", split="test").queries]
    t_start = time.monotonic()
    levels = tuple(args.levels)
    proc, host, port = start_server(args.pipeline, args.index, max(levels))
    try:
        served = load_served([args.pipeline], variables={"RAGSEL_INDEX": args.index})[0]
        pipe = served.pipeline
        pipe.warm_up()
        gc.collect()
        gc.freeze()
        client = HttpClient(host, port, served.name)
        for q in queries[:20]:  # warm both: lazy pools, connections, caches
            pipe.run(q)
            client(q)
        modes = {
            "in_process": lambda c, qs: run_threads(c, qs, lambda q: pipe.run(q) and None),
            "in_process_arun": lambda c, qs: run_async(c, qs, pipe),
            "http": lambda c, qs: run_threads(c, qs, client),
        }
        blocks: dict[tuple[str, int], list[dict]] = {}
        loads, truncated, k = [], False, 0
        for r in range(args.rounds):
            loads.append(_common.machine()["load_avg"])
            for c in levels if r % 2 == 0 else tuple(reversed(levels)):
                qs = [queries[(k * args.requests + i) % len(queries)] for i in range(args.requests)]
                k += 1
                order = tuple(modes) if (r + c) % 2 == 0 else tuple(reversed(modes))
                for mode in order:
                    if time.monotonic() - t_start > args.max_seconds:
                        truncated = True
                        break
                    blocks.setdefault((mode, c), []).append(modes[mode](c, qs))
                    b = blocks[(mode, c)][-1]
                    print(
                        f"round {r} c={c:>2} {mode:>10}: {len(b['lat'])} ok, "
                        f"{len(b['errors'])} errors, p50 {_common.pct(b['lat'], 50):.2f} ms, "
                        f"{len(b['lat']) / b['wall']:.1f} req/s",
                        flush=True,
                    )
        loads.append(_common.machine()["load_avg"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    rows = []
    for c in levels:
        inp, htp = blocks.get(("in_process", c), []), blocks.get(("http", c), [])
        arun = blocks.get(("in_process_arun", c), [])
        if not inp or not htp or not arun:
            continue

        def paired(base: list[dict], htp: list[dict] = htp) -> list[float]:
            return [
                round(_common.pct(h["lat"], 50) - _common.pct(b["lat"], 50), 2)
                for b, h in zip(base, htp)
            ]

        beyond = [lat - inner for b in htp for lat, inner in zip(b["lat"], b["inner"], strict=True)]
        rows.append(
            {
                "concurrency": c,
                "in_process": summarise(inp),
                "in_process_arun": summarise(arun),
                "http": summarise(htp),
                "added_p50_ms_vs_run_per_round": paired(inp),
                "added_p50_ms_vs_run_median": round(statistics.median(paired(inp)), 2),
                "added_p50_ms_vs_arun_per_round": paired(arun),
                "added_p50_ms_vs_arun_median": round(statistics.median(paired(arun)), 2),
                "client_minus_pipeline_ms": _common.summary_ms(beyond),
            }
        )
    res = {
        "what": "ragsel serve (uvicorn, loopback) vs Pipeline.run/arun in-process",
        "pipeline": str(args.pipeline.resolve().relative_to(_common.REPO))
        if args.pipeline.resolve().is_relative_to(_common.REPO)
        else str(args.pipeline),
        "index": args.index,
        "requests_per_block": args.requests,
        "rounds": args.rounds,
        "truncated_by_max_seconds": truncated,
        "load_avg_per_round": loads,
        "versions": _common.versions(("ragsel", "fastapi", "starlette", "uvicorn", "onnxruntime")),
        "levels": rows,
    }
    for row in rows:
        print(f"concurrency {row['concurrency']}:")
        for mode in ("in_process", "in_process_arun", "http"):
            m = row[mode]
            print(
                f"  {mode:>15}: p50 {m['p50_ms']} / p95 {m['p95_ms']} ms, "
                f"{m['throughput_rps']} req/s, {m['errors']} errors"
            )
        print(
            f"  added p50 per round: vs run {row['added_p50_ms_vs_run_per_round']}, vs arun "
            f"{row['added_p50_ms_vs_arun_per_round']}; client - pipeline p50 "
            f"{row['client_minus_pipeline_ms']['p50_ms']} ms"
        )
    print(f"load average per round: {loads}")
    path = _common.write_json(args.name, res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
