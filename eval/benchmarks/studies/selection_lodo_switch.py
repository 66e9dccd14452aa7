"""Leave-one-dataset-out for ``learned_cutoff``'s ``elbow_below: T``: the elbow when the
general model expects fewer than ``T`` relevant candidates, the model's cut otherwise.

Same protocol and lists as ``selection_lodo.py`` (whose fold models it reuses: the general
model fitted without each source dataset, ``$RAGSEL_BENCH_CACHE/lodo/models``). For each
left-out group, ``T`` is chosen on the *other* groups' settings only (the grid
:data:`GRID`, best mean F1 with every setting weighing the same; the fold model fitted on up
to 80 queries per setting of those, so its expected counts there are partly in-sample) and
the rule is scored on the left-out settings, with 95% bootstrap intervals (1000 resamples).
Because of that in-sample bias ``T`` is also chosen on the other settings' queries the fold
model was *not* fitted on (``unseen``: settings with more than 80 queries only).
``T`` for the shipped model is chosen the same way on all settings with the shipped model.
The other columns (general, adapted, elbow, fixed k) are read from ``selection_lodo.json``;
general and elbow are recomputed here and checked against it.

Run (the committed result was produced by)::

    export RAGSEL_DATA_DIR=../shared/data OMP_NUM_THREADS=1
    # RAGSEL_BENCH_CACHE: where selection_lodo.py cached the lists and fold models (the
    # committed run read h13's, /work/wt/h13/.ragsel/bench-cache, through symlinks)
    for f in scifact privacyqa hotpotqa financebench poisonedrag shipped; do
        python -m eval.benchmarks.studies.selection_lodo_switch --fold $f & done; wait
    python -m eval.benchmarks.studies.selection_lodo_switch --merge   # prints the table

Results: ``eval/benchmarks/studies/results/selection_lodo_switch.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from eval.benchmarks import _common
from eval.benchmarks.studies import _lodo_data as data
from eval.benchmarks.studies.selection_lodo import RESULTS as LODO
from eval.benchmarks.studies.selection_lodo import (
    SEED,
    SHIPPED,
    TRAIN_PER_SETTING,
    elbow,
    prf,
    summarise,
)

RESULTS = _common.results_dir("studies") / "selection_lodo_switch.json"
PARTS = data.CACHE / "switch-parts"
GRID = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 1e9]  # 0: always model
COMMAND = (
    "RAGSEL_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 "
    "RAGSEL_BENCH_CACHE=<selection_lodo.py's cache>; for f in scifact privacyqa hotpotqa financebench poisonedrag shipped; do python -m "
    "eval.benchmarks.studies.selection_lodo_switch --fold $f & done; wait; "
    "python -m eval.benchmarks.studies.selection_lodo_switch --merge"
)


def per_query(fold: str) -> dict:
    """Per setting, per query: the model's expected relevant count and the (P, R, F1,
    chunks) rows of the model's cut and of the elbow."""
    from ragsel.stages.cutoff.learned import LearnedCutoff

    path = SHIPPED if fold == "shipped" else data.CACHE / "models" / f"general-without-{fold}.npz"
    # elbow_below tiny: always the model's cut, and the note carries the expected count
    st = LearnedCutoff(model=str(path), elbow_below=1e-12)
    out = {}
    for name in data.BUILDERS:
        cases = data.load(name)
        exp, gen = [], []
        for c in cases:
            res = st.run(candidates=c.hybrid, query=c.query)
            note = res.note_of(st.name) or {}
            exp.append(float(note["expected_relevant"]))
            gen.append(prf(res.ids, c.gold))
        out[name] = {"expected": exp, "general": gen, "elbow": elbow(cases).tolist()}
        print(f"{fold} {name}: mean expected {np.mean(exp):.2f}", flush=True)
    return out


def switched(rec: dict, t: float) -> np.ndarray:
    e = np.asarray(rec["expected"])[:, None]
    return np.where(e < t, np.asarray(rec["elbow"]), np.asarray(rec["general"]))


def unseen(rec: dict) -> dict:
    """Only the queries the model was not fitted on (``selection_lodo.train_sample`` fits on
    a seeded sample of at most 80 queries per setting); ``{}`` if it saw them all."""
    n = len(rec["expected"])
    if n <= TRAIN_PER_SETTING:
        return {}
    seen = set(np.random.default_rng(SEED).permutation(n)[:TRAIN_PER_SETTING].tolist())
    keep = [i for i in range(n) if i not in seen]
    return {k: [v[i] for i in keep] for k, v in rec.items()}


def choose_t(recs: dict, names: Sequence[str]) -> tuple[float, list[float]]:
    """The T of GRID with the best mean F1 over ``names`` (first of ties)."""
    f1 = [float(np.mean([switched(recs[n], t)[:, 2].mean() for n in names])) for t in GRID]
    return GRID[int(np.argmax(f1))], [round(x, 4) for x in f1]


