"""Index hygiene (issue 14): nothing created for a bad corpus, deletions follow the corpus,
damaged files are named with the fix, queries never write to the index, progress output.

Real chromadb on disk and the real ONNX MiniLM (the fastest to load)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ragsel.cli.main import app
from ragsel.errors import RagselIndexError
from ragsel.index import LocalIndex, clear_index_cache, open_index
from ragsel.index.integrity import forget
from ragsel.index.progress import IndexProgress
from ragsel.ingest import ChunkerConfig

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
CHUNKER = ChunkerConfig("words", 20, 4)
runner = CliRunner()


def _build(root: Path, corpus: Path | None = None) -> tuple[Path, Path]:
    if corpus is None:
        corpus = root / "corpus"
        shutil.copytree(FIXTURES, corpus)
    with LocalIndex.create(root / "index", embedder="minilm-onnx", chunker=CHUNKER) as ix:
        ix.add_corpus(corpus)
    return corpus, root / "index"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("integrity"))


@pytest.fixture
def copy(built, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(built[1], dst)
    clear_index_cache()
    forget()
    return dst


def _hashes(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# --- 1. a bad corpus creates nothing ------------------------------------------------------
def test_missing_corpus_leaves_no_index_folder(tmp_path):
    res = runner.invoke(app, ["index", str(tmp_path / "nope"), "--into", str(tmp_path / "X")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "X").exists()
    (tmp_path / "Y").mkdir()  # an existing empty folder stays empty
    res = runner.invoke(app, ["index", str(tmp_path / "nope"), "--into", str(tmp_path / "Y")])
    assert res.exit_code == 2 and list((tmp_path / "Y").iterdir()) == []


def test_failed_first_run_removes_what_it_created(tmp_path):
    with pytest.raises(RuntimeError):
        with LocalIndex.create(tmp_path / "X", embedder="minilm-onnx", chunker=CHUNKER):
            raise RuntimeError("embedder crashed before the first batch")
    assert not (tmp_path / "X").exists()


def test_index_that_never_held_data_is_reported_empty(tmp_path):
    ix = LocalIndex.create(tmp_path / "X", embedder="minilm-onnx", chunker=CHUNKER)
    ix.close()  # a run killed before its first batch: a manifest, no document
    with pytest.raises(RagselIndexError, match=r"is empty: .*ragsel index CORPUS --into"):
        LocalIndex.open(tmp_path / "X")


# --- 2. deleted documents leave the index ---------------------------------------------------
def test_reindexing_removes_deleted_documents(tmp_path):
    corpus, path = _build(tmp_path)
    assert open_index(path).bm25_search(["sublet"], 5)[0][0][0].doc_id == "lease.md"
    (corpus / "lease.md").unlink()
    with LocalIndex.create(path, embedder="minilm-onnx", chunker=CHUNKER) as ix:
        rep = ix.add_corpus(corpus)
        assert not ix.collection.get(where={"doc_id": "lease.md"})["ids"]
    assert rep.removed == 1 and rep.chunks_removed > 0 and rep.unchanged == 4
    clear_index_cache()
    ix = open_index(path)
    assert "lease.md" not in {c.doc_id for c in ix.chunks}
    assert ix.bm25_search(["sublet"], 5) == [[]]
    assert ix.manifest["counts"] == {"documents": 4, "chunks": rep.total_chunks}
    assert len(ix.chunks) == len(ix.bm25()) == rep.total_chunks
    # keep_missing: indexing another folder into the same index adds, removes nothing
    other = tmp_path / "other"
    other.mkdir()
    (other / "new.txt").write_text("A new note about parking permits.")
    with LocalIndex.create(path, embedder="minilm-onnx", chunker=CHUNKER) as ix:
        rep = ix.add_corpus(other, prune=False)
    assert rep.added == 1 and rep.removed == 0


def test_cli_reports_removed_documents(tmp_path):
    corpus, path = _build(tmp_path)
    (corpus / "privacy.txt").unlink()
    args = ["index", str(corpus), "--into", str(path), "--embedder", "minilm-onnx"]
    args += ["--chunk-size", "20", "--overlap", "4", "--json"]
    rep = json.loads(runner.invoke(app, args).stdout)
    assert rep["removed"] == 1 and rep["chunks_removed"] > 0


# --- 3. damaged files: an error naming the file and the fix ---------------------------------
def _query(path: Path) -> None:
    ix = open_index(path)
    ix.dense_search(np.ones((1, 384), dtype=np.float32), 3)
    ix.bm25_search(["tenant"], 3)


def test_manifest_lists_checksums_of_what_readers_load(copy):
    files = json.loads((copy / "manifest.json").read_text())["files"]
    assert {"chunks.jsonl", "vectors.npy", "bm25/ids.json"} <= set(files)
    assert any(f.startswith("bm25/") and f.endswith(".npy") for f in files)
    assert all(set(v) == {"size", "blake2b"} for v in files.values())


def test_random_bytes_in_a_bm25_file_are_detected(copy):
    f = copy / "bm25" / "indptr.csc.index.npy"
    data = bytearray(f.read_bytes())
    rng = np.random.default_rng(0)
    start = max(0, len(data) - 64)  # keep the size: only the hash can tell
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))
    with pytest.raises(RagselIndexError, match=r"indptr\.csc\.index\.npy is damaged.*--rebuild"):
        _query(copy)


@pytest.mark.parametrize(
    "name", ["vectors.npy", "chunks.jsonl", "bm25/ids.json", "bm25/vocab.index.json"]
)
def test_truncated_files_are_detected(copy, name):
    f = copy / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(
        RagselIndexError, match=rf"{name.split('/')[-1]} is damaged .*truncated.*rebuild"
    ):
        _query(copy)


def test_damaged_files_without_checksums_still_name_the_file(copy):
    m = json.loads((copy / "manifest.json").read_text())
    del m["files"]  # an index written before checksums existed
    (copy / "manifest.json").write_text(json.dumps(m))
    f = copy / "bm25" / "ids.json"
    f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(RagselIndexError, match=r"BM25 index in .*bm25 is damaged.*--rebuild"):
        _query(copy)


def test_random_bytes_manifest_is_a_located_error_and_rebuild_repairs(built, copy):
    (copy / "manifest.json").write_bytes(np.random.default_rng(1).bytes(300))
    res = runner.invoke(app, ["select", "pipelines/local.yaml", "--index", str(copy), "-q", "x"])
    assert res.exit_code != 0 and "internal error" not in res.output
    with pytest.raises(
        RagselIndexError, match=r"manifest.json is damaged or unreadable.*--rebuild"
    ):
        LocalIndex.open(copy)
    args = ["index", str(built[0]), "--into", str(copy), "--embedder", "minilm-onnx"]
    res = runner.invoke(app, [*args, "--chunk-size", "20", "--overlap", "4", "--rebuild", "-q"])
    assert res.exit_code == 0, res.output
    clear_index_cache()
    _query(copy)


def test_rebuild_refuses_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(RagselIndexError, match="refuses to empty"):
        LocalIndex.create(tmp_path / "mine", embedder="minilm-onnx", rebuild=True)
    assert (tmp_path / "mine" / "thesis.tex").exists()


# --- 4. queries never write to the index ----------------------------------------------------
READER = textwrap.dedent("""
    import sys, numpy as np
    from ragsel.index import open_index
    ix = open_index(sys.argv[1])
    ix.dense_search(np.ones((1, 384), dtype=np.float32), 3)
    ix.dense_search(np.ones((1, 384), dtype=np.float32), 3, where={"doc_id": "lease.md"})
    ix.bm25_search(["tenant"], 3, where={"doc_id": "lease.md"})
    print("OK")
