"""Held-out evidence selection: fixed top-k vs elbow vs rationale selector vs learned cutoff.

Datasets (each query's candidates = the full ranked list of its corpus):

- PrivacyQA spans (LegalBench-RAG): the two policies cut into 128- and 256-word chunks with 10%
  overlap; gold = chunks overlapping a gold span; every chunk of both policies is a candidate.
- HotpotQA hard (distractor): each question's 10 paragraphs, as paragraph chunks and as
  sentence chunks; gold = paragraphs / sentences holding a supporting fact.

Retrieval: MiniLM cosine (``dense``), bm25s with stemming (``bm25``, ragsel's BM25Store) and
RRF(k=60) of both (``hybrid``, ragsel's ``fusion`` stage). Selection is done by ragsel's real
stages (``top_k``, ``elbow_cutoff``, ``query/subphrase/prf_rationales`` +
``rationale_selector``, ``learned_cutoff``, ``neighbor_expansion``).

Protocol: 5-fold cross-validation over queries (seed 0). Every setting (k, retriever,
expansion; selector scope/distinct/min_pair_z/z; learned-cutoff expansion) is chosen by mean
F1 on the training folds and scored on the held-out fold; the learned model is fitted on the
training folds only. Reported: precision, recall, F1 and chunks per query pooled over the
held-out folds, and **chunks saved at equal recall**: the method's chunks per query compared
with the fewest chunks any fixed-k configuration (any retriever, with or without +-1
expansion, k = 1..15) needs for the same mean recall on the same queries (linear
interpolation on the fixed-k curve; this baseline frontier is an oracle choice among fixed-k
settings, so the comparison favours top-k), with a 95% bootstrap interval over queries (500
resamples of the held-out selections, the fixed-k frontier recomputed on each).

The learned cutoff (``ragsel.stages.cutoff.learned``) is fitted per fold on the training folds
only, with its own out-of-fold choice (3 inner folds, two different splits averaged) of model
kind (GBDT or logistic), order (as ranked, or re-ranked by the predicted relevance) and cut
rule (``fit_cutoff_model``, kind ``auto``; the exact expected-F1 cut is kept unless another
rule beats it by more than one standard error). Its corpus priors (what the training folds'
queries found in each chunk and document, ``_learned_priors``) are counted from the training
folds only; the held-out queries' labels never reach a model. Ablations: ``--no-priors``,
``--inner-repeats 1``, ``--no-one-se``.
Variants (see :func:`learned_cv`): ``learned`` (list + query features),
``learned list-only`` (no query text), ``learned as-ranked`` (a prefix of the hybrid ranking),
``selector+learned`` (cuts the rationale selector's pooled ranking; sub-phrase rationales;
pairing and pooled score are features), ``learned rank, tuned k`` (ablation: the model's
ranking cut at a fixed k chosen on the training folds).

Run (the figures in the results were produced by these two commands)::

    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.selection_cv --parts elbow selector
    OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.selection_cv --parts learned \
        --out eval/benchmarks/studies/results/selection_cv_learned.json

(``--only hotpot-para`` runs one setting, ``--variants learned`` one learned variant; fixed
top-k always runs, it is the baseline. Settings may run in parallel processes on one results
file.)

Embeddings are cached in ``$RAGSEL_BENCH_CACHE/selection_cv`` (see ``_common``). Results go to
``eval/benchmarks/studies/results/selection_cv.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ragsel_eval.datasets import gold_chunk_ids, load_dataset
from ragsel_eval.metrics.selection import chunks_at_recall, selection_scores

from eval.benchmarks import _common
from eval.benchmarks._common import write_json  # sets the offline env
from ragsel.types import Candidates, Chunk, Query, Rationales

CACHE = _common.CACHE / "selection_cv"
RESULTS = _common.results_dir("studies") / "selection_cv.json"
FOLDS, SEED, MAX_K = 5, 0, 15
BOOTSTRAP = 500  # resamples of the queries for the interval of "chunks saved"


class CachedEmbedder:
    """Wraps an embedder; vectors persist on disk keyed by a hash of the text."""

    def __init__(self, base, path: Path):
        self.base, self.path = base, path
        self.name = base.name
        self.vectors: dict[str, np.ndarray] = {}
        self.embed_seconds = 0.0
        if path.is_file():
            with np.load(path) as d:
                self.vectors = dict(zip(d["keys"].tolist(), d["vecs"]))
        self._dirty = False

    @property
    def dim(self) -> int:
        return self.base.dim

    def warm_up(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        if todo:
            t0 = time.perf_counter()
            vecs = self.base.embed([t for _, t in todo])
            self.embed_seconds += time.perf_counter() - t0
            for (k, _), v in zip(todo, vecs):
                self.vectors[k] = v
            self._dirty = True
        return np.stack([self.vectors[k] for k in keys])

    def save(self) -> None:
        if self._dirty:
            keys = list(self.vectors)
            np.savez(self.path, keys=np.array(keys), vecs=np.stack([self.vectors[k] for k in keys]))
            self._dirty = False


@dataclass
class Case:
    query: Query
    chunks: list[Chunk]
    gold: set[str]
    lists: dict[str, Candidates] = field(default_factory=dict)


def rank_lists(query: Query, chunks: list[Chunk], cvecs: np.ndarray, emb, bm25) -> dict:
    from ragsel.stages.retrieve.fusion import RankFusion

    qv = emb.embed([query.text])[0]
    sims = cvecs @ qv
    order = np.argsort(-sims, kind="stable")
    dense = Candidates.retrieved("dense", [(chunks[i], float(sims[i])) for i in order])
    by_id = {c.id: c for c in chunks}
    bm = Candidates.retrieved(
        "bm25", [(by_id[cid], s) for cid, s in bm25.search(query.text, k=len(chunks))]
    )
    hybrid = RankFusion(k=60).run(candidates=[dense, bm])
    return {"dense": dense, "bm25": bm, "hybrid": hybrid}


def privacyqa_cases(size: int, emb) -> list[Case]:
    from ragsel.index.bm25 import BM25Config, BM25Store
    from ragsel.ingest.chunkers import ChunkerConfig, chunk_documents
    from ragsel.ingest.documents import Document

    ds = load_dataset("privacyqa")
    docs = [Document(d.id, d.text, d.title) for d in ds.documents.values()]
    chunks = list(chunk_documents(docs, ChunkerConfig("words", size=size)))
    cvecs = emb.embed([c.text for c in chunks])
    bm25 = BM25Store.build([c.text for c in chunks], [c.id for c in chunks], BM25Config())
    cases = []
    for q in ds.queries:
        query = Query(q.text, id=q.id)
        gold = gold_chunk_ids(q, chunks)
        if gold:
            cases.append(Case(query, chunks, gold, rank_lists(query, chunks, cvecs, emb, bm25)))
    return cases


def hotpot_cases(kind: str, emb) -> list[Case]:
    from eval.benchmarks.studies._lodo_data import hotpot_chunks
    from ragsel.index.bm25 import BM25Config, BM25Store

    ds = load_dataset("hotpotqa")
    cases = []
    for q in ds.queries:
        chunks = []
        for d in ds.corpus_for(q):
            chunks += hotpot_chunks(d, kind)
        query = Query(q.text, id=q.id)
        gold = gold_chunk_ids(q, chunks)
        if not gold:
            continue
        cvecs = emb.embed([c.text for c in chunks])
        bm25 = BM25Store.build([c.text for c in chunks], [c.id for c in chunks], BM25Config())
        cases.append(Case(query, chunks, gold, rank_lists(query, chunks, cvecs, emb, bm25)))
    return cases


# --- methods: each returns the selected Candidates for one case under one config --------------
_EXPANDER = None


def expand(cands: Candidates) -> Candidates:
    global _EXPANDER
    if _EXPANDER is None:
        from ragsel.stages.expand.neighbors import NeighborExpander

        _EXPANDER = NeighborExpander(window=1)
    return _EXPANDER.run(candidates=cands)


def fixed_k(case: Case, retriever: str, k: int, exp: bool) -> list[str]:
    from ragsel.stages.cutoff.top_k import TopKCutoff

    out = TopKCutoff(k=k).run(candidates=case.lists[retriever])
    return (expand(out) if exp else out).ids


def elbow(case: Case, retriever: str, exp: bool) -> list[str]:
    from ragsel.stages.cutoff.elbow import ElbowCutoff

    out = ElbowCutoff().run(candidates=case.lists[retriever])
    return (expand(out) if exp else out).ids


class Rationalizer:
    """Rationales per (source, query), computed once."""

    def __init__(self, emb):
        from ragsel.stages.rationale.prf import PRFRationales
        from ragsel.stages.rationale.query import QueryRationales
        from ragsel.stages.rationale.subphrases import SubphraseRationales

        self.stages = {
            "query": QueryRationales(),
            "subphrase": SubphraseRationales(),
            "prf": PRFRationales(embedder="cached"),
        }
        self.stages["prf"].bind_components({"cached": emb})
        self.memo: dict[tuple[str, str], Rationales] = {}

    def get(self, source: str, case: Case) -> Rationales:
        key = (source, case.query.id)
        if key not in self.memo:
            st = self.stages[source]
            kw = {"query": case.query}
            if source == "prf":
                kw["candidates"] = case.lists["hybrid"]
            self.memo[key] = st.run(**kw)
        return self.memo[key]


_SELECTORS: dict = {}


def selector(emb, **cfg):
    from ragsel.stages.select.rationale_selector import RationaleSelector

    key = json.dumps(cfg, sort_keys=True)
    if key not in _SELECTORS:
        s = RationaleSelector(embedder="cached", **cfg)
        s.bind_components({"cached": emb})
        _SELECTORS[key] = s
    return _SELECTORS[key]


def rationale_select(case: Case, rats: Rationales, emb, exp: bool, **cfg) -> list[str]:
    out = selector(emb, **cfg).run(
        candidates=case.lists["hybrid"], rationales=rats, query=case.query
    )
    return (expand(out) if exp else out).ids


# --- evaluation ---------------------------------------------------------------------------------
def scores(selected: Sequence[list[str]], cases: Sequence[Case]) -> dict[str, float]:
    rows = [selection_scores(s, c.gold) for s, c in zip(selected, cases)]
    out = {}
    for m in ("precision", "recall", "f1", "chunks"):
        v = np.array([r[m] for r in rows], dtype=float)
        out[m] = float(np.nanmean(v))
    return out


def per_query_rc(selected: Sequence[list[str]], cases: Sequence[Case]) -> np.ndarray:
    """``(2, n)``: each query's recall and number of chunks."""
    rows = [selection_scores(s, c.gold) for s, c in zip(selected, cases)]
    return np.array([[r["recall"] for r in rows], [r["chunks"] for r in rows]], dtype=float)


