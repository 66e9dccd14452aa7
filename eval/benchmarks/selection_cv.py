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
settings, so the comparison favours top-k).

The learned cutoff (``ragsel.stages.cutoff.learned``) is fitted per fold with its own
out-of-fold choice of cut rule and order (``fit_cutoff_model``); ``learned`` uses that choice,
``learned as-ranked`` forces a prefix of the hybrid ranking, ``selector+learned`` cuts the
rationale selector's pooled ranking (sub-phrase rationales; pairing and pooled score are
features).

Run (the figures in the results were produced by these two commands)::

    OMP_NUM_THREADS=1 python eval/benchmarks/selection_cv.py --parts elbow selector
    OMP_NUM_THREADS=1 python eval/benchmarks/selection_cv.py --parts learned \
        --out eval/benchmarks/results/selection_cv_learned.json

(``--only hotpot-para`` runs one setting; fixed top-k always runs, it is the baseline.)

Embeddings are cached in ``$RAGSEL_CACHE`` (default /work/cache)/selection_cv. Results go to
``eval/benchmarks/results/selection_cv.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "eval"))

from ragsel.types import Candidates, Chunk, Query, Rationales, content_id  # noqa: E402
from ragsel_eval.datasets import gold_chunk_ids, load_dataset  # noqa: E402
from ragsel_eval.metrics.selection import chunks_at_recall, selection_scores  # noqa: E402

CACHE = Path(os.environ.get("RAGSEL_CACHE", "/work/cache")) / "selection_cv"
RESULTS = REPO / "eval" / "benchmarks" / "results" / "selection_cv.json"
FOLDS, SEED, MAX_K = 5, 0, 15


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
            np.savez(self.path, keys=np.array(keys), vecs=np.stack([self.vectors[k]
                                                                    for k in keys]))
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
    bm = Candidates.retrieved("bm25", [(by_id[cid], s)
                                       for cid, s in bm25.search(query.text, k=len(chunks))])
    hybrid = RankFusion(k=60).run(candidates=[dense, bm])
    return {"dense": dense, "bm25": bm, "hybrid": hybrid}


def privacyqa_cases(size: int, emb) -> list[Case]:
    from ragsel.index.bm25 import BM25Config, BM25Store
    from ragsel.ingest.chunkers import ChunkerConfig, chunk_documents
    from ragsel.ingest.documents import Document

    ds = load_dataset("privacyqa")
    docs = [Document(d.id, d.text) for d in ds.documents.values()]
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
    from ragsel.index.bm25 import BM25Config, BM25Store

    ds = load_dataset("hotpotqa")
    cases = []
    for q in ds.queries:
        chunks = []
        for d in ds.corpus_for(q):
            if kind == "para":
                chunks.append(Chunk(content_id(d.text, d.id, 0), d.text, doc_id=d.id,
                                    position=0, span=(0, len(d.text))))
            else:
                for i, (s, e) in enumerate(d.metadata["sentence_spans"]):
                    t = d.text[s:e]
                    if t.strip():
                        chunks.append(Chunk(content_id(t, d.id, i), t, doc_id=d.id,
                                            position=i, span=(s, e)))
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

        self.stages = {"query": QueryRationales(), "subphrase": SubphraseRationales(),
                       "prf": PRFRationales(embedder="cached")}
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
    out = selector(emb, **cfg).run(candidates=case.lists["hybrid"], rationales=rats,
                                   query=case.query)
    return (expand(out) if exp else out).ids


# --- evaluation ---------------------------------------------------------------------------------
def scores(selected: Sequence[list[str]], cases: Sequence[Case]) -> dict[str, float]:
    rows = [selection_scores(s, c.gold) for s, c in zip(selected, cases)]
    out = {}
    for m in ("precision", "recall", "f1", "chunks"):
        v = np.array([r[m] for r in rows], dtype=float)
        out[m] = float(np.nanmean(v))
    return out


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
        best = max(results, key=lambda cfg: (scores([results[cfg][i] for i in train],
                                                    [cases[i] for i in train])["f1"], cfg))
        chosen.append(best)
        for i in test:
            held[i] = results[best][i]
    return held, chosen


def learned_cv(cases: list[Case], emb, variant: str) -> tuple[list, list]:
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
                candidates=c.lists["hybrid"], rationales=rats, query=c.query)
        return c.lists["hybrid"]

    lists = [base_list(c) for c in cases]
    order = "input" if variant.endswith("as-ranked") else "auto"
    for f, test in enumerate(folds_of(n)):
        train = np.setdiff1d(np.arange(n), test)
        model = fit_cutoff_model([lists[i] for i in train], [cases[i].gold for i in train],
                                 seed=SEED)
        path = model.save(tmp / f"{variant}-fold{f}.npz")
        # the selector variant: the model sees the pooled score and who paired each chunk as
        # features and decides alone (keeping every paired chunk over-selects)
        stage = LearnedCutoff(model=str(path), order=order, keep_paired=False)
        picks = {i: stage.run(candidates=lists[i]) for i in range(n)}
        train_f1 = {e: scores([(expand(picks[i]) if e else picks[i]).ids for i in train],
                              [cases[i] for i in train])["f1"] for e in (False, True)}
        e = max(train_f1, key=lambda x: (train_f1[x], not x))
        chosen.append(f"expand={e}")
        for i in test:
            held[i] = (expand(picks[i]) if e else picks[i]).ids
    return held, chosen


