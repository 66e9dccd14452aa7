"""Calibrated fusion: features by hand, the fitted weights' direction, config errors, and
``ragsel fit-fusion`` on a real index."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ragsel.errors import ConfigError, StageError
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.stages.retrieve.fusion_calibration import feature_rows, fit_calibration
from ragsel.types import Candidates, Chunk

X, Y, Z, W = (Chunk(c, f"text {c}", "d", i) for i, c in enumerate("xyzw"))
CAL = {
    "bm25": {"z": 1.0, "log_rank": 0.0, "present": 0.5},
    "dense": {"z": 2.0, "log_rank": -1.0, "present": 0.0},
}


def lists():
    a = Candidates.retrieved("bm25", [(X, 3.0), (Y, 2.0), (Z, 1.0)])
    b = Candidates.retrieved("dense", [(Y, 0.9), (W, 0.5)])
    return [a, b]


def test_features_by_hand():
    ids, f = feature_rows(lists(), ["bm25", "dense"])
    assert ids == ["x", "y", "z", "w"]
    sd = np.std([3.0, 2.0, 1.0])
    assert f["bm25"][0] == pytest.approx([2 / sd, 0.0, 1.0])
    assert f["bm25"][3] == pytest.approx([0.0, math.log(4), 0.0])  # w is not in bm25's list
    assert f["dense"][1] == pytest.approx([2.0, 0.0, 1.0])  # (0.9 - 0.5) / std 0.2
    assert f["dense"][0] == pytest.approx([0.0, math.log(3), 0.0])


def test_calibrated_fusion_by_hand():
    out = RankFusion(method="calibrated", calibration=CAL).run(candidates=lists())
    sd = np.std([3.0, 2.0, 1.0])
    expected = {
        "x": 2 / sd + 0.5 - math.log(3),
        "y": 1 / sd + 0.5 + 2.0 * 2.0,
        "z": 0.5 - math.log(3),
        "w": -math.log(2),
    }
    assert out.ids == sorted(expected, key=lambda i: -expected[i])
    assert out.scores == pytest.approx([expected[i] for i in out.ids])
    assert out.items[0].events[-1].reason.startswith("calibrated: ")


def test_an_empty_input_changes_nothing():
    a, b = lists()
    alone = RankFusion(method="calibrated", calibration=CAL).run(candidates=[a])
    both = RankFusion(method="calibrated", calibration=CAL).run(
        candidates=[a, Candidates.retrieved("dense", [])]
    )
    assert alone.ids == both.ids and alone.scores == pytest.approx(both.scores)


def test_fitting_weighs_the_informative_retriever():
    """Relevance follows the 'good' list's scores and not the 'noise' list's: the fitted
    coefficients say so, and the fused ranking puts the relevant chunks first."""
    rng = np.random.default_rng(0)
    samples, golds = [], []
    chunks = [Chunk(f"c{i}", f"t{i}") for i in range(30)]
    for _ in range(90):
        rel = set(rng.choice(30, 3, replace=False).tolist())
        good = sorted(
            ((c, float(rng.normal(2.0 if i in rel else 0.0))) for i, c in enumerate(chunks)),
            key=lambda p: -p[1],
        )
        noise = sorted(((c, float(rng.normal())) for c in chunks), key=lambda p: -p[1])
        samples.append(
            [Candidates.retrieved("good", good[:20]), Candidates.retrieved("noise", noise[:20])]
        )
        golds.append({f"c{i}" for i in rel})
    cal = fit_calibration(samples[:60], golds[:60], ["good", "noise"])
    assert cal["good"]["z"] > 0.5 and abs(cal["noise"]["z"]) < 0.5 * cal["good"]["z"]

    def hits_at_3(fusion):  # on the 30 held-out queries
        return sum(
            len(g & set(fusion.run(candidates=s).ids[:3])) for s, g in zip(samples[60:], golds[60:])
        )

    learned = hits_at_3(RankFusion(method="calibrated", calibration=cal))
    assert learned > hits_at_3(RankFusion(method="rrf", k=60)) + 5


def test_fitting_without_relevant_chunks_is_an_input_error():
    from ragsel.errors import InputError

    with pytest.raises(InputError, match="both relevant and irrelevant"):
        fit_calibration([lists()], [set()], ["bm25", "dense"])


@pytest.mark.parametrize(
    "config, match",
    [
        ({"method": "calibrated"}, "needs calibration"),
        ({"method": "rrf", "calibration": CAL}, "needs method: calibrated"),
        ({"method": "calibrated", "calibration": {"bm25": {"slope": 1.0}}}, "unknown feature"),
        ({"method": "calibrated", "calibration": CAL, "weights": [1, 2]}, "drop weights"),
    ],
)
def test_config_errors(config, match):
    with pytest.raises(ConfigError, match=match):
        RankFusion(**config)


def test_an_input_without_coefficients_is_named():
    with pytest.raises(StageError, match=r"inputs \['dense'\] have no coefficients"):
        RankFusion(method="calibrated", calibration={"bm25": CAL["bm25"]}).run(candidates=lists())


def test_fit_fusion_cli_prints_a_block_the_pipeline_accepts(example_index, tmp_path):
    """``ragsel fit-fusion`` on the example index with a small labelled JSONL; the printed
    block, pasted into local.yaml, gives a pipeline that loads and answers."""
    import json

    from ragsel.cli.main import app
    from ragsel.spec import load_pipeline
    from tests.conftest import REPO

    data = tmp_path / "labelled.jsonl"
    asked = [
        ("Can the supplier assign the agreement?", "supply_agreement.md"),
        ("How many days of parental leave?", "employee_handbook_leave.md"),
        ("Who processes personal data for the customer?", "data_processing_addendum.txt"),
    ]
    rows: list[dict] = [
        {"type": "document", "id": d, "text": "in examples/corpus"} for _, d in asked
    ]
    rows += [
        {"type": "query", "id": f"q{i}", "text": t, "qrels": {d: 1}}
        for i, (t, d) in enumerate(asked)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    res = CliRunner().invoke(
        app,
        ["fit-fusion", str(REPO / "pipelines" / "local.yaml"), "--dataset", str(data)]
        + ["--index", str(example_index)],
    )
    assert res.exit_code == 0, res.output
    block = yaml.safe_load(res.stdout)["fuse"]
    assert block["method"] == "calibrated" and set(block["calibration"]) == {"bm25", "dense"}
    spec = yaml.safe_load((REPO / "pipelines" / "local.yaml").read_text())
    spec["stages"]["fuse"] = {"type": "fusion", "top_k": 100, **block}
    path = tmp_path / "calibrated.yaml"
    path.write_text(yaml.safe_dump(spec))
    pipe = load_pipeline(path, variables={"RAGSEL_INDEX": str(example_index)})
    out = pipe.run("Can the supplier assign the agreement to another company?")
    assert out.candidates is not None and out.candidates.items


def test_scoreless_documents_are_a_clear_error_not_a_silent_ranking():
    """Documents handed in without scores (NaN) cannot be calibrated; rrf is the method for them."""
    a = Candidates.retrieved("bm25", [(X, float("nan")), (Y, 1.0)])
    with pytest.raises(StageError, match="finite scores"):
        RankFusion(method="calibrated", calibration=CAL).run(candidates=[a])


def test_fit_fusion_names_the_fix_for_a_pipeline_without_fusion(tmp_path):
    from ragsel.cli.main import app
    from tests.conftest import REPO

    res = CliRunner().invoke(
        app,
        ["fit-fusion", str(REPO / "ragsel" / "pipelines" / "documents.yaml")]
        + ["--dataset", str(tmp_path / "unused.jsonl")],
    )
    assert res.exit_code == 2
    assert "0 fusion stages" in res.output and "calibration needs a fusion stage" in res.output
