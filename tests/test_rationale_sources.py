"""LLM-free rationale sources: query, sub-phrases, PRF facets."""

from __future__ import annotations

import pytest

from ragsel.pipeline import Pipeline
from ragsel.stage import Stage
from ragsel.stages.rationale.prf import PRFRationales, spherical_kmeans, split_sentences
from ragsel.stages.rationale.query import QueryRationales
from ragsel.stages.rationale.subphrases import SubphraseRationales, extract_subphrases, named_spans
from ragsel.testing import FakeEmbedder, make_chunks
from ragsel.types import Candidates, Query, Rationales


def test_query_rationales_with_and_without_rewrites():
    q = Query("who sees my data?", rewrites=("which parties access user data", "who sees my data?"))
    r = QueryRationales().run(query=q)
    assert isinstance(r, Rationales) and r.source == "query"
    assert [x.text for x in r] == ["who sees my data?", "which parties access user data"]
    assert [x.label for x in r] == ["query", "rewrite1"]
    assert all(x.source == "query" for x in r)
    only = QueryRationales(include_rewrites=False).run(query=q)
    assert [x.text for x in only] == ["who sees my data?"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Were Scott Derrickson and Ed Wood of the same nationality?",
            ["Scott Derrickson", "Ed Wood"],
        ),
        (
            "Which magazine was started first, Arthur's Magazine or First for Women?",
            ["Arthur's Magazine", "First for Women"],
        ),
        (
            "What government position was held by the woman who portrayed Corliss Archer in the "
            "film Kiss and Tell?",
            ["Corliss Archer", "Kiss and Tell"],
        ),
        ("who can see which tasks i hire workers for?", []),
    ],
)
def test_named_spans(text, expected):
    assert named_spans(text) == expected


def test_subphrases_quotes_clauses_and_dedupe():
    phrases = extract_subphrases(
        'Consider "Fiverr"\'s privacy policy; who can see which tasks i hire workers for?'
    )
    kinds = dict((p, k) for k, p in phrases)
    assert kinds["Fiverr"] == "quote"
    assert "tasks i hire workers for" in kinds
    # nothing twice, and never the whole query again
    keys = [p.lower() for _, p in phrases]
    assert len(keys) == len(set(keys))


def test_a_claim_with_a_full_stop_is_not_repeated_as_its_own_clause():
    # a claim (SciFact style) used to come back as a "clause" equal to itself minus the stop,
    # which embedded the same text twice per query
    claim = "0-dimensional biomaterials show inductive properties."
    assert extract_subphrases(claim) == []
    r = SubphraseRationales().run(query=Query(claim))
    assert [x.label for x in r] == ["query"]
    # inner dots still count: "U.S." is kept as an entity of a longer question
    assert ("entity", "U.S. Navy") in extract_subphrases(
        "When did the U.S. Navy commission the first nuclear submarine?"
    )


def test_subphrase_stage_short_question_yields_only_the_query():
    r = SubphraseRationales().run(query=Query("is data sold?"))
    assert [x.label for x in r] == ["query"]
    assert r.notes["only_query"] is True


def test_subphrase_stage_labels_sources_and_limit():
    q = Query("Were Scott Derrickson and Ed Wood of the same nationality?")
    r = SubphraseRationales(max_phrases=1).run(query=q)
    assert [x.text for x in r] == [q.text, "Scott Derrickson"]
    assert r.items[1].label == "entity1" and {x.source for x in r} == {"subphrase"}
    r0 = SubphraseRationales(include_query=False).run(query=q)
    assert q.text not in [x.text for x in r0]


def test_split_sentences_merges_fragments():
    s = split_sentences("We collect data. Yes. Then we share it with partners for ads.")
    assert s == ["We collect data. Yes.", "Then we share it with partners for ads."]


def test_kmeans_deterministic_and_separates():
    import numpy as np

    x = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = spherical_kmeans(x, 2, np.array([1.0, 0.0]))
    assert a.tolist() == spherical_kmeans(x, 2, np.array([1.0, 0.0])).tolist()
    assert a[0] == a[1] and a[2] == a[3] and a[0] != a[2]


def _cands(texts):
    return Candidates.retrieved(
        "bm25", [(c, 1.0 - i / 10) for i, c in enumerate(make_chunks(texts))]
    )


def test_prf_facets_come_from_top_candidates_only():
    texts = [
        "Cookies track your browsing activity. Cookies store session identifiers for login.",
        "We share payment data with payment processors. Processors keep card numbers encrypted.",
        "Unrelated text about office opening hours and holidays.",
    ]
    stage = PRFRationales(
        embedder="fake", top_n=2, clusters=3, max_facets=2, min_relative_similarity=0.0
    )
    stage.bind_components({"fake": FakeEmbedder()})
    r = stage.run(query=Query("do cookies track browsing?"), candidates=_cands(texts))
    assert r.items[0].label == "query" and r.source == "prf"
    facets = [x for x in r if x.label.startswith("facet")]
    assert 1 <= len(facets) <= 2
    top_sentences = split_sentences(texts[0]) + split_sentences(texts[1])
    assert all(f.text in top_sentences for f in facets)
    assert "cookies" in facets[0].text.lower()  # the facet nearest the query comes first
    assert r.notes["n_sentences"] == 4


def test_prf_without_candidates_falls_back_to_query():
    stage = PRFRationales(embedder="fake", include_query=False)
    stage.bind_components({"fake": FakeEmbedder()})
    r = stage.run(query=Query("anything"), candidates=Candidates())
    assert [x.text for x in r] == ["anything"] and r.notes["facets"] == 0


def test_prf_wires_in_a_pipeline_and_round_trips():
    for cls in (QueryRationales, SubphraseRationales, PRFRationales):
        s = cls()
        assert Stage.from_dict(s.to_dict()) == s
    from ragsel.testing import FakeRetriever

    p = Pipeline.linear(
        [
            ("ret", FakeRetriever(texts=["cats purr loudly.", "dogs bark."])),
            ("prf", PRFRationales(embedder="fake", top_n=1)),
        ]
    )
    p.stages["prf"].bind_components({"fake": FakeEmbedder()})
    res = p.run("do cats purr?")
    assert res["prf.rationales"].items[0].text == "do cats purr?"
