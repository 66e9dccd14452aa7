"""FinanceBench open sample: questions over 10-K/10-Q filings with evidence passages.

The open sample ships the *evidence pages*, not whole filings, so the corpus here is every
evidence page of every question (document ``<doc_name>/p<page>``), shared by all questions;
gold is the evidence pages (qrels 1) and the evidence text located inside its page as a span
(matched verbatim, else with whitespace normalised; a page whose evidence cannot be located is
gold as a whole and counted in ``stats["evidence_not_located"]``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery, GoldSpan


def locate(needle: str, haystack: str) -> tuple[int, int] | None:
    """``[start, end)`` of ``needle`` in ``haystack``, verbatim or up to whitespace."""
    needle = needle.strip()
    if not needle:
        return None
    i = haystack.find(needle)
    if i >= 0:
        return i, i + len(needle)
    tokens = needle.split()
    if not tokens:
        return None
    m = re.search(r"\s+".join(re.escape(t) for t in tokens), haystack)
    return (m.start(), m.end()) if m else None


def load_financebench(folder: str | Path, *, name: str | None = None) -> EvalDataset:
    folder = Path(folder)
    path = folder / "financebench_open_source.jsonl" if folder.is_dir() else folder
    if not path.is_file():
        raise InputError(f"{folder}: financebench_open_source.jsonl is missing")
    docs: dict[str, Document] = {}
    queries = []
    not_located = 0
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for row in rows:
        qrels: dict[str, int] = {}
        spans: list[GoldSpan] = []
        for ev in row.get("evidence", []):
            page = ev.get("evidence_page_num")
            did = f"{ev.get('doc_name') or row.get('doc_name')}/p{page}"
            full = ev.get("evidence_text_full_page") or ev.get("evidence_text") or ""
            if did not in docs:
                docs[did] = Document(
                    did,
                    full,
                    title=f"{row.get('company', '')} {ev.get('doc_name', '')} page {page}".strip(),
                    metadata={
                        "company": row.get("company"),
                        "doc_name": ev.get("doc_name"),
                        "page": page,
                    },
                )
            qrels[did] = 1
            loc = locate(ev.get("evidence_text", ""), docs[did].text)
            if loc is None:
                not_located += 1
                loc = (0, len(docs[did].text))
            spans.append(GoldSpan(did, loc[0], loc[1], docs[did].text[loc[0] : loc[1]]))
        answer = row.get("answer")
        queries.append(
            EvalQuery(
                str(row["financebench_id"]),
                row["question"],
                qrels=qrels,
                spans=tuple(spans),
                answers=(answer,) if answer else (),
                metadata={
                    "company": row.get("company"),
                    "doc_name": row.get("doc_name"),
                    "question_type": row.get("question_type"),
                },
            )
        )
    ds = EvalDataset(name or "financebench", docs, queries, source=str(path))
    ds.stats["evidence_not_located"] = not_located
    if not_located:
        ds.warn(
            f"{not_located} evidence passages were not found in their page; the whole "
            "page is gold for them"
        )
    return ds
