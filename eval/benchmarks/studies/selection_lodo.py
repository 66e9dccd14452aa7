"""Leave-one-dataset-out: which cutoff should ``pipelines/local.yaml`` ship?

For every source dataset (a *group*: scifact, privacyqa, hotpotqa, financebench, poisonedrag;
the settings of a group share queries or documents, so a group is left out whole) the cutoffs
are chosen on the other groups only and scored on each setting of the left-out group.
Candidate lists: ``_lodo_data.py`` (the hybrid ranking of local.yaml, top 100). Scores are
per-query precision, recall, F1 and chunks/query of the cut alone (before neighbour
expansion), with 95% bootstrap intervals over the left-out queries (1000 resamples), and the
paired per-query F1 difference of the general model against the elbow and the transferred k.

Methods:

- ``general``: the general learned cutoff (``fit_cutoff_model(feature_set="general")``, GBDT,
  first 30 candidates) fitted on the other groups' lists; its Platt calibration and cut rule
  are chosen on leave-one-group-out predictions inside those groups (``groups=``), so they
  are chosen for a corpus the model has not seen;
- ``adapted (pseudo-queries)``: that general model calibrated (Platt scaling and cut rule,
  ``_adapt.calibrate``) on 60 pseudo-queries made from the left-out corpus without labels
  (``_adapt.pseudo_queries``: a sentence of a chunk with a third of its words dropped -> that
  chunk; a document title -> the document's chunks), as ``ragsel fit --unsupervised`` does;
- ``elbow``: local-elbow.yaml's elbow cut (z=1, min_k 1, max_k 10; local.yaml's before);
- ``top3`` / ``top5`` / ``top10``: fixed k;
- ``best fixed k (other datasets)``: the k in 1..20 with the best mean F1 over the other
  groups' settings (each setting weighs the same): what a user without labels would pick;
- ``own tuned k (oracle)``: the left-out setting's own best k, chosen on its own queries.

Run (the committed results were produced by these commands; the folds run in parallel)::

    export RAGSEL_DATA_DIR=../shared/data OMP_NUM_THREADS=1
    python -m eval.benchmarks.studies._lodo_data          # build the candidate lists once
    for g in scifact privacyqa hotpotqa financebench poisonedrag; do
        python -m eval.benchmarks.studies.selection_lodo --groups $g &
    done; wait
    python -m eval.benchmarks.studies.selection_lodo --merge
    python -m eval.benchmarks.studies.selection_lodo --fit-shipped   # the model in the wheel

Results: ``eval/benchmarks/studies/results/selection_lodo.json`` (``--table`` prints them).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks import _common
from eval.benchmarks.studies import _lodo_data as data

RESULTS = _common.results_dir("studies") / "selection_lodo.json"
# with $RAGSEL_LODO_FUSION (calibrated fusion) the model ships as general-calibrated.npz
MODELS = _common.REPO / "ragsel" / "stages" / "cutoff" / "models"
SHIPPED = MODELS / (f"general-{data.VARIANT}.npz" if data.VARIANT else "general.npz")
BOOTSTRAP, SEED, MAX_FIXED = 1000, 0, 20
FIT = {"kind": "gbdt", "inner_repeats": 1, "max_rank": 30, "seed": SEED}
REUSE = False  # --reuse-models: evaluate the fold models an earlier run fitted
ADAPT = True  # also the unsupervised adaptation (--no-adapted to skip)
TRAIN_PER_SETTING = 80  # queries per setting a model is fitted on (seeded sample)


def prf(selected: Sequence[str], gold: set[str]) -> tuple[float, float, float, int]:
    tp = len(set(selected) & gold)
    p = tp / len(selected) if selected else 0.0
    r = tp / len(gold) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), len(selected)


def summarise(rows: np.ndarray) -> dict:
    """rows: (queries, 4) of precision, recall, F1, chunks -> means with bootstrap CIs."""
    rng = np.random.default_rng(SEED)
    idx = rng.integers(0, len(rows), (BOOTSTRAP, len(rows)))
    boot = rows[idx].mean(axis=1)
    out = {}
    for j, m in enumerate(("precision", "recall", "f1", "chunks")):
        lo, hi = np.percentile(boot[:, j], [2.5, 97.5])
        out[m] = round(float(rows[:, j].mean()), 4)
        out[f"{m}_ci95"] = [round(float(lo), 4), round(float(hi), 4)]
    out["zero_chunk_queries"] = int((rows[:, 3] == 0).sum())
    return out


def paired_diff(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean per-query F1 difference ``a - b`` on the same queries, with its 95% bootstrap
    interval (the queries resampled together, so the two methods' shared noise cancels)."""
    d = a - b
    idx = np.random.default_rng(SEED).integers(0, len(d), (BOOTSTRAP, len(d)))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return {"mean": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def fixed(cases: list, k: int) -> np.ndarray:
    return np.array([prf(c.hybrid.ids[:k], c.gold) for c in cases])


def elbow(cases: list) -> np.ndarray:
    from ragsel.stages.cutoff.elbow import ElbowCutoff

    st = ElbowCutoff(z_threshold=1.0, min_k=1, max_k=10)
    return np.array([prf(st.run(candidates=c.hybrid).ids, c.gold) for c in cases])


def learned(cases: list, path: Path) -> np.ndarray:
    from ragsel.stages.cutoff.learned import LearnedCutoff

    st = LearnedCutoff(model=str(path))
    return np.array([prf(st.run(candidates=c.hybrid, query=c.query).ids, c.gold) for c in cases])


def train_sample(cases: list) -> list:
    if len(cases) <= TRAIN_PER_SETTING:
        return cases
    pick = np.random.default_rng(SEED).permutation(len(cases))[:TRAIN_PER_SETTING]
    return [cases[i] for i in sorted(pick.tolist())]


def fit_general(train: dict[str, list], out: Path):
    from ragsel.stages.cutoff._learned_fit import fit_cutoff_model

    cases = [c for name in sorted(train) for c in train_sample(train[name])]
    t0 = time.perf_counter()
    model = fit_cutoff_model(
        [c.hybrid for c in cases],
        [c.gold for c in cases],
        queries=[c.query for c in cases],
        groups=[data.GROUPS[c.setting] for c in cases],
        feature_set="general",
        info={"settings": sorted(train)},
        **FIT,
    )
    secs = time.perf_counter() - t0
    model.header["training"]["fit_seconds"] = round(secs, 1)
    model.save(out)
    return model, secs


def reuse(path: Path, train: list[str]):
    """The fold's model fitted by an earlier run on the same training settings, if any."""
    from ragsel.stages.cutoff.learned import CutoffModel

    if not path.is_file():
        return None, 0.0
    model = CutoffModel.load(path)
    if model.header["training"].get("settings") != train:
        return None, 0.0
    return model, float(model.header["training"].get("fit_seconds", 0.0))


def best_k(settings: dict[str, list]) -> int:
    """The k with the best F1 averaged over settings (each setting weighs the same)."""
    f1 = [
        np.mean([fixed(cs, k)[:, 2].mean() for cs in settings.values()])
        for k in range(1, MAX_FIXED + 1)
    ]
    return int(np.argmax(f1)) + 1


def run(names: Sequence[str], model_dir: Path, only: Sequence[str] | None = None) -> dict:
    cases = {n: data.load(n) for n in names}
    groups = [g for g in sorted({data.GROUPS[n] for n in names}) if not only or g in only]
    report: dict = {"settings": {}, "folds": {}}
    for g in groups:
        test = {n: cs for n, cs in cases.items() if data.GROUPS[n] == g}
        train = {n: cs for n, cs in cases.items() if data.GROUPS[n] != g}
        print(f"== leave out {g}: fit on {sorted(train)}", flush=True)
        path = model_dir / f"general-without-{g}.npz"
        model, secs = reuse(path, sorted(train)) if REUSE else (None, 0.0)
        if model is None:
            model, secs = fit_general(train, path)
        k_other = best_k(train)
        report["folds"][g] = {
            "train_settings": sorted(train),
            "fit_seconds": round(secs, 1),
            "model": {"kind": model.header["kind"], "rule": model.header["defaults"]},
            "best_fixed_k_other": k_other,
        }
        for n, cs in test.items():
            k_own = best_k({n: cs})
            rows = {
                "general": learned(cs, model_dir / f"general-without-{g}.npz"),
                "elbow": elbow(cs),
                "top3": fixed(cs, 3),
                "top5": fixed(cs, 5),
                "top10": fixed(cs, 10),
                f"best fixed k (other datasets) = {k_other}": fixed(cs, k_other),
                f"own tuned k (oracle) = {k_own}": fixed(cs, k_own),
            }
            if ADAPT:
                rows["adapted (pseudo-queries)"] = adapted_rows(
                    n, cs, model, model_dir / f"adapted-{n}.npz"
                )
            res = {m: summarise(r) for m, r in rows.items()}
            other = f"best fixed k (other datasets) = {k_other}"
            paired = {
                f"general - {m}": paired_diff(rows["general"][:, 2], rows[m][:, 2])
                for m in ("elbow", other)
            }
            report["settings"][n] = {
                "group": g,
                "queries": len(cs),
                "relevant_per_query": round(float(np.mean([len(c.gold) for c in cs])), 2),
                "candidates_per_query": round(float(np.mean([len(c.hybrid.items) for c in cs])), 1),
                "methods": res,
                "paired_f1_difference": paired,
            }
            print_setting(n, report["settings"][n])
    return report


def adapted_rows(name: str, cases: list, model, path: Path) -> np.ndarray:
    """The fold's general model calibrated on pseudo-queries of the left-out corpus."""
    from ragsel.stages.cutoff._adapt import calibrate

    pseudo = data.pseudo_lists(name)
    adapted = calibrate(
        model, [c.hybrid for c in pseudo], [c.gold for c in pseudo], [c.query for c in pseudo]
    )
    adapted.save(path)
    return learned(cases, path)


def print_setting(name: str, res: dict) -> None:
    print(f"-- {name} ({res['queries']} queries, {res['relevant_per_query']} relevant/query)")
    for m, d in res.get("paired_f1_difference", {}).items():
        print(f"  paired F1 {m}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    for m, r in res["methods"].items():
        print(
            f"  {m:40s} F1 {r['f1']:.3f} [{r['f1_ci95'][0]:.3f}, {r['f1_ci95'][1]:.3f}]  "
            f"P {r['precision']:.3f} R {r['recall']:.3f} chunks {r['chunks']:.2f}",
            flush=True,
        )


def markdown(report: dict) -> str:
    """The README table: F1 (chunks/query) per left-out setting and method."""
    cols = ["general", "adapted (pseudo-queries)", "elbow", "top3", "top5", "top10"]
    head = (
        "| left-out setting | relevant/query | general | adapted | elbow | top-3 | top-5 | "
        "top-10 | best k of the others | own tuned k (oracle) |"
    )
    lines = [head, "|" + "---|" * 10]
    for n, res in report["settings"].items():
        m = res["methods"]
        other = next(k for k in m if k.startswith("best fixed k"))
        own = next(k for k in m if k.startswith("own tuned k"))
        cells = [
            f"{m[c]['f1']:.3f} ({m[c]['chunks']:.1f})" if c in m else "–"
            for c in [*cols, other, own]
        ]
        cells[-2] = f"k={other.split('= ')[1]}: {cells[-2]}"
        cells[-1] = f"k={own.split('= ')[1]}: {cells[-1]}"
        lines.append(f"| {n} | {res['relevant_per_query']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="*", default=list(data.BUILDERS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the results file and exit")
    ap.add_argument(
        "--groups",
        nargs="*",
        default=None,
        help="leave out only these groups (parallel runs); their part goes to the cache",
    )
    ap.add_argument("--merge", action="store_true", help="merge the parts into --out")
    ap.add_argument(
        "--fit-shipped",
        action="store_true",
        help="fit the general model on every setting and write the model shipped in ragsel",
    )
    ap.add_argument("--no-adapted", action="store_true", help="skip the adapted model")
    ap.add_argument(
        "--reuse-models",
        action="store_true",
        help="evaluate fold models an earlier run fitted on the same settings (no re-fit)",
    )
    args = ap.parse_args(argv)
    global ADAPT, REUSE
    ADAPT, REUSE = not args.no_adapted, args.reuse_models
    if args.fit_shipped:
        data.build(args.settings)
        model, secs = fit_general({n: data.load(n) for n in args.settings}, SHIPPED)
        print(f"wrote {SHIPPED} ({secs:.0f}s): {model.header['kind']} {model.header['defaults']}")
        return 0
    parts = data.CACHE / "lodo-parts" / data.VARIANT
    if args.merge:
        report: dict = {"settings": {}, "folds": {}}
        for f in sorted(parts.glob("*.json")):
            part = json.loads(f.read_text())
            report["settings"].update(part["settings"])
            report["folds"].update(part["folds"])
        report["parts"] = sorted(f.name for f in parts.glob("*.json"))
        _common.write_json(args.out, report)
        print(f"wrote {args.out}")
        return 0
    if args.table:
        report = json.loads(args.out.read_text())
        for n, res in report["settings"].items():
            print_setting(n, res)
        print(markdown(report))
        return 0
    data.build(args.settings)
    t0 = time.perf_counter()
    model_dir = data.CACHE / "models" / data.VARIANT
    model_dir.mkdir(parents=True, exist_ok=True)
    report = run(args.settings, model_dir, args.groups)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.groups:
        parts.mkdir(parents=True, exist_ok=True)
        args.out = parts / f"{'+'.join(sorted(args.groups))}.json"
    _common.write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
