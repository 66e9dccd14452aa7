"""Neighbour expansion: windows, dedup, budgets, document order and merging, bad input."""

from __future__ import annotations

import pytest

from ragsel.backends.stores import ChunkStore, InMemoryChunkStore
from ragsel.errors import ConfigError, InputError, PipelineSpecError
from ragsel.spec import load_pipeline
from ragsel.stage import Stage
from ragsel.stages.expand.neighbors import NeighborExpander, text_cost
from ragsel.testing import make_chunks
from ragsel.types import Candidates, Chunk

DOC = make_chunks([f"sentence number {i} here." for i in range(6)], "a")  # 4 tokens + '.' each
OTHER = make_chunks(["other zero.", "other one.", "other two."], "b")
STORE = InMemoryChunkStore(DOC + OTHER)


def anchors(*pairs):
    return Candidates.retrieved("ret", pairs)


def expand(cands, **cfg):
    return NeighborExpander(**cfg).use_store(STORE).run(candidates=cands)


def test_window_adds_both_sides_inheriting_the_anchor_score():
    out = expand(anchors((DOC[3], 0.8)), window=1)
    assert out.ids == ["a#3", "a#2", "a#4"]
    for sc in out.items[1:]:
        assert sc.score == 0.8 and sc.expanded_from == "a#3"
        assert sc.events[-1].action == "added" and sc.events[-1].data["anchor"] == "a#3"
    assert out.note_of("neighbor_expansion")["added"] == 2


def test_asymmetric_window_and_document_edges():
    out = expand(anchors((DOC[0], 0.9), (DOC[5], 0.5)), before=1, after=2)
    # a#0 has nothing before it; a#5 nothing after it
    assert out.ids == ["a#0", "a#1", "a#2", "a#5", "a#4"]


def test_duplicates_are_merged_and_originals_keep_their_own_score():
    out = expand(anchors((DOC[2], 0.9), (DOC[3], 0.7)), window=1)
    # a#3 is an original (not re-added from a#2); a#4 comes from a#3, a#1 from a#2
    assert out.ids == ["a#2", "a#1", "a#3", "a#4"]
    by_id = {sc.id: sc for sc in out}
    assert by_id["a#3"].score == 0.7 and by_id["a#3"].expanded_from is None
    assert by_id["a#1"].expanded_from == "a#2" and by_id["a#4"].expanded_from == "a#3"
    assert len(set(out.ids)) == len(out.ids)


def test_a_neighbour_of_two_anchors_is_added_once_from_the_best():
    out = expand(anchors((DOC[1], 0.9), (DOC[3], 0.4)), window=1)
    assert out.ids.count("a#2") == 1
    assert next(sc for sc in out if sc.id == "a#2").expanded_from == "a#1"


def test_budget_in_tokens_stops_adding_and_never_evicts():
    each = text_cost(DOC[0].text, "tokens")
    assert each == 5  # "sentence number 0 here ." : words and punctuation
    cands = anchors((DOC[1], 0.9), (DOC[4], 0.5))
    out = expand(cands, window=1, budget=4 * each, budget_unit="tokens")
    # originals cost 10; room for two neighbours: both of the best anchor, none for a#4
    assert out.ids == ["a#1", "a#0", "a#2", "a#4"]
    note = out.note_of("neighbor_expansion")
    assert note["spent"] == 20 and note["budget_exhausted"] is True
    tiny = expand(cands, window=1, budget=1, budget_unit="tokens")  # originals alone overflow
    assert tiny.ids == ["a#1", "a#4"]


def test_budget_in_characters():
    n = len(DOC[0].text)
    out = expand(anchors((DOC[2], 0.9)), window=2, budget=3 * n, budget_unit="chars")
    assert out.ids == ["a#2", "a#1", "a#3"]  # nearest first: -1, +1, then -2 does not fit


def test_document_order_groups_documents_by_best_score():
    cands = anchors((OTHER[1], 0.95), (DOC[4], 0.9), (DOC[1], 0.3))
    out = expand(cands, window=0, order="document")
    assert out.ids == ["b#1", "a#1", "a#4"]


