"""BM25 over chunk texts with bm25s: tokenisation settings, build, save/load, search.

Tokenisation decides BM25 quality (SciFact nDCG@10: 0.687 with an English Snowball stemmer and
stop-words, clearly less without), so it is a config recorded with the index; a retriever
that asks for other settings than the index was built with is refused::

    cfg = BM25Config(stemmer="english", stopwords="en")
    bm = BM25Store.build(["the cat sat", "dogs bark"], ids=["a", "b"], config=cfg)
    bm.search("cats", k=1)    # [("a", 0.69...)]
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import ConfigError, RagselIndexError, require

_stemmers: dict[str, Any] = {}
_stem_lock = threading.Lock()


@dataclass(frozen=True)
class BM25Config:
    """BM25 tokenisation and scoring. ``stemmer``: a PyStemmer language (``"english"``) or
    ``None``; ``stopwords``: a bm25s stop-word list name (``"en"``) or ``None``."""

    stemmer: str | None = "english"
    stopwords: str | None = "en"
    lower: bool = True
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"bm25: need k1 >= 0 and 0 <= b <= 1, got k1={self.k1} b={self.b}")
        if self.method not in ("lucene", "robertson", "atire", "bm25l", "bm25+"):
            raise ConfigError(f"bm25: unknown method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25Config:
        return cls(**data)

    def tokenization(self) -> dict[str, Any]:
        return {"stemmer": self.stemmer, "stopwords": self.stopwords, "lower": self.lower}


def _stemmer(lang: str | None) -> Any:
    if lang is None:
        return None
    with _stem_lock:
        st = _stemmers.get(lang)
        if st is None:
            Stemmer = require("Stemmer", "local", "BM25 stemming (PyStemmer)")
            try:
                st = Stemmer.Stemmer(lang)
            except KeyError as exc:
                raise ConfigError(
                    f"bm25: unknown stemmer language {lang!r}; available: "
                    f"{', '.join(Stemmer.algorithms())}"
                ) from exc
            _stemmers[lang] = st
        return st


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s' default token pattern
_stopword_sets: dict[str, frozenset[str]] = {}


def _stopwords(name: str | None) -> frozenset[str]:
    if name is None:
        return frozenset()
    sw = _stopword_sets.get(name)
    if sw is None:
        require("bm25s", "local", "BM25 retrieval")
        from bm25s.tokenization import _infer_stopwords

        try:
            sw = _stopword_sets[name] = frozenset(_infer_stopwords(name))
        except ValueError as exc:
            raise ConfigError(
                f"bm25: unknown stop-word list {name!r} (use en, de, fr, es, ... or none)"
            ) from exc
    return sw


def tokenize(texts: Sequence[str], config: BM25Config) -> list[list[str]]:
    """Token lists as the index sees them: lower-cased words of 2+ characters, stop-words
    removed, then stemmed (the same steps and order as ``bm25s.tokenize``). Done here rather
    than by ``bm25s.tokenize`` because that builds a vocabulary per call, which dominated the
    latency of a one-query search."""
    st = _stemmer(config.stemmer)
    stop = _stopwords(config.stopwords)
    out: list[list[str]] = []
    for text in texts:
        toks = _TOKEN.findall(text.lower() if config.lower else text)
        if stop:
            toks = [t for t in toks if t not in stop]
        if st is not None and toks:
            toks = st.stemWords(toks)
        out.append(toks)
    return out


def _n_docs(retriever: Any) -> int | None:
    n = getattr(retriever, "scores", {}).get("num_docs")
    return None if n is None else int(n)


class BM25Store:
    """A bm25s index plus the chunk ids of its rows."""

    def __init__(self, retriever: Any, ids: list[str], config: BM25Config):
        self.retriever, self.ids, self.config = retriever, ids, config

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[str], config: BM25Config) -> BM25Store:
        bm25s = require("bm25s", "local", "BM25 retrieval")
        if len(texts) != len(ids):
            raise ValueError("texts and ids differ in length")
        retriever = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
        if texts:
            retriever.index(tokenize(texts, config), show_progress=False)
        return cls(retriever, list(ids), config)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self.retriever.save(str(directory), show_progress=False)
        tmp = directory / "ids.json.tmp"
        tmp.write_text(json.dumps({"ids": self.ids, "config": self.config.to_dict()}))
        tmp.replace(directory / "ids.json")  # written last: its presence marks a complete save

    @classmethod
    def load(cls, directory: Path) -> BM25Store:
        bm25s = require("bm25s", "local", "BM25 retrieval")
        meta_file = directory / "ids.json"
        if not meta_file.is_file():
            raise RagselIndexError(
                f"the BM25 index in {directory} is missing or incomplete: "
                "re-run `ragsel index` on the corpus to rebuild it"
            )
        try:
            meta = json.loads(meta_file.read_bytes().decode("utf-8"))
            config = BM25Config.from_dict(meta["config"])
            ids = list(meta["ids"])
            if not ids:
                return cls(bm25s.BM25(), [], config)
            retriever = bm25s.BM25.load(
                str(directory), mmap=False, show_progress=False, verbosity=0
            )
            n_docs = _n_docs(retriever)
        except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError) as exc:
            raise RagselIndexError(
                f"the BM25 index in {directory} is damaged ({type(exc).__name__}: "
                f"{str(exc)[:200]}); rebuild it with: ragsel index CORPUS --into "
                f"{directory.parent} --rebuild"
            ) from exc
        if n_docs is not None and n_docs != len(ids):
            raise RagselIndexError(
                f"the BM25 index in {directory} has {n_docs} rows but ids.json names "
                f"{len(ids)} chunks (damaged); rebuild it with: ragsel index CORPUS --into "
                f"{directory.parent} --rebuild"
            )
        return cls(retriever, ids, config)

    def __len__(self) -> int:
        return len(self.ids)

    def search_many(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, ``(row, score)`` pairs with score > 0, best first (ties: lower row).

        ``mask`` (one float per row, 0 or 1) restricts the search to some rows.
        """
        if not self.ids:
            return [[] for _ in queries]
        vocab = self.retriever.vocab_dict
        out: list[list[tuple[int, float]]] = []
        for qt in tokenize(queries, self.config):
            qt = [t for t in qt if t in vocab]
            if not qt:
                out.append([])  # no query term is in the index vocabulary
                continue
            scores = self.retriever.get_scores(qt)
            if mask is not None:
                scores = scores * mask
            n = scores.shape[0]
            kk = min(k, n)
            idx = np.argpartition(-scores, kk - 1)[:kk] if kk < n else np.arange(n)
            idx = idx[np.lexsort((idx, -scores[idx]))]
            top = scores[idx]
            keep = top > 0
            out.append(list(zip(idx[keep].tolist(), top[keep].tolist())))
        return out

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        return [(self.ids[r], s) for r, s in self.search_many([query], k)[0]]
