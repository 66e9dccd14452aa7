"""What the CLI shows is safe to show: credentials in URLs redacted, control characters in
documents escaped, undecodable queries and unknown --var names refused clearly, file paths in
errors located in the YAML (issue 14)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from ragsel.cli.main import app
from ragsel.errors import ConfigError, InputError, PipelineSpecError, Problem
from ragsel.redact import redact_text, redact_url

runner = CliRunner()

HOSTILE_DOC = "cat \x1b]0;pwned\x07\x1b[2J\x1b[31mred [/bold] [link=x]y\r\u202eevil"

LLM_PIPE = """\
stages:
  r: {type: fake_retriever, texts: [a b, c d]}
  rank: {type: llm_listwise_reranker, llm: "openai:m"}
connections: [r -> rank]
"""


def test_redaction_helpers():
    assert redact_url("ftp://u:KEY@host:21/v1/?api_key=K") == "ftp://host:21/v1"
    text = "got 'ftp://u:KEY@host/v1' and https://h/x?a=1&api_key=SECRET&token=T2#f"
    out = redact_text(text)
    assert "KEY" not in out and "SECRET" not in out and "T2" not in out
    assert "ftp://<redacted>@host/v1" in out and "a=1" in out
    assert "KEY" not in str(ConfigError("bad https://me:KEY@h/v1", stage="s"))
    assert "KEY" not in str(Problem("https://me:KEY@h", "f.yaml", 1, 1))


def test_a_key_in_the_llm_base_url_is_never_shown(tmp_path, monkeypatch):
    f = tmp_path / "p.yaml"
    f.write_text(LLM_PIPE)
    monkeypatch.setenv("RAGSEL_LLM_BASE_URL", "ftp://u:KEY@host/v1")
    res = runner.invoke(app, ["run", str(f), "-q", "a"])
    assert res.exit_code == 1 and "base_url must start with http" in res.output
    assert "KEY" not in res.output and "ftp://host/v1" in res.output
    f.write_text(
        LLM_PIPE.replace('"openai:m"', '{backend: openai, model: m, base_url: "ftp://u:KEY@h/v1"}')
    )
    res = runner.invoke(app, ["validate", str(f)])
    assert res.exit_code == 2 and "KEY" not in res.output and "ftp://h/v1" in res.output


def test_log_records_are_redacted_and_escaped(caplog):
    from ragsel.cli._common import install_log_redaction

    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("ragsel.test").warning("calling %s\x1b[2J", "https://u:KEY@h/v1")
    (rec,) = caplog.records
    assert "KEY" not in rec.getMessage() and "\x1b" not in rec.getMessage()
    assert "\\x1b[2J" in rec.getMessage()


def test_control_characters_and_markup_in_documents_are_escaped():
    from ragsel.pipeline import Pipeline
    from ragsel.testing import FakeRetriever

    pipe = Pipeline.linear([FakeRetriever(texts=[HOSTILE_DOC])])
    from rich.console import Console

    from ragsel.cli.render import note_lines, selection_table

    console = Console(record=True, width=200, force_terminal=True)
    selection = pipe.run("cat").selection
    console.print(selection_table(selection))
    for line in note_lines(selection):
        console.print(line, markup=False)
    out = console.export_text(styles=False)
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out and "[/bold] [link=x]y" in out and "\\u202e" in out


def test_run_prints_hostile_documents_escaped(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        'stages:\n  - {type: fake_retriever, texts: ["cat \\e]0;pwned\\a\\e[2J [/bold]"]}\n'
    )
    res = runner.invoke(app, ["run", str(f), "-q", "cat"])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\\x1b]0;pwned\\x07" in res.output


def test_undecodable_query_is_a_clear_error(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("stages:\n  - {type: fake_retriever, texts: [cat]}\n")
    res = runner.invoke(app, ["run", str(f), "-q", "caf\udce9"])  # b"caf\xe9" from argv
    assert res.exit_code == 2 and "not valid UTF-8" in res.output
    with pytest.raises(InputError, match="not valid UTF-8"):
        from ragsel.types import Query

        Query("\udcff")


def test_unknown_var_lists_the_pipeline_variables(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "# ${IN_A_COMMENT}\nstages:\n  - {type: fake_retriever, texts: ['${TEXT:-cat}'], "
        "doc_id: '${DOC:-d}'}\n"
    )
    res = runner.invoke(app, ["run", str(f), "-q", "cat", "--var", "TXET=dog"])
    assert res.exit_code == 2
    assert "--var TXET" in res.output and "its variables are: DOC, TEXT" in res.output
    res = runner.invoke(app, ["run", str(f), "-q", "dog", "--var", "TEXT=dog", "--json"])
    assert res.exit_code == 0, res.output


def test_missing_index_and_model_files_are_located(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "stages:\n  bm25:\n    type: bm25_retriever\n    index: nowhere/index\n"
        "  cut: {type: learned_cutoff, model: nowhere/cut.npz}\nconnections: [bm25 -> cut]\n"
    )
    res = runner.invoke(app, ["run", str(f), "-q", "x"])
    assert res.exit_code == 2 and f"{f}:4:12: stage 'bm25' index: " in res.output
    f.write_text(
        "stages:\n  r: {type: fake_retriever, texts: [x]}\n"
        "  cut: {type: learned_cutoff, model: nowhere/cut.npz}\nconnections: [r -> cut]\n"
    )
    res = runner.invoke(app, ["run", str(f), "-q", "x"])
    assert res.exit_code == 2 and f"{f}:3:38: stage 'cut' model: no file at" in res.output


def test_learned_model_error_never_suggests_allow_pickle(tmp_path):
    from ragsel.stages.cutoff.learned import CutoffModel

    bad = tmp_path / "cut.npz"
    np.savez(bad, __header__=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(InputError) as err:
        CutoffModel.load(bad)
    assert "allow_pickle" not in str(err.value) and "never loads" in str(err.value)
    assert err.value.__cause__ is None  # numpy's own message is not chained either


def _prompt_outside(tmp_path):
    """A prompt file in one folder and a pipeline naming it in another."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "p.txt").write_text("{{query}} {{n}}")
    home = tmp_path / "pipes"
    home.mkdir()
    f = home / "p.yaml"
    f.write_text(
        "stages:\n  - type: rationale_generator\n"
        f"    prompts: {{rationale_generator: {outside / 'p.txt'}}}\n"
    )
    return outside, home, f


