"""Neighbour expansion never adds text the selection already holds (issue 15): overlapping
windows are trimmed to their new text, contained ones are not added, and the README demo
(local.yaml on examples/corpus) selects no overlapping text."""

from __future__ import annotations

import pytest

from ragsel.backends.stores import InMemoryChunkStore
from ragsel.spec import load_pipeline
from ragsel.stages.expand.neighbors import NeighborExpander
from ragsel.types import Candidates, Chunk

SRC = "one two three four five six seven"
C0 = Chunk("o#0", SRC[0:13], "o", 0, (0, 13))  # "one two three"
C1 = Chunk("o#1", SRC[8:23], "o", 1, (8, 23))  # "three four five"
C2 = Chunk("o#2", SRC[19:33], "o", 2, (19, 33))  # "five six seven"


def run(anchor: Chunk, chunks: list[Chunk], **cfg) -> Candidates:
    ex = NeighborExpander(window=1, **cfg).use_store(InMemoryChunkStore(chunks))
    return ex.run(candidates=Candidates.retrieved("ret", [(anchor, 1.0)]))


def _no_overlap(items) -> None:
    spans = sorted(sc.chunk.span for sc in items)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


def test_overlapping_neighbours_are_trimmed_to_their_new_text():
    out = run(C1, [C0, C1, C2])
    assert [sc.chunk.text for sc in out] == ["three four five", "one two ", " six seven"]
    assert out.ids == ["o#1", "o#0", "o#2"]  # ids kept: the same chunks, shown once
    assert out.items[1].chunk.metadata["trimmed_from"] == [0, 13]
    assert out.note_of("neighbor_expansion")["trimmed_overlap"] == 2
    _no_overlap(out.items)
    merged = run(C1, [C0, C1, C2], order="document", merge_adjacent=True)
    assert [sc.chunk.text for sc in merged] == [SRC]


def test_a_neighbour_inside_selected_text_is_not_added():
    big = Chunk("d#0", SRC, "d", 0, (0, len(SRC)))
    inner = Chunk("d#1", SRC[14:23], "d", 1, (14, 23))  # "four five", wholly inside
    out = run(big, [big, inner])
    assert out.ids == ["d#0"]
    assert out.note_of("neighbor_expansion")["skipped_already_selected"] == 1


def test_budget_counts_only_the_new_text():
    out = run(C1, [C0, C1, C2], budget=len(C1.text) + len(" six seven") + 8, budget_unit="chars")
    assert out.note_of("neighbor_expansion")["spent"] == len(SRC)


@pytest.mark.slow
def test_readme_demo_selects_no_text_twice(example_index):
    p = load_pipeline("pipelines/local.yaml", variables={"RAGSEL_INDEX": str(example_index)})
    sel = p.run("Can the supplier assign the agreement to another company?").selection
    by_doc: dict[str, list] = {}
    for sc in sel.chunks:
        by_doc.setdefault(sc.chunk.doc_id, []).append(sc)
    for items in by_doc.values():
        _no_overlap(items)
    # local.yaml expands with order: document + merge_adjacent: one passage per document
    assert all(len(items) == 1 for items in by_doc.values()), sel.ids
    # and the answer is in it: the assignment clause of the supply agreement
    assert any("Neither party may assign" in sc.chunk.text for sc in sel.chunks)
