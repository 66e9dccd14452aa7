from pathlib import Path

import pytest

from ragsel import (
    DefinitionError,
    PipelineSpecError,
    UnknownStageError,
    dump_pipeline,
    get_stage_class,
    load_pipeline,
)
from ragsel.spec import check_pipeline

GOOD = """\
version: 1
name: t
stages:
  a: {type: fake_retriever, texts: ["the cat sat", "dogs bark"], doc_id: A}
  b: {type: fake_retriever, texts: ["cat food"], doc_id: B}
  keep: {type: recording_stage}
connections:
  - a -> keep.candidates
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_and_run_linear_shorthand(tmp_path):
    f = write(
        tmp_path,
        "stages:\n  - {type: fake_retriever, texts: [a b, c d]}\n  - {type: noop, name: pass}\n",
    )
    p = load_pipeline(f)
    assert p.order == ["fake_retriever", "pass"]
    assert p.run("a").selection.ids[0] == "doc#0"


def test_every_problem_is_reported_with_line_and_column(tmp_path):
    f = write(
        tmp_path,
        """\
stages:
  a: {type: fake_retrievr}
  b: {type: noop, bogus: 1}
  c: {type: fake_retriever, top_k: many}
  d: {type: noop}
connections:
  - ghost -> d
""",
    )
    problems = check_pipeline(f)
    text = "\n".join(map(str, problems))
    assert f"{f}:2:" in text and "Did you mean 'fake_retriever'" in text
    assert f"{f}:3:" in text and "bogus: unknown config field" in text
    assert f"{f}:4:" in text and "top_k" in text
    assert f"{f}:7:" in text and "no stage 'ghost'" in text
    # b's config is wrong, and it is also unconnected: both in the same pass
    assert "stage 'b' (noop) is missing required input 'candidates" in text
    assert len(problems) == 5


def test_missing_input_type_mismatch_cycle_duplicate(tmp_path):
    missing = write(tmp_path, "stages:\n  n: {type: noop}\n", "m.yaml")
    assert "missing required input 'candidates" in str(check_pipeline(missing)[0])
    cyc = write(
        tmp_path,
        "stages:\n  a: {type: noop}\n  b: {type: noop}\nconnections: [a -> b, b -> a]\n",
        "c.yaml",
    )
    assert any("cycle" in p.message for p in check_pipeline(cyc))
    dup = write(
        tmp_path, "stages:\n  - {type: noop, name: x}\n  - {type: noop, name: x}\n", "d.yaml"
    )
    assert any("duplicate stage name 'x'" in p.message for p in check_pipeline(dup))


def test_malformed_yaml_points_at_line(tmp_path):
    f = write(tmp_path, "stages:\n  a: {type: noop\n  b: [\n")
    with pytest.raises(PipelineSpecError) as ei:
        load_pipeline(f)
    prob = ei.value.problems[0]
    assert prob.file == str(f) and prob.line is not None and "invalid YAML" in prob.message


def test_not_a_mapping_and_unknown_top_key(tmp_path):
    assert "mapping" in check_pipeline(write(tmp_path, "- a\n- b\n", "l.yaml"))[0].message
    probs = check_pipeline(write(tmp_path, GOOD + "extra: 1\n", "x.yaml"))
    assert any("unknown top-level key 'extra'" in p.message for p in probs)


def test_env_interpolation_with_defaults_and_strictness(tmp_path, monkeypatch):
    f = write(
        tmp_path,
        "stages:\n  - {type: fake_retriever, doc_id: '${DOC:-fallback}', "
        "texts: ['${SECRET_TEXT}']}\n",
    )
    with pytest.raises(PipelineSpecError, match="SECRET_TEXT is not set"):
        load_pipeline(f)
    assert check_pipeline(f) == []  # validation does not need secrets
    monkeypatch.setenv("SECRET_TEXT", "hello world")
    p = load_pipeline(f, variables={"DOC": "mine"})
    stage = p.stages["fake_retriever"]
    assert stage.config.texts == ["hello world"] and stage.config.doc_id == "mine"


def test_dotted_types_need_an_allowlist(tmp_path):
    f = write(
        tmp_path,
        "stages:\n  - {type: fake_retriever, texts: [a]}\n  - {type: 'ragsel.testing:NoOpStage'}\n",
    )
    probs = check_pipeline(f)
    assert probs and "allow_modules" in probs[0].message
    assert "allow_modules" in str(probs[0])
    assert check_pipeline(f, allow_modules=["ragsel.testing"]) == []


def test_import_path_stage_is_named_by_its_path(tmp_path):
    import ragsel.testing as t

    class Boom(t.RecordingStage):
        """Fails on purpose."""

    Boom.type_name = ""
    t._BoomForTest = Boom
    f = write(
        tmp_path,
        "stages:\n  - {type: fake_retriever, texts: [a]}\n"
        "  - {type: 'ragsel.testing:_BoomForTest', name: boom, fail: true}\n",
    )
    p = load_pipeline(f, allow_modules=["ragsel.testing"])
    with pytest.raises(Exception, match=r"stage 'boom' \(ragsel.testing:_BoomForTest\) failed"):
        p.run("a")
    assert p.stages["boom"].to_dict()["type"] == "ragsel.testing:_BoomForTest"


def test_dump_roundtrip_has_schema_line(tmp_path):
    p = load_pipeline(write(tmp_path, GOOD))
    text = dump_pipeline(p)
    assert text.startswith("# yaml-language-server: $schema=")
    q = load_pipeline(write(tmp_path, text, "again.yaml"))
    assert q.to_dict() == p.to_dict()


def test_unknown_stage_lookup_suggests():
    with pytest.raises(UnknownStageError, match="Did you mean 'elbow_cutoff'"):
        get_stage_class("elbow_cutof")


def test_missing_file(tmp_path):
    with pytest.raises(DefinitionError, match="not found"):
        load_pipeline(tmp_path / "nope.yaml")


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_pipeline_validates_without_models(path):
    assert check_pipeline(path) == []
    assert path.read_text().startswith("# yaml-language-server: $schema=ragsel.schema.json")


def test_config_and_wiring_errors_are_reported_in_one_pass(tmp_path):
    f = write(
        tmp_path,
        """\
stages:
  a: {type: fake_retriever, texts: [x], top_k: many}
  b: {type: recording_stage}
  c: {type: recording_stage, bogus: 2}
  d: {type: noop}
connections:
  - a -> b
  - b -> c.nosuch
  - b.nope -> d
""",
    )
    got = [(p.line, p.message.split(":")[0]) for p in check_pipeline(f)]
    assert (2, "stage 'a' (fake_retriever)") in got and (4, "stage 'c' (recording_stage)") in got
    text = "\n".join(map(str, check_pipeline(f)))
    assert f"{f}:8:5: stage 'c' (recording_stage) has no input 'nosuch'" in text
    assert f"{f}:9:5: stage 'b' (recording_stage) has no output 'nope'" in text


def test_a_back_edge_is_named_as_a_cycle(tmp_path):
    f = write(
        tmp_path,
        "stages:\n  a: {type: fake_retriever, texts: [x]}\n  b: {type: elbow_cutoff}\n"
        "  c: {type: elbow_cutoff}\nconnections: [a -> b, b -> c, c -> b]\n",
    )
    (p,) = check_pipeline(f)
    assert "cycle: b -> c -> b" in p.message and "nothing in" not in p.message
