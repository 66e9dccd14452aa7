"""Labelled candidate lists for the selection studies, built once and cached.

Every setting turns a shared dataset (``$RAGSEL_DATA_DIR``, default ``<repo>/../shared/data``)
into ranked candidate lists the way ``pipelines/local.yaml`` ranks them: BM25 (bm25s, stemmed,
ragsel's BM25Store) and MiniLM cosine, each top :data:`TOP`, fused by RRF (k=5, BM25 weight
1.5; ragsel's ``fusion`` stage), top :data:`TOP`. Gold is every relevant chunk of the corpus
(recall counts relevant chunks the retrievers missed).

Settings (``group`` = source dataset: leave-one-dataset-out leaves a whole group out):

- ``scifact`` (group scifact): SciFact *train* claims (at most :data:`MAX_QUERIES`, seeded
  sample), whole abstracts ("title\\ntext") as chunks, doc-level qrels.
- ``privacyqa-128`` / ``privacyqa-256`` (privacyqa): both policies in 128/256-word chunks
  (10% overlap); gold = chunks overlapping a gold span (METEORA's convention).
- ``privacyqa-doc`` (privacyqa, derived many-relevant): 128-word chunks; gold = every chunk of
  the policy holding the query's spans (document-level relevance: dozens of relevant chunks).
- ``hotpot-para`` / ``hotpot-sent`` (hotpotqa): each question's 10 paragraphs as paragraph or
  sentence chunks; gold = paragraphs / sentences holding a supporting fact.
- ``hotpot-sent-doc`` (hotpotqa, derived many-relevant): sentence chunks; gold = every sentence
  of a supporting paragraph.
- ``financebench`` (financebench): every evidence page of the open sample as one chunk (the
  corpus the sample ships); gold = the question's evidence pages.
- ``poisonedrag`` (poisonedrag): NQ questions, per-question context of gold passage(s), the 5
  adversarial passages (not relevant) and 30 on-topic distractors.

``RAGSEL_LODO_FUSION=FILE`` fuses the lists with calibrated fusion instead (FILE: the
``fusion_calibrated.json`` result, whose SciFact-train calibration is used, or a bare
``{retriever: {feature: coefficient}}``); studies then keep their fold models and parts apart
(:data:`VARIANT`).

Cache: ``$RAGSEL_BENCH_CACHE`` (default ``<repo>/.ragsel/bench-cache``, gitignored)/lodo:
one JSON file per setting plus the MiniLM vectors.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.benchmarks import _common  # sets the offline env
from ragsel.types import Candidates, Chunk, Query, content_id

REPO = _common.REPO
CACHE = _common.CACHE / "lodo"
TOP = 100
MAX_QUERIES = 300
SEED = 0
GROUPS = {
    "scifact": "scifact",
    "privacyqa-128": "privacyqa",
    "privacyqa-256": "privacyqa",
    "privacyqa-doc": "privacyqa",
    "hotpot-para": "hotpotqa",
    "hotpot-sent": "hotpotqa",
    "hotpot-sent-doc": "hotpotqa",
    "financebench": "financebench",
    "poisonedrag": "poisonedrag",
}


@dataclass
class Case:
    """One labelled query: its fused candidate list and every relevant chunk id."""

    setting: str
    query: Query
    gold: set[str]
    hybrid: Candidates
    raw: tuple[Candidates, ...] = ()  # the BM25 and dense lists the hybrid one fuses


class CachedEmbedder:
    """MiniLM with vectors persisted on disk, keyed by a hash of the text."""

    def __init__(self, path: Path):
        from ragsel.backends.embedders import load_embedder

        self.base, self.path = load_embedder("minilm"), path
        self.vectors: dict[str, np.ndarray] = {}
        for other in sorted(path.parent.glob("minilm-vectors*.npz")):  # every build's vectors
            if ".tmp." not in other.name:
                with np.load(other) as d:
                    self.vectors.update(zip(d["keys"].tolist(), d["vecs"]))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        for start in range(0, len(todo), 512):
            part = todo[start : start + 512]
            for (k, _), v in zip(part, self.base.embed([t for _, t in part])):
                self.vectors[k] = v
            self._dirty += len(part)
            if self._dirty >= 256:
                self.save()
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384))

    _dirty = 0

    def save(self) -> None:
        self._dirty = 0
        keys = list(self.vectors)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), vecs=np.stack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)


# --- building ----------------------------------------------------------------------------------
def _chunk_row(c: Chunk) -> dict:
    return {
        "id": c.id,
        "text": c.text,
        "doc_id": c.doc_id,
        "position": c.position,
        "span": list(c.span) if c.span else None,
        "title": (c.metadata or {}).get("title"),
    }


def _rank(queries: list[tuple[Query, set[str]]], chunks: list[Chunk], emb) -> list[dict]:
    """Top-TOP BM25 and dense rankings of each query over ``chunks`` (one shared corpus)."""
    from ragsel.index.bm25 import BM25Config, BM25Store

    cvecs = emb.embed([c.text for c in chunks])
    qvecs = emb.embed([q.text for q, _ in queries])
    bm25 = BM25Store.build([c.text for c in chunks], [c.id for c in chunks], BM25Config())
    at = {c.id: i for i, c in enumerate(chunks)}
    rows = []
    for (q, gold), qv in zip(queries, qvecs):
        sims = cvecs @ qv
        dense = np.argsort(-sims, kind="stable")[:TOP]
        bm = bm25.search(q.text, k=min(TOP, len(chunks)))
        keep = sorted({int(i) for i in dense} | {at[cid] for cid, _ in bm})
        rows.append(
            {
                "qid": q.id,
                "query": q.text,
                "gold": sorted(gold),
                "chunks": [_chunk_row(chunks[i]) for i in keep],
                "dense": [[chunks[int(i)].id, float(sims[i])] for i in dense],
                "bm25": [[cid, float(s)] for cid, s in bm],
            }
        )
    return rows


def _whole(text: str, doc_id: str, title: str | None = None) -> Chunk:
    """A whole document (paragraph, page, passage) as one chunk."""
    return Chunk(
        content_id(text, doc_id, 0),
        text,
        doc_id=doc_id,
        position=0,
        span=(0, len(text)),
        metadata={"title": title} if title else {},
    )


def _words(size: int) -> tuple[list, list[Chunk]]:
    from ragsel_eval.datasets import load_dataset

    from ragsel.ingest.chunkers import ChunkerConfig, chunk_documents
    from ragsel.ingest.documents import Document

    ds = load_dataset("privacyqa")
    docs = [Document(d.id, d.text, d.title) for d in ds.documents.values()]
    return ds.queries, list(chunk_documents(docs, ChunkerConfig("words", size=size)))


def build_privacyqa(size: int, doc_level: bool, emb) -> list[dict]:
    from ragsel_eval.datasets import gold_chunk_ids

    queries, chunks = _words(size)
    pairs = []
    for q in queries:
        gold = gold_chunk_ids(q, chunks)
        if doc_level:
            docs = {c.doc_id for c in chunks if c.id in gold}
            gold = {c.id for c in chunks if c.doc_id in docs}
        if gold:
            pairs.append((Query(q.text, id=q.id), gold))
    return _rank(pairs, chunks, emb)


def hotpot_chunks(doc, kind: str) -> list[Chunk]:
    """A HotpotQA paragraph as one chunk (``para``) or as its non-empty sentences (``sent``),
    titled; shared by the selection studies so both cut the corpus the same way."""
    if kind == "para":
        return [_whole(doc.text, doc.id, doc.title)]
    meta = {"title": doc.title}
    return [
        Chunk(content_id(t, doc.id, i), t, doc_id=doc.id, position=i, span=(s, e), metadata=meta)
        for i, (s, e) in enumerate(doc.metadata["sentence_spans"])
        if (t := doc.text[s:e]).strip()
    ]


def build_hotpot(kind: str, emb) -> list[dict]:
    from ragsel_eval.datasets import gold_chunk_ids

    ds = _hotpot_ds()
    rows = []
    for q in ds.queries:
        chunks = []
        for d in ds.corpus_for(q):
            chunks += hotpot_chunks(d, "para" if kind == "para" else "sent")
        gold = gold_chunk_ids(q, chunks)
        if kind == "sent-doc":
            docs = {c.doc_id for c in chunks if c.id in gold}
            gold = {c.id for c in chunks if c.doc_id in docs}
        if gold:
            rows += _rank([(Query(q.text, id=q.id), gold)], chunks, emb)
    return rows


_HOT = None


def _hotpot_ds():
    global _HOT
    if _HOT is None:
        from ragsel_eval.datasets import load_dataset

        _HOT = load_dataset("hotpotqa")
    return _HOT


def build_scifact(emb) -> list[dict]:
    """SciFact train claims over the whole corpus. With a finished ragsel index of SciFact
    at ``$RAGSEL_INDEX`` (its snapshot files; read only) its chunks and MiniLM vectors are
    used as they are, else the abstracts are embedded here."""
    from ragsel_eval.datasets import load_dataset

    from ragsel.index import snapshot

    ds = load_dataset("scifact:train")
    index = Path(_common.DEFAULT_INDEX)
    copy = CACHE / "scifact-chroma-copy"  # a copy of an index's chroma dir (opening writes)
    if snapshot.exists(index) or copy.is_dir():
        if snapshot.exists(index):
            chunks, vecs = snapshot.read(index, 384)
        else:
            import chromadb

            from ragsel.index.chroma_store import COLLECTION

            col = chromadb.PersistentClient(path=str(copy)).get_collection(COLLECTION)
            chunks, vecs = snapshot.read_chroma(col, 384)
        for c, v in zip(chunks, vecs):
            emb.vectors[hashlib.blake2b(c.text.encode(), digest_size=12).hexdigest()] = v
    else:
        chunks = [
            Chunk(
                content_id(d.text, d.id, 0),
                f"{d.title}\n{d.text}" if d.title else d.text,
                doc_id=d.id,
                position=0,
                metadata={"title": d.title},
            )
            for d in ds.documents.values()
        ]
    by_doc: dict[str, set[str]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, set()).add(c.id)
    qs = [q for q in ds.queries if any(g > 0 for g in q.qrels.values())]
    pick = np.random.default_rng(SEED).permutation(len(qs))[:MAX_QUERIES]
    pairs = [
        (
            Query(qs[i].text, id=qs[i].id),
            set().union(*(by_doc.get(d, set()) for d, g in qs[i].qrels.items() if g > 0)),
        )
        for i in sorted(pick.tolist())
    ]
    return _rank([p for p in pairs if p[1]], chunks, emb)


def build_financebench(emb) -> list[dict]:
    from ragsel_eval.datasets import gold_chunk_ids, load_dataset

    ds = load_dataset("financebench")
    chunks = [_whole(d.text, d.id, d.title) for d in ds.documents.values() if d.text.strip()]
    pairs = [(Query(q.text, id=q.id), gold_chunk_ids(q, chunks)) for q in ds.queries]
    return _rank([p for p in pairs if p[1]], chunks, emb)


def build_poisonedrag(emb) -> list[dict]:
    from ragsel_eval.datasets import gold_chunk_ids, load_dataset

    ds = load_dataset("poisonedrag:nq", n_distractors=30, seed=SEED)
    rows = []
    for q in ds.queries:
        chunks = [_whole(d.text, d.id) for d in ds.corpus_for(q)]
        gold = gold_chunk_ids(q, chunks)
        if gold:
            rows += _rank([(Query(q.text, id=q.id), gold)], chunks, emb)
    return rows


BUILDERS: dict[str, Callable] = {
    "scifact": build_scifact,
    "privacyqa-128": lambda emb: build_privacyqa(128, False, emb),
    "privacyqa-256": lambda emb: build_privacyqa(256, False, emb),
    "privacyqa-doc": lambda emb: build_privacyqa(128, True, emb),
    "hotpot-para": lambda emb: build_hotpot("para", emb),
    "hotpot-sent": lambda emb: build_hotpot("sent", emb),
    "hotpot-sent-doc": lambda emb: build_hotpot("sent-doc", emb),
    "financebench": build_financebench,
    "poisonedrag": build_poisonedrag,
}


def cache_path(name: str) -> Path:
    return CACHE / f"{name}.json.gz"


def build(names: Sequence[str], force: bool = False) -> None:
    emb = None
    for name in names:
        if cache_path(name).is_file() and not force:
            continue
        if emb is None:
            emb = CachedEmbedder(CACHE / f"minilm-vectors-{names[0]}.npz")
        t0 = time.perf_counter()
        rows = BUILDERS[name](emb)
        CACHE.mkdir(parents=True, exist_ok=True)
        with gzip.open(cache_path(name), "wt", encoding="utf-8") as f:
            json.dump({"setting": name, "group": GROUPS[name], "rows": rows}, f)
        emb.save()
        print(f"built {name}: {len(rows)} queries in {time.perf_counter() - t0:.0f}s", flush=True)


# --- loading -----------------------------------------------------------------------------------
_FUSE = None
FUSION_FILE = os.environ.get("RAGSEL_LODO_FUSION", "")
VARIANT = "calibrated" if FUSION_FILE else ""  # sub-folder for fold models and parts


def fuse(dense: Candidates, bm25: Candidates) -> Candidates:
    """The fusion of pipelines/local.yaml (RRF k=5, BM25 weight 1.5, top 100), or calibrated
    fusion with ``$RAGSEL_LODO_FUSION``'s coefficients."""
    global _FUSE
    if _FUSE is None:
        from ragsel.stages.retrieve.fusion import RankFusion

        if FUSION_FILE:
            cal = json.loads(Path(FUSION_FILE).read_text())
            cal = cal.get("calibration_fitted_on_train", cal)
            _FUSE = RankFusion(method="calibrated", calibration=cal, top_k=TOP)
        else:
            _FUSE = RankFusion(method="rrf", k=5, weights={"bm25": 1.5, "dense": 1.0}, top_k=TOP)
    return _FUSE.run(candidates=[bm25, dense])