def test_prompt_files_outside_the_pipeline_folder_need_an_allowance(tmp_path):
    from ragsel.spec import load_pipeline

    outside, home, f = _prompt_outside(tmp_path)
    with pytest.raises(PipelineSpecError, match="outside the pipeline's folder"):
        load_pipeline(f)
    pipe = load_pipeline(f, allow_paths=[outside])
    assert pipe.stages["rationale_generator"].config.prompts == {
        "rationale_generator": str((outside / "p.txt").resolve())
    }
    (home / "mine.txt").write_text("{{query}} {{n}}")
    f.write_text(
        "stages:\n  - type: rationale_generator\n    prompts: {rationale_generator: mine.txt}\n"
    )
    pipe = load_pipeline(f)  # relative to the pipeline's folder, not the working directory
    assert pipe.stages["rationale_generator"].config.prompts["rationale_generator"] == str(
        (home / "mine.txt").resolve()
    )


def test_validate_escapes_what_the_file_says_and_is_wrapped_by_the_handler(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text('stages:\n  - {type: noop, "\\e[2Jkey": 1}\n')
    res = runner.invoke(app, ["validate", str(f)])
    assert res.exit_code == 2 and "\x1b" not in res.output and "\\x1b[2Jkey" in res.output
    from ragsel.cli.pipeline_cmds import validate

    assert getattr(validate, "__wrapped__", None) is not None  # runs under cli_errors


def test_allow_path_lets_a_prompt_folder_in(tmp_path):
    outside, _, f = _prompt_outside(tmp_path)
    assert runner.invoke(app, ["validate", str(f)]).exit_code == 2
    res = runner.invoke(app, ["validate", str(f), "--allow-path", str(outside)])
    assert res.exit_code == 0, res.output
