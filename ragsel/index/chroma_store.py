"""chromadb plumbing: the registered ragsel embedding function and collection helpers.

chroma persists a collection's embedding function by *name* and rebuilds it from its config
when the collection is reopened; an unregistered function silently falls back to chroma's
default, which downloads a model (and fails offline). :class:`RagselEmbeddingFunction` is
registered under ``"ragsel"`` so a reopened collection gets MiniLM back. ragsel itself always
passes precomputed vectors, so the function only runs when other code (e.g. a user calling
``collection.query(query_texts=...)``) asks chroma to embed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ragsel.errors import RagselIndexError, require
from ragsel.index.store import rebuild_hint

chromadb = require("chromadb", "local", "the chroma index")
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings  # noqa: E402
from chromadb.utils.embedding_functions import register_embedding_function  # noqa: E402

COLLECTION = "ragsel"
#: chroma metadata keys ragsel uses for chunk structure; user keys that collide get "meta_".
RESERVED = ("doc_id", "position", "span_start", "span_end")


@register_embedding_function
class RagselEmbeddingFunction(EmbeddingFunction[Documents]):
    """A chroma embedding function backed by :func:`ragsel.backends.embedders.load_embedder`.

    ``RagselEmbeddingFunction("minilm")``; its config is ``{"model": "minilm"}``.
    """

    def __init__(
        self, model: str = "minilm", threads: int | None = None, batch_size: int = 64
    ) -> None:
        self.model, self.threads, self.batch_size = model, threads, batch_size

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chroma's signature
        from ragsel.backends.embedders import load_embedder

        emb = load_embedder(self.model, threads=self.threads, batch_size=self.batch_size)
        return list(emb.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "ragsel"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "threads": self.threads, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> RagselEmbeddingFunction:
        return RagselEmbeddingFunction(**config)

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine"]

    def is_legacy(self) -> bool:
        return False


_copies: dict[str, str] = {}
_copy_lock = threading.Lock()


def read_only_copy(index_path: Path) -> str:
    """A private temporary copy of ``INDEX/chroma`` for a reader, made once per process and
    index, removed at exit. chromadb has no read-only mode: every ``PersistentClient`` records
    a write lease in ``chroma.sqlite3`` and re-persists the HNSW files, so readers open this
    copy and the index itself never changes under a query."""
    import atexit
    import shutil
    import tempfile

    src = index_path / "chroma"
    key = str(src)
    with _copy_lock:
        have = _copies.get(key)
        if have is not None and Path(have).is_dir():
            return have
        if not src.is_dir():
            raise RagselIndexError(f"the chroma store {src} is missing; {rebuild_hint(index_path)}")
        tmp = tempfile.mkdtemp(prefix="ragsel-chroma-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        dst = str(Path(tmp) / "chroma")
        shutil.copytree(src, dst)
        _copies[key] = dst
        return dst


def client(path: str) -> Any:
    from chromadb.config import Settings

    try:
        return chromadb.PersistentClient(
            path=path, settings=Settings(anonymized_telemetry=False, allow_reset=False)
        )
    except Exception as exc:
        raise _wrap(exc, path) from exc


def _wrap(exc: Exception, path: str) -> RagselIndexError:
    msg = str(exc)
    if "lock" in msg.lower():
        return RagselIndexError(
            f"the chroma store at {path} is locked by another process ({msg}); "
            "wait for it to finish or stop it, then retry"
        )
    return RagselIndexError(
        f"cannot open the chroma store at {path}: {type(exc).__name__}: {msg}. "
        "If the index is damaged, rebuild it: ragsel index CORPUS --into INDEX --rebuild"
    )


def create_collection(cl: Any, model: str) -> Any:
    return cl.get_or_create_collection(
        COLLECTION,
        embedding_function=RagselEmbeddingFunction(model),
        configuration={"hnsw": {"space": "cosine"}},
    )


def get_collection(cl: Any, path: str) -> Any:
    try:
        return cl.get_collection(COLLECTION)
    except Exception as exc:
        raise _wrap(exc, path) from exc


def to_chroma_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """chroma takes str/int/float/bool values only: others become JSON strings, ``None`` goes."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        key = f"meta_{k}" if k in RESERVED else str(k)
        if v is None:
            continue
        out[key] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
    return out