def choices(recs: dict, names: Sequence[str]) -> dict:
    """T chosen on every query of ``names`` (``all``: the fold model saw up to 80 of each
    setting in fitting, so it looks better there than it is) and on the queries it did not
    see (``unseen``: settings with more than 80 queries only)."""
    t_all, f1_all = choose_t(recs, names)
    held = {n: unseen(recs[n]) for n in names}
    held = {n: r for n, r in held.items() if r}
    t_unseen, f1_unseen = choose_t(held, list(held))
    return {
        "all": {"T": t_all, "mean_f1_by_T": f1_all},
        "unseen": {"T": t_unseen, "mean_f1_by_T": f1_unseen, "settings": sorted(held)},
    }


def merge() -> dict:
    lodo = json.loads(LODO.read_text())
    parts = {f.stem: json.loads(f.read_text()) for f in sorted(PARTS.glob("*.json"))}
    report: dict = {"command": COMMAND, "grid": GRID, "folds": {}, "settings": {}}
    for g, recs in parts.items():
        if g == "shipped":
            report["shipped"] = choices(recs, list(recs))
            continue
        train = [n for n in recs if data.GROUPS[n] != g]
        report["folds"][g] = {"train_settings": train, **choices(recs, train)}
        for n in (n for n in recs if data.GROUPS[n] == g):
            report["settings"][n] = score(
                recs[n], lodo["settings"][n]["methods"], report["folds"][g]
            )
    return report


def score(rec: dict, m: dict, fold: dict) -> dict:
    """The held-out setting under each choice of T, against the elbow and the best k of the
    other datasets (from selection_lodo.json); ``f1_by_T`` is a diagnostic over the whole grid
    (read only to say whether any T would have won; nothing is chosen on it)."""
    other = next(k for k in m if k.startswith("best fixed k"))
    e = np.asarray(rec["expected"])
    res: dict = {
        "mean_expected_relevant": round(float(e.mean()), 3),
        "check_general_f1": round(float(np.mean(np.asarray(rec["general"])[:, 2])), 4),
        "check_elbow_f1": round(float(np.mean(np.asarray(rec["elbow"])[:, 2])), 4),
        "f1_by_T_diagnostic": [round(float(switched(rec, t)[:, 2].mean()), 4) for t in GRID],
    }
    for how in ("all", "unseen"):
        t = fold[how]["T"]
        cb = summarise(switched(rec, t))
        res[how] = {
            "T": t,
            "elbow_share": round(float((e < t).mean()), 3),
            "combined": cb,
            "beats_elbow": cb["f1"] >= m["elbow"]["f1"],
            "beats_best_k_other": cb["f1"] >= m[other]["f1"],
        }
    return res


def table(report: dict) -> str:
    lodo = json.loads(LODO.read_text())["settings"]
    head = (
        "| left-out setting | relevant/query | general | adapted | elbow | top-3 | top-5 | "
        "top-10 | best k of the others | own tuned k (oracle) | elbow below T, T on all "
        "queries | elbow below T, T on unseen queries |"
    )
    lines = [head, "|" + "---|" * 12]
    cols = ["general", "adapted (pseudo-queries)", "elbow", "top3", "top5", "top10"]
    for n, r in lodo.items():
        m = lodo[n]["methods"]
        other = next(k for k in m if k.startswith("best fixed k"))
        own = next(k for k in m if k.startswith("own tuned k"))
        cells = [f"{m[c]['f1']:.3f} ({m[c]['chunks']:.1f})" for c in cols]
        cells.append(f"k={other.split('= ')[1]}: {m[other]['f1']:.3f}")
        cells.append(f"k={own.split('= ')[1]}: {m[own]['f1']:.3f}")
        s = report["settings"][n]
        for how in ("all", "unseen"):
            cb, t = s[how]["combined"], s[how]["T"]
            lo, hi = cb["f1_ci95"]
            cells.append(f"{cb['f1']:.3f} [{lo:.3f}, {hi:.3f}] ({cb['chunks']:.1f}; T={t:g})")
        lines.append(f"| {n} | {r['relevant_per_query']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fold", help="a left-out group, or 'shipped' (the model in the wheel)")
    ap.add_argument("--merge", action="store_true", help="choose T per fold, write the result")
    ap.add_argument("--table", action="store_true", help="print the committed result")
    args = ap.parse_args(argv)
    if args.fold:
        PARTS.mkdir(parents=True, exist_ok=True)
        (PARTS / f"{args.fold}.json").write_text(json.dumps(per_query(args.fold)))
        return 0
    if args.merge:
        report = merge()
        _common.write_json(RESULTS, report)
        print(f"wrote {RESULTS}")
    report = json.loads(RESULTS.read_text())
    for g, f in report["folds"].items():
        print(f"fold {g}: T on all queries {f['all']['T']:g}, on unseen {f['unseen']['T']:g}")
    print(
        f"shipped model, all settings: T {report['shipped']['all']['T']:g} (all queries), "
        f"{report['shipped']['unseen']['T']:g} (unseen)"
    )
    print("held-out F1 by T (diagnostic), T =", " ".join(f"{t:g}" for t in GRID))
    for n, s in report["settings"].items():
        print(f"  {n:16s}", " ".join(f"{x:.3f}" for x in s["f1_by_T_diagnostic"]))
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
