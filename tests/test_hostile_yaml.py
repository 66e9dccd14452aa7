"""Hostile pipeline files (tests/data/hostile_yaml/): each answers quickly with the expected
error, message and ``line:column``, never a traceback, a hang or a silently-wrong pipeline.
``expected.json`` holds, per file, the error class, a message fragment and the location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ragsel.errors
from ragsel.cli.main import app
from ragsel.spec import check_pipeline, load_pipeline

HOSTILE = Path(__file__).parent / "data" / "hostile_yaml"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())


def test_the_corpus_is_complete():
    on_disk = {p.name for p in HOSTILE.glob("*.yaml")}
    assert on_disk == set(EXPECTED) and len(on_disk) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file_gets_a_located_error(name):
    want = EXPECTED[name]
    path = HOSTILE / name
    with pytest.raises(getattr(ragsel.errors, want["error"])) as err:
        load_pipeline(path, strict_env=False)
    found = [
        (p.line, p.column)
        for p in err.value.problems
        if want["message"] in p.message and p.file == str(path)
    ]
    assert found, f"{name}: no problem says {want['message']!r}: {err.value}"
    assert (want["line"], want["column"]) in found, f"{name}: located at {found}"
    assert [str(p) for p in check_pipeline(path)] == [str(p) for p in err.value.problems]


def test_validate_answers_every_hostile_file_with_exit_2_and_no_traceback():
    res = CliRunner().invoke(app, ["validate", *(str(HOSTILE / n) for n in sorted(EXPECTED))])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    for name, want in EXPECTED.items():
        assert f"{HOSTILE / name}:{want['line']}:{want['column']}: " in res.output, name


def test_run_reports_a_recursive_alias_as_a_definition_error():
    res = CliRunner().invoke(app, ["run", str(HOSTILE / "alias_recursive_list.yaml"), "-q", "x"])
    assert res.exit_code == 2 and "recursive alias" in res.output
    assert "internal error" not in res.output
