"""The shipped general cutoff model, its errors, and the token budget of cutoff + expansion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragsel.errors import InputError, RagselError
from ragsel.stages.cutoff._general_features import GENERAL_FEATURES, general_features
from ragsel.stages.cutoff._learned_model import SHIPPED_DIR, resolve_model, shipped_models
from ragsel.stages.cutoff.elbow import ElbowCutoff
from ragsel.stages.cutoff.learned import CutoffModel, LearnedCutoff
from ragsel.stages.expand.neighbors import NeighborExpander, text_cost
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.types import Candidates, Chunk, Query

TOPIC = "solar panel efficiency in cold climates"


def hybrid(texts: list[str], dense: list[float], bm25: list[float], doc_of=None) -> Candidates:
    """Two retrievers (named unlike local.yaml's) fused by RRF, as a pipeline produces."""
    chunks = [
        Chunk(f"c{i}", t, doc_id=doc_of(i) if doc_of else f"d{i}", position=0)
        for i, t in enumerate(texts)
    ]
    a = Candidates.retrieved(
        "vec", [(chunks[i], dense[i]) for i in np.argsort(-np.array(dense), kind="stable")]
    )
    b = Candidates.retrieved(
        "kw", [(chunks[i], bm25[i]) for i in np.argsort(-np.array(bm25), kind="stable")]
    )
    return RankFusion(k=5).run(candidates=[a, b])


def many_relevant(n_rel: int = 25, n_other: int = 25) -> Candidates:
    rng = np.random.default_rng(0)
    texts = [
        f"Report {i}: solar panel efficiency drops in cold climates by {i} percent"
        for i in range(n_rel)
    ] + [f"Recipe {i}: bake the bread for forty minutes" for i in range(n_other)]
    dense = list(0.70 + 0.02 * rng.random(n_rel)) + list(0.10 + 0.05 * rng.random(n_other))
    bm25 = list(12 + rng.random(n_rel)) + list(0.5 * rng.random(n_other))
    return hybrid(texts, dense, bm25)


def one_relevant() -> Candidates:
    texts = ["Solar panel efficiency in cold climates rises: cold cells lose less voltage."] + [
        f"Panel {i} installation guide for roofs and permits" for i in range(30)
    ]
    dense = [0.82] + [0.30 - 0.005 * i for i in range(30)]
    bm25 = [15.0] + [2.0 - 0.05 * i for i in range(30)]
    return hybrid(texts, dense, bm25)


def test_general_model_is_shipped_and_loads_by_name():
    assert "general" in shipped_models()
    assert resolve_model("general") == SHIPPED_DIR / "general.npz"
    m = CutoffModel.load("general")
    assert m.general and m.header["features"] == GENERAL_FEATURES
    assert m.header["corpus_priors"] is False and m.header["retrievers"] == []


def test_general_model_is_deterministic_and_pipeline_agnostic():
    cands = many_relevant()
    runs = [LearnedCutoff(model="general").run(candidates=cands, query=Query(TOPIC)) for _ in "ab"]
    assert runs[0].ids == runs[1].ids
    p1 = CutoffModel.load("general").probabilities(cands, TOPIC)
    p2 = CutoffModel.load("general").probabilities(cands, TOPIC)
    assert np.array_equal(p1, p2)


def test_many_relevant_keeps_more_than_one_and_one_relevant_keeps_few():
    st = LearnedCutoff(model="general")
    many = st.run(candidates=many_relevant(), query=Query(TOPIC))
    assert len(many.items) > 1
    one = st.run(candidates=one_relevant(), query=Query(TOPIC))
    assert 1 <= len(one.items) < len(many.items)
    assert "c0" in one.ids


@pytest.mark.parametrize(
    "query",
    ["", "zzzz qqqq", "x", "¿Cuál es la eficiencia de los paneles solares?", "word " * 400],
)
def test_never_zero_chunks(query):
    st = LearnedCutoff(model="general")
    for cands in (many_relevant(), one_relevant(), many_relevant(1, 0)):
        out = st.run(candidates=cands, query=Query(query) if query.strip() else None)
        assert len(out.items) >= 1


def test_features_have_no_retriever_names_and_are_finite():
    cands = many_relevant()
    X = general_features(cands, TOPIC)
    assert X.shape == (len(cands.items), len(GENERAL_FEATURES)) and np.isfinite(X).all()
    # equal-scored plain list without retriever events (another framework's scores)
    plain = Candidates.retrieved("x", [(Chunk(f"p{i}", "t"), 1.0) for i in range(5)])
    assert np.isfinite(general_features(plain, None)).all()


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(InputError, match="unknown learned cutoff model 'genral'.*general"):
        CutoffModel.load("genral")
    with pytest.raises(RagselError, match="stage 'learned_cutoff'.*unknown learned cutoff model"):
        LearnedCutoff(model="genral").run(candidates=one_relevant(), query=Query(TOPIC))


@pytest.mark.parametrize("content", ["text", "pickle", "truncated"])
def test_corrupt_model_file_is_a_clear_error_never_suggesting_pickle(tmp_path, content):
    bad = tmp_path / "cut.npz"
    if content == "text":
        bad.write_text("not a model")
    elif content == "pickle":
        np.save(bad.with_suffix(".npy"), np.array([{"x": 1}], dtype=object), allow_pickle=True)
        bad.write_bytes(bad.with_suffix(".npy").read_bytes())  # a pickle inside a .npy
    else:
        bad.write_bytes((SHIPPED_DIR / "general.npz").read_bytes()[:2000])
    with pytest.raises(InputError) as err:
        CutoffModel.load(bad)
    msg = str(err.value)
    assert "not a ragsel learned-cutoff model" in msg and "allow_pickle" not in msg
    assert err.value.__cause__ is None


def test_max_tokens_honoured_by_cutoff_and_expansion_together():
    texts = [f"solar panel efficiency cold climates fact {i} " + "word " * 40 for i in range(12)]
    chunks = [Chunk(f"c{i}", t, doc_id="doc", position=i) for i, t in enumerate(texts)]
    cands = Candidates.retrieved("dense", [(chunks[i], 1.0 - 0.01 * i) for i in (0, 4, 8)])
    budget = 120
    for cut in (
        ElbowCutoff(max_k=3, min_k=3, max_tokens=budget),
        LearnedCutoff(model="general", min_k=3, max_tokens=budget),
    ):
        kw = {"query": Query(TOPIC)} if isinstance(cut, LearnedCutoff) else {}
        out = cut.run(candidates=cands, **kw)
        note = out.notes[-1].data["budget"]
        assert note["max_tokens"] == budget and len(note["dropped_by_budget"]) == 1
        kept = sum(text_cost(sc.chunk.text, "tokens") for sc in out.items)
        assert kept <= budget and len(out.items) == 2
        dropped = {d.item.chunk.id: d.reason for d in out.dropped}
        assert any("token budget" in r for r in dropped.values()), dropped
        exp = NeighborExpander(window=1, budget=budget, budget_unit="tokens")
        exp.bind_components({})
        full = exp.run(candidates=out)
        assert sum(text_cost(sc.chunk.text, "tokens") for sc in full.items) <= budget


def test_first_chunk_over_budget_is_kept_and_said():
    big = Chunk("big", "word " * 500, doc_id="d", position=0)
    cands = Candidates.retrieved("dense", [(big, 1.0), (Chunk("s", "small"), 0.5)])
    out = ElbowCutoff(max_tokens=10).run(candidates=cands)
    assert out.ids == ["big"] and "over_budget" in out.notes[-1].data["budget"]


ADAPT_YAML = """
version: 1
name: adapt-test
stages:
  bm25: {type: bm25_retriever, index: INDEX, top_k: 30}
  dense: {type: dense_retriever, index: INDEX, top_k: 30}
  fuse: {type: fusion, method: rrf, k: 5, top_k: 30}
  cut: {type: learned_cutoff, model: general}
connections:
  - bm25 -> fuse.candidates
  - dense -> fuse.candidates
  - fuse -> cut
output: cut
"""


def test_unsupervised_fit_adapts_the_general_model_on_a_real_corpus(example_index, tmp_path):
    import json

    from typer.testing import CliRunner

    from ragsel.cli.main import app
    from ragsel.spec import load_pipeline

    yaml = tmp_path / "p.yaml"
    yaml.write_text(ADAPT_YAML.replace("INDEX", str(example_index)))
    out = tmp_path / "adapted.npz"
    res = CliRunner().invoke(
        app, ["fit", str(yaml), "--unsupervised", "--pseudo-queries", "20", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["from"] == "general" and summary["lists"] >= 10
    model = CutoffModel.load(out)
    assert model.general and model.header["adapted"]["on"].endswith("from the index")
    # the adapted model runs in the pipeline in place of the general one
    yaml.write_text(ADAPT_YAML.replace("INDEX", str(example_index)).replace("general", str(out)))
    res = load_pipeline(yaml).run("How long do employees get for parental leave?")
    assert len(res["cut"].items) >= 1


def test_unsupervised_and_dataset_together_is_refused(example_index, tmp_path):
    from typer.testing import CliRunner

    from ragsel.cli.main import app

    yaml = tmp_path / "p.yaml"
    yaml.write_text(ADAPT_YAML.replace("INDEX", str(example_index)))
    res = CliRunner().invoke(
        app, ["fit", str(yaml), "--unsupervised", "-d", "privacyqa", "--out", "x.npz"]
    )
    assert res.exit_code != 0 and "no labels" in res.output


# --- elbow_below: the elbow when the model expects few relevant candidates ------------------
def expected_relevant(cands: Candidates) -> float:
    return float(CutoffModel.load("general").probabilities(cands, TOPIC).sum())


@pytest.mark.parametrize("bad", [0, -1.0, "many"])
def test_elbow_below_is_validated(bad):
    with pytest.raises(RagselError, match="elbow_below"):
        LearnedCutoff(model="general", elbow_below=bad)


def test_elbow_below_picks_the_elbow_for_one_answer_and_the_model_for_many():
    one, many = one_relevant(), many_relevant()
    e_one, e_many = expected_relevant(one), expected_relevant(many)
    assert e_one < e_many  # what the rule relies on, read from the real shipped model
    st = LearnedCutoff(model="general", elbow_below=(e_one + e_many) / 2)
    got_one = st.run(candidates=one, query=Query(TOPIC))
    note = got_one.note_of(st.name)
    assert note["rule"] == "elbow" and note["expected_relevant"] == pytest.approx(e_one, abs=1e-3)
    assert got_one.ids == ElbowCutoff(z_threshold=1.0, min_k=1, max_k=10).run(candidates=one).ids
    got_many = st.run(candidates=many, query=Query(TOPIC))
    assert got_many.note_of(st.name)["rule"] == "model"
    base = LearnedCutoff(model="general")  # default None: today's behaviour
    plain = base.run(candidates=many, query=Query(TOPIC))
    assert got_many.ids == plain.ids and len(got_many.items) > 1
    assert "rule" not in plain.note_of(base.name)


def test_elbow_below_never_zero_and_elbow_branch_capped_at_ten():
    st = LearnedCutoff(model="general", elbow_below=1e9)  # always the elbow branch
    for cands in (many_relevant(), one_relevant(), many_relevant(1, 0), many_relevant(40, 0)):
        out = st.run(candidates=cands, query=Query(TOPIC))
        assert 1 <= len(out.items) <= 10
        assert out.note_of(st.name)["rule"] == "elbow"
    capped = LearnedCutoff(model="general", elbow_below=1e9, max_k=2)
    assert len(capped.run(candidates=many_relevant(40, 0), query=Query(TOPIC)).items) <= 2


@given(
    text=st.text(
        alphabet=st.sampled_from(list("abcÄäéß Ωω-.,!?\n\t'é日本") + ["\ud800"]), max_size=40
    ),
    term=st.text(alphabet=st.sampled_from(list("abcäéßωé日")), min_size=1, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_byte_level_term_matching_equals_text_matching(text, term):
    """Query-term matching runs on UTF-8 bytes for speed; it must agree with the same test on
    text (word start = space + term after lowering and punctuation -> space), any script."""
    from ragsel.stages.cutoff._general_features import _SPACES, _spaced

    as_text = (" " + term) in (" " + text.lower().translate(_SPACES))
    assert (_spaced(term) in _spaced(text)) == as_text
