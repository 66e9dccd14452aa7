"""The cross-encoder reranker on a real sentence-transformers CrossEncoder.

No trained cross-encoder ships in any offline package, so these tests build a *tiny randomly
initialised* BERT sequence classifier on the fly (transformers config -> save_pretrained ->
load through the stage) with the MiniLM package's tokenizer. Its scores are meaningless for
relevance; the tests check the code path: loading from a local folder, batching, pair order,
sorting, depth, laziness and errors. Quality numbers need real weights.
"""

from __future__ import annotations

import pytest

from ragsel.errors import StageError
from ragsel.stages.rerank import cross_encoder as ce_mod
from ragsel.stages.rerank.cross_encoder import CrossEncoderReranker
from ragsel.testing import build_tiny_cross_encoder, make_chunks
from ragsel.types import Candidates, Query

Q = Query("which clauses restrict assignment?")
TEXTS = [
    "The licensee may not assign this agreement without consent.",
    "Payment is due within thirty days.",
    "Either party may terminate on notice.",
    "Assignment to affiliates is permitted.",
    "This agreement is governed by Delaware law.",
    "Notices must be in writing.",
]


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


def cands():
    return Candidates.retrieved("bm25", [(c, 10.0 - i) for i, c in enumerate(make_chunks(TEXTS))])


def reference_scores(folder, pairs):
    """Scores computed without sentence-transformers: sigmoid of the classifier logit."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    enc = tok(
        [q for q, _ in pairs],
        [t for _, t in pairs],
        padding=True,
        truncation=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        return torch.sigmoid(model(**enc).logits[:, 0]).tolist()


def test_scores_match_the_model_and_order_is_by_score(tiny_ce):
    stage = CrossEncoderReranker(model=str(tiny_ce), batch_size=4)
    out = stage.run(candidates=cands(), query=Q)
    ref = dict(
        zip(
            [f"doc#{i}" for i in range(len(TEXTS))],
            reference_scores(tiny_ce, [(Q.text, t) for t in TEXTS]),
        )
    )
    assert sorted(out.ids) == sorted(ref)
    for sc in out:
        assert sc.score == pytest.approx(ref[sc.id], abs=1e-5)
        assert sc.stage == "cross_encoder_reranker"
    assert out.scores == sorted(out.scores, reverse=True)
    assert out.note_of("cross_encoder_reranker")["scored"] == len(TEXTS)


def test_batch_size_does_not_change_scores(tiny_ce):
    a = CrossEncoderReranker(model=str(tiny_ce), batch_size=1).run(candidates=cands(), query=Q)
    b = CrossEncoderReranker(model=str(tiny_ce), batch_size=64).run(candidates=cands(), query=Q)
    assert a.ids == b.ids
    assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_depth_rescoring_only_the_head(tiny_ce):
    out = CrossEncoderReranker(model=str(tiny_ce), depth=3).run(candidates=cands(), query=Q)
    assert sorted(out.ids[:3]) == ["doc#0", "doc#1", "doc#2"]
    assert out.ids[3:] == ["doc#3", "doc#4", "doc#5"]
    assert out.scores[3:] == [7.0, 6.0, 5.0]  # untouched retrieval scores
    assert out.items[3].events[-1].reason == "below rerank depth"


def test_lazy_loading_and_shared_model(tiny_ce):
    ce_mod._MODELS.clear()
    a = CrossEncoderReranker(model=str(tiny_ce))
    b = CrossEncoderReranker(model=str(tiny_ce))
    assert a._model is None and not ce_mod._MODELS  # constructing loads nothing
    a.warm_up()
    b.run(candidates=cands(), query=Q)
    assert a._model is b._model and len(ce_mod._MODELS) == 1


def test_missing_model_folder_is_a_clear_error(tmp_path):
    stage = CrossEncoderReranker(model=str(tmp_path / "nope"))
    with pytest.raises(StageError, match="cross-encoder model folder not found.*local paths only"):
        stage.run(candidates=cands(), query=Q)


def test_empty_candidates_load_nothing(tmp_path):
    out = CrossEncoderReranker(model=str(tmp_path / "nope")).run(candidates=Candidates(), query=Q)
    assert out.ids == []
