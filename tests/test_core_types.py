import pytest

from ragsel import Candidates, Chunk, InputError, Query, Selection, Verdict
from ragsel.testing import make_chunks


def test_query_rejects_empty_and_non_string():
    with pytest.raises(InputError, match="empty"):
        Query("   ")
    with pytest.raises(InputError, match="string"):
        Query(3)  # type: ignore[arg-type]


def test_values_are_immutable_and_compare_by_value():
    a = Chunk(id="c1", text="x", doc_id="d", position=0, span=(0, 1), metadata={"k": 1})
    b = Chunk(id="c1", text="x", doc_id="d", position=0, span=(0, 1), metadata={"k": 1})
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.text = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.metadata["k"] = 2  # type: ignore[index]


def test_chunk_validates_span_and_position():
    with pytest.raises(InputError, match="span"):
        Chunk(id="c", text="x", span=(5, 2))
    with pytest.raises(InputError, match="position"):
        Chunk(id="c", text="x", position=-1)
    with pytest.raises(InputError, match="id"):
        Chunk(id="", text="x")


def test_verdict_confidence_range():
    with pytest.raises(ValueError):
        Verdict("c", "s", True, confidence=1.5)


def test_derive_records_drops_with_reasons_and_notes():
    cands = Candidates.retrieved("ret", zip(make_chunks(["a", "b", "c"]), [3.0, 2.0, 1.0]))
    out = cands.derive(
        "cut",
        cands.items[:1],
        drop_reasons={"doc#1": "gap z=2.1"},
        default_reason="below cut",
        note={"cut_at": 1},
    )
    assert out.ids == ["doc#0"]
    assert [(d.id, d.stage, d.reason) for d in out.dropped] == [
        ("doc#1", "cut", "gap z=2.1"),
        ("doc#2", "cut", "below cut"),
    ]
    assert out.note_of("cut") == {"cut_at": 1}
    sel = Selection.from_candidates(Query("q"), out)
    assert [e.action for e in sel.history("doc#2")] == ["retrieved", "dropped"]
    assert sel.to_dict()["dropped"][0]["reason"] == "gap z=2.1"


def test_merge_history_deduplicates():
    cands = Candidates.retrieved("ret", zip(make_chunks(["a", "b"]), [2.0, 1.0]))
    cut = cands.derive("cut", cands.items[:1])
    drops, notes = Candidates.merge_history([cut, cut])
    assert len(drops) == 1


def test_results_pickle_and_deepcopy_with_their_provenance():
    """Read-only mappings (metadata, event data, notes) cannot be pickled as they are; the
    values carry them as plain dicts and freeze them again."""
    import copy
    import pickle

    from ragsel.pipeline import Pipeline
    from ragsel.stages.cutoff.top_k import TopKCutoff
    from ragsel.testing import FakeRetriever

    pipe = Pipeline.linear(
        [
            ("ret", FakeRetriever(texts=["red apple", "green apple", "pear"])),
            ("cut", TopKCutoff(k=1)),
        ]
    )
    sel = pipe.run(Query("apple", metadata={"user": "u1"})).selection
    assert sel.dropped and sel.notes and sel.chunks[0].events[0].data  # provenance to carry
    for clone in (pickle.loads(pickle.dumps(sel)), copy.deepcopy(sel)):
        assert clone.to_dict() == sel.to_dict()
        assert clone.query == sel.query and clone.chunks == sel.chunks
        with pytest.raises(TypeError):  # still read-only after the trip
            clone.chunks[0].events[0].data["rank"] = 9  # type: ignore[index]
