"""``ragsel index --engine ray`` on a real local Ray instance equals a local build: same chunk
ids, vectors within float tolerance, same BM25 results; a re-run with more documents adds only
those (resumable like a local run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ragsel.index import LocalIndex, clear_index_cache, open_index
from ragsel.ingest import ChunkerConfig

ray = pytest.importorskip("ray")

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
CHUNKER = ChunkerConfig("words", 20, 4)
QUERIES = ["sublet the apartment", "personal data deletion", "adults medicine", "zoloft"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _build(path: Path, corpus: Path, **kw) -> object:
    with LocalIndex.create(path, embedder="minilm", chunker=CHUNKER) as ix:
        return ix.add_corpus(corpus, **kw)


def test_ray_build_equals_local_build(tmp_path, local_ray):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES, corpus)
    (corpus / "empty.txt").write_text("   ")
    _build(tmp_path / "local", corpus)
    rep = _build(tmp_path / "ray", corpus, engine="ray", batch_size=4)
    assert rep.added == 6 and rep.chunks_added > 4 and any("no text" in w for w in rep.warnings)
    clear_index_cache()
    a, b = open_index(tmp_path / "local"), open_index(tmp_path / "ray")
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert a.chunks == b.chunks  # text, positions, spans and metadata too
    np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-5)
    assert a.bm25_search(QUERIES, 5) == b.bm25_search(QUERIES, 5)
    assert a.manifest["counts"] == b.manifest["counts"]
    # resumable / incremental: a new document is the only work of the next run
    (corpus / "new.txt").write_text("A new note about parking permits for tenants.")
    again = _build(tmp_path / "ray", corpus, engine="ray")
    assert (again.added, again.unchanged) == (1, 6)
