"""Multi-process behaviour of a LocalIndex: a killed indexing run resumes; a writer in another
process locks the index. Uses real subprocesses (the int8 ONNX MiniLM loads fastest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ragsel.errors import RagselIndexError
from ragsel.index import IndexIncompleteWarning, LocalIndex, open_index
from ragsel.index.store import read_ledger
from ragsel.ingest import ChunkerConfig, load_documents, make_chunker

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OMP_NUM_THREADS": "1",
}
CHUNKER = ChunkerConfig("words", 12, 2)

WRITER = textwrap.dedent("""
    import sys, time
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig
    ix = LocalIndex.create(sys.argv[1], embedder="minilm-onnx",
                           chunker=ChunkerConfig("words", 12, 2), threads=1)
    def on_batch(n):
        print("BATCH", n, flush=True)
        time.sleep(float(sys.argv[3]))
    ix.add_corpus(sys.argv[2], batch_size=4, on_batch=on_batch)
    print("DONE", flush=True)
""")


def _corpus(root: Path, n: int = 12) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(n):
        (corpus / f"doc{i:02d}.txt").write_text(
            f"Document {i} explains clause {i}. " + "The parties agree to the terms. " * 4
        )
    return corpus


def _spawn(index: Path, corpus: Path, pause: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(index), str(corpus), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(f"writer exited ({proc.returncode}): {proc.stderr.read()}")
            continue
        if line.startswith(word):
            return line
    proc.kill()
    raise AssertionError(f"writer did not print {word} within {timeout}s")


def test_killed_indexing_run_reopens_and_resumes(tmp_path):
    corpus = _corpus(tmp_path)
    index = tmp_path / "index"
    proc = _spawn(index, corpus, pause=0.3)
    try:
        _wait_for(proc, "BATCH")
        _wait_for(proc, "BATCH")
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = read_ledger(index)
    assert 0 < len(done_before) < 12  # killed part-way
    # it reopens (incomplete, with a warning) and serves what it holds
    with pytest.warns(IndexIncompleteWarning):
        partial = LocalIndex.open(index)
    assert partial.collection.count() >= sum(len(e["chunks"]) for e in done_before.values())
    # the same command resumes: only the unfinished documents are processed
    with LocalIndex.create(index, embedder="minilm-onnx", chunker=CHUNKER, threads=1) as ix:
        rep = ix.add_corpus(corpus)
        expected = {c.id for d in load_documents(corpus) for c in make_chunker(CHUNKER).chunk(d)}
        assert ix.collection.count() == len(expected)  # nothing twice
    assert rep.unchanged == len(done_before) and rep.added == 12 - len(done_before)
    ix = open_index(index)
    assert ix.manifest["complete"] and {c.id for c in ix.chunks} == expected
    assert len(ix.bm25()) == len(expected)


def test_index_locked_by_another_process(tmp_path):
    corpus = _corpus(tmp_path, n=8)
    index = tmp_path / "index"
    proc = _spawn(index, corpus, pause=30)  # holds the lock while it pauses after a batch
    try:
        _wait_for(proc, "BATCH")
        with pytest.raises(RagselIndexError, match=r"locked by process \d+.*Wait for that"):
            LocalIndex.create(index, embedder="minilm-onnx", chunker=CHUNKER)
        with pytest.raises(RagselIndexError, match=r"being written by process \d+"):
            LocalIndex.open(index)
    finally:
        proc.kill()
        proc.wait(30)
    # the OS released the lock with the process: the index opens for writing again
    LocalIndex.create(index, embedder="minilm-onnx", chunker=CHUNKER).close()
