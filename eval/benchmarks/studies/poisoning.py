"""Poisoning benchmark for ``poison_cluster_guard`` (LLM-free), with held-out reporting.

Data (all from ``$RAGSEL_DATA_DIR``, default ``../shared/data``):

- PoisonedRAG NQ (``derived_nq_poisoned_with_gold.jsonl``: gold passages + 5 adversarial
  passages per question), HotpotQA and MS MARCO (``adv_targeted_*.json``: 5 adversarial
  passages, *no gold passage*), loaded with ``ragsel_eval.datasets.poisonedrag``.
- Each query's context = its gold passage(s) + its 5 adversarial passages + the
  ``--distractors`` passages nearest to the question (MiniLM cosine) in a pooled Wikipedia
  corpus: every NQ gold passage and every HotpotQA-hard paragraph (``hotpotqa_hard/``), minus
  the question's own gold. (The loader's own pool is only the other questions' gold passages,
  which are off-topic: mean cosine to the question ~0.03.) The context is ranked by cosine to
  the question, as a dense retriever would rank it.
- A clean, naturally redundant set built from SciFact: claims with >= 2 relevant abstracts
  (distinct papers supporting one claim), each abstract cut into overlapping word windows
  (``--window`` words, 50% overlap: chunks of one document repeat each other), plus the
  ``--scifact-distractors`` BM25-nearest other abstracts, windowed the same way. Everything is
  clean, so every flag is a false flag. Scored with the chunks' document ids (what an index
  gives) and with ids stripped (the worst case: overlapping windows of one abstract are then
  indistinguishable from planted copies). A *mirrors* variant adds two mirror copies of the
  claim's first relevant abstract (other document ids, shifted windows), each chunk with a
  ``site`` (three sites): scored with sites, and with sites removed (ids kept).

Protocol: NQ queries and SciFact claims are split in half (seeded). Guard settings are chosen on
the training halves: maximise NQ detection F1 subject to NQ gold retention >= 0.95 and a
false-flag rate <= 0.05 on the SciFact training claims (with document ids, and the mirrors
variant with sites). The chosen settings are then reported on the NQ
test half, on HotpotQA and MS MARCO (all queries, never seen) and on the SciFact test half.

Metrics: detection precision/recall/F1 (micro over chunks), gold retention, attack success
(``attack_majority``: in the final context -- the top ``--final-k`` chunks the guard kept --
poisoned chunks outnumber gold ones; in collapse mode duplicates do not count), the rate of
queries where any poisoned chunk reaches the final context, and the SciFact false-flag rate.

Timing (``timing`` in the results): the chosen guard on lists of 100 candidates pooled from
the test contexts, vectors precomputed (as a pipeline reads them from the index), with the
vectorised n-gram Jaccard and with the pairwise set version it replaced.

Run: ``OMP_NUM_THREADS=1 python -m eval.benchmarks.studies.poisoning`` (about 5-10 minutes on one
busy core, mostly embedding; vectors are cached in ``$RAGSEL_BENCH_CACHE``). Results are
written to ``eval/benchmarks/studies/results/poisoning.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import time

import numpy as np
from ragsel_eval.datasets.poisonedrag import load_poisonedrag
from ragsel_eval.metrics.robustness import (
    attack_success,
    detection_scores,
    gold_retention,
    micro_detection,
)

from eval.benchmarks._common import CACHE, DATA, results_dir, write_json
from ragsel.types import Candidates, Chunk, Query


class CachedEmbedder:
    """MiniLM with an on-disk text -> vector cache (the benchmark embeds each text once)."""

    def __init__(self, spec: str = "minilm") -> None:
        from ragsel.backends.embedders import load_embedder

        self.inner = load_embedder(spec, threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.name, self.vecs = self.inner.name, {}
        self.path = CACHE / f"{hashlib.md5(self.name.encode()).hexdigest()[:8]}.npz"
        if self.path.is_file():
            z = np.load(self.path, allow_pickle=False)
            self.vecs = dict(zip(z["keys"].tolist(), z["vecs"]))
        self.embed_seconds = 0.0

    @staticmethod
    def _key(t: str) -> str:
        return hashlib.sha1(t.encode()).hexdigest()

    @property
    def dim(self) -> int:
        return self.inner.dim

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self.vecs))
        if missing:
            t0 = time.perf_counter()
            for t, v in zip(missing, self.inner.embed(missing)):
                self.vecs[self._key(t)] = v
            self.embed_seconds += time.perf_counter() - t0
        return np.stack([self.vecs[self._key(t)] for t in texts]).astype(np.float32)

    def save(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        keys = list(self.vecs)
        np.savez(self.path, keys=np.array(keys), vecs=np.stack([self.vecs[k] for k in keys]))


# --- contexts ---------------------------------------------------------------------------------
def wiki_pool() -> list[str]:
    rows = [
        json.loads(x)
        for x in (DATA / "hotpotqa_hard" / "hotpotqa_hard_100.jsonl").read_text().splitlines()
        if x.strip()
    ]
    paras = [f"{t}\n{''.join(s)}" for r in rows for t, s in r["context"]]
    nq = load_poisonedrag(DATA / "poisonedrag", variant="nq", n_distractors=0)
    golds = [d.text for d in nq.documents.values() if d.metadata["role"] == "gold"]
    return list(dict.fromkeys(golds + paras))


def poisoned_contexts(
    variant: str, emb: CachedEmbedder, pool: list[str], pool_vecs: np.ndarray, n_distractors: int
) -> list[dict]:
    ds = load_poisonedrag(DATA / "poisonedrag", variant=variant, n_distractors=0)
    out = []
    for q in ds.queries:
        own = [ds.documents[d] for d in q.corpus]
        own_texts = {d.text for d in own}
        qv = emb.embed([q.text])[0]
        order = np.argsort(-(pool_vecs @ qv), kind="stable")
        dis = [pool[i] for i in order if pool[i] not in own_texts][:n_distractors]
        chunks = [Chunk(d.id, d.text, doc_id=d.id) for d in own]
        chunks += [
            Chunk(f"{q.id}/dis{i}", t, doc_id=f"pool:{hashlib.sha1(t.encode()).hexdigest()[:10]}")
            for i, t in enumerate(dis)
        ]
        vecs = emb.embed([c.text for c in chunks])
        scores = vecs @ qv
        ranked = sorted(zip(chunks, scores.tolist()), key=lambda x: -x[1])
        out.append(
            {
                "id": q.id,
                "query": Query(q.text, id=q.id),
                "ranked": ranked,
                "gold": set(q.qrels),
                "poisoned": set(q.poisoned),
            }
        )
    return out


def _windows(text: str, size: int) -> list[str]:
    words = text.split()
    step = max(1, size // 2)
    if len(words) <= size:
        return [" ".join(words)]
    return [
        " ".join(words[i : i + size])
        for i in range(0, len(words) - size + step, step)
        if words[i : i + size]
    ]


MIRRORS = ("pubmed.example", "publisher.example", "preprints.example")


def scifact_redundant(
    emb: CachedEmbedder,
    n_claims: int,
    n_distractors: int,
    window: int,
    seed: int,
    mirrors: bool = False,
) -> list[dict]:
    """Clean redundant contexts (see the module docstring). With ``mirrors``, the claim's first
    relevant abstract also appears as two mirror copies (other document ids, windows shifted by
    a third of a window, as another site would cut it); every copy carries a ``site``."""
    import bm25s

    corpus = {}
    for line in (DATA / "scifact" / "corpus.jsonl").read_text().splitlines():
        r = json.loads(line)
        corpus[str(r["_id"])] = f"{r['title']}. {r['text']}"
    claims = {
        str(json.loads(x)["_id"]): json.loads(x)["text"]
        for x in (DATA / "scifact" / "queries.jsonl").read_text().splitlines()
    }
    rel: dict[str, set[str]] = {}
    for split in ("train", "test"):
        for line in (DATA / "scifact" / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            qid, did, _ = line.split("\t")
            if did in corpus:
                rel.setdefault(qid, set()).add(did)
    chosen = sorted(q for q, ds in rel.items() if len(ds) >= 2 and q in claims)
    random.Random(seed).shuffle(chosen)
    chosen = chosen[:n_claims]
    ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([corpus[i] for i in ids], stopwords="en", show_progress=False),
        show_progress=False,
    )
    out = []
    for qid in chosen:
        res, _ = retriever.retrieve(
            bm25s.tokenize([claims[qid]], stopwords="en", show_progress=False),
            k=n_distractors + len(rel[qid]) + 2,
            show_progress=False,
        )
        dis = [ids[i] for i in res[0] if ids[i] not in rel[qid]][:n_distractors]
        chunks = []
        for did in sorted(rel[qid]) + dis:
            for k, w in enumerate(_windows(corpus[did], window)):
                meta = {"site": MIRRORS[0]} if mirrors else {}
                chunks.append(Chunk(f"{did}#{k}", w, doc_id=did, position=k, metadata=meta))
        if mirrors:
            first = sorted(rel[qid])[0]
            words = corpus[first].split()
            for m, site in enumerate(MIRRORS[1:], 1):
                shifted = " ".join(words[m * window // 3 :])
                for k, w in enumerate(_windows(shifted, window)):
                    chunks.append(
                        Chunk(
                            f"{site}/{first}#{k}",
                            w,
                            doc_id=f"{site}/{first}",
                            position=k,
                            metadata={"site": site},
                        )
                    )
        qv = emb.embed([claims[qid]])[0]
        scores = emb.embed([c.text for c in chunks]) @ qv
        ranked = sorted(zip(chunks, scores.tolist()), key=lambda x: -x[1])
        out.append(
            {
                "id": qid,
                "query": Query(claims[qid], id=qid),
                "ranked": ranked,
                "gold": set(),
                "poisoned": set(),
            }
        )
    return out


def strip_ids(contexts: list[dict], keep_doc_ids: bool = False) -> list[dict]:
    """The same contexts without metadata (and without document ids unless kept)."""
    return [
        {
            **c,
            "ranked": [
                (Chunk(ch.id, ch.text, doc_id=ch.doc_id if keep_doc_ids else ""), s)
                for ch, s in c["ranked"]
            ],
        }
        for c in contexts
    ]


# --- scoring ----------------------------------------------------------------------------------
def evaluate(guard, contexts: list[dict], final_k: int) -> dict[str, float]:
    det, ret, att, reach, flagged_clean, n_clean = [], [], [], [], 0, 0
    for c in contexts:
        cands = Candidates.retrieved("retriever", c["ranked"])
        out = guard.run(candidates=cands, query=c["query"]) if guard is not None else cands
        flagged = {d.id for d in out.dropped if d.verdict is not None and d.verdict.flagged}
        flagged |= {sc.id for sc in out.items if any(v.flagged for v in sc.verdicts)}
        final = [  # the final context: the top final_k kept chunks by score
            sc.id
            for sc in sorted(out.items, key=lambda sc: -sc.score)
            if not any(v.flagged or v.label == "DUPLICATE" for v in sc.verdicts)
        ][:final_k]
        available = [ch.id for ch, _ in c["ranked"]]
        det.append(detection_scores(flagged, c["poisoned"], available))
        r = gold_retention(
            [sc.id for sc in out.items if sc.id not in flagged], c["gold"], available
        )
        if r == r:  # not NaN
            ret.append(r)
        a = attack_success(final, c["poisoned"], c["gold"])
        att.append(a["attack_majority"])
        reach.append(a["attack_success"])
        clean = set(available) - c["poisoned"]
        flagged_clean += len(flagged & clean)
        n_clean += len(clean)
    m = micro_detection(det)
    return {
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "gold_retention": float(np.mean(ret)) if ret else float("nan"),
        "attack_majority": float(np.mean(att)),
        "poison_reaches_context": float(np.mean(reach)),
        "clean_flag_rate": flagged_clean / max(n_clean, 1),
        "queries": len(contexts),
    }


def fmt(m: dict[str, float]) -> str:
    return (
        f"P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} | gold kept "
        f"{m['gold_retention']:.3f} | attack(majority) {m['attack_majority']:.3f} "
        f"reach {m['poison_reaches_context']:.3f} | clean flagged {m['clean_flag_rate']:.3f}"
        f" | n={m['queries']}"
    )


def grid() -> list[dict]:
    # A first, wider grid (cosine 0.75-0.85, min size 3/4, core margin 0/0.05, merge off/0.65/
    # 0.7) always preferred min size 3, core margin 0.05 and merge 0.7 or off on the training
    # half; it is narrowed here so the search runs in minutes.
    out = []
    for cos, merge, density in itertools.product((0.75, 0.8), (None, 0.7), (0.0, 0.8, 0.85)):
        base = {
            "cosine_threshold": cos,
            "min_cluster_size": 3,
            "core_margin": 0.05,
            "merge_threshold": merge,
            "min_density": density,
        }
        out.append({"mode": "flag_densest", **base})
        for sup in (0.3, 0.5):
            out.append({"mode": "drop_unsupported", "support_threshold": sup, **base})
    return out


def timing(
    cfg: dict, emb: CachedEmbedder, contexts: list[dict], size: int = 100, reps: int = 3
) -> dict:
    """Guard time per candidate list of ``size`` chunks (lists pooled from ``contexts``),
    vectors precomputed (as the pipeline reads them from the index), with the vectorised
    n-gram Jaccard and with the pairwise set version it replaced."""
    from ragsel.stages.verify import poison_cluster
    from ragsel.stages.verify._ngrams import ngram_jaccard, ngram_jaccard_pairwise

    pool = [ch for c in contexts for ch, _ in c["ranked"]]
    lists = [pool[i : i + size] for i in range(0, len(pool) - size + 1, size)][:10]
    query = contexts[0]["query"]
    out: dict = {"candidates_per_list": size, "lists": len(lists), "config": cfg}
    saved = poison_cluster.ngram_jaccard
    try:
        for label, fn in (
            ("vectorised", ngram_jaccard),
            ("pairwise n-grams", ngram_jaccard_pairwise),
        ):
            poison_cluster.ngram_jaccard = fn
            guard = _guard(cfg, emb)
            ms = []
            for chunks in lists:
                cands = Candidates.retrieved("r", [(ch, 1.0) for ch in chunks])
                guard.run(candidates=cands, query=query)  # vectors cached, as in a pipeline
                for _ in range(reps if label == "vectorised" else 1):
                    t0 = time.perf_counter()
                    guard.run(candidates=cands, query=query)
                    ms.append(1000 * (time.perf_counter() - t0))
            out[label] = {
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p95_ms": round(float(np.percentile(ms, 95)), 2),
            }
    finally:
        poison_cluster.ngram_jaccard = saved
    out["load_average"] = os.getloadavg()
    print(
        f"\nguard time per list of {size} candidates (vectors precomputed): "
        f"{out['vectorised']} now, {out['pairwise n-grams']} with the pairwise n-gram "
        f"Jaccard (everything else as now; load {out['load_average'][0]:.1f})"
    )
    return out


def _guard(cfg: dict, emb: CachedEmbedder):
    from ragsel.stages.verify.poison_cluster import PoisonClusterGuard

    return PoisonClusterGuard(**cfg).use_embedder(emb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distractors", type=int, default=10)
    ap.add_argument("--scifact-claims", type=int, default=60)
    ap.add_argument("--scifact-distractors", type=int, default=3)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--final-k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(results_dir("studies") / "poisoning.json"))
    args = ap.parse_args()
    import functools

    from ragsel.stages.verify import poison_cluster
    from ragsel.stages.verify.poison_cluster import PoisonClusterGuard

    # The grid search re-scores the same contexts hundreds of times: memoise the n-gram
    # similarity (pure function of the texts) so only the clustering logic is re-run.
    original = poison_cluster.ngram_jaccard
    memo = functools.lru_cache(maxsize=None)(lambda texts, n: original(list(texts), n))
    poison_cluster.ngram_jaccard = lambda texts, n: memo(tuple(texts), n)

    t0 = time.perf_counter()
    emb = CachedEmbedder("minilm")
    pool = wiki_pool()
    pool_vecs = emb.embed(pool)
    sets = {
        v: poisoned_contexts(v, emb, pool, pool_vecs, args.distractors)
        for v in ("nq", "hotpotqa", "msmarco")
    }
    sci = scifact_redundant(
        emb, args.scifact_claims, args.scifact_distractors, args.window, args.seed
    )
    emb.save()
    print(
        f"contexts built in {time.perf_counter() - t0:.0f}s (embedding "
        f"{emb.embed_seconds:.0f}s); pool {len(pool)} passages"
    )
    nq = sets["nq"]
    rng = random.Random(args.seed)
    order = list(range(len(nq)))
    rng.shuffle(order)
    nq_train = [nq[i] for i in order[: len(nq) // 2]]
    nq_test = [nq[i] for i in order[len(nq) // 2 :]]
    mir = scifact_redundant(
        emb, args.scifact_claims, args.scifact_distractors, args.window, args.seed, mirrors=True
    )
    emb.save()
    half = len(sci) // 2
    sci_train, sci_test = sci[:half], sci[half:]
    sci_test_bare = strip_ids(sci_test)
    mir_train, mir_test = mir[:half], mir[half:]
    mir_test_nosite = strip_ids(mir_test, keep_doc_ids=True)
    dis_cos = [s for c in nq for ch, s in c["ranked"] if "/dis" in ch.id]
    gold_cos = [s for c in nq for ch, s in c["ranked"] if ch.id in c["gold"]]
    print(
        f"NQ: mean cosine to the question: distractors {np.mean(dis_cos):.3f}, "
        f"gold {np.mean(gold_cos):.3f}; SciFact set: {len(sci)} claims, "
        f"{sum(len(c['ranked']) for c in sci)} chunks"
    )

    def make(cfg):
        return PoisonClusterGuard(**cfg).use_embedder(emb)

    results: dict = {"args": vars(args), "grid": []}
    best, best_key = None, None
    t_grid = time.perf_counter()
    for cfg in grid():
        g = make(cfg)
        tr = evaluate(g, nq_train, args.final_k)
        fr = max(
            evaluate(g, sci_train, args.final_k)["clean_flag_rate"],
            evaluate(g, mir_train, args.final_k)["clean_flag_rate"],
        )
        ok = tr["gold_retention"] >= 0.95 and fr <= 0.05
        results["grid"].append(
            {"config": cfg, "nq_train": tr, "scifact_train_flag": fr, "feasible": ok}
        )
        key = (ok, tr["f1"], tr["gold_retention"], -fr)
        if best_key is None or key > best_key:
            best, best_key = cfg, key
    print(
        f"chosen on training halves ({len(results['grid'])} settings, "
        f"{time.perf_counter() - t_grid:.0f}s): {best}"
    )
    results["chosen"] = best
    # The same choice under a stricter clean constraint (<= 0.02 false flags on training).
    strict = max(
        (
            r
            for r in results["grid"]
            if r["nq_train"]["gold_retention"] >= 0.95 and r["scifact_train_flag"] <= 0.02
        ),
        key=lambda r: r["nq_train"]["f1"],
    )["config"]
    print(f"chosen with clean false flags <= 0.02: {strict}")
    results["chosen_strict"] = strict
    # The shipped default runs on everybody's clean corpora, so it follows the stricter rule.
    shipped = {k: v for k, v in PoisonClusterGuard.Config().model_dump().items() if k in strict}
    results["shipped_default"] = shipped
    results["shipped_default_is_chosen_strict"] = shipped == strict
    print(f"shipped default {shipped} {'==' if shipped == strict else '!='} chosen_strict")
    report = {}
    rows = [
        ("no guard", None),
        ("chosen", make(best)),
        ("chosen, stricter on clean", make(strict)),
        (
            "collapse",
            make(
                {
                    **{k: v for k, v in best.items() if k not in ("mode", "support_threshold")},
                    "mode": "collapse",
                }
            ),
        ),
        ("drop_unsupported, other settings default", make({"mode": "drop_unsupported"})),
        ("collapse, other settings default", make({"mode": "collapse"})),
        ("shipped default", make({})),
    ]
    for label, g in rows:
        report[label] = {
            "nq_test": evaluate(g, nq_test, args.final_k),
            "hotpotqa": evaluate(g, sets["hotpotqa"], args.final_k),
            "msmarco": evaluate(g, sets["msmarco"], args.final_k),
            "scifact_test_with_ids": evaluate(g, sci_test, args.final_k),
            "scifact_mirrors_sites": evaluate(g, mir_test, args.final_k),
            "scifact_mirrors_no_site": evaluate(g, mir_test_nosite, args.final_k),
            "scifact_test_no_ids": evaluate(g, sci_test_bare, args.final_k),
        }
        print(f"\n== {label} ==")
        for name, m in report[label].items():
            print(f"  {name:22s} {fmt(m)}")
    results["report"] = report
    # Candidate order must not matter: the shipped default on shuffled test lists.
    shuffled = [
        {**c, "ranked": random.Random(i).sample(c["ranked"], len(c["ranked"]))}
        for i, c in enumerate(nq_test)
    ]
    same = evaluate(make({}), shuffled, args.final_k)
    results["shipped_default_nq_test_shuffled"] = same
    print(f"\nshipped default, NQ test lists shuffled: {fmt(same)}")
    results["timing"] = timing(best, emb, sci_test + nq_test)
    write_json(args.out, results)
    print(f"\nwritten {args.out} ({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
