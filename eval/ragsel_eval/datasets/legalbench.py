"""LegalBench-RAG layout: a benchmark JSON ``{"tests": [{query_id?, query, snippets: [{file_path,
span: [start, end], answer}]}]}`` and a ``corpus/`` folder holding the files the spans point into.

Gold is character spans; chunk gold is recomputed per chunker with
:func:`ragsel_eval.datasets.base.gold_chunk_ids` (chunks overlapping a span).

>>> ds = load_legalbench("/data/privacyqa_spans")        # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery, GoldSpan


def _benchmark_file(folder: Path) -> Path:
    candidates = sorted(p for p in folder.glob("*.json"))
    for p in candidates:
        try:
            with p.open(encoding="utf-8") as f:
                head = f.read(200)
        except OSError:
            continue
        if '"tests"' in head:
            return p
    raise InputError(
        f"{folder}: no LegalBench-RAG benchmark file (a *.json with a top-level "
        "'tests' list) was found"
    )


def load_legalbench(
    folder: str | Path, *, benchmark: str | Path | None = None, name: str | None = None
) -> EvalDataset:
    """Load a LegalBench-RAG style folder (``corpus/`` + benchmark JSON)."""
    folder = Path(folder)
    bench = Path(benchmark) if benchmark else _benchmark_file(folder)
    corpus_dir = folder / "corpus"
    if not corpus_dir.is_dir():
        raise InputError(f"{folder}: the corpus/ folder with the documents is missing")
    try:
        data = json.loads(bench.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{bench}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    tests = data.get("tests") if isinstance(data, dict) else None
    if not isinstance(tests, list):
        raise InputError(f'{bench}: expected {{"tests": [...]}}')
    docs: dict[str, Document] = {}
    ds = EvalDataset(name or folder.name, docs, [], source=str(folder))
    mismatched = missing_files = 0
    queries = []
    for n, t in enumerate(tests):
        qid = str(t.get("query_id") or f"q{n:04d}")
        spans: list[GoldSpan] = []
        for sn in t.get("snippets", []):
            fp = sn["file_path"]
            if fp not in docs:
                path = corpus_dir / fp
                if not path.is_file():
                    missing_files += 1
                    continue
                docs[fp] = Document(
                    fp, path.read_text(encoding="utf-8", errors="replace"), title=Path(fp).stem
                )
            start, end = (int(x) for x in sn["span"])
            text = docs[fp].text
            if end > len(text):
                raise InputError(
                    f"{bench}: query {qid}: span [{start}, {end}) is past the end "
                    f"of {fp} ({len(text)} characters)"
                )
            expected = sn.get("answer")
            if expected is not None and expected.strip() != text[start:end].strip():
                mismatched += 1
            spans.append(GoldSpan(fp, start, end, text[start:end]))
        qrels = {s.doc_id: 1 for s in spans}
        queries.append(EvalQuery(qid, t["query"], qrels=qrels, spans=tuple(spans)))
    # Documents no span points at are part of the corpus too (distractor files).
    for path in sorted(corpus_dir.rglob("*")):
        rel = path.relative_to(corpus_dir).as_posix()
        if path.is_file() and rel not in docs:
            docs[rel] = Document(
                rel, path.read_text(encoding="utf-8", errors="replace"), title=path.stem
            )
    ds.queries = queries
    ds.stats.update(
        span_text_mismatch=mismatched,
        missing_files=missing_files,
        gold_spans=sum(len(q.spans) for q in queries),
    )
    if missing_files:
        ds.warn(f"{missing_files} snippets point at files missing from {corpus_dir}; skipped")
    if mismatched:
        ds.warn(f"{mismatched} snippet 'answer' texts differ from the text at their span")
    return ds
