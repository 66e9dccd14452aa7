"""BEIR layout: ``corpus.jsonl`` (``_id, title, text``), ``queries.jsonl`` (``_id, text``),
``qrels/<split>.tsv`` (``query-id  corpus-id  score``, header optional).

>>> ds = load_beir("/data/scifact", split="test")        # doctest: +SKIP
>>> len(ds.queries), ds.stats["unknown_qrels"]           # doctest: +SKIP
(300, 0)
"""

from __future__ import annotations

import json
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery


def _jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{n}: not valid JSON ({exc.msg}); every line of a "
                    "BEIR file must be one JSON object"
                ) from exc
    return rows


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], int]:
    """``{query_id: {doc_id: grade}}`` from a BEIR qrels TSV, and the number of rows read."""
    qrels: dict[str, dict[str, int]] = {}
    rows = 0
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip() or (n == 1 and not parts[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(parts) == 4:  # TREC style: qid 0 docid rel
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise InputError(
                    f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {line.strip()!r}"
                )
            try:
                grade = int(float(parts[2]))
            except ValueError as exc:
                raise InputError(f"{path}:{n}: relevance {parts[2]!r} is not a number") from exc
            qrels.setdefault(parts[0], {})[parts[1]] = grade
            rows += 1
    return qrels, rows


def load_beir(
    folder: str | Path, *, split: str = "test", name: str | None = None, title_in_text: bool = True
) -> EvalDataset:
    """Load a BEIR-format dataset; only queries with qrels in ``split`` are kept.

    ``title_in_text`` prepends the title to the text (``"title\\ntext"``), as BEIR's retrieval
    runs do; ``Document.text`` is always exactly what gets indexed.
    """
    folder = Path(folder)
    corpus_p, queries_p = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_p = folder / "qrels" / f"{split}.tsv"
    for p in (corpus_p, queries_p):
        if not p.is_file():
            raise InputError(f"{folder} is not a BEIR dataset: {p.name} is missing")
    if not qrels_p.is_file():
        have = sorted(x.stem for x in (folder / "qrels").glob("*.tsv"))
        raise InputError(
            f"{folder}: no qrels for split {split!r} ({qrels_p}); "
            f"available splits: {', '.join(have) or 'none'}"
        )
    docs: dict[str, Document] = {}
    for row in _jsonl(corpus_p):
        did = str(row.get("_id", row.get("id", "")))
        title, text = row.get("title") or "", row.get("text") or ""
        full = f"{title}\n{text}" if title_in_text and title else text
        docs[did] = Document(did, full, title, row.get("metadata") or {})
    qtext = {str(r.get("_id", r.get("id"))): r.get("text", "") for r in _jsonl(queries_p)}
    qrels, _ = read_qrels(qrels_p)
    ds = EvalDataset(name or folder.name, docs, [], source=str(folder), split=split)
    unknown_rows, unknown_queries = 0, 0
    queries = []
    for qid, rels in qrels.items():
        if qid not in qtext:
            unknown_queries += 1
            continue
        known = {d: g for d, g in rels.items() if d in docs}
        unknown_rows += len(rels) - len(known)
        queries.append(EvalQuery(qid, qtext[qid], qrels=known))
    ds.queries = queries
    ds.stats.update(unknown_qrels=unknown_rows, unknown_query_ids=unknown_queries)
    if unknown_rows:
        ds.warn(
            f"{unknown_rows} qrels rows in {qrels_p.name} name documents that are not in "
            "corpus.jsonl; they were dropped (counted in stats['unknown_qrels'])"
        )
    if unknown_queries:
        ds.warn(f"{unknown_queries} query ids in {qrels_p.name} are not in queries.jsonl; skipped")
    empty = [q.id for q in queries if not any(g > 0 for g in q.qrels.values())]
    ds.stats["queries_without_relevant"] = len(empty)
    return ds
