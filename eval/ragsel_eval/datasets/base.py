"""The common shape of every evaluation dataset, and chunk-level gold for any chunker.

An :class:`EvalDataset` holds documents and queries; each :class:`EvalQuery` carries whatever
gold its source provides:

- ``qrels``: graded document-level relevance (``{doc_id: grade}``, grade > 0 is relevant);
- ``spans``: gold character spans inside documents (:class:`GoldSpan`), the finest gold —
  chunk-level gold is *recomputed* from them for whatever chunker a pipeline uses
  (:func:`gold_chunk_ids`: a chunk is gold when it overlaps a gold span, METEORA's rule);
- ``poisoned``: ids of documents planted to mislead (PoisonedRAG);
- ``answers``: gold answer strings;
- ``corpus``: for datasets where every query has its own small corpus (HotpotQA distractor
  paragraphs, PoisonedRAG contexts) the ids of that query's documents, else ``None`` (one shared
  corpus, e.g. SciFact).

>>> ds = EvalDataset("toy", {"d1": Document("d1", "Cats purr.")},
...                  [EvalQuery("q1", "do cats purr?", qrels={"d1": 1})])
>>> ds.queries[0].relevant_docs
{'d1'}
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ragsel.errors import InputError

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped or repaired (e.g. qrels naming unknown documents)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a corpus. ``id`` is what a chunk's ``doc_id`` must equal."""

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not self.id:
            raise InputError("a dataset document needs a non-empty id")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


@dataclass(frozen=True, slots=True)
class GoldSpan:
    """A gold ``[start, end)`` character span in document ``doc_id``."""

    doc_id: str
    start: int
    end: int
    text: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise InputError(
                f"gold span in {self.doc_id!r}: invalid offsets [{self.start}, {self.end})"
            )


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """A query with its gold labels (any of them may be empty; see the module docstring)."""

    id: str
    text: str
    qrels: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    spans: tuple[GoldSpan, ...] = ()
    poisoned: frozenset[str] = frozenset()
    answers: tuple[str, ...] = ()
    corpus: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not self.text or not self.text.strip():
            raise InputError(f"query {self.id!r} has empty text")
        object.__setattr__(
            self, "qrels", MappingProxyType({str(k): int(v) for k, v in self.qrels.items()})
        )
        object.__setattr__(self, "spans", tuple(self.spans))
        object.__setattr__(self, "poisoned", frozenset(self.poisoned))
        object.__setattr__(self, "answers", tuple(self.answers))
        if self.corpus is not None:
            object.__setattr__(self, "corpus", tuple(self.corpus))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def relevant_docs(self) -> set[str]:
        """Documents with relevance > 0 (plus documents holding a gold span)."""
        docs = {d for d, r in self.qrels.items() if r > 0}
        docs.update(s.doc_id for s in self.spans)
        return docs


@dataclass
class EvalDataset:
    """Documents + queries + gold, from any loader in :mod:`ragsel_eval.datasets`.

    ``warnings`` lists what the loader skipped or repaired; ``stats`` holds counts such as
    ``unknown_qrels`` (qrels rows naming documents absent from the corpus, dropped).
    """

    name: str
    documents: dict[str, Document]
    queries: list[EvalQuery]
    source: str = ""
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for q in self.queries:
            if q.id in seen:
                raise InputError(f"dataset {self.name!r}: duplicate query id {q.id!r}")
            seen.add(q.id)
            if q.corpus is not None:
                missing = [d for d in q.corpus if d not in self.documents]
                if missing:
                    raise InputError(
                        f"dataset {self.name!r}: query {q.id!r} lists corpus "
                        f"documents that do not exist: {missing[:5]}"
                    )

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def per_query_corpus(self) -> bool:
        """True when each query is evaluated against its own small corpus."""
        return any(q.corpus is not None for q in self.queries)

    def query(self, qid: str) -> EvalQuery:
        for q in self.queries:
            if q.id == qid:
                return q
        raise KeyError(qid)

    def corpus_for(self, query: EvalQuery) -> list[Document]:
        """The documents ``query`` is evaluated against (its own corpus, or all documents)."""
        if query.corpus is None:
            return list(self.documents.values())
        return [self.documents[d] for d in query.corpus]

    def subset(
        self, limit: int | None = None, *, ids: Iterable[str] | None = None, seed: int | None = None
    ) -> EvalDataset:
        """The first ``limit`` queries (or a seeded sample, or the named ids); documents kept."""
        qs = list(self.queries)
        if ids is not None:
            wanted = list(ids)
            by_id = {q.id: q for q in qs}
            unknown = [i for i in wanted if i not in by_id]
            if unknown:
                raise InputError(f"dataset {self.name!r} has no queries {unknown[:5]}")
            qs = [by_id[i] for i in wanted]
        if seed is not None:
            qs = random.Random(seed).sample(qs, len(qs))
        if limit is not None:
            if limit < 1:
                raise InputError(f"limit must be >= 1, got {limit}")
            qs = qs[:limit]
        return replace(self, queries=qs, warnings=list(self.warnings), stats=dict(self.stats))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "split": self.split,
            "documents": len(self.documents),
            "queries": len(self.queries),
            "per_query_corpus": self.per_query_corpus,
            "with_qrels": sum(bool(q.qrels) for q in self.queries),
            "with_spans": sum(bool(q.spans) for q in self.queries),
            "with_poisoned": sum(bool(q.poisoned) for q in self.queries),
            "with_answers": sum(bool(q.answers) for q in self.queries),
            **{f"stat_{k}": v for k, v in self.stats.items()},
        }

    def warn(self, message: str) -> None:
        """Record and emit a :class:`DatasetWarning`."""
        self.warnings.append(message)
        warnings.warn(f"dataset {self.name!r}: {message}", DatasetWarning, stacklevel=3)


