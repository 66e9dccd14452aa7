"""``ragsel index``: builds, reports, re-runs idempotently, and exits 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragsel.cli.main import app

FIXTURES = Path(__file__).parent / "fixtures" / "corpus_small"
runner = CliRunner()


def test_index_command_builds_and_is_idempotent(tmp_path, minilm_embedder):
    out = tmp_path / "ix"
    args = [
        "index",
        str(FIXTURES),
        "--into",
        str(out),
        "--chunker",
        "sentences",
        "--chunk-size",
        "30",
        "--overlap",
        "5",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["added"] == 5 and rep["chunks_added"] > 5 and rep["index"] == str(out.resolve())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chunker"] == {"kind": "sentences", "size": 30, "overlap": 5}
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["chunks_added"] == 0 and again["unchanged"] == 5
    # a different chunker on the same index is refused with the fix, exit code 2
    res = runner.invoke(app, ["index", str(FIXTURES), "--into", str(out), "--chunk-size", "99"])
    assert res.exit_code == 2
    assert "--chunker sentences --chunk-size 30 --overlap 5" in res.output


def test_index_command_bad_corpus(tmp_path):
    res = runner.invoke(app, ["index", str(tmp_path / "missing"), "--into", str(tmp_path / "i")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["index", str(tmp_path / "empty"), "--into", str(tmp_path / "i")])
    assert res.exit_code == 2 and "no documents found" in res.output
    res = runner.invoke(
        app, ["index", str(FIXTURES), "--into", str(tmp_path / "j"), "--chunker", "pages"]
    )
    assert res.exit_code == 2 and "unknown chunker" in res.output


def test_index_command_reports_skipped_files(tmp_path, minilm_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("A short policy about refunds.")
    (corpus / "b.bin").write_bytes(b"\x00\x01")
    (corpus / "c.txt").write_bytes(b"caf\xe9 menu")
    res = runner.invoke(app, ["index", str(corpus), "--into", str(tmp_path / "ix")])
    assert res.exit_code == 0, res.output
    assert "embedded 2/2 chunks" in res.output and "chunks/s" in res.output  # plain progress
    assert "unsupported type: b.bin" in res.output and "not valid UTF-8" in res.output
    assert "2 new" in res.output
