"""rationale_selector: pairing, pooled elbow (checked by hand), scope, provenance, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from ragsel.errors import ConfigError, InputError, StageError
from ragsel.pipeline import Pipeline
from ragsel.stage import Stage
from ragsel.stages.select.rationale_selector import RationaleSelector, pair_rationales
from ragsel.testing import FakeEmbedder, make_chunks
from ragsel.types import Candidates, Chunk, Query, Rationale, Rationales


class TableEmbedder:
    """Maps known texts to hand-chosen vectors (normalised): makes every score checkable."""

    def __init__(self, table, name="table"):
        self.name = name
        self.table = {
            k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for k, v in table.items()
        }
        self.texts_embedded = 0

    @property
    def dim(self):
        return len(next(iter(self.table.values())))

    def warm_up(self):
        pass

    def embed(self, texts):
        self.texts_embedded += len(texts)
        return np.stack([self.table[t] for t in texts])


# pooled direction = mean(r1, r2) = (1, 1, 0)/sqrt(2). Pooled scores (hand-computed):
# c0 1.000, c1 0.990, c2 0.272, c3 0.140, c5 0.053, c4 0.000. Gaps 0.010 0.718 0.132 0.087
# 0.053: mean 0.200, std 0.262, z(0.718) = 1.98 > 1 and the first gap's z < 0 -> cut after c1.
# r1 = x is most similar to c5 (0.743 > c0's 0.707); r2 = y to c0 (0.707).
TABLE = {
    "r1": [1, 0, 0],
    "r2": [0, 1, 0],
    "c0": [1, 1, 0],
    "c1": [1, 1, 0.2],
    "c2": [0.2, 0.2, 1],
    "c3": [0.1, 0.1, 1],
    "c4": [0, 0, 1],
    "c5": [1, -0.9, 0],
    "q": [1, 1, 0.1],
}


def cands(names, doc="d"):
    chunks = make_chunks(names, doc)
    return Candidates.retrieved("dense", [(c, 1.0 - i / 10) for i, c in enumerate(chunks)])


def rats(*labels):
    return Rationales(
        tuple(Rationale(lab, label=lab, source="test") for lab in labels), source="test"
    )


def selector(emb=None, **cfg):
    s = RationaleSelector(embedder="table", **cfg)
    s.bind_components({"table": emb or TableEmbedder(TABLE)})
    return s


def test_pooled_elbow_and_pairing_by_hand():
    out = selector().run(
        candidates=cands(["c0", "c1", "c2", "c3", "c4", "c5"]), rationales=rats("r1", "r2")
    )
    assert [sc.chunk.text for sc in out] == ["c0", "c1", "c5"]
    assert [round(sc.score, 3) for sc in out] == [1.0, 0.99, 0.053]
    assert [sc.rationales for sc in out] == [("r2",), (), ("r1",)]
    note = out.note_of("rationale_selector")
    cut = note["cuts"]["all"]
    assert cut["method"] == "z_score" and cut["kept"] == 2 and cut["elbow"] == 1
    assert round(cut["z"], 2) == 1.98
    assert note["pairs"] == {"r1": "d#5", "r2": "d#0"}
    # provenance: the kept event says why, rank and pooled score
    ev = out.items[2].events[-1]
    assert ev.stage == "rationale_selector" and ev.action == "kept"
    assert ev.data["paired_by"] == ["r1"] and ev.data["above_cut"] is False
    assert ev.data["rank"] == 5 and "paired by r1" in ev.reason
    assert out.items[0].events[-1].data["above_cut"] is True
    # every dropped chunk is recorded with the cut
    dropped = {d.id: d.reason for d in out.dropped}
    assert set(dropped) == {"d#2", "d#3", "d#4"}
    assert "below the cut" in dropped["d#2"] and "kept top 2" in dropped["d#2"]


def test_pairing_distinct_vs_converging():
    sim = np.array([[0.9, 0.8, 0.1, 0.1], [0.95, 0.2, 0.1, 0.1], [0.5, 0.48, 0.46, 0.44]])
    assert pair_rationales(sim, distinct=False) == {0: [0, 1, 2]}
    # greedy from the best pair down: r1->c0 (0.95), r0->c1 (0.8), r2->c2 (0.46)
    assert pair_rationales(sim, distinct=True) == {0: [1], 1: [0], 2: [2]}
    # min_pair_z: best-chunk z-scores are r0 1.13, r1 1.72, r2 1.34 -> only r1 pairs at 1.5
    assert pair_rationales(sim, distinct=False, min_pair_z=1.5) == {0: [1]}
    assert pair_rationales(sim, distinct=True, min_pair_z=1.2) == {0: [1], 1: [2]}


def test_distinct_setting_in_the_stage():
    table = dict(TABLE, r1b=[1, 0, 0])
    c = cands(["c0", "c1", "c2", "c3", "c4", "c5"])
    conv = selector(TableEmbedder(table), distinct=False).run(
        candidates=c, rationales=rats("r1", "r1b")
    )
    by = {sc.chunk.text: sc.rationales for sc in conv}
    assert by["c5"] == ("r1", "r1b")
    dist = selector(TableEmbedder(table), distinct=True).run(
        candidates=c, rationales=rats("r1", "r1b")
    )
    by = {sc.chunk.text: sc.rationales for sc in dist}
    assert by["c5"] == ("r1",) and by["c0"] == ("r1b",)


def test_no_pairing_is_the_plain_pooled_elbow():
    out = selector(pairing=False).run(
        candidates=cands(["c0", "c1", "c2", "c3", "c4", "c5"]), rationales=rats("r1", "r2")
    )
    assert [sc.chunk.text for sc in out] == ["c0", "c1"]
    assert all(sc.rationales == () for sc in out)


def test_per_document_scope_cuts_each_document():
    c0 = cands(["c0", "c1", "c2", "c3"], doc="A").items
    c1 = cands(["c4", "c5", "c2", "c0"], doc="B").items
    both = Candidates(c0 + c1)
    out = selector(scope="per_document", pairing=False).run(
        candidates=both, rationales=rats("r1", "r2")
    )
    note = out.note_of("rationale_selector")
    assert set(note["cuts"]) == {"A", "B"}
    docs = {sc.chunk.doc_id for sc in out}
    assert docs == {"A", "B"}  # each document keeps its own best
    assert out.items[0].events[-1].data["document"] in {"A", "B"}
    glob = selector(scope="global", pairing=False).run(candidates=both, rationales=rats("r1", "r2"))
    assert len(glob) <= len(out)


def test_cutoff_none_returns_everything_reranked():
    out = selector(cutoff="none").run(
        candidates=cands(["c4", "c2", "c0", "c1"]), rationales=rats("r1", "r2")
    )
    assert [sc.chunk.text for sc in out] == ["c0", "c1", "c2", "c4"]


def test_empty_candidates_defined_and_noted():
    out = selector().run(candidates=Candidates(), rationales=rats("r1"))
    assert len(out) == 0 and out.note_of("rationale_selector")["empty"] is True


def test_zero_rationales_falls_back_to_query_then_keep_all_then_error():
    c = cands(["c0", "c1", "c2", "c3", "c4"])
    out = selector().run(candidates=c, rationales=Rationales(), query=Query("q"))
    note = out.note_of("rationale_selector")
    assert note["no_rationales"] is True and "query" in note["action"]
    assert len(out) >= 1
    kept = selector(on_no_rationales="keep_all").run(
        candidates=c, rationales=Rationales(), query=Query("q")
    )
    assert kept.ids == c.ids and kept.note_of("rationale_selector")["no_rationales"]
    with pytest.raises(StageError, match="no rationales"):
        selector(on_no_rationales="error").run(candidates=c, rationales=Rationales())


def test_dimension_mismatch_is_a_clear_error():
    s = RationaleSelector(embedder="a", rationale_embedder="b")
    s.bind_components({"a": FakeEmbedder(dim=32), "b": FakeEmbedder(dim=16)})
    with pytest.raises(StageError, match="16 dimensions .* 32") as ei:
        s.run(candidates=cands(["x y", "z"]), rationales=rats("x"))
    assert isinstance(ei.value.__cause__, InputError)


def test_chunk_vectors_are_cached_per_chunk_id():
    emb = TableEmbedder(TABLE)
    s = selector(emb)
    c = cands(["c0", "c1", "c2", "c3"])
    s.run(candidates=c, rationales=rats("r1"))
    first = emb.texts_embedded
    s.run(candidates=c, rationales=rats("r2"))
    assert emb.texts_embedded - first == 1  # only the new rationale was embedded


def test_config_errors_and_round_trip():
    with pytest.raises(ConfigError, match="model"):
        RationaleSelector(cutoff="learned")
    with pytest.raises(ConfigError, match="only used"):
        RationaleSelector(model="x.npz")
    with pytest.raises(ConfigError, match="scope: global"):
        RationaleSelector(cutoff="learned", model="x.npz", scope="per_document")
    s = RationaleSelector(distinct=False, scope="per_document", min_pair_z=2.0)
    assert Stage.from_dict(s.to_dict()) == s


def test_selector_takes_rationales_from_any_source_in_a_pipeline():
    from ragsel.stages.rationale.subphrases import SubphraseRationales
    from ragsel.testing import FakeRetriever

    texts = [
        "Scott Derrickson is an American director.",
        "Ed Wood was an American filmmaker.",
        "The weather in Paris is mild.",
        "Bananas are yellow fruit.",
    ]
    p = Pipeline.linear(
        [
            ("ret", FakeRetriever(texts=texts)),
            ("why", SubphraseRationales()),
            ("sel", RationaleSelector(embedder="bow")),
        ]
    )
    p.stages["sel"].bind_components({"bow": FakeEmbedder(dim=256)})
    res = p.run("Were Scott Derrickson and Ed Wood of the same nationality?")
    sel = res.selection
    by = {sc.chunk.text: sc.rationales for sc in sel.chunks}
    assert "entity1" in by[texts[0]] and "entity2" in by[texts[1]]
    assert sel.rationales is not None and sel.rationales.source == "subphrase"


@pytest.mark.slow
def test_real_minilm_entities_pair_their_paragraphs(minilm_embedder):
    from ragsel.stages.rationale.subphrases import SubphraseRationales

    paras = [
        "Arthur's Magazine (1844-1846) was an American literary periodical published "
        "in Philadelphia in the 19th century.",
        "First for Women is a woman's magazine published by Bauer Media Group in the USA. "
        "The magazine was started in 1989.",
        "Radio City is India's first private FM radio station.",
        "The Oberoi family is an Indian family that is famous for its involvement in hotels.",
        "Echosmith is an American indie pop band formed in 2009.",
    ]
    q = Query("Which magazine was started first, Arthur's Magazine or First for Women?")
    chunks = [Chunk(f"p{i}", t, doc_id=f"p{i}", position=0) for i, t in enumerate(paras)]
    cand = Candidates.retrieved("list", [(c, 0.0) for c in chunks])
    r = SubphraseRationales().run(query=q)
    s = RationaleSelector()
    s.bind_components({"minilm": minilm_embedder})
    out = s.run(candidates=cand, rationales=r, query=q)
    assert {"p0", "p1"} <= set(out.ids)
    by = {sc.chunk.id: sc.rationales for sc in out}
    assert by["p0"] and by["p1"]  # each gold paragraph was chosen by a rationale
    s2 = RationaleSelector(distinct=False)
    s2.bind_components({"minilm": minilm_embedder})
    by = {sc.chunk.id: sc.rationales for sc in s2.run(candidates=cand, rationales=r, query=q)}
    assert "entity1" in by["p0"] and "entity2" in by["p1"]


# --- the shipped offline pipeline ----------------------------------------------------------
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
METEORA_LOCAL = REPO / "pipelines" / "meteora-local.yaml"


def test_meteora_local_yaml_validates_without_models():
    from ragsel.spec import check_pipeline, load_pipeline

    assert check_pipeline(METEORA_LOCAL) == []
    pipe = load_pipeline(METEORA_LOCAL, strict_env=False)
    types = [s.type_name for s in pipe.stages.values()]
    for t in (
        "bm25_retriever",
        "dense_retriever",
        "fusion",
        "subphrase_rationales",
        "rationale_selector",
        "neighbor_expansion",
        "injection_guard",
        "poison_cluster_guard",
    ):
        assert t in types
    assert pipe.output_stage() == "poison"


@pytest.mark.slow
def test_meteora_local_runs_offline_end_to_end(tmp_path, minilm_embedder):
    from ragsel.index import LocalIndex
    from ragsel.spec import load_pipeline

    path = tmp_path / "index"
    with LocalIndex.create(path) as ix:
        ix.add_corpus(REPO / "tests" / "fixtures" / "corpus_small")
    pipe = load_pipeline(METEORA_LOCAL, variables={"RAGSEL_INDEX": str(path)})
    res = pipe.run("Who may assign the lease without the landlord's consent?")
    sel = res.selection
    assert sel.chunks, "an offline run must select something"
    note = next(n for n in sel.notes if n.stage == "select")
    assert note.data["n_candidates"] >= len([c for c in sel.chunks if not c.expanded_from])
    assert sel.rationales is not None and sel.rationales.source == "subphrase"
    assert any(sc.rationales for sc in sel.chunks) or note.data["n_paired"] == 0
    assert [t.stage for t in res.trace.stages][-2:] == ["injection", "poison"]
