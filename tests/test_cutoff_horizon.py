"""A learned cutoff's horizon (``max_rank``) and rule choice by leave-one-group-out."""

from __future__ import annotations

import numpy as np
import pytest

from ragsel.errors import ConfigError, InputError
from ragsel.stages.cutoff._learned_fit import _Data, fit_cutoff_model
from ragsel.stages.cutoff.learned import CutoffModel, LearnedCutoff
from ragsel.stages.retrieve.fusion import RankFusion
from ragsel.types import Candidates, Chunk, Query


def labelled_list(q: int, n_rel: int, n: int = 40) -> tuple[Candidates, set[str], str]:
    """A fused two-retriever list whose first ``n_rel`` chunks (by score) are relevant."""
    rng = np.random.default_rng(q)
    chunks = [
        Chunk(
            f"q{q}c{i}",
            (f"wind turbine blade icing report {i}" if i < n_rel else f"bread recipe step {i}"),
            doc_id=f"q{q}d{i}",
            position=0,
        )
        for i in range(n)
    ]
    dense = np.where(np.arange(n) < n_rel, 0.7, 0.3) + 0.05 * rng.random(n)
    bm25 = np.where(np.arange(n) < n_rel, 9.0, 2.0) + rng.random(n)
    lists = [
        Candidates.retrieved(name, [(chunks[i], float(s[i])) for i in np.argsort(-s)])
        for name, s in (("vec", dense), ("kw", bm25))
    ]
    fused = RankFusion(k=5, top_k=n).run(candidates=lists)
    return fused, {c.id for c in chunks[:n_rel]}, "wind turbine blade icing"


def data(count: int = 24, offset: int = 0):
    rows = [labelled_list(offset + q, 1 + q % 4) for q in range(count)]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@pytest.fixture(scope="module")
def horizon_model():
    lists, golds, queries = data()
    return fit_cutoff_model(
        lists, golds, queries=queries, feature_set="general", max_rank=10, inner_repeats=1
    )


def test_model_records_and_honours_its_horizon(horizon_model):
    assert horizon_model.horizon == 10 and horizon_model.header["max_rank"] == 10
    cands, _, q = labelled_list(99, 3)
    p = horizon_model.probabilities(cands, q)
    assert p.shape == (40,) and np.all(p[10:] == 0.0) and np.all(p[:10] > 0.0)
    # the first ten are scored exactly as a list of those ten alone (features of the prefix)
    head = horizon_model.probabilities(Candidates(cands.items[:10]), q)
    assert np.allclose(p[:10], head)


def test_stage_never_keeps_past_the_horizon_and_says_why(horizon_model, tmp_path):
    path = horizon_model.save(tmp_path / "h.npz")
    assert CutoffModel.load(path).horizon == 10
    cands, _, q = labelled_list(98, 3)
    out = LearnedCutoff(model=str(path), objective="threshold", threshold=0.01).run(
        candidates=cands, query=Query(q)
    )
    assert 1 <= len(out.items) <= 10
    reasons = {d.item.chunk.id: d.reason for d in out.dropped}
    beyond = cands.items[10].chunk.id
    assert "beyond the first 10 candidates" in reasons[beyond]


def test_groups_give_one_fold_per_group_and_equal_weight():
    lists, golds, queries = data(30)
    groups = ["a"] * 20 + ["b"] * 10
    usable = list(zip(lists, golds, queries))
    d = _Data(usable, [], False, True, groups)
    folds = d.folds(seed=0)
    assert sorted(map(len, folds)) == [10, 20]
    assert {groups[i] for i in folds[0]} == {"a"} and {groups[i] for i in folds[1]} == {"b"}
    w = d.query_weights()
    assert np.isclose(w.sum(), 1.0)
    assert np.isclose(w[:20].sum(), 0.5) and np.isclose(w[20:].sum(), 0.5)


def test_fit_with_groups_chooses_a_rule_out_of_group():
    lists, golds, queries = data(30)
    model = fit_cutoff_model(
        lists,
        golds,
        queries=queries,
        feature_set="general",
        groups=["a"] * 15 + ["b"] * 15,
        max_rank=20,
    )
    assert model.header["defaults"]["objective"] in {"f1", "ef1", "threshold", "top_k", "recall"}
    assert "best_out_of_fold" in model.header["training"]["choice"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"groups": ["a"] * 5}, InputError, "group labels"),
        ({"groups": ["a"] * 24}, InputError, "at least two groups"),
        ({"max_rank": 1}, ConfigError, "max_rank"),
    ],
)
def test_bad_groups_or_horizon_are_clear_errors(kwargs, error, words):
    lists, golds, queries = data()
    with pytest.raises(error, match=words):
        fit_cutoff_model(lists, golds, queries=queries, feature_set="general", **kwargs)