def folds_of(n: int) -> list[np.ndarray]:
    idx = np.random.default_rng(SEED).permutation(n)
    return [idx[f::FOLDS] for f in range(FOLDS)]


def cv_choose(results: dict[str, list[list[str]]], cases: list[Case]) -> tuple[list, list]:
    """Per fold, the config with the best training-fold mean F1; returns the held-out
    selections (in case order) and the chosen config per fold."""
    n = len(cases)
    held: list = [None] * n
    chosen = []
    for test in folds_of(n):
        train = np.setdiff1d(np.arange(n), test)
        best = max(
            results,
            key=lambda cfg: (
                scores([results[cfg][i] for i in train], [cases[i] for i in train])["f1"],
                cfg,
            ),
        )
        chosen.append(best)
        for i in test:
            held[i] = results[best][i]
    return held, chosen


def learned_cv(cases: list[Case], emb, variant: str) -> tuple[list, list]:
    """One learned variant under the CV protocol. Variants: ``learned`` (list + query features,
    cut rule and order chosen out-of-fold inside the fit), ``learned list-only`` (no query
    features: the previous feature set's kind of model), ``learned as-ranked`` (a prefix of the
    hybrid ranking), ``selector+learned`` (cuts the selector's pooled ranking),
    ``learned rank, tuned k`` (ablation: re-rank by the model, then a fixed k chosen on the
    training folds: how much comes from the ranking rather than the per-query cut)."""
    from ragsel.stages.cutoff.learned import LearnedCutoff, fit_cutoff_model

    n = len(cases)
    held: list = [None] * n
    chosen = []
    tmp = CACHE / "models"
    tmp.mkdir(parents=True, exist_ok=True)

    def base_list(c: Case) -> Candidates:
        if variant.startswith("selector"):
            rats = RATS.get("subphrase", c)
            return selector(emb, cutoff="none", distinct=True).run(
                candidates=c.lists["hybrid"], rationales=rats, query=c.query
            )
        return c.lists["hybrid"]

    lists = [base_list(c) for c in cases]
    order = "input" if variant.endswith("as-ranked") else "auto"
    with_query = not variant.endswith("list-only")
    for f, test in enumerate(folds_of(n)):
        train = np.setdiff1d(np.arange(n), test)
        model = fit_cutoff_model(
            [lists[i] for i in train],
            [cases[i].gold for i in train],
            queries=[cases[i].query for i in train] if with_query else None,
            kind=KIND,
            seed=SEED,
            **FIT,
            orders=("input",) if order == "input" else ("input", "probability"),
        )
        path = model.save(tmp / f"{SETTING}-{variant.replace(' ', '_')}-fold{f}.npz")
        if variant.endswith("tuned k"):
            ranked = {
                i: ranked_by_model(LearnedCutoff(model=str(path)), lists[i], cases[i])
                for i in range(n)
            }
            cfgs = {
                (k, e): [
                    (
                        expand(r.derive("top_k", r.items[:k]))
                        if e
                        else r.derive("top_k", r.items[:k])
                    ).ids
                    for r in ranked.values()
                ]
                for k in range(1, MAX_K + 1)
                for e in (False, True)
            }
            best = max(
                cfgs,
                key=lambda ke: (
                    scores([cfgs[ke][i] for i in train], [cases[i] for i in train])["f1"],
                    ke,
                ),
            )
            chosen.append(f"k={best[0]} expand={best[1]}")
            for i in test:
                held[i] = cfgs[best][i]
            continue
        # the selector variant: the model sees the pooled score and who paired each chunk as
        # features and decides alone (keeping every paired chunk over-selects)
        stage = LearnedCutoff(model=str(path), order=order, keep_paired=False)
        picks = {i: stage.run(candidates=lists[i], query=cases[i].query) for i in range(n)}
        train_f1 = {
            e: scores(
                [(expand(picks[i]) if e else picks[i]).ids for i in train],
                [cases[i] for i in train],
            )["f1"]
            for e in (False, True)
        }
        e = max(train_f1, key=lambda x: (train_f1[x], not x))
        chosen.append(f"expand={e} {model.header['kind']} {model.header['defaults']}")
        for i in test:
            held[i] = (expand(picks[i]) if e else picks[i]).ids
    return held, chosen