""")


def test_queries_do_not_change_any_file_of_the_index(copy):
    before = _hashes(copy)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "OMP_NUM_THREADS": "1"}
    for _ in range(2):  # chroma re-persisted its files on every open, so twice
        out = subprocess.run(
            [sys.executable, "-c", READER, str(copy)], capture_output=True, text=True, env=env
        )
        assert out.stdout.strip() == "OK", out.stderr
    assert _hashes(copy) == before


# --- 5. progress ------------------------------------------------------------------------
def test_progress_without_a_terminal_prints_plain_lines_per_forward_pass(tmp_path):
    stream = io.StringIO()
    prog = IndexProgress(stream=stream, tty=False, every=0)
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES, corpus)
    with LocalIndex.create(
        tmp_path / "ix", embedder="minilm-onnx", chunker=CHUNKER, batch_size=2
    ) as ix:
        rep = ix.add_corpus(corpus, progress=prog)  # one write batch, passes of 2 chunks
    out = stream.getvalue().splitlines()
    assert out[0].startswith(f"to embed: {rep.chunks_added} chunks of 5 new or changed")
    lines = [x for x in out if x.startswith("embedded ")]
    assert len(lines) >= rep.chunks_added // 2  # smooth: every pass, not every write batch
    assert lines[-1].startswith(f"embedded {rep.chunks_added}/{rep.chunks_added} chunks (100.0%)")
    assert "\x1b" not in stream.getvalue()  # no terminal codes in a log


def test_progress_in_a_terminal_draws_a_bar_with_an_eta():
    stream = io.StringIO()
    prog = IndexProgress(stream=stream, tty=True)
    prog.start(10)
    prog.advance(3)
    assert prog._bar is not None
    prog.close()
    assert "chunks/s  ETA" in stream.getvalue() and "3/10" in stream.getvalue()
