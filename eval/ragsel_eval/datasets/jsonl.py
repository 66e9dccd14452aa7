"""The generic ragsel JSONL dataset format (spec in ``eval/README.md``): one JSON object per
line, ``{"type": "document", ...}`` or ``{"type": "query", ...}``.

::

    {"type": "document", "id": "d1", "text": "...", "title": "...", "metadata": {}}
    {"type": "query", "id": "q1", "text": "...", "qrels": {"d1": 2},
     "spans": [{"doc_id": "d1", "start": 0, "end": 42}], "poisoned": ["d9"],
     "answers": ["..."], "corpus": ["d1", "d2", "d9"], "metadata": {}}

Only ``type``, ``id`` and ``text`` are required. Unknown document ids in ``qrels`` are warned
about and counted (``stats["unknown_qrels"]``); in ``spans``/``poisoned``/``corpus`` they are
an error (a span must point into a real document).
"""

from __future__ import annotations

import json
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery, GoldSpan

_DOC_KEYS = {"type", "id", "text", "title", "metadata"}
_QUERY_KEYS = {"type", "id", "text", "qrels", "spans", "poisoned", "answers", "corpus", "metadata"}


def load_jsonl(path: str | Path, *, name: str | None = None) -> EvalDataset:
    path = Path(path)
    docs: dict[str, Document] = {}
    raw_queries: list[tuple[int, dict]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            kind = row.get("type") if isinstance(row, dict) else None
            if kind not in ("document", "query"):
                raise InputError(
                    f'{path}:{n}: each line needs "type": "document" or '
                    '"query" (see eval/README.md for the format)'
                )
            keys = _DOC_KEYS if kind == "document" else _QUERY_KEYS
            extra = set(row) - keys
            if extra:
                raise InputError(
                    f"{path}:{n}: unknown {kind} field(s) {sorted(extra)}; allowed: {sorted(keys)}"
                )
            if "id" not in row or "text" not in row:
                raise InputError(f'{path}:{n}: a {kind} needs "id" and "text"')
            if kind == "document":
                did = str(row["id"])
                if did in docs:
                    raise InputError(f"{path}:{n}: duplicate document id {did!r}")
                docs[did] = Document(
                    did, row["text"], row.get("title", ""), row.get("metadata") or {}
                )
            else:
                raw_queries.append((n, row))
    if not docs:
        raise InputError(f'{path}: no documents (lines with "type": "document")')
    ds = EvalDataset(name or path.stem, docs, [], source=str(path))
    unknown = 0
    queries = []
    for n, row in raw_queries:
        qrels = {str(k): int(v) for k, v in (row.get("qrels") or {}).items()}
        known = {d: g for d, g in qrels.items() if d in docs}
        unknown += len(qrels) - len(known)
        spans = []
        for s in row.get("spans") or []:
            if s.get("doc_id") not in docs:
                raise InputError(f"{path}:{n}: span names unknown document {s.get('doc_id')!r}")
            text = docs[s["doc_id"]].text
            if not 0 <= s["start"] <= s["end"] <= len(text):
                raise InputError(
                    f"{path}:{n}: span [{s['start']}, {s['end']}) is outside "
                    f"document {s['doc_id']!r} ({len(text)} characters)"
                )
            spans.append(GoldSpan(s["doc_id"], s["start"], s["end"], text[s["start"] : s["end"]]))
        for key in ("poisoned", "corpus"):
            bad = [d for d in row.get(key) or [] if d not in docs]
            if bad:
                raise InputError(f"{path}:{n}: {key} names unknown documents {bad[:5]}")
        queries.append(
            EvalQuery(
                str(row["id"]),
                row["text"],
                qrels=known,
                spans=tuple(spans),
                poisoned=frozenset(row.get("poisoned") or ()),
                answers=tuple(row.get("answers") or ()),
                corpus=tuple(row["corpus"]) if row.get("corpus") else None,
                metadata=row.get("metadata") or {},
            )
        )
    ds.queries = queries
    ds.stats["unknown_qrels"] = unknown
    if unknown:
        ds.warn(f"{unknown} qrels entries name documents that are not in the file; dropped")
    return ds


def save_jsonl(ds: EvalDataset, path: str | Path) -> Path:
    """Write ``ds`` in the generic format (round-trips through :func:`load_jsonl`)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for d in ds.documents.values():
            row = {"type": "document", "id": d.id, "text": d.text}
            if d.title:
                row["title"] = d.title
            if d.metadata:
                row["metadata"] = dict(d.metadata)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for q in ds.queries:
            row = {"type": "query", "id": q.id, "text": q.text}
            if q.qrels:
                row["qrels"] = dict(q.qrels)
            if q.spans:
                row["spans"] = [
                    {"doc_id": s.doc_id, "start": s.start, "end": s.end} for s in q.spans
                ]
            if q.poisoned:
                row["poisoned"] = sorted(q.poisoned)
            if q.answers:
                row["answers"] = list(q.answers)
            if q.corpus is not None:
                row["corpus"] = list(q.corpus)
            if q.metadata:
                row["metadata"] = dict(q.metadata)
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path
