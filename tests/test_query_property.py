"""Arbitrary query strings against the shipped offline pipelines on the example index: every
query gets a selection or a clear ragsel input error, never a crash (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ragsel.errors import InputError
from ragsel.spec import load_pipeline
from ragsel.types import Query

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ["local.yaml", "local-calibrated.yaml", "meteora-local.yaml"]

pytestmark = pytest.mark.slow

#: Any code point, lone surrogates (undecodable argv bytes) and control characters included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
WORDS = st.sampled_from(
    ["zoloft", "notice", "breach", "the", "données", "Kündigung", "解約", "уведомление", "😀"]
)
QUERIES = st.one_of(
    ANY_TEXT,
    st.lists(WORDS, min_size=1, max_size=6).map(" ".join),
    st.builds(lambda w, n: " ".join([w] * n), WORDS, st.integers(200, 3000)),  # very long
)


@pytest.fixture(scope="module")
def pipes(example_index):
    out = {}
    for name in PIPELINES:
        pipe = load_pipeline(
            REPO / "pipelines" / name, variables={"RAGSEL_INDEX": str(example_index)}
        )
        pipe.warm_up()
        out[name] = pipe
    return out


def _answer(pipe, text: str) -> None:
    try:
        q = Query(text)
    except InputError as exc:  # empty / undecodable: rejected before anything runs
        assert "query" in str(exc)
        return
    result = pipe.run(q)  # anything raised here is a crash for a well-formed query
    assert result.selection is not None


@pytest.mark.parametrize("name", PIPELINES)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=QUERIES)
@example(text="zoloft")  # no word in the corpus: BM25 finds nothing
@example(text="")
@example(text="   \t\n")
@example(text="\x1b]0;pwned\x07\x1b[2J")
@example(text="\udcff\udcfe")  # invalid UTF-8 bytes from a command line
@example(text="notice")
@example(text="the of and")  # stop words only
@example(text="Wie viele Tage Kündigungsfrist hat der Käufer?")
@example(text="買い手は何日前に通知する必要がありますか")
def test_every_query_gets_a_selection_or_a_clear_error(pipes, name, text):
    _answer(pipes[name], text)