def _chunk(c: dict) -> Chunk:
    return Chunk(
        c["id"],
        c["text"],
        doc_id=c["doc_id"],
        position=c["position"],
        span=tuple(c["span"]) if c["span"] else None,
        metadata={"title": c["title"]} if c.get("title") else {},
    )


def _case(name: str, r: dict) -> Case:
    """A cached row as a Case: both retrievers' lists fused as local.yaml fuses them."""
    by_id = {c["id"]: _chunk(c) for c in r["chunks"]}
    dense = Candidates.retrieved("dense", [(by_id[i], s) for i, s in r["dense"]])
    bm = Candidates.retrieved("bm25", [(by_id[i], s) for i, s in r["bm25"]])
    return Case(name, Query(r["query"], id=r["qid"]), set(r["gold"]), fuse(dense, bm), (bm, dense))


def load(name: str) -> list[Case]:
    with gzip.open(cache_path(name), "rt", encoding="utf-8") as f:
        return [_case(name, r) for r in json.load(f)["rows"]]


if __name__ == "__main__":  # python -m eval.benchmarks.studies._lodo_data [NAME ...]
    import argparse

    ap = argparse.ArgumentParser(description="build the cached candidate lists")
    ap.add_argument("names", nargs="*", default=list(BUILDERS))
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    build(a.names, a.force)


