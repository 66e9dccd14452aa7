"""The shipped LLM pipelines end to end: a real local index (chromadb + bm25s + MiniLM), the
real OpenAI-compatible HTTP client talking to the scripted server on 127.0.0.1
(tests/llm_server.py), and the pipeline YAML files as shipped."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from llm_server import Ok, ScriptedLLMServer, Status
from typer.testing import CliRunner

from ragsel.backends.llm import LLMSpec
from ragsel.errors import PipelineSpecError, StageError
from ragsel.spec import check_pipeline, load_pipeline
from ragsel.stages.verify.llm_verifier import LLMVerifier
from ragsel.testing import build_tiny_cross_encoder, make_chunks
from ragsel.types import Candidates, Query

REPO = Path(__file__).resolve().parents[1]
METEORA = REPO / "pipelines" / "meteora.yaml"
RERANK = REPO / "pipelines" / "rerank-topk.yaml"
CORPUS = Path(__file__).parent / "fixtures" / "corpus_small"
QUERY = "Can the tenant assign the lease or sublet without consent?"
LLM_ENV = ("RAGSEL_LLM_BASE_URL", "RAGSEL_LLM_MODEL", "RAGSEL_LLM_API_KEY")

RATIONALES = "\n".join(
    [
        "Here are the strategies:",
        '<rationale label="assignment clause">Look for a clause on assigning the lease or '
        "subletting.<flag>Flag passages that require the landlord's consent.</flag></rationale>",
        '<rationale label="consent">Look for conditions about the landlord consenting.'
        "<flag>Flag passages about rent payments.</flag></rationale>",
        '<rationale label="termination">Look for what ends the tenancy.</rationale>',
    ]
)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm_embedder):
    from ragsel.index import LocalIndex
    from ragsel.ingest import ChunkerConfig

    root = tmp_path_factory.mktemp("llm-e2e")
    shutil.copytree(CORPUS, root / "corpus")
    with LocalIndex.create(root / "index", chunker=ChunkerConfig("words", 20, 4)) as ix:
        ix.add_corpus(root / "corpus")
    return root / "index"


@pytest.fixture()
def no_llm_env(monkeypatch):
    for var in LLM_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAGSEL_LLM_CACHE", "0")
    # load_llm keys shared instances by the resolved endpoint, so no cache clearing is needed


def _prompt(body) -> str:
    return "\n".join(m["content"] for m in body.get("messages", []))


def meteora_responder(body):
    """Plays the model: rationales, verdicts (flags the consent clause by instruction) and an
    answer citing the first passage it was given."""
    p = _prompt(body)
    if "Write exactly" in p:
        return Ok(RATIONALES)
    if "Accepted passages:" in p:
        ok = {"flagged": False, "confidence": 0.9, "reason": "no conflict"}
        return Ok(json.dumps({"CONTRADICTION": ok}))
    if "Checks:" in p:
        passage = p.split("Passage:")[1].split("Checks:")[0]
        ok = {"flagged": False, "confidence": 0.9, "reason": "fine"}
        if "consent" in passage:
            flag = {
                "flagged": True,
                "confidence": 0.97,
                "reason": "requires the landlord's consent",
                "evidence": "consent",
            }
            return Ok(json.dumps({"INSTRUCTION": flag, "FACTUAL": ok}))
        return Ok(json.dumps({"INSTRUCTION": ok, "FACTUAL": ok}))
    if "<context>" in p:
        ids = re.findall(r'<passage id="([^"]+)">', p.split("<context>\n", 1)[1])
        return Ok(f"The lease covers this [{ids[0]}] and also [not-an-id].")
    return Ok("unexpected prompt")


def test_shipped_pipelines_validate_without_model_or_env(no_llm_env, monkeypatch):
    monkeypatch.delenv("RAGSEL_CROSS_ENCODER", raising=False)
    assert check_pipeline(METEORA) == [] and check_pipeline(RERANK) == []
    from ragsel.cli.main import app

    res = CliRunner().invoke(app, ["validate", str(METEORA), str(RERANK)])
    assert res.exit_code == 0, res.output


def test_meteora_without_endpoint_is_one_error_naming_the_variable(no_llm_env, index_dir):
    pipe = load_pipeline(METEORA, variables={"RAGSEL_INDEX": str(index_dir)})
    with pytest.raises(StageError) as err:
        pipe.run(QUERY)
    msg = str(err.value)
    assert "RAGSEL_LLM_BASE_URL" in msg and "rationales" in msg and err.value.exit_code == 1
    from ragsel.cli.main import app

    res = CliRunner().invoke(app, ["run", str(METEORA), "--index", str(index_dir), "-q", QUERY])
    assert res.exit_code == 1 and "RAGSEL_LLM_BASE_URL" in res.output
    assert res.output.count("RAGSEL_LLM_BASE_URL") == 1


def test_rerank_topk_without_cross_encoder_names_the_variable(no_llm_env, index_dir, monkeypatch):
    monkeypatch.delenv("RAGSEL_CROSS_ENCODER", raising=False)
    with pytest.raises(PipelineSpecError) as err:
        load_pipeline(RERANK, variables={"RAGSEL_INDEX": str(index_dir)})
    assert len(err.value.problems) == 1 and "RAGSEL_CROSS_ENCODER" in str(err.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_meteora_end_to_end_over_http(no_llm_env, index_dir, monkeypatch, mode):
    with ScriptedLLMServer() as srv:
        srv.responder = meteora_responder
        monkeypatch.setenv("RAGSEL_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("RAGSEL_LLM_MODEL", "scripted-model")
        pipe = load_pipeline(METEORA, variables={"RAGSEL_INDEX": str(index_dir)})
        res = pipe.run(QUERY) if mode == "sync" else await pipe.arun(QUERY)
        sel = res.selection
        # rationales came from the LLM over HTTP and were parsed
        assert [r.label for r in sel.rationales] == ["assignment clause", "consent", "termination"]
        assert sel.rationales.notes["problems"][0] == "asked for 8 rationales, got 3"
        # the verifier dropped the consent clause, with its verdict in the provenance
        verify_drops = [d for d in sel.dropped if d.stage == "verify"]
        assert verify_drops, "the scripted verifier flags the consent clause"
        for d in verify_drops:
            assert "consent" in d.item.chunk.text
            assert d.verdict.label == "INSTRUCTION" and d.verdict.confidence == 0.97
        assert sel.chunks and all("consent" not in sc.chunk.text for sc in sel.chunks)
        assert all(sc.verdicts and sc.verdicts[0].stage == "verify" for sc in sel.chunks)
        # the answer cites a real selected chunk; the made-up id is reported, not kept
        assert sel.answer.citations == (sel.chunks[0].id,)
        assert sel.answer.metadata["invalid_citations"] == ["not-an-id"]
        assert sel.answer.model == "scripted-model"
        # every request was a real HTTP call; verifier calls asked for JSON
        note = dict(sel.notes[[n.stage for n in sel.notes].index("verify")].data)
        n_verify = note["llm_calls"]
        assert len(srv.requests) == 1 + n_verify + 1
        assert all(r.body["model"] == "scripted-model" for r in srv.requests)
        # the selector read the candidates' vectors from the index: nothing re-embedded
        sel_note = dict(sel.notes[[n.stage for n in sel.notes].index("select")].data)
        assert sel_note["vectors"]["embedded"] == 0 and sel_note["vectors"]["index"] > 0
        data = sel.to_dict()
        assert data["dropped"] and json.dumps(data)
        assert data["rationale_notes"]["parsed"] == 3 and data["rationale_notes"]["source"] == "llm"


def _http_verifier(srv, **cfg) -> LLMVerifier:
    spec = LLMSpec(
        backend="openai",
        base_url=srv.base_url,
        model="m",
        max_retries=1,
        backoff_initial=0.01,
        backoff_max=0.02,
        timeout=5,
        cache=False,
    )
    return LLMVerifier(llm=spec, checks=["factual"], **cfg)


def _cands():
    return Candidates.retrieved("r", [(c, 1.0) for c in make_chunks(["The sky is blue."])])


def test_verifier_over_http_llm_down_is_a_stage_error_or_kept_with_fail_open(no_llm_env):
    with ScriptedLLMServer() as srv:
        srv.script(Status(500), Status(500))
        with pytest.raises(StageError, match="llm_verifier"):
            _http_verifier(srv).run(candidates=_cands(), query=Query("sky?"))
        assert len(srv.requests) == 2  # one try + one retry
        srv.script(Status(503), Status(503))
        out = _http_verifier(srv, fail_open=True).run(candidates=_cands(), query=Query("sky?"))
        assert out.ids == ["doc#0"] and out.items[0].verdicts[0].label == "BACKEND_ERROR"


def test_verifier_over_http_schema_kept_violated_fails_closed(no_llm_env):
    with ScriptedLLMServer() as srv:
        srv.script(Ok("I think it is fine."), Ok("Still not JSON, sorry."))
        out = _http_verifier(srv).run(candidates=_cands(), query=Query("sky?"))
        assert out.ids == [] and out.dropped[0].verdict.label == "PARSE_ERROR"
        assert len(srv.requests) == 2  # the answer and one repair retry


def test_rerank_topk_end_to_end_with_a_tiny_cross_encoder(no_llm_env, index_dir, tmp_path):
    """Runs the shipped YAML with a tiny *randomly initialised* cross-encoder (no trained one
    ships offline): checks the plumbing, not the ranking quality."""
    pytest.importorskip("transformers")
    model = build_tiny_cross_encoder(tmp_path / "ce")
    pipe = load_pipeline(
        RERANK, variables={"RAGSEL_INDEX": str(index_dir), "RAGSEL_CROSS_ENCODER": str(model)}
    )
    sel = pipe.run(QUERY).selection
    assert len(sel.chunks) == 5
    assert all(sc.stage == "rerank" for sc in sel.chunks)
    assert [sc.score for sc in sel.chunks] == sorted((sc.score for sc in sel.chunks), reverse=True)
    assert any(d.stage == "top" for d in sel.dropped)


def test_meteora_yaml_and_readme_say_the_llm_cache_is_on_and_how_to_turn_it_off():
    text = METEORA.read_text()
    readme = (METEORA.parent.parent / "README.md").read_text()
    for doc in (text, readme):
        assert "RAGSEL_LLM_CACHE=0" in doc and "cache: false" in doc and "0.7" in doc


def test_cli_run_prints_llm_retries_to_stderr(no_llm_env, index_dir, monkeypatch):
    from ragsel.cli.main import app

    with ScriptedLLMServer() as srv:
        srv.script(Status(503))
        srv.responder = meteora_responder
        monkeypatch.setenv("RAGSEL_LLM_BASE_URL", srv.base_url)
        monkeypatch.setenv("RAGSEL_LLM_MODEL", "scripted-model")
        res = CliRunner().invoke(app, ["run", str(METEORA), "--index", str(index_dir), "-q", QUERY])
    assert res.exit_code == 0, res.output
    assert "[openai:scripted-model] retry 1 in" in res.stderr and "HTTP 503" in res.stderr
