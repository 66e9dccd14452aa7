"""``ragsel index --engine ray``: chunk and embed on a Ray cluster, store on the driver.

Ray Data turns the pending documents into a dataset and runs :class:`ChunkEmbed` over it with
``map_batches``: a pool of actors, each holding one embedder (loaded once per actor), chunks a
batch of documents and embeds the chunks. The driver receives ``(chunk, vector)`` rows and
writes them into the index itself, in the order they arrive, through the same writer as a local
run: chroma is not a multi-writer store, and the ledger keeps the run resumable (a killed run
re-sends only the documents it had not finished). Chunk ids are content hashes, so a Ray build
and a local build of the same corpus hold the same chunks::

    with LocalIndex.create("idx", embedder="minilm") as ix:
        ix.add_corpus("corpus/", engine="ray", ray_address=None)   # a local Ray instance
    # ragsel index corpus/ --into idx --engine ray --ray-address ray://head:10001

Documents travel pickled (a streamed large file is read into memory first).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ragsel.errors import require
from ragsel.ingest.documents import Document
from ragsel.types import Chunk

#: Documents per map_batches call (one actor call chunks and embeds them).
DOCS_PER_TASK = 64


class ChunkEmbed:
    """The Ray Data actor: chunk documents, embed their chunks (one embedder per actor)."""

    def __init__(self, chunker: dict[str, Any], embedder: tuple[str, int | None, int]) -> None:
        from ragsel.backends.embedders import load_embedder
        from ragsel.ingest.chunkers import ChunkerConfig, make_chunker

        self.chunker = make_chunker(ChunkerConfig.from_dict(chunker))
        spec, threads, batch = embedder
        self.embedder = load_embedder(spec, threads=threads, batch_size=batch)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks: list[Chunk] = []
        counts: list[int] = []
        for raw in batch["doc"]:
            doc = pickle.loads(raw)
            mine = list(self.chunker.chunk(doc))
            chunks.extend(mine)
            counts.extend([len(mine)] * len(mine))
        dim = int(self.embedder.dim)
        vecs = (
            self.embedder.embed([c.text for c in chunks])
            if chunks
            else np.zeros((0, dim), dtype=np.float32)
        )
        return {
            "chunk": np.array([pickle.dumps(c) for c in chunks], dtype=object),
            "n": np.asarray(counts, dtype=np.int64),
            "vector": vecs.astype(np.float32),
        }


def _portable(d: Document) -> bytes:
    if d.streamed:
        d = Document(d.id, "".join(d.blocks()), d.title, d.metadata, d.source, d.fingerprint)
    return pickle.dumps(d)


def _init(ray: Any, address: str | None) -> bool:
    """Connect to ``address`` (or start a local instance); True if this call started it."""
    if ray.is_initialized():
        return False
    from ragsel.offline import OFFLINE_ENV

    env = {
        **OFFLINE_ENV,
        **{k: v for k, v in os.environ.items() if k.startswith(("RAGSEL_", "OMP_", "HF_"))},
    }
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": env},
    )
    return True


def embed_on_ray(
    index: Any, docs: Sequence[Document], address: str | None, write_batch: int
) -> Iterator[tuple[list[Chunk], np.ndarray, dict[str, int]]]:
    """Chunk and embed ``docs`` on Ray; yield ``(chunks, vectors, {doc id: chunk count})``."""
    if not docs:
        return
    ray = require("ray", "ray", "ragsel index --engine ray")
    started = _init(ray, address)
    try:
        import ray.data  # noqa: F401 - the Data library loads on import

        ray.data.DataContext.get_current().enable_progress_bars = False  # ours is on stderr
        tasks = -(-len(docs) // DOCS_PER_TASK)
        workers = max(1, min(tasks, int(ray.cluster_resources().get("CPU", 1))))
        spec, threads, batch = index._embedder_options
        ds = ray.data.from_items([{"doc": _portable(d)} for d in docs], override_num_blocks=tasks)
        out = ds.map_batches(
            ChunkEmbed,
            fn_constructor_kwargs={
                "chunker": index.chunker.to_dict(),
                "embedder": (spec, threads or 1, batch),  # one core per actor
            },
            batch_size=DOCS_PER_TASK,
            batch_format="numpy",
            concurrency=workers,
            num_cpus=1,
        )
        for batch in out.iter_batches(batch_size=write_batch, batch_format="numpy"):
            chunks = [pickle.loads(b) for b in batch["chunk"]]
            counts = {c.doc_id: int(n) for c, n in zip(chunks, batch["n"])}
            yield chunks, np.asarray(batch["vector"], dtype=np.float32), counts
    finally:
        if started:
            ray.shutdown()