# --- chunk-level gold ---------------------------------------------------------------------------
def _chunk_fields(chunk: Any) -> tuple[str, str, tuple[int, int] | None]:
    """(id, doc_id, span) of a ragsel Chunk, a ScoredChunk or a dict with those keys."""
    inner = getattr(chunk, "chunk", None)
    if inner is not None and hasattr(inner, "doc_id"):
        chunk = inner
    if isinstance(chunk, Mapping):
        span = chunk.get("span")
        return str(chunk["id"]), str(chunk.get("doc_id") or ""), tuple(span) if span else None
    return chunk.id, chunk.doc_id, chunk.span


def chunk_overlaps(span: tuple[int, int] | None, gold: GoldSpan, min_overlap: int = 1) -> bool:
    """Do chunk span ``[s, e)`` and the gold span share at least ``min_overlap`` characters?"""
    if span is None:
        return False
    s, e = span
    return min(e, gold.end) - max(s, gold.start) >= min_overlap


def gold_chunk_ids(
    query: EvalQuery, chunks: Iterable[Any], *, min_overlap: int = 1, min_grade: int = 1
) -> set[str]:
    """Ids of the gold chunks among ``chunks`` for ``query``, for any chunker.

    With gold spans: a chunk is gold when it overlaps (by ``min_overlap`` characters) a gold span
    in its own document; chunks without a span in a span-labelled document are gold when their
    document holds a span (no finer information is available). Without spans: a chunk is gold
    when its document has qrels grade >= ``min_grade``.
    """
    by_doc: dict[str, list[GoldSpan]] = {}
    for g in query.spans:
        by_doc.setdefault(g.doc_id, []).append(g)
    rel_docs = {d for d, r in query.qrels.items() if r >= min_grade}
    out: set[str] = set()
    for c in chunks:
        cid, doc, span = _chunk_fields(c)
        if doc in by_doc:
            if span is None or any(chunk_overlaps(span, g, min_overlap) for g in by_doc[doc]):
                out.add(cid)
        elif not query.spans and doc in rel_docs:
            out.add(cid)
    return out


def chunk_grades(
    query: EvalQuery, chunks: Iterable[Any], *, min_overlap: int = 1
) -> dict[str, int]:
    """Graded chunk relevance: a chunk inherits its document's qrels grade; span gold gives 1."""
    chunks = list(chunks)
    gold = gold_chunk_ids(query, chunks, min_overlap=min_overlap)
    out: dict[str, int] = {}
    for c in chunks:
        cid, doc, _ = _chunk_fields(c)
        if cid in gold:
            out[cid] = max(1, query.qrels.get(doc, 1)) if not query.spans else 1
    return out


def poisoned_chunk_ids(query: EvalQuery, chunks: Iterable[Any]) -> set[str]:
    """Ids of chunks cut from a document planted to mislead this query."""
    out = set()
    for c in chunks:
        cid, doc, _ = _chunk_fields(c)
        if doc in query.poisoned:
            out.add(cid)
    return out


def spans_in_text(text: str, needles: Sequence[str], doc_id: str) -> list[GoldSpan]:
    """Gold spans for ``needles`` found verbatim in ``text`` (searching forward, so repeated
    sentences map to successive occurrences); missing needles are skipped."""
    out, pos = [], 0
    for n in needles:
        n_strip = n.strip()
        if not n_strip:
            continue
        i = text.find(n_strip, pos)
        if i < 0:
            i = text.find(n_strip)
        if i < 0:
            continue
        out.append(GoldSpan(doc_id, i, i + len(n_strip), n_strip))
        pos = i + len(n_strip)
    return out
