"""HotpotQA distractor schema: each question has ``context`` = ``[[title, [sentences]], ...]``
(10 paragraphs) and ``supporting_facts`` = ``[[title, sentence_index], ...]`` (the standard
form) or ``[[title, [indices], ...], ...]`` (the AMOR export in ../shared/data).

Each paragraph becomes a document ``<qid>/p<i>`` whose text is ``title\\n`` + its sentences
(so titles are retrievable); its sentence offsets are kept in ``metadata["sentence_spans"]``.
Gold: paragraphs with a supporting fact (qrels 1) and supporting sentences as spans, so
paragraph chunks and sentence chunks both get exact chunk-level gold. Every question is
evaluated against its own 10 paragraphs (``EvalQuery.corpus``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery, GoldSpan


def _supporting(facts: list) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for f in facts:
        title, idx = f[0], f[1]
        idxs = idx if isinstance(idx, list) else [idx]
        out.setdefault(title, set()).update(int(i) for i in idxs)
    return out


def load_hotpotqa(path: str | Path, *, name: str | None = None) -> EvalDataset:
    """Load a HotpotQA distractor-schema file (JSONL or a JSON list) or a folder holding one."""
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.json")])
        if not files:
            raise InputError(f"{path}: no HotpotQA .jsonl/.json file in this folder")
        path = files[0]
    text = path.read_text(encoding="utf-8")
    try:
        rows = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON/JSONL ({exc.msg})") from exc
    docs: dict[str, Document] = {}
    queries = []
    missing_sf = 0
    for row in rows:
        qid = str(row.get("_id") or row.get("id"))
        sup = _supporting(row.get("supporting_facts", []))
        corpus, spans, qrels = [], [], {}
        for i, (title, sents) in enumerate(row["context"]):
            did = f"{qid}/p{i}"
            head = f"{title}\n"
            text_parts, sent_spans, pos = [head], [], len(head)
            for s in sents:
                sent_spans.append((pos + len(s) - len(s.lstrip()), pos + len(s.rstrip())))
                text_parts.append(s)
                pos += len(s)
            doc = Document(
                did, "".join(text_parts), title, {"sentence_spans": sent_spans, "question": qid}
            )
            docs[did] = doc
            corpus.append(did)
            if title in sup:
                qrels[did] = 1
                for si in sorted(sup[title]):
                    if si < len(sent_spans):
                        s, e = sent_spans[si]
                        spans.append(GoldSpan(did, s, e, doc.text[s:e]))
                    else:
                        missing_sf += 1
        found = {docs[d].title for d in qrels}
        missing_sf += len(set(sup) - found)
        answer = row.get("answer")
        queries.append(
            EvalQuery(
                qid,
                row["question"],
                qrels=qrels,
                spans=tuple(spans),
                answers=(answer,) if answer else (),
                corpus=tuple(corpus),
                metadata={"type": row.get("type"), "level": row.get("level")},
            )
        )
    ds = EvalDataset(name or path.parent.name, docs, queries, source=str(path))
    ds.stats["missing_supporting_facts"] = missing_sf
    if missing_sf:
        ds.warn(
            f"{missing_sf} supporting facts name a paragraph or sentence that is not in "
            "the context; skipped"
        )
    return ds