def test_merge_adjacent_makes_one_passage_with_its_parts():
    cands = anchors((DOC[3], 0.9), (DOC[1], 0.6), (OTHER[0], 0.2))
    out = expand(cands, window=1, order="document", merge_adjacent=True)
    # a#2..a#4 (from a#3) and a#0..a#2 (from a#1) touch: one passage a#0..a#4
    merged = out.items[0]
    assert merged.chunk.metadata["merged_ids"] == ["a#0", "a#1", "a#2", "a#3", "a#4"]
    assert merged.chunk.span == (DOC[0].span[0], DOC[4].span[1])
    assert merged.chunk.position == 0 and merged.score == 0.9
    assert merged.chunk.text == "\n".join(c.text for c in DOC[:5])
    assert merged.expanded_from is None  # it contains originals
    assert out.items[1].chunk.metadata["merged_ids"] == ["b#0", "b#1"]
    assert out.note_of("neighbor_expansion")["merged_passages"] == 2
    assert [e.action for e in merged.events].count("added") >= 3


def test_merge_writes_overlapping_window_text_once():
    src = "one two three four five six seven"
    c0 = Chunk("o#0", src[0:13], "o", 0, (0, 13))  # "one two three"
    c1 = Chunk("o#1", src[8:23], "o", 1, (8, 23))  # "three four five"
    c2 = Chunk("o#2", src[19:33], "o", 2, (19, 33))  # "five six seven"
    ex = NeighborExpander(window=1, order="document", merge_adjacent=True)
    out = ex.use_store(InMemoryChunkStore([c0, c1, c2])).run(candidates=anchors((c1, 1.0)))
    assert [sc.chunk.text for sc in out] == [src]


def test_chunks_without_positions_are_kept_and_noted():
    loose = Chunk("loose", "no position", doc_id="a")
    out = expand(anchors((loose, 0.9), (DOC[2], 0.5)), window=1)
    assert out.ids == ["loose", "a#2", "a#1", "a#3"]
    note = out.note_of("neighbor_expansion")
    assert (
        note["skipped_no_position"] == ["loose"] and "no doc_id/position" in note["skipped_reason"]
    )


def test_empty_candidates():
    out = expand(Candidates(), window=1)
    assert len(out) == 0 and out.note_of("neighbor_expansion")["added"] == 0


def test_without_a_store_neighbours_come_from_upstream_and_the_note_says_so():
    cands = anchors((DOC[2], 0.9), (DOC[3], 0.2), (DOC[5], 0.1))
    cut = cands.derive("cut", cands.items[:1])  # a#3 and a#5 dropped upstream
    out = NeighborExpander(window=1).run(candidates=cut)
    assert out.ids == ["a#2", "a#3"]  # a#1 was never retrieved: unknown without a store
    assert out.note_of("neighbor_expansion")["source"] == "upstream candidates only"
    assert [d.id for d in out.dropped] == ["a#3", "a#5"]  # history kept


def test_store_bound_by_name_from_yaml(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("""
stages:
  - {type: fake_retriever, texts: ["alpha", "beta", "gamma"], doc_id: doc, top_k: 1}
  - {type: neighbor_expansion, store: corpus, window: 1}
""")
    store = InMemoryChunkStore(make_chunks(["alpha", "beta", "gamma"], "doc"))
    pipe = load_pipeline(f, components={"corpus": store})
    assert pipe.run("beta").selection.ids == ["doc#1", "doc#0", "doc#2"]
    with pytest.raises(PipelineSpecError, match="store 'corpus' is not among the components"):
        load_pipeline(f, components={"other": store})
    unbound = load_pipeline(f)  # no components at all: error at run time, naming the fix
    with pytest.raises(Exception, match="was never bound"):
        unbound.run("beta")


def test_bad_configs_and_stores():
    with pytest.raises(ConfigError, match="merge_adjacent needs order: document"):
        NeighborExpander(merge_adjacent=True)
    with pytest.raises(ConfigError, match="either index or store"):
        NeighborExpander(index="x", store="y")
    with pytest.raises(ConfigError, match="not a ChunkStore"):
        NeighborExpander().use_store(object())
    with pytest.raises(InputError, match="both claim position 0"):
        InMemoryChunkStore([Chunk("p", "x", "d", 0), Chunk("q", "y", "d", 0)])
    assert isinstance(STORE, ChunkStore)


def test_round_trip():
    s = NeighborExpander(
        before=0, after=2, budget=800, budget_unit="chars", order="document", merge_adjacent=True
    )
    assert Stage.from_dict(s.to_dict()) == s