RATS: Rationalizer


def run_setting(name: str, cases: list[Case], emb, parts: set[str], previous: dict) -> dict:
    global RATS
    RATS = Rationalizer(emb)
    t0 = time.perf_counter()
    fixed: dict[str, list] = {}
    for r, e, k in itertools.product(("dense", "bm25", "hybrid"), (False, True),
                                     range(1, MAX_K + 1)):
        fixed[f"{r} top{k:02d} expand={e}"] = [fixed_k(c, r, k, e) for c in cases]
    frontier_curves = []
    for r, e in itertools.product(("dense", "bm25", "hybrid"), (False, True)):
        frontier_curves.append([scores(fixed[f"{r} top{k:02d} expand={e}"], cases)
                                for k in range(1, MAX_K + 1)])

    def saved(res: dict) -> dict:
        need = [chunks_at_recall(cv, res["recall"]) for cv in frontier_curves]
        need = [x for x in need if not np.isnan(x)]
        if not need:
            return {"fixed_k_chunks_at_recall": None, "chunks_saved": None}
        base = min(need)
        return {"fixed_k_chunks_at_recall": round(base, 3),
                "chunks_saved": round(1 - res["chunks"] / base, 3)}

    methods: dict[str, dict] = dict(previous.get("methods", {}))

    def record(label: str, held: list, chosen: list) -> None:
        res = scores(held, cases)
        res = {k: round(v, 4) for k, v in res.items()}
        methods[label] = {**res, **saved(res), "chosen_per_fold": sorted(set(map(str, chosen)))}
        print(f"  {label:38s} P {res['precision']:.3f} R {res['recall']:.3f} "
              f"F1 {res['f1']:.3f} chunks {res['chunks']:5.2f}  saved@recall "
              f"{methods[label]['chunks_saved']}", flush=True)

    record("(a) fixed top-k (tuned)", *cv_choose(fixed, cases))
    if "elbow" in parts:
        record("(b) elbow z=1 (dense)", *cv_choose(
            {f"dense elbow expand={e}": [elbow(c, "dense", e) for c in cases]
             for e in (False, True)}, cases))
    grid = []
    for scope, distinct, mz, z, mk, e in itertools.product(
            ("global", "per_document"), (True, False), (None, 1.5, 3.0), (1.0, 2.0),
            (None, 5), (False, True)):
        grid.append(dict(scope=scope, distinct=distinct, min_pair_z=mz, z_threshold=z,
                         max_k=mk, exp=e))
    grid += [dict(scope=s, pairing=False, z_threshold=z, max_k=mk, exp=e) for s, z, mk, e in
             itertools.product(("global", "per_document"), (1.0, 2.0), (None, 5),
                               (False, True))]
    for source in ("query", "subphrase", "prf") if "selector" in parts else ():
        res = {}
        for g in grid:
            cfg = dict(g)
            e = cfg.pop("exp")
            res[json.dumps(g, sort_keys=True)] = [
                rationale_select(c, RATS.get(source, c), emb, e, **cfg) for c in cases]
        record(f"(c) rationale selector: {source}", *cv_choose(res, cases))
    variants = ("learned", "learned as-ranked", "selector+learned")
    if "learned" in parts:
        for stale in [k for k in methods if k.startswith("(d)")]:
            del methods[stale]
    for variant in variants if "learned" in parts else ():
        record(f"(d) {variant}", *learned_cv(cases, emb, variant))
    best_fixed = max(frontier_curves[0] + sum(frontier_curves[1:], []), key=lambda r: r["f1"])
    return {"setting": name, "queries": len(cases),
            "chunks_per_query_candidates": round(float(np.mean([len(c.chunks)
                                                               for c in cases])), 1),
            "gold_per_query": round(float(np.mean([len(c.gold) for c in cases])), 2),
            "methods": methods,
            "fixed_k_in_sample_best_f1": round(best_fixed["f1"], 4),
            "seconds": round(time.perf_counter() - t0, 1)}


SETTINGS: dict[str, Callable] = {
    "privacyqa-128": lambda emb: privacyqa_cases(128, emb),
    "privacyqa-256": lambda emb: privacyqa_cases(256, emb),
    "hotpot-para": lambda emb: hotpot_cases("para", emb),
    "hotpot-sent": lambda emb: hotpot_cases("sent", emb),
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=list(SETTINGS), default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--parts", nargs="*", default=["elbow", "selector", "learned"],
                    choices=["elbow", "selector", "learned"],
                    help="which methods to (re)run; fixed top-k always runs; others are kept "
                         "from the existing results file")
    ap.add_argument("--limit", type=int, default=None, help="first N queries (smoke runs)")
    args = ap.parse_args(argv)
    from ragsel.backends.embedders import load_embedder

    CACHE.mkdir(parents=True, exist_ok=True)
    emb = CachedEmbedder(load_embedder("minilm"), CACHE / "minilm-vectors.npz")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.only or list(SETTINGS):
        print(f"== {name}", flush=True)
        cases = SETTINGS[name](emb)[: args.limit]
        emb.save()
        report[name] = run_setting(name, cases, emb, set(args.parts), report.get(name, {}))
        emb.save()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
