"""learned_cutoff: fit on a synthetic set with a known, learnable cut; file checks; CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ragsel.errors import InputError, StageError
from ragsel.spec import load_pipeline
from ragsel.stage import Stage
from ragsel.stages.cutoff._learned_features import (
    FEATURE_VERSION,
    QUERY_FEATURES,
    feature_names,
    list_features,
)
from ragsel.stages.cutoff._learned_priors import PRIOR_FEATURES, CorpusPriors
from ragsel.stages.cutoff._learned_rules import DEFAULT_RULE, choose_cut, expected_f1
from ragsel.stages.cutoff.learned import (
    MIN_QUERIES,
    CutoffModel,
    LearnedCutoff,
    fit_cutoff_model,
)
from ragsel.types import Candidates, Chunk, Event, Query, ScoredChunk


def synthetic(n_queries, seed, n=15):
    """Relevant chunks score in [0.72, 0.9] and are also found by bm25; the rest score in
    [0.3, 0.62]: the right cut is the number of relevant chunks, visible in the gap."""
    rng = np.random.default_rng(seed)
    lists, golds = [], []
    for q in range(n_queries):
        k = int(rng.integers(1, 6))
        s = np.concatenate([rng.uniform(0.72, 0.9, k), rng.uniform(0.3, 0.62, n - k)])
        order = np.argsort(-s)
        items = []
        for rank, i in enumerate(order, 1):
            ch = Chunk(
                f"s{seed}q{q}c{i}",
                "word " * int(rng.integers(20, 80)),
                doc_id=f"d{q}",
                position=int(i),
            )
            ev = [Event("dense", "retrieved", f"rank {rank}", float(s[i]))]
            if i < k or rng.random() < 0.2:
                ev.append(Event("bm25", "retrieved", f"rank {rank}", float(10 * s[i])))
            items.append(ScoredChunk(ch, float(s[i]), "dense", tuple(ev)))
        lists.append(Candidates(tuple(items)))
        golds.append({f"s{seed}q{q}c{i}" for i in range(k)})
    return lists, golds


@pytest.fixture(scope="module")
def model():
    lists, golds = synthetic(30, seed=1)
    return fit_cutoff_model(lists, golds, pipeline_hash="h1", upstream=[["dense", "x"]])


@pytest.mark.parametrize("kind", ["gbdt", "logistic"])
def test_learns_the_known_cut_on_fresh_queries(kind, model):
    m = model if kind == "gbdt" else fit_cutoff_model(*synthetic(30, seed=1), kind=kind)
    lists, golds = synthetic(20, seed=7)
    right = sum(m.cut(c)[0] == len(g) for c, g in zip(lists, golds))
    assert right >= 17, right


def test_features_shape_and_retriever_columns():
    lists, _ = synthetic(1, seed=3)
    X = list_features(lists[0], ["bm25", "dense"])
    assert X.shape == (15, len(feature_names(["bm25", "dense"])))
    names = feature_names(["bm25", "dense"])
    col = names.index("dense:present")
    assert X[:, col].all()
    assert np.all(np.diff(X[:, names.index("rank")]) == 1)


def test_choose_cut_objectives():
    p = np.array([0.95, 0.9, 0.85, 0.1, 0.05, 0.05])
    assert choose_cut(p)[0] == 3
    assert choose_cut(p, objective="recall", target_recall=0.5)[0] == 2
    assert choose_cut(p, beta=0.3)[0] <= 3
    assert choose_cut(p, max_k=2)[0] == 2 and choose_cut(p, min_k=5)[0] == 5
    assert choose_cut(np.array([]))[0] == 0
    assert (
        choose_cut(np.array([0.9, 0.2, 0.6, 0.1]), objective="threshold", threshold=0.5)[0] == 3
    )  # up to the last chunk above the threshold
    assert choose_cut(p, objective="top_k", k=4)[0] == 4
    assert choose_cut(p, objective="ef1")[0] == 3
    with pytest.raises(Exception, match="unknown cut objective"):
        choose_cut(p, objective="nope")


@pytest.mark.parametrize("zeros", [(), (3,), (0, 8, 9), (5, 6, 7, 8, 9)])
def test_expected_f1_is_exact(zeros):
    """The Poisson-binomial decoding equals brute-force enumeration of all 2^n labellings,
    also with items of probability 0 inside or at the end (past a model's horizon)."""
    import itertools

    p = np.random.default_rng(3).uniform(0, 1, 10)
    p[list(zeros)] = 0.0
    brute = np.zeros(10)
    for ys in itertools.product((0, 1), repeat=10):
        y = np.array(ys)
        w = np.prod(np.where(y == 1, p, 1 - p))
        brute += w * 2 * np.cumsum(y) / (np.arange(1, 11) + y.sum())
    assert np.allclose(expected_f1(p), brute)
    assert np.allclose(expected_f1(p, max_k=4), brute[:4])
    # with one sure hit and the rest unlikely, E[F1] is best at k = 1
    assert int(np.argmax(expected_f1(np.array([0.99, 0.05, 0.05, 0.05])))) == 0


def test_fit_chooses_the_cut_rule_out_of_fold(model):
    rule, training = model.header["defaults"], model.header["training"]
    assert 0.8 <= training["out_of_fold_f1"] <= 1.0
    # the grid's best is not clearly better than the parameter-free default here: kept
    best_kind, best_rule, best_f1 = training["choice"]["best_out_of_fold"]
    assert rule == DEFAULT_RULE and best_f1 >= training["out_of_fold_f1"]
    greedy = fit_cutoff_model(
        *synthetic(30, seed=1), kind="logistic", one_se=False, inner_repeats=1
    )
    assert greedy.header["defaults"] == greedy.header["training"]["choice"]["best_out_of_fold"][1]
    prefix = fit_cutoff_model(
        *synthetic(25, seed=5), kind="logistic", orders=("input",), inner_repeats=1
    )
    assert prefix.header["defaults"]["order"] == "input"  # for a consumer that cuts as ranked
    with pytest.raises(Exception, match="orders must be"):
        fit_cutoff_model(*synthetic(25, seed=5), orders=("random",))
    fixed = fit_cutoff_model(*synthetic(25, seed=5), defaults={"objective": "f1", "beta": 2.0})
    assert fixed.header["defaults"] == {"objective": "f1", "beta": 2.0}


def test_probabilities_are_calibrated_out_of_fold(model):
    a, b = model.arrays["calibration"]
    assert a > 0
    lists, golds = synthetic(30, seed=21)
    expected = sum(float(model.probabilities(c).sum()) for c in lists)
    actual = sum(len(g) for g in golds)
    assert abs(expected - actual) <= 0.2 * actual, (expected, actual)


def test_auto_kind_is_chosen_out_of_fold_and_round_trips(tmp_path):
    lists, golds = synthetic(24, seed=12)
    m = fit_cutoff_model(lists, golds, kind="auto", defaults={"objective": "ef1"}, inner_repeats=1)
    assert m.header["kind"] in ("gbdt", "logistic")
    assert m.header["defaults"] == {"objective": "ef1"}
    assert m.header["training"]["out_of_fold_f1"] >= 0.8
    loaded = CutoffModel.load(m.save(tmp_path / "auto.npz"))
    test_lists, test_golds = synthetic(10, seed=13)
    assert sum(loaded.cut(c)[0] == len(g) for c, g in zip(test_lists, test_golds)) >= 8
    with pytest.raises(Exception, match="unknown cutoff model kind"):
        fit_cutoff_model(lists, golds, kind="forest")


def test_save_load_round_trip_without_pickle(model, tmp_path):
    path = model.save(tmp_path / "cut.npz")
    loaded = CutoffModel.load(path)
    lists, _ = synthetic(3, seed=9)
    for c in lists:
        assert loaded.cut(c)[0] == model.cut(c)[0]
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        header = json.loads(str(data["__header__"]))
    assert header["feature_version"] == FEATURE_VERSION and header["pipeline_hash"] == "h1"
    assert header["training"]["queries"] == 30


def test_feature_version_mismatch_is_refused(model, tmp_path):
    bad = CutoffModel(dict(model.header, feature_version=999), model.arrays)
    path = bad.save(tmp_path / "old.npz")
    with pytest.raises(InputError, match="feature version 999.*re-fit"):
        CutoffModel.load(path)


def test_changed_feature_list_is_refused(model, tmp_path):
    bad = CutoffModel(dict(model.header, features=model.header["features"][:-1]), model.arrays)
    with pytest.raises(InputError, match="other features.*re-fit"):
        CutoffModel.load(bad.save(tmp_path / "drift.npz"))


def test_pipeline_mismatch_is_refused(model, tmp_path):
    path = model.save(tmp_path / "cut.npz")
    with pytest.raises(InputError, match="another pipeline"):
        CutoffModel.load(path, expect_pipeline="h2")
    lists, _ = synthetic(1, seed=2)
    other = Candidates.retrieved("some_other_retriever", [(sc.chunk, sc.score) for sc in lists[0]])
    with pytest.raises(InputError, match="another pipeline"):
        CutoffModel.load(path).cut(other)


def test_too_few_queries_names_the_minimum():
    lists, golds = synthetic(MIN_QUERIES - 1, seed=4)
    with pytest.raises(InputError, match=f"at least {MIN_QUERIES} labelled queries"):
        fit_cutoff_model(lists, golds)


def test_missing_model_file_and_not_a_model(tmp_path):
    with pytest.raises(InputError, match="not found.*ragsel fit"):
        CutoffModel.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    np.savez(junk, a=np.zeros(2))
    with pytest.raises(InputError, match="not a ragsel learned-cutoff model"):
        CutoffModel.load(junk)


def test_stage_cuts_keeps_paired_and_records_why(model, tmp_path):
    path = model.save(tmp_path / "cut.npz")
    stage = LearnedCutoff(model=str(path))
    assert Stage.from_dict(stage.to_dict()) == stage
    lists, golds = synthetic(1, seed=11)
    c = lists[0]
    # a rationale paired the last chunk: it is kept although below the cut
    items = list(c.items)
    items[-1] = ScoredChunk(
        items[-1].chunk, items[-1].score, "sel", items[-1].events, rationales=("r1",)
    )
    out = stage.run(candidates=Candidates(tuple(items)))
    k = len(golds[0])
    assert out.ids[:k] == c.ids[:k] and out.ids[-1] == c.ids[-1] and len(out) == k + 1
    assert out.items[-1].events[-1].reason == "paired by a rationale"
    note = out.note_of("learned_cutoff")
    assert note["cut"] == k and note["method"] == "learned"
    assert all("below the learned cut" in d.reason for d in out.dropped)
    assert len(stage.run(candidates=Candidates())) == 0


# --- the CLI -----------------------------------------------------------------------------------
WORDS = [f"w{i}" for i in range(24)]


def _corpus():
    texts = [
        f"filler text {WORDS[i % 24]} more filler {WORDS[(i * 7 + 3) % 24]} end" for i in range(40)
    ]
    return texts


def _write_dataset(tmp_path):
    texts = _corpus()
    doc = "\n".join(texts)
    rows = [{"type": "document", "id": "doc", "text": doc}]
    starts = np.cumsum([0] + [len(t) + 1 for t in texts])
    for qi, w in enumerate(WORDS):
        spans = [
            {"doc_id": "doc", "start": int(starts[i]), "end": int(starts[i] + len(t))}
            for i, t in enumerate(texts)
            if f" {w} " in f" {t} "
        ]
        rows.append({"type": "query", "id": f"q{qi}", "text": f"where is {w}", "spans": spans})
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _write_pipeline(tmp_path, top_k=10):
    texts = json.dumps(_corpus())
    path = tmp_path / f"pipe{top_k}.yaml"
    path.write_text(f"""
name: fit-test
stages:
  ret: {{type: fake_retriever, top_k: {top_k}, texts: {texts}}}
  cut: {{type: learned_cutoff, model: "{tmp_path / "cut.npz"}"}}
connections: ["ret -> cut"]
""")
    return path


def test_ragsel_fit_cli_end_to_end(tmp_path):
    from ragsel.cli.main import app

    data = _write_dataset(tmp_path)
    pipe_path = _write_pipeline(tmp_path)
    runner = CliRunner()
    res = runner.invoke(
        app, ["fit", str(pipe_path), "--dataset", str(data), "--out", str(tmp_path / "cut.npz")]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["queries"] == 24 and summary["stage"] == "cut"
    assert summary["retrievers"] == ["ret"] and summary["query_features"] is True
    assert summary["corpus_priors"] is True
    res = runner.invoke(
        app,
        [
            "fit",
            str(pipe_path),
            "--dataset",
            str(data),
            "--no-priors",
            "--kind",
            "logistic",
            "--out",
            str(tmp_path / "np.npz"),
        ],
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["corpus_priors"] is False
    horizon = tmp_path / "h.npz"
    res = runner.invoke(
        app,
        ["fit", str(pipe_path), "--dataset", str(data), "--max-rank", "3", "--out", str(horizon)],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["max_rank"] == 3 and CutoffModel.load(horizon).horizon == 3
    pipe = load_pipeline(pipe_path)  # the model reads the pipeline query: no wiring needed
    sel = pipe.run("where is w5").selection
    texts = [c.chunk.text for c in sel.chunks]
    assert texts and all(" w5 " in f" {t} " for t in texts)

    # the same model under a changed upstream stage is refused
    other = load_pipeline(_write_pipeline(tmp_path, top_k=12))
    with pytest.raises(StageError, match="another pipeline"):
        other.run("where is w5")

    # too few labelled queries: exit code 2 and the minimum in the message
    res = runner.invoke(
        app,
        [
            "fit",
            str(pipe_path),
            "--dataset",
            str(data),
            "--limit",
            "5",
            "--out",
            str(tmp_path / "few.npz"),
        ],
    )
    assert res.exit_code == 2 and f"at least {MIN_QUERIES}" in res.output
    res = runner.invoke(
        app,
        [
            "fit",
            str(pipe_path),
            "--dataset",
            str(data),
            "--kind",
            "forest",
            "--out",
            str(tmp_path / "k.npz"),
        ],
    )
    assert res.exit_code == 2 and "gbdt, logistic or auto" in res.output
    # a pipeline without a learned stage
    plain = tmp_path / "plain.yaml"
    plain.write_text("stages:\n  ret: {type: fake_retriever, texts: [a]}\n")
    res = runner.invoke(app, ["fit", str(plain), "--dataset", str(data), "--out", "x.npz"])
    assert res.exit_code == 2 and "learned cutoff" in res.output


def test_fit_for_a_selector_with_a_learned_cut(tmp_path):
    """The selector's own cut can be learned: fit on its pooled ranking (cutoff none)."""
    from ragsel_eval.datasets import load_dataset

    from ragsel.cli.fit_cmd import fit_for_pipeline
    from ragsel.testing import FakeEmbedder

    data = load_dataset(str(_write_dataset(tmp_path)))
    model_path = tmp_path / "sel.npz"
    texts = json.dumps(_corpus())
    spec = f"""
stages:
  ret: {{type: fake_retriever, top_k: 10, texts: {texts}}}
  why: {{type: query_rationales}}
  sel: {{type: rationale_selector, embedder: bow, cutoff: learned, model: "{model_path}"}}
connections: ["ret -> sel.candidates", "why -> sel.rationales"]
"""
    comps = {"bow": FakeEmbedder(dim=128)}
    pipe = load_pipeline(spec, components=comps)
    model, summary = fit_for_pipeline(pipe, data)
    assert summary["stage"] == "sel" and summary["retrievers"] == ["ret"]
    assert summary["query_features"] is True  # the selector passes the query to its cut
    assert summary["rule"]["order"] == "input"  # ... and keeps a prefix of its own ranking
    model.save(model_path)
    sel = load_pipeline(spec, components=comps).run("where is w7").selection
    note = next(n for n in sel.notes if n.stage == "sel")
    assert note.data["cuts"]["all"]["method"] == "learned"
    assert sel.chunks and " w7 " in f" {sel.chunks[0].chunk.text} "


# --- query features ----------------------------------------------------------------------------
NAMES = [f"name{i}" for i in range(40)]


def lexical(n_queries, seed, n=12):
    """Retrieval scores are noise; the relevant chunks (1 to 3) are those naming the query's
    entity, in their text or their document title. Only the query features can see that."""
    rng = np.random.default_rng(seed)
    lists, golds, queries = [], [], []
    for q in range(n_queries):
        target = NAMES[int(rng.integers(len(NAMES)))]
        k = int(rng.integers(1, 4))
        items = []
        s = np.sort(rng.uniform(0.3, 0.9, n))[::-1]
        rel = set(rng.choice(n, k, replace=False).tolist())
        for rank in range(n):
            other = NAMES[int(rng.integers(len(NAMES)))]
            name = target if rank in rel else (other if other != target else "nobody")
            text = f"common words here about {name} and more common words"
            title = name if rng.random() < 0.5 else "untitled"
            ch = Chunk(
                f"x{seed}q{q}c{rank}",
                text,
                doc_id=f"d{q}-{rank}",
                position=0,
                metadata={"title": title},
            )
            ev = (Event("dense", "retrieved", f"rank {rank + 1}", float(s[rank])),)
            items.append(ScoredChunk(ch, float(s[rank]), "dense", ev))
        lists.append(Candidates(tuple(items)))
        golds.append({f"x{seed}q{q}c{r}" for r in rel})
        queries.append(f"what is known about {target}?")
    return lists, golds, queries


def _f1(picked, gold):
    tp = len(set(picked) & gold)
    return 2 * tp / (len(picked) + len(gold)) if picked else 0.0


@pytest.fixture(scope="module")
def query_model():
    lists, golds, queries = lexical(40, seed=1)
    return fit_cutoff_model(lists, golds, queries=queries, seed=0, inner_repeats=1)


def test_query_features_find_what_scores_cannot(query_model):
    names = query_model.header["features"]
    assert (
        query_model.uses_query
        and names[-len(QUERY_FEATURES) - len(PRIOR_FEATURES) :] == QUERY_FEATURES + PRIOR_FEATURES
    )
    blind = fit_cutoff_model(*lexical(40, seed=1)[:2], kind="logistic", seed=0)
    lists, golds, queries = lexical(25, seed=8)
    stage_q = LearnedCutoff(model="unused.npz")
    stage_q._model = query_model
    stage_b = LearnedCutoff(model="unused.npz")
    stage_b._model = blind
    f1_q = np.mean(
        [
            _f1(stage_q.run(candidates=c, query=Query(t)).ids, g)
            for c, g, t in zip(lists, golds, queries)
        ]
    )
    f1_b = np.mean([_f1(stage_b.run(candidates=c).ids, g) for c, g in zip(lists, golds)])
    assert f1_q >= 0.9 and f1_b <= 0.6, (f1_q, f1_b)
    # the relevant chunks were scattered through the list: the model re-ranked them first
    assert (
        stage_q.run(candidates=lists[0], query=Query(queries[0])).note_of("learned_cutoff")["order"]
        == "probability"
    )


def test_query_model_refuses_to_run_without_the_query(query_model):
    lists, _, _ = lexical(1, seed=2)
    with pytest.raises(InputError, match="needs the query"):
        query_model.probabilities(lists[0])
    stage = LearnedCutoff(model="unused.npz")
    stage._model = query_model
    with pytest.raises(StageError, match="needs the query"):
        stage.run(candidates=lists[0])
    with pytest.raises(InputError, match="2 candidate lists but 1 queries"):
        fit_cutoff_model(lists * 2, [set()] * 2, queries=["q"])


def test_query_and_title_features_values():
    rows = [
        ("Michael Jackson (writer)", "d1", "the beer hunter was written by someone"),
        ("Lucy Saunders", "d2", "Lucy Saunders wrote about Michael Jackson and beer"),
        ("Unrelated", "d3", "nothing to see"),
    ]
    items = tuple(
        ScoredChunk(
            Chunk(f"c{i}", text, doc_id=d, position=0, metadata={"title": title}),
            1.0 - i / 10,
            "dense",
            (Event("dense", "retrieved", f"rank {i + 1}", 1.0 - i / 10),),
        )
        for i, (title, d, text) in enumerate(rows)
    )
    X = list_features(Candidates(items), ["dense"], "Who did Lucy Saunders write about?")
    names = feature_names(["dense"], True)
    col = {n: X[:, names.index(n)] for n in QUERY_FEATURES}
    # Jackson's paragraph does not name Lucy, but Lucy's (ranked 2nd) names Jackson
    assert col["title_in_top_text"].tolist() == [1.0, 0.0, 0.0]
    assert col["title_in_query"].tolist() == [0.0, 1.0, 0.0]
    assert col["q_idf_cover"][1] == pytest.approx(1.0) and col["q_idf_cover"][2] == 0.0
    assert col["q_bigram"][1] == 0.5 and col["q_rarest_hit"][0] == 0.0  # "wrote" != "write"
    assert list_features(Candidates(items), ["dense"]).shape[1] == len(feature_names(["dense"]))


# --- corpus priors ------------------------------------------------------------------------------
TOPICS = ["refund", "shipping", "password", "cookies", "deletion", "children"]


def shared_corpus(n_queries, seed, n=20):
    """One corpus every query searches (as a policy document): scores are noise, and each
    topic's answer is always the same chunk. Only what earlier queries found can tell."""
    rng = np.random.default_rng(seed)
    lists, golds, queries = [], [], []
    for _ in range(n_queries):
        t = int(rng.integers(len(TOPICS)))
        s = np.sort(rng.uniform(0.3, 0.9, n))[::-1]
        perm = rng.permutation(n)
        items = []
        for rank, c in enumerate(perm):
            ch = Chunk(
                f"policy-c{c}", f"section {c} of the policy text", doc_id="policy", position=int(c)
            )
            ev = (Event("dense", "retrieved", f"rank {rank + 1}", float(s[rank])),)
            items.append(ScoredChunk(ch, float(s[rank]), "dense", ev))
        lists.append(Candidates(tuple(items)))
        golds.append({f"policy-c{3 * t}"})
        queries.append(f"how do you handle {TOPICS[t]} (asked {int(rng.integers(1000))})?")
    return lists, golds, queries


def test_corpus_priors_find_the_answers_earlier_queries_found(tmp_path):
    lists, golds, queries = shared_corpus(40, seed=1)
    with_p = fit_cutoff_model(lists, golds, queries=queries, kind="logistic", seed=0)
    without = fit_cutoff_model(lists, golds, queries=queries, kind="logistic", seed=0, priors=False)
    assert with_p.header["features"][-len(PRIOR_FEATURES) :] == PRIOR_FEATURES
    assert not without.header["corpus_priors"] and "prior_chunk" not in without.header["features"]
    loaded = CutoffModel.load(with_p.save(tmp_path / "p.npz"))  # the priors travel in the file
    test_lists, test_golds, test_queries = shared_corpus(20, seed=9)

    def f1(m):
        stage = LearnedCutoff(model="unused.npz")
        stage._model = m
        return np.mean(
            [
                _f1(stage.run(candidates=c, query=Query(q)).ids, g)
                for c, g, q in zip(test_lists, test_golds, test_queries)
            ]
        )

    assert f1(loaded) >= 0.9 and f1(without) <= 0.5, (f1(loaded), f1(without))
    c, q = test_lists[0], test_queries[0]
    assert np.allclose(loaded.probabilities(c, q), with_p.probabilities(c, q))
    blind = fit_cutoff_model(lists, golds, kind="logistic", seed=0, inner_repeats=1)
    assert blind.header["corpus_priors"] and not blind.uses_query  # fitted without the query,
    assert np.allclose(blind.probabilities(c, q), blind.probabilities(c))  # it never reads it
    damaged = CutoffModel(
        dict(with_p.header), {k: v for k, v in with_p.arrays.items() if k != "prior_query_gold"}
    )
    with pytest.raises(InputError, match="lacks.*prior_query_gold.*re-fit"):
        CutoffModel.load(damaged.save(tmp_path / "damaged.npz"))


def test_training_rows_get_leave_one_query_out_priors():
    lists, golds, queries = shared_corpus(12, seed=2)
    loo = CorpusPriors.count(lists, golds, queries).features(lists[0], queries[0], exclude=0)
    others = CorpusPriors.count(lists[1:], golds[1:], queries[1:]).features(lists[0], queries[0])
    chunk_cols = [PRIOR_FEATURES.index(f) for f in ("prior_chunk", "prior_seen", "prior_doc")]
    assert np.allclose(loo[:, chunk_cols], others[:, chunk_cols])
    # ... while the query's own label would have raised its gold chunk's prior
    gold_row = [i for i, sc in enumerate(lists[0].items) if sc.chunk.id in golds[0]][0]
    full = CorpusPriors.count(lists, golds, queries).features(lists[0], queries[0])
    assert full[gold_row, 0] > loo[gold_row, 0]


def test_priors_are_inert_on_chunks_no_training_query_saw():
    lists, golds, queries = shared_corpus(12, seed=3)
    fresh, _ = synthetic(1, seed=4)
    X = CorpusPriors.count(lists, golds, queries).features(fresh[0], "how about refunds?")
    assert X.shape == (15, len(PRIOR_FEATURES))
    assert np.allclose(X, X[0]), "unseen chunks must all look alike"
    assert X[0, PRIOR_FEATURES.index("prior_seen")] == 0


def test_prior_features_do_not_depend_on_the_hash_seed():
    """Equally similar training queries tie; float sums over sets must not break the tie
    differently per process (PYTHONHASHSEED), or fits would not be reproducible."""
    import subprocess
    import sys

    code = (
        "import numpy as np, hashlib; from ragsel.types import *; "
        "from ragsel.stages.cutoff._learned_priors import CorpusPriors; "
        "ch = [Chunk(f'c{i}', f'text {i}', doc_id='d', position=i) for i in range(6)]; "
        "L = Candidates(tuple(ScoredChunk(c, 1.0 - i / 10, 'r') for i, c in enumerate(ch)));"
        "qs = [f'alpha beta gamma delta q{i} zeta{i % 3}' for i in range(30)]; "
        "pri = CorpusPriors.count([L] * 30, [{f'c{i % 6}'} for i in range(30)], qs); "
        "X = pri.features(L, 'alpha beta gamma delta zeta1 omega'); "
        "print(hashlib.md5(X.tobytes()).hexdigest())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1, outs