def ranked_by_model(stage, cands: Candidates, case: Case) -> Candidates:
    """``cands`` re-ranked by the stage's model (no cut)."""
    p = stage._get_model().probabilities(cands, case.query)
    order = np.argsort(-p, kind="stable")
    return cands.derive("learned_rank", [cands.items[i] for i in order])


RATS: Rationalizer
ALL_VARIANTS = (
    "learned",
    "learned list-only",
    "learned as-ranked",
    "selector+learned",
    "learned rank, tuned k",
)
VARIANTS = ALL_VARIANTS
FIT: dict = {}  # ablation options of fit_cutoff_model (priors, inner_repeats, one_se)
KIND = "auto"  # the model kind, GBDT or logistic, is chosen out-of-fold inside each fit
SETTING = ""


def run_setting(name: str, cases: list[Case], emb, parts: set[str], previous: dict) -> dict:
    global RATS, SETTING
    RATS = Rationalizer(emb)
    SETTING = name
    t0 = time.perf_counter()
    fixed: dict[str, list] = {}
    for r, e, k in itertools.product(
        ("dense", "bm25", "hybrid"), (False, True), range(1, MAX_K + 1)
    ):
        fixed[f"{r} top{k:02d} expand={e}"] = [fixed_k(c, r, k, e) for c in cases]
    frontier_curves = []
    frontier_rc = []  # per query (recall, chunks) of every fixed-k setting, for the bootstrap
    for r, e in itertools.product(("dense", "bm25", "hybrid"), (False, True)):
        frontier_curves.append(
            [scores(fixed[f"{r} top{k:02d} expand={e}"], cases) for k in range(1, MAX_K + 1)]
        )
        frontier_rc.append(
            np.stack(
                [
                    per_query_rc(fixed[f"{r} top{k:02d} expand={e}"], cases)
                    for k in range(1, MAX_K + 1)
                ]
            )
        )
    boot = np.random.default_rng(SEED).integers(0, len(cases), (BOOTSTRAP, len(cases)))
    # mean recall / chunks of each fixed-k setting on each resample: (curves, k, 2, B)
    frontier_boot = np.stack([rc[:, :, boot].mean(axis=-1) for rc in frontier_rc])

    def saved_ci(held: list) -> list[float]:
        """95% bootstrap interval (queries resampled) of the chunks saved at equal recall."""
        rc = per_query_rc(held, cases)[:, boot].mean(axis=-1)  # (2, B)
        out = []
        for b in range(BOOTSTRAP):
            need = [
                chunks_at_recall(
                    [{"recall": fb[k, 0, b], "chunks": fb[k, 1, b]} for k in range(MAX_K)], rc[0, b]
                )
                for fb in frontier_boot
            ]
            need = [x for x in need if not np.isnan(x)]
            if need:
                out.append(1 - rc[1, b] / min(need))
        if len(out) < BOOTSTRAP // 2:
            return []
        return [round(float(q), 3) for q in np.percentile(out, [2.5, 97.5])]

    def saved(res: dict) -> dict:
        need = [chunks_at_recall(cv, res["recall"]) for cv in frontier_curves]
        need = [x for x in need if not np.isnan(x)]
        if not need:
            return {"fixed_k_chunks_at_recall": None, "chunks_saved": None}
        base = min(need)
        return {
            "fixed_k_chunks_at_recall": round(base, 3),
            "chunks_saved": round(1 - res["chunks"] / base, 3),
        }

    methods: dict[str, dict] = dict(previous.get("methods", {}))

    def record(label: str, held: list, chosen: list) -> None:
        res = scores(held, cases)
        res = {k: round(v, 4) for k, v in res.items()}
        methods[label] = {
            **res,
            **saved(res),
            "chunks_saved_ci95": saved_ci(held),
            "chosen_per_fold": sorted(set(map(str, chosen))),
        }
        print(
            f"  {label:38s} P {res['precision']:.3f} R {res['recall']:.3f} "
            f"F1 {res['f1']:.3f} chunks {res['chunks']:5.2f}  saved@recall "
            f"{methods[label]['chunks_saved']} CI95 {methods[label]['chunks_saved_ci95']}",
            flush=True,
        )

    record("(a) fixed top-k (tuned)", *cv_choose(fixed, cases))
    if "elbow" in parts:
        record(
            "(b) elbow z=1 (dense)",
            *cv_choose(
                {
                    f"dense elbow expand={e}": [elbow(c, "dense", e) for c in cases]
                    for e in (False, True)
                },
                cases,
            ),
        )
    grid = []
    for scope, distinct, mz, z, mk, e in itertools.product(
        ("global", "per_document"),
        (True, False),
        (None, 1.5, 3.0),
        (1.0, 2.0),
        (None, 5),
        (False, True),
    ):
        grid.append(
            dict(scope=scope, distinct=distinct, min_pair_z=mz, z_threshold=z, max_k=mk, exp=e)
        )
    grid += [
        dict(scope=s, pairing=False, z_threshold=z, max_k=mk, exp=e)
        for s, z, mk, e in itertools.product(
            ("global", "per_document"), (1.0, 2.0), (None, 5), (False, True)
        )
    ]
    for source in ("query", "subphrase", "prf") if "selector" in parts else ():
        res = {}
        for g in grid:
            cfg = dict(g)
            e = cfg.pop("exp")
            res[json.dumps(g, sort_keys=True)] = [
                rationale_select(c, RATS.get(source, c), emb, e, **cfg) for c in cases
            ]
        record(f"(c) rationale selector: {source}", *cv_choose(res, cases))
    if "learned" in parts:
        for stale in [
            k
            for k in methods
            if k.startswith("(d)") and (VARIANTS == ALL_VARIANTS or k[4:] in VARIANTS)
        ]:
            del methods[stale]
    for variant in VARIANTS if "learned" in parts else ():
        record(f"(d) {variant}", *learned_cv(cases, emb, variant))
    best_fixed = max(frontier_curves[0] + sum(frontier_curves[1:], []), key=lambda r: r["f1"])
    return {
        "setting": name,
        "queries": len(cases),
        "chunks_per_query_candidates": round(float(np.mean([len(c.chunks) for c in cases])), 1),
        "gold_per_query": round(float(np.mean([len(c.gold) for c in cases])), 2),
        "methods": methods,
        "fixed_k_in_sample_best_f1": round(best_fixed["f1"], 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


SETTINGS: dict[str, Callable] = {
    "privacyqa-128": lambda emb: privacyqa_cases(128, emb),
    "privacyqa-256": lambda emb: privacyqa_cases(256, emb),
    "hotpot-para": lambda emb: hotpot_cases("para", emb),
    "hotpot-sent": lambda emb: hotpot_cases("sent", emb),
}


def print_table(report: dict) -> None:
    """Held-out F1, chunks per query and chunks saved at equal recall, per setting."""
    for name, res in report.items():
        print(f"== {name} ({res['queries']} queries)")
        for label, m in res["methods"].items():
            saved, ci = m["chunks_saved"], m.get("chunks_saved_ci95") or []
            print(
                f"  {label:38s} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
                f"chunks {m['chunks']:5.2f}  saved@recall "
                f"{'n/a' if saved is None else f'{100 * saved:.1f}%'}"
                + (f" (95% CI {100 * ci[0]:.1f}% to {100 * ci[1]:.1f}%)" if ci else "")
            )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=list(SETTINGS), default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--parts",
        nargs="*",
        default=["elbow", "selector", "learned"],
        choices=["elbow", "selector", "learned"],
        help="which methods to (re)run; fixed top-k always runs; others are kept "
        "from the existing results file",
    )
    ap.add_argument(
        "--variants",
        nargs="*",
        default=None,
        choices=list(ALL_VARIANTS),
        help="learned variants to (re)run (default: all)",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N queries (smoke runs)")
    ap.add_argument(
        "--table", action="store_true", help="only print the results file (--out) as a table"
    )
    ap.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "gbdt", "logistic"],
        help="learned model kind (auto: chosen on the training folds)",
    )
    ap.add_argument(
        "--no-priors",
        action="store_true",
        help="ablation: fit without corpus priors (what the training queries found)",
    )
    ap.add_argument(
        "--inner-repeats",
        type=int,
        default=None,
        help="ablation: inner out-of-fold splits averaged by the fit (default 2)",
    )
    ap.add_argument(
        "--no-one-se",
        action="store_true",
        help="ablation: take the grid's best rule, not the default within 1 SE",
    )
    ap.add_argument(
        "--no-calibrate",
        action="store_true",
        help="ablation: no Platt scaling of the model's probabilities",
    )
    args = ap.parse_args(argv)
    global VARIANTS, KIND
    FIT.update(
        {"priors": False} if args.no_priors else {},
        **({"inner_repeats": args.inner_repeats} if args.inner_repeats else {}),
        **({"one_se": False} if args.no_one_se else {}),
        **({"calibrate": False} if args.no_calibrate else {}),
    )
    VARIANTS = tuple(args.variants) if args.variants else ALL_VARIANTS
    KIND = args.kind
    if args.table:
        print_table(json.loads(args.out.read_text()))
        return 0
    from ragsel.backends.embedders import load_embedder

    CACHE.mkdir(parents=True, exist_ok=True)
    emb = CachedEmbedder(load_embedder("minilm"), CACHE / "minilm-vectors.npz")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.only or list(SETTINGS):
        print(f"== {name}", flush=True)
        cases = SETTINGS[name](emb)[: args.limit]
        emb.save()
        result = run_setting(name, cases, emb, set(args.parts), report.get(name, {}))
        emb.save()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # re-read before writing: runs of other settings may have written meanwhile
        report = json.loads(args.out.read_text()) if args.out.is_file() else {}
        report[name] = result
        write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