# --- pseudo-queries (unsupervised adaptation) --------------------------------------------------
PER_QUERY_CORPUS = {"hotpotqa", "poisonedrag"}
_EMB: CachedEmbedder | None = None


def pseudo_lists(name: str, n: int = 60, seed: int = SEED) -> list[Case]:
    """Pseudo-queries made from the setting's corpus (no labels): ``ragsel fit
    --unsupervised``'s recipe, ranked like the real queries. The corpus is the union of the
    chunks the real queries' retrievers returned (a sub-sample of a shared corpus), or each
    query's own context for per-query corpora (one pseudo-query per sampled context)."""
    from ragsel.stages.cutoff._adapt import pseudo_queries

    global _EMB
    if _EMB is None:
        _EMB = CachedEmbedder(CACHE / "minilm-vectors-pseudo.npz")
    with gzip.open(cache_path(name), "rt", encoding="utf-8") as f:
        rows = json.load(f)["rows"]
    if GROUPS[name] in PER_QUERY_CORPUS:
        rng = np.random.default_rng(seed)
        ranked = []
        for k, i in enumerate(rng.permutation(len(rows))[:n].tolist()):
            chunks = [_chunk(c) for c in rows[i]["chunks"]]
            ranked += _rank(pseudo_queries(chunks, 1, seed=seed + k), chunks, _EMB)
    else:
        corpus = {c["id"]: _chunk(c) for r in rows for c in r["chunks"]}
        chunks = list(corpus.values())
        ranked = _rank(pseudo_queries(chunks, n, seed=seed), chunks, _EMB)
    return [_case(name, r) for r in ranked]
