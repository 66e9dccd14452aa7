"""Cost of the general learned cutoff per query (100 candidates), against the elbow.

Lists: the cached hybrid candidate lists of ``studies/_lodo_data.py`` with 100 candidates
(SciFact and FinanceBench; build them first), real chunk texts and retriever events. Timed,
interleaved per query (so machine load hits both alike): the whole ``learned_cutoff`` stage
with ``model: general`` (features + trees + cut), its feature computation alone (on the
first 30 candidates, the model's horizon, as the stage computes them), and the
``elbow_cutoff`` stage. Single thread; the load average is recorded (on a shared machine,
read ratios rather than absolute figures).

Run::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.perf.cutoff_general
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from eval.benchmarks import _common
from eval.benchmarks.studies import _lodo_data as data

RESULTS = _common.results_dir("perf") / "cutoff_general.json"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="*", default=["financebench", "scifact"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from ragsel.stages.cutoff._general_features import general_features
    from ragsel.stages.cutoff.elbow import ElbowCutoff
    from ragsel.stages.cutoff.learned import CutoffModel, LearnedCutoff
    from ragsel.types import Candidates

    cases = [
        c
        for n in args.settings
        if data.cache_path(n).is_file()
        for c in data.load(n)
        if len(c.hybrid.items) == data.TOP
    ]
    if not cases:
        raise SystemExit("no cached lists with 100 candidates: build them with _lodo_data")
    learned = LearnedCutoff(model="general")
    learned.warm_up()
    # the model scores its horizon (the first max_rank candidates), so features cover those
    head = CutoffModel.load("general").horizon or data.TOP
    elbow = ElbowCutoff(max_k=10)
    times: dict[str, list[float]] = {"learned_cutoff general": [], "features only": [], "elbow": []}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):
        for c in cases:
            for label, fn in (
                (
                    "learned_cutoff general",
                    lambda c=c: learned.run(candidates=c.hybrid, query=c.query),
                ),
                (
                    "features only",
                    lambda c=c: general_features(Candidates(c.hybrid.items[:head]), c.query.text),
                ),
                ("elbow", lambda c=c: elbow.run(candidates=c.hybrid)),
            ):
                t0 = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - t0) * 1000)
    report = {
        "queries": len(cases),
        "candidates_per_query": data.TOP,
        "repeats": args.repeats,
        "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "ms_per_query": {k: _common.summary_ms(v) for k, v in times.items()},
    }
    for k, v in report["ms_per_query"].items():
        print(f"{k:24s} {v}")
    print("load average (start, end):", report["load_average_start_end"])
    _common.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
