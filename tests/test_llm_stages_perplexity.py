"""METEORA's perplexity baseline: the threshold rule on scripted perplexities (the real
SmolLM2 path is in test_llm_stages_smollm.py)."""

from __future__ import annotations

import math

import pytest

from ragsel.errors import StageError
from ragsel.stages.verify.perplexity import PerplexityFilter, perplexity_threshold
from ragsel.testing import FakeLLM, make_chunks
from ragsel.types import Candidates


class PPLModel(FakeLLM):
    """A fake local LM whose perplexity for a text is scripted by the text itself."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.calls = []

    def score_perplexity(self, texts, *, batch_size=8, max_length=None):
        self.calls.append((list(texts), batch_size, max_length))
        return [self.table[t] for t in texts]


def cands(*texts):
    return Candidates.retrieved("r", [(c, 1.0) for c in make_chunks(texts)])


def test_threshold_rule_matches_the_paper():
    thr, mean, std = perplexity_threshold([10, 11, 12, 10, 50])
    assert mean == pytest.approx(18.6) and std == pytest.approx(15.7175, abs=1e-3)
    assert thr == 20.0  # mean + 1.5 sigma = 42.2 is capped at 20
    assert perplexity_threshold([10, 11, 12, 10, 50], cap=None)[0] == pytest.approx(42.17, abs=0.01)
    assert perplexity_threshold([5.0])[0] == 5.0  # one value: std 0
    assert perplexity_threshold([math.nan, 4.0, 6.0])[1] == 5.0  # NaN is unmeasured


def test_filter_drops_above_threshold_with_verdicts_and_note():
    table = {"a": 10.0, "b": 11.0, "c": 12.0, "d": 10.0, "poison": 50.0}
    llm = PPLModel(table)
    out = PerplexityFilter(cap=None, batch_size=2).use_llm(llm).run(candidates=cands(*table))
    assert [sc.chunk.text for sc in out] == ["a", "b", "c", "d"]
    (drop,) = out.dropped
    assert drop.item.chunk.text == "poison" and drop.verdict.label == "POISON"
    assert "perplexity 50.00 > threshold 42.18" in drop.reason
    assert all(sc.verdicts[-1].label == "OK" for sc in out)
    note = out.note_of("perplexity_filter")
    assert note["flagged"] == 1 and note["threshold"] == pytest.approx(42.176, abs=0.001)
    assert llm.calls == [(list(table), 2, 512)]


def test_cap_flags_everything_above_twenty_like_the_paper():
    llm = PPLModel({"x": 25.0, "y": 26.0, "z": 27.0})
    out = PerplexityFilter(action="annotate").use_llm(llm).run(candidates=cands("x", "y", "z"))
    assert len(out) == 3 and all(sc.verdicts[-1].flagged for sc in out)
    assert out.dropped == ()


def test_unmeasurable_text_is_not_flagged():
    llm = PPLModel({"": math.nan, "x": 100.0})
    out = PerplexityFilter().use_llm(llm).run(candidates=cands("", "x"))
    assert [sc.chunk.text for sc in out] == [""]
    assert "not measurable" in out.items[0].verdicts[-1].reason


def test_backend_without_perplexity_is_a_clear_error():
    with pytest.raises(StageError, match="cannot score perplexity.*transformers:smollm2"):
        PerplexityFilter().use_llm(FakeLLM()).run(candidates=cands("x"))
