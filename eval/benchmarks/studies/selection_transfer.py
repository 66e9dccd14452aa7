"""Does a learned cutoff transfer to a corpus it never saw? Fit on one dataset, cut another.

The cross-validated figures (``selection_cv.py``) fit and test on queries of the same corpus.
Here the learned cutoff (list + query features, no corpus priors, kind/order/rule chosen
out-of-fold on the source, as in ``selection_cv.py``) is fitted on *all* queries of a source setting and applied
unchanged to every query of a target setting; nothing is chosen on the target (no expansion).
Baselines on the target: the fixed top-k whose k/retriever/expansion had the best F1 on the
source (the same transfer for top-k), and the chunks-saved comparison with the target's own
fixed-k frontier at equal recall (an oracle for top-k, as in ``selection_cv.py``).

Run (the figures in the results were produced by this command)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.selection_transfer

Results go to ``eval/benchmarks/studies/results/selection_transfer.json``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks._common import results_dir, write_json
from eval.benchmarks.studies import selection_cv as cv

RESULTS = results_dir("studies") / "selection_transfer.json"
PAIRS = [
    ("hotpot-para", "privacyqa-256"),
    ("privacyqa-256", "hotpot-para"),
    ("hotpot-sent", "privacyqa-128"),
    ("privacyqa-128", "hotpot-sent"),
]


def fixed_configs(cases: list) -> dict[str, list]:
    return {
        f"{r} top{k:02d} expand={e}": [cv.fixed_k(c, r, k, e) for c in cases]
        for r, e, k in itertools.product(
            ("dense", "bm25", "hybrid"), (False, True), range(1, cv.MAX_K + 1)
        )
    }


def transfer(src: list, dst: list, tag: str) -> dict:
    from ragsel.stages.cutoff.learned import LearnedCutoff, fit_cutoff_model

    model = fit_cutoff_model(
        [c.lists["hybrid"] for c in src],
        [c.gold for c in src],
        queries=[c.query for c in src],
        kind="auto",
        seed=cv.SEED,
        # corpus priors count what the source's queries found in the
        # source's chunks: nothing of it carries to another corpus
        priors=False,
    )
    path = model.save(cv.CACHE / "models" / f"transfer-{tag}.npz")
    stage = LearnedCutoff(model=str(path), keep_paired=False)
    learned = [stage.run(candidates=c.lists["hybrid"], query=c.query).ids for c in dst]
    src_fixed, dst_fixed = fixed_configs(src), fixed_configs(dst)
    best_src = max(src_fixed, key=lambda k: (cv.scores(src_fixed[k], src)["f1"], k))
    curves = [
        [cv.scores(dst_fixed[f"{r} top{k:02d} expand={e}"], dst) for k in range(1, cv.MAX_K + 1)]
        for r, e in itertools.product(("dense", "bm25", "hybrid"), (False, True))
    ]
    out = {}
    for label, sel in (
        ("fixed top-k tuned on the source", dst_fixed[best_src]),
        ("learned, fitted on the source", learned),
    ):
        res = {k: round(v, 4) for k, v in cv.scores(sel, dst).items()}
        need = [
            x for x in (cv.chunks_at_recall(c, res["recall"]) for c in curves) if not np.isnan(x)
        ]
        res["chunks_saved"] = round(1 - res["chunks"] / min(need), 3) if need else None
        out[label] = res
        print(
            f"  {label:34s} P {res['precision']:.3f} R {res['recall']:.3f} "
            f"F1 {res['f1']:.3f} chunks {res['chunks']:5.2f}  saved@recall "
            f"{res['chunks_saved']}",
            flush=True,
        )
    out["source_fixed_k"] = best_src
    out["model"] = {"kind": model.header["kind"], "rule": model.header["defaults"]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from ragsel.backends.embedders import load_embedder

    emb = cv.CachedEmbedder(load_embedder("minilm"), cv.CACHE / "minilm-vectors.npz")
    cases: dict[str, list] = {}
    report: dict = {}
    t0 = time.perf_counter()
    for src, dst in PAIRS:
        for name in (src, dst):
            if name not in cases:
                cases[name] = cv.SETTINGS[name](emb)
        print(f"== {src} -> {dst}", flush=True)
        report[f"{src} -> {dst}"] = transfer(cases[src], cases[dst], f"{src}-to-{dst}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
