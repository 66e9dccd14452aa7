"""The connectors' fast conversions (ragsel_connect, the ``unchecked`` constructors of
ragsel.types): objects built without
re-validation must equal normally built ones, own their mutable values, and fall back to the
real constructor when a class does not fit; foreign documents convert exactly as before."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.documents import Document
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    RelatedNodeInfo,
    TextNode,
)
from pydantic import BaseModel, PrivateAttr, field_validator
from ragsel_connect import candidates_from_records, model_builder
from ragsel_langchain import from_documents, to_documents
from ragsel_llamaindex import from_nodes, to_nodes

from ragsel import InputError, Pipeline
from ragsel.stages.cutoff.top_k import TopKCutoff
from ragsel.testing import FakeRetriever
from ragsel.types import Chunk, Dropped, Event, ScoredChunk, Verdict

TEXTS = ["alpha beta gamma", "beta gamma delta", "gamma delta epsilon", "delta epsilon zeta"]


def selection(k: int = 3) -> list[ScoredChunk]:
    p = Pipeline.linear([FakeRetriever(texts=TEXTS, doc_id="doc"), TopKCutoff(k=k)])
    items = list(p.run("gamma").candidates.items)
    # one chunk with a verdict, a rationale and user metadata, one without doc/position
    items[0] = dataclasses.replace(
        items[0],
        rationales=("R1",),
        verdicts=(Verdict(items[0].id, "guard", True, "INJECTION", 0.9, "says ignore"),),
        chunk=dataclasses.replace(items[0].chunk, metadata={"source": "a.txt"}),
    )
    items[-1] = dataclasses.replace(items[-1], chunk=Chunk("loose", "no position", ""))
    return items


# --- model_builder ---------------------------------------------------------------------------
def test_model_builder_matches_validation_for_framework_models():
    make_doc = model_builder(Document, page_content="", id="x", metadata={})
    assert make_doc is not Document  # the fast path is in use with this pydantic
    kw = {"page_content": "text", "id": "c1", "metadata": {"score": 0.5, "n": [1]}}
    fast, slow = make_doc(**kw), Document(**kw)
    assert type(fast) is Document and fast == slow
    assert fast.model_dump() == slow.model_dump() and fast.model_fields_set == slow.model_fields_set
    fast.metadata["x"] = 1  # still a normal, mutable model
    assert fast.model_copy().metadata["x"] == 1

    make_rel = model_builder(RelatedNodeInfo, node_id="x")
    a, b = make_rel(node_id="d1"), make_rel(node_id="d2")
    a.metadata["k"] = "v"  # a default dict is per instance, never shared
    assert b.metadata == {} and a == RelatedNodeInfo(node_id="d1", metadata={"k": "v"})
    with pytest.raises(TypeError):
        make_rel(node_id="d", hash="h")  # only the sample's fields


def test_model_builder_falls_back_when_the_model_does_not_fit():
    class WithPrivate(BaseModel):
        x: int = 0
        _cache: dict = PrivateAttr(default_factory=dict)

    class Normalising(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, v: str) -> str:
            return v.upper()

    class SharedDefault(BaseModel):
        x: int = 0
        tags: list = ["a"]  # pydantic copies it per instance; a prebuilt one would share it

    assert model_builder(WithPrivate, x=1) is WithPrivate
    assert model_builder(SharedDefault, x=1) is SharedDefault
    assert model_builder(SharedDefault, x=1, tags=["b"]) is not SharedDefault
    with pytest.warns(RuntimeWarning, match="differs from a validated one"):
        assert model_builder(Normalising, name="a") is Normalising  # would skip the validator
    assert model_builder(Normalising, name="A") is not Normalising  # sample already valid


# --- unchecked constructors -------------------------------------------------------------------
def test_unchecked_constructors_equal_checked_ones():
    md = MappingProxyType({"k": 1})
    chunk = Chunk.unchecked("c", "t", "d", 2, (0, 1), md)
    assert chunk == Chunk("c", "t", "d", 2, (0, 1), {"k": 1}) and type(chunk) is Chunk
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.id = "y"  # still frozen
    sc = ScoredChunk.unchecked(chunk, 0.5, "s", (), ("r1",), None, ())
    plain = ScoredChunk(chunk, 0.5, "s", rationales=("r1",))
    assert type(sc) is ScoredChunk and sc == plain and hash(sc) == hash(plain)
    assert repr(sc) == repr(plain) and dataclasses.replace(sc, score=1.0).score == 1.0
    ev = Event.unchecked("s", "kept", "why", 0.5, MappingProxyType({"rank": 1}))
    assert ev == Event("s", "kept", "why", 0.5, {"rank": 1}) and type(ev) is Event
    d = Dropped.unchecked(sc, "cut", "below", None)
    assert d == Dropped(sc, "cut", "below") and d.id == "c"


def test_checked_constructors_reject_invalid_chunks():
    for bad in ({"id": ""}, {"position": -1}, {"span": (3, 1)}, {"text": 3}):
        with pytest.raises(InputError):
            Chunk(**{"id": "c", "text": "t", **bad})


def test_kept_and_rescored_keep_a_subclass():
    @dataclasses.dataclass(slots=True, unsafe_hash=True)
    class Tagged(ScoredChunk):
        pass

    sc = Tagged(Chunk("c", "t"), 1.0, "ret")
    kept, rescored = sc.kept("cut", "top 1"), sc.rescored("rr", 0.25)
    assert type(kept) is Tagged and kept.events[-1] == Event("cut", "kept", "top 1", 1.0)
    assert type(rescored) is Tagged and rescored.score == 0.25 and rescored.stage == "rr"


# --- ragsel -> LangChain / LlamaIndex --------------------------------------------------------
def test_to_documents_equals_validated_documents_with_provenance():
    items = selection()
    docs = to_documents(items)
    for rank, (doc, sc) in enumerate(zip(docs, items), 1):
        assert doc == Document(page_content=sc.chunk.text, id=sc.id, metadata=dict(doc.metadata))
        md = doc.metadata
        assert (md["chunk_id"], md["doc_id"], md["position"], md["score"], md["rank"]) == (
            sc.id,
            sc.chunk.doc_id,
            sc.chunk.position,
            sc.score,
            rank,
        )
        assert [e["action"] for e in md["ragsel"]["events"]] == [e.action for e in sc.events]
    first, last = docs[0].metadata, docs[-1].metadata
    assert first["source"] == "a.txt" and first["ragsel"]["rationales"] == ["R1"]
    assert first["ragsel"]["verdicts"][0]["label"] == "INJECTION"
    assert first["ragsel"]["kept_by"] == ["top_k"] and "notes" not in first["ragsel"]
    assert last["ragsel"]["notes"]  # no doc id/position: said so
    docs[0].metadata["ragsel"]["events"].clear()  # documents own their metadata
    assert to_documents(items)[0].metadata["ragsel"]["events"]


def test_to_nodes_equals_validated_nodes():
    items = selection()
    nodes = to_nodes(items)
    hidden = list(nodes[0].node.excluded_llm_metadata_keys)
    for nws, sc in zip(nodes, items):
        node = nws.node
        rel = (
            {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=sc.chunk.doc_id)}
            if sc.chunk.doc_id
            else {}
        )
        span = sc.chunk.span
        expected = TextNode(
            id_=sc.id,
            text=sc.chunk.text,
            metadata=dict(node.metadata),
            relationships=rel,
            excluded_llm_metadata_keys=hidden,
            excluded_embed_metadata_keys=hidden,
            start_char_idx=span[0] if span else None,
            end_char_idx=span[1] if span else None,
        )
        assert nws == NodeWithScore(node=expected, score=sc.score)
        assert node.hash == expected.hash and node.ref_doc_id == (sc.chunk.doc_id or None)
        assert "ragsel" not in node.get_content(metadata_mode="llm")
    nodes[0].node.excluded_llm_metadata_keys.append("source")  # lists are per node
    assert "source" not in nodes[1].node.excluded_llm_metadata_keys
    assert "source" not in to_nodes(items)[0].node.excluded_llm_metadata_keys


# --- LangChain / LlamaIndex -> ragsel --------------------------------------------------------
def test_foreign_documents_convert_like_the_constructors():
    docs = [
        Document(page_content="one", id="a", metadata={"source": "s.txt", "score": 0.9, "page": 3}),
        Document(page_content="two", metadata={"relevance_score": 0.4}),
        Document(page_content="three"),
        Document(page_content="one", id="a", metadata={"source": "s.txt"}),
    ]  # the same document twice
    cands = from_documents(docs)
    assert cands.ids[0] == "a" and len(cands) == 3
    first = cands.items[0]
    assert first == ScoredChunk(
        Chunk("a", "one", "s.txt", None, None, {"source": "s.txt", "page": 3}),
        0.9,
        "langchain",
        (Event("langchain", "retrieved", "rank 1 from langchain", 0.9),),
    )
    assert cands.items[1].score == 0.4 and cands.items[2].score == pytest.approx(0.5)
    assert "rank-derived" in cands.items[2].events[0].reason
    note = cands.notes[0].data
    assert note["duplicates"] == 1 and note["rank_derived_scores"] == 1
    assert note["without_position"] == 3 and note["renamed_duplicate_ids"] == 0
    # the chunk has its own read-only copy of the metadata
    docs[0].metadata["page"] = 4
    assert cands.items[0].chunk.metadata["page"] == 3


def test_round_trip_restores_everything_a_connector_wrote():
    items = selection()
    back = from_documents(to_documents(items))
    for sc, again in zip(items, back.items):
        assert again.chunk == sc.chunk and again.score == sc.score
        assert again.events[:-1] == sc.events and again.events[-1].stage == "langchain"
        assert again.rationales == sc.rationales and again.verdicts == sc.verdicts
    via_nodes = from_nodes(to_nodes(items))
    assert [c.chunk for c in via_nodes.items] == [sc.chunk for sc in items]
    assert via_nodes.items[0].verdicts == items[0].verdicts


def test_bad_records_name_the_document():
    with pytest.raises(InputError, match="document 2 has int content"):
        candidates_from_records(
            [("ok", {}, "a", None, None, None), (3, {}, "b", None, None, None)], "x"
        )
    with pytest.raises(InputError, match="node 1 .*invalid character span"):
        from_nodes(
            [NodeWithScore(node=TextNode(id_="n", text="t", start_char_idx=5, end_char_idx=2))]
        )
    with pytest.raises(InputError, match="document 1 is a str"):
        from_documents(["just text"])


# --- the overhead benchmark compares like with like ------------------------------------------
def test_adapter_overhead_benchmark_pairs_equal_work():
    from eval.benchmarks.peers import adapter_overhead as ao

    table = ao.cases(3)
    assert set(ao.OURS) < set(table)
    ao.check_same_output(table)  # each adapter returns exactly what its direct run selects
    adapter, direct, _ = table["lc.compress"]
    row = ao.summarise("lc.compress", ao.paired_sync(adapter, direct, 4))
    assert row["ours"] and row["calls"] == 4 and row["cpu_adapter_us"] > 0
    adapter, direct, _ = table["li.aadapter"]
    assert len(ao.paired_async(adapter, direct, 3)) == 3
    broken = dict(table, bad=(lambda: [], table["lc.adapter"][1], False))
    with pytest.raises(SystemExit, match="bad"):
        ao.check_same_output(broken)
