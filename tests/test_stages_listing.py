"""Stage classes exported lazily from ``ragsel.stages``; ``ragsel stages`` lists every type."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import ragsel.stages
from ragsel.cli.main import app
from ragsel.registry import BUILTIN_STAGES


def test_every_builtin_stage_class_is_exported_from_ragsel_stages():
    targets = [t for t in BUILTIN_STAGES.values() if t.startswith("ragsel.stages.")]
    names = {t.rpartition(":")[2] for t in targets}
    assert names == set(ragsel.stages.__all__)
    from ragsel.stages import ElbowCutoff, NeighborExpander
    from ragsel.stages.cutoff.elbow import ElbowCutoff as Deep

    assert ElbowCutoff is Deep and NeighborExpander.__name__ == "NeighborExpander"
    with pytest.raises(AttributeError):
        ragsel.stages.NotAStage  # noqa: B018


def test_importing_ragsel_stages_loads_no_stage_module():
    code = (
        "import sys, ragsel.stages; "
        "print([m for m in sys.modules if m.startswith('ragsel.stages.')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ragsel_stages_lists_every_type_with_doc_fields_and_module():
    res = CliRunner().invoke(app, ["stages", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["type"]: r for r in json.loads(res.output)}
    public = {n for n, t in BUILTIN_STAGES.items() if not t.startswith("ragsel.testing:")}
    assert set(rows) >= public - {"langchain_retriever", "llamaindex_retriever"}
    assert "fake_retriever" not in rows  # test fakes are not offered to users
    cut = rows["elbow_cutoff"]
    assert cut["module"] == "ragsel.stages.cutoff.elbow" and cut["class"] == "ElbowCutoff"
    assert cut["doc"].startswith("Cut the ranked list") and "z_threshold" in cut["config"]
    text = CliRunner().invoke(app, ["stages", "top_k"]).output
    assert "top_k  (ragsel.stages.cutoff.top_k.TopKCutoff)" in text and "k: int" in text
    bad = CliRunner().invoke(app, ["stages", "elbow_cutof"])
    assert bad.exit_code == 2 and "elbow_cutoff" in bad.output
