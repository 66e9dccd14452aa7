import json

from typer.testing import CliRunner

from ragsel.cli.main import app

runner = CliRunner()

PIPE = """\
stages:
  - {type: fake_retriever, texts: ["the cat sat on the mat", "dogs bark", "cat food"]}
  - {type: recording_stage, name: rec}
"""


def test_validate_ok_and_bad(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(PIPE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  a: {type: nope}\n  b: {type: noop, x: 1}\n")
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0
    res = runner.invoke(app, ["validate", str(good), str(bad)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(str(bad))]
    assert len(lines) == 3 and ":2:" in lines[0] and ":3:" in lines[1]
    assert "missing required input" in lines[2]  # wiring reported with the config errors
    assert "Traceback" not in res.output


def test_run_json_and_table(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(PIPE)
    res = runner.invoke(app, ["run", str(f), "--query", "cat", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["chunks"][0]["id"] in ("doc#0", "doc#2")
    assert [t["stage"] for t in data["trace"]] == ["fake_retriever", "rec"]
    res = runner.invoke(app, ["run", str(f), "--query", "cat"])
    assert res.exit_code == 0 and "Trace" in res.stdout


def test_run_bad_input_exit_codes(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(PIPE)
    res = runner.invoke(app, ["run", str(f), "--query", "  "])
    assert res.exit_code == 2 and "empty" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["run", str(tmp_path / "missing.yaml"), "--query", "x"])
    assert res.exit_code == 2 and "not found" in res.output
    failing = tmp_path / "f.yaml"
    failing.write_text(PIPE.replace("name: rec}", "name: rec, fail: true}"))
    res = runner.invoke(app, ["run", str(failing), "--query", "cat"])
    assert res.exit_code == 1 and "stage 'rec' (recording_stage) failed" in res.output


def test_a_stage_failing_at_run_time_exits_1_even_when_the_cause_is_a_definition_error(tmp_path):
    """Exit 2 means the definition or input was rejected before running; a stage that fails
    while running exits 1, and its cause is printed once."""
    f = tmp_path / "p.yaml"
    f.write_text(
        "stages:\n"
        "  a: {type: fake_retriever, texts: [cat]}\n"
        "  b: {type: fake_retriever, texts: [cat food]}\n"
        "  fuse: {type: fusion, weights: {nope: 1.0}}\n"
        "connections: [a -> fuse.candidates, b -> fuse.candidates]\n"
    )
    res = runner.invoke(app, ["run", str(f), "--query", "cat"])
    assert res.exit_code == 1, res.output
    assert "stage 'fuse' (fusion) failed" in res.output and res.output.count("weights name") == 1


def test_schema_and_graph(tmp_path):
    out = tmp_path / "schema.json"
    res = runner.invoke(app, ["schema", "--out", str(out)])
    assert res.exit_code == 0, res.output
    schema = json.loads(out.read_text())
    names = {
        s["properties"]["type"]["const"]
        for s in schema["properties"]["stages"]["oneOf"][1]["items"]["oneOf"]
    }
    assert {"elbow_cutoff", "fake_retriever", "rationale_selector"} <= names
    f = tmp_path / "p.yaml"
    f.write_text(PIPE)
    res = runner.invoke(app, ["graph", str(f)])
    assert res.exit_code == 0 and res.stdout.startswith("flowchart LR")
    assert "fake_retriever -- candidates --> rec" in res.stdout


def test_graph_without_graphviz_names_the_system_package(tmp_path, monkeypatch):
    f = tmp_path / "p.yaml"
    f.write_text(PIPE)
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' here
    res = runner.invoke(app, ["graph", str(f), "-o", str(tmp_path / "g.svg")])
    assert res.exit_code == 2
    assert "apt-get install graphviz" in res.output and "ragsel[" not in res.output
    assert 'pip install "ragsel"' not in res.output
    res = runner.invoke(app, ["graph", str(f), "-o", str(tmp_path / "g.txt")])
    assert res.exit_code == 2 and ".svg, .png, .pdf" in res.output


def test_help_texts_have_no_raw_rst_and_no_mid_sentence_breaks():
    from ragsel.cli._help import plain

    assert plain("Use ``--json`` and :func:`~a.b.run`\n    here.\n\n    Next.") == (
        "Use --json and run here.\n\nNext."
    )
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "``" not in res.output
    # the docstring breaks after "score, the"; the terminal wraps only at its width (200)
    line = next(ln for ln in res.output.splitlines() if " select " in ln)
    assert "score, the stages that kept or added each chunk" in line
    for cmd in (
        "select",
        "validate",
        "graph",
        "run",
        "index",
        "eval",
        "fit",
        "schema",
        "fit-fusion",
        "tune-embedder",
    ):
        out = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).output
        assert "``" not in out and ":func:" not in out, cmd
