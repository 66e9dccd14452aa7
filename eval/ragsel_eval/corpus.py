"""Turn an :class:`EvalDataset` into what pipelines read: chunks (always) and, when a pipeline
uses ``${RAGSEL_INDEX}``, a ragsel :class:`~ragsel.index.LocalIndex` cached under the output
folder.

The chunks come from the same chunker the index uses (:mod:`ragsel.ingest`), so the runner's
gold chunks are exactly the index's chunks. Datasets with one shared corpus get one index;
datasets where every query has its own small corpus (HotpotQA, PoisonedRAG) get one small index
per query, built lazily (only for the queries evaluated). Each index folder is keyed by a hash
of the documents, the chunker and the embedder, so a changed dataset or chunker never reuses a
stale index and the same corpus is never embedded twice (the runner keeps them in a user
cache shared by all runs).

>>> corpus = PreparedCorpus(ds, chunker="words:256")          # doctest: +SKIP
>>> corpus.gold_units(ds.queries[0])                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ragsel.errors import ConfigError
from ragsel.types import Chunk
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery, gold_chunk_ids

#: Default chunking per dataset layout (``EvalDataset.metadata["layout"]``).
DEFAULT_CHUNKERS = {
    "beir": "document",
    "legalbench": "words:256",
    "financebench": "words:256",
    "hotpotqa": "document",
    "poisonedrag": "document",
    "jsonl": "document",
}


def parse_chunker(spec: str | None) -> Any:
    """``"document"``, ``"words:256"``, ``"words:128:13"``, ``"sentences:64"`` -> ChunkerConfig."""
    from ragsel.ingest import ChunkerConfig

    if not spec:
        return ChunkerConfig("document")
    parts = spec.split(":")
    kind = parts[0]
    try:
        nums = [int(x) for x in parts[1:]]
    except ValueError as exc:
        raise ConfigError(
            f"chunker {spec!r}: expected KIND[:SIZE[:OVERLAP]], e.g. words:256 "
            "or sentences:64:0 or document"
        ) from exc
    if kind == "document":
        return ChunkerConfig("document")
    if len(nums) > 2:
        raise ConfigError(f"chunker {spec!r}: expected KIND[:SIZE[:OVERLAP]]")
    return ChunkerConfig(kind, *nums)  # type: ignore[arg-type]


def _ingest_doc(d: Document) -> Any:
    from ragsel.ingest import Document as IngestDocument

    # chroma metadata must be scalars; lists (e.g. HotpotQA sentence offsets) stay out
    meta = {k: v for k, v in d.metadata.items() if isinstance(v, (str, int, float, bool))}
    return IngestDocument(d.id, d.text, d.title, meta)


def _safe(name: str) -> str:
    return (
        re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        + "-"
        + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    )


class PreparedCorpus:
    """Chunks (and lazily built indexes) for a dataset.

    ``chunker``: a spec for :func:`parse_chunker` (default from the dataset layout);
    ``cache_dir``: where indexes are kept (``None``: chunks only, no index);
    ``embedder``: the embedder spec the index is built with.
    """

    def __init__(
        self,
        dataset: EvalDataset,
        *,
        chunker: str | None = None,
        cache_dir: str | Path | None = None,
        embedder: str = "minilm",
    ) -> None:
        self.dataset = dataset
        layout = dataset.metadata.get("layout", "jsonl")
        self.chunker_spec = chunker or DEFAULT_CHUNKERS.get(layout, "document")
        self.chunker = parse_chunker(self.chunker_spec)
        self.embedder = embedder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._chunks_by_doc: dict[str, list[Chunk]] = {}
        self._lock = threading.Lock()
        self.index_seconds = 0.0

    # --- chunks ---------------------------------------------------------------------------
    def chunks_of(self, doc_ids: Iterable[str]) -> list[Chunk]:
        from ragsel.ingest import make_chunker

        chunker = make_chunker(self.chunker)
        out: list[Chunk] = []
        for did in doc_ids:
            got = self._chunks_by_doc.get(did)
            if got is None:
                got = list(chunker.chunk(_ingest_doc(self.dataset.documents[did])))
                self._chunks_by_doc[did] = got
            out.extend(got)
        return out

    def gold_units(self, query: EvalQuery) -> list[Chunk]:
        """The gold chunks of ``query`` under this chunker (the recall denominator)."""
        docs = [d for d in query.relevant_docs if d in self.dataset.documents]
        chunks = self.chunks_of(sorted(docs))
        gold = gold_chunk_ids(query, chunks)
        return [c for c in chunks if c.id in gold]

    def poisoned_units(self, query: EvalQuery) -> list[Chunk]:
        return self.chunks_of(sorted(d for d in query.poisoned if d in self.dataset.documents))

    # --- indexes --------------------------------------------------------------------------
    def _key(self, doc_ids: list[str]) -> str:
        h = hashlib.sha256()
        h.update(
            json.dumps(
                {"chunker": self.chunker.to_dict(), "embedder": self.embedder}, sort_keys=True
            ).encode()
        )
        for did in doc_ids:
            d = self.dataset.documents[did]
            h.update(did.encode() + b"\x1f" + d.text.encode() + b"\x1e")
        return h.hexdigest()[:16]

    def _docs_and_folder(self, query: EvalQuery | None) -> tuple[list[str], Path]:
        if self.cache_dir is None:
            raise ConfigError("this PreparedCorpus has no cache_dir, so it cannot build indexes")
        if query is not None and query.corpus is not None:
            doc_ids = list(query.corpus)
            return doc_ids, self.cache_dir / f"index-{self._key(sorted(doc_ids))}"
        doc_ids = list(self.dataset.documents)
        return doc_ids, self.cache_dir / f"index-{_safe(self.dataset.name)}-{self._key(doc_ids)}"

    def index_folder(self, query: EvalQuery | None = None) -> Path:
        """Where the index for ``query`` (``None``: the shared corpus) is or will be."""
        return self._docs_and_folder(query)[1]

    @staticmethod
    def is_built(folder: Path) -> bool:
        return (folder / ".ragsel_eval_complete").exists()

    def index_for(self, query: EvalQuery | None = None, *, progress: bool = False) -> Path:
        """The index folder holding the documents ``query`` is evaluated against (built on
        first use; ``None`` = the shared corpus)."""
        doc_ids, folder = self._docs_and_folder(query)
        done = folder / ".ragsel_eval_complete"
        if done.exists():
            return folder
        with self._lock:
            if not done.exists():
                import time

                from ragsel.index import LocalIndex

                t0 = time.perf_counter()
                with LocalIndex.create(folder, embedder=self.embedder, chunker=self.chunker) as ix:
                    ix.add_documents(
                        [_ingest_doc(self.dataset.documents[d]) for d in doc_ids], progress=progress
                    )
                done.write_text("ok\n")
                self.index_seconds += time.perf_counter() - t0
        return folder
