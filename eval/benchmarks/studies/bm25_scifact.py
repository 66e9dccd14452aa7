"""BM25 tokenisation check on SciFact (BEIR test, 300 queries): nDCG@10 and Recall@100 of
ragsel's BM25 store with and without stemming / stop-words, whole abstracts (title + text).

    python -m eval.benchmarks.studies.bm25_scifact

Reference (issue 3): bm25s with stemming and stop-words 0.687 nDCG@10.
No model is loaded; this runs in seconds.
"""

from __future__ import annotations

import json
import math
import time

from eval.benchmarks._common import DATA as DATA_ROOT
from eval.benchmarks._common import REPO, results_dir, write_json
from ragsel.index.bm25 import BM25Config, BM25Store

DATA = DATA_ROOT / "scifact"


def load() -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    ids, texts = [], []
    for line in open(DATA / "corpus.jsonl"):
        d = json.loads(line)
        ids.append(d["_id"])
        texts.append(f"{d['title']}\n\n{d['text']}" if d["title"] else d["text"])
    queries = {(q := json.loads(line))["_id"]: q["text"] for line in open(DATA / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for i, line in enumerate(open(DATA / "qrels" / "test.tsv")):
        parts = line.split("\t")
        if i == 0 and not parts[-1].strip().isdigit():
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return ids, texts, queries, qrels


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def main() -> None:
    ids, texts, queries, qrels = load()
    qids = sorted(qrels)
    rows = []
    for name, cfg in [
        ("stem+stop", BM25Config()),
        ("stop only", BM25Config(stemmer=None)),
        ("stem only", BM25Config(stopwords=None)),
        ("none", BM25Config(stemmer=None, stopwords=None)),
    ]:
        t = time.perf_counter()
        store = BM25Store.build(texts, ids, cfg)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        hits = store.search_many([queries[q] for q in qids], 100)
        per_q_ms = (time.perf_counter() - t) / len(qids) * 1e3
        nd, rec = [], []
        for q, h in zip(qids, hits):
            ranked = [ids[r] for r, _ in h]
            nd.append(ndcg_at(ranked, qrels[q], 10))
            rel = {d for d, r in qrels[q].items() if r > 0}
            rec.append(len(rel & set(ranked[:100])) / len(rel))
        row = {
            "tokenisation": name,
            "ndcg@10": round(sum(nd) / len(nd), 4),
            "recall@100": round(sum(rec) / len(rec), 4),
            "build_s": round(build_s, 2),
            "query_ms_mean": round(per_q_ms, 3),
        }
        rows.append(row)
        print(json.dumps(row))
    out = write_json(
        results_dir("studies") / "bm25_scifact.json",
        {"queries": len(qids), "documents": len(ids), "rows": rows},
    )
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
