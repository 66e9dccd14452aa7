"""The rationale parser over a corpus of realistic model outputs (tests/data/rationale_outputs):
every shape real models produce, with the expected parse for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragsel.stages.rationale._parse import parse_rationales

CORPUS = Path(__file__).parent / "data" / "rationale_outputs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_every_output_file_has_an_expectation_and_back():
    names = {p.stem for p in CORPUS.glob("*.txt")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_matches_the_expected_rationales(name):
    want = EXPECTED[name]
    raw = (CORPUS / f"{name}.txt").read_bytes().decode("utf-8")
    res = parse_rationales(raw, truncated=want.get("truncated", False))
    got = [{"label": r.label, "text": r.text, "flags": list(r.flags)} for r in res.items]
    assert got == want["items"], (name, res.problems)
    assert res.format == want["format"]
    if not want["items"]:
        assert res.problems  # an empty parse always says why


@pytest.mark.parametrize(
    "raw", ["[" * 100_000, '{"a":' * 20_000, "[1," * 30_000, "{" * 50_000, "<think>" * 1000]
)
def test_hostile_answers_give_no_rationales_and_never_raise(raw):
    res = parse_rationales(raw)
    assert res.items == [] and res.problems
