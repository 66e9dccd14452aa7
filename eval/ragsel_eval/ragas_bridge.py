"""ragas metrics for ragsel runs, offline by default.

Non-LLM metrics always run (they need the ``eval`` extra: ragas, rapidfuzz, rouge_score):

- ``non_llm_context_precision`` / ``non_llm_context_recall``: ragas'
  ``NonLLMContextPrecisionWithReference`` / ``NonLLMContextRecall`` (string similarity between
  the selected chunks and the gold passages);
- ``id_context_precision`` / ``id_context_recall``: ``IDBasedContextPrecision/Recall`` on chunk
  ids against the gold chunk ids;
- ``rouge_l`` and ``string_similarity`` (``RougeScore``, ``NonLLMStringSimilarity``) between a
  generated answer and the gold answer, when the pipeline generates one.

LLM-judged metrics (``faithfulness``, ``context_precision``, ``context_recall``,
``answer_relevancy``) run only when a judge is configured: an OpenAI-compatible endpoint
(vLLM, Ollama, llama.cpp server, LM Studio, OpenAI) given as :class:`JudgeConfig` or through
``RAGSEL_JUDGE_BASE_URL`` / ``RAGSEL_JUDGE_MODEL`` / ``RAGSEL_JUDGE_API_KEY``.

A judge that returns nothing usable (NaN, an unparseable answer, an error) leaves that value
*unmeasured*: it is NaN in the per-sample table, counted in ``unmeasured`` with the reason, and
excluded from means — never scored 0. A judge that cannot be reached marks every remaining LLM
value unmeasured (``judge_down``) after the first connection failure, and the non-LLM metrics
are still computed.

>>> bridge = RagasBridge()                                     # doctest: +SKIP
>>> report = bridge.score([RagasSample("q1", "who?", ["ctx"], ["c1"],
...                                    reference_contexts=["ctx"], reference_ids=["c1"])])
>>> report.means["id_context_recall"]                          # doctest: +SKIP
1.0
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ragsel.errors import require
from ragsel_eval.metrics.stats import summarize

NON_LLM_METRICS = (
    "non_llm_context_precision",
    "non_llm_context_recall",
    "id_context_precision",
    "id_context_recall",
    "rouge_l",
    "string_similarity",
)
LLM_METRICS = ("faithfulness", "context_precision", "context_recall", "answer_relevancy")
_CONNECTION_ERRORS = (
    "APIConnectionError",
    "ConnectError",
    "ConnectionRefusedError",
    "APITimeoutError",
    "ConnectTimeout",
    "ConnectionError",
)


@dataclass(frozen=True)
class JudgeConfig:
    """An OpenAI-compatible judge endpoint. ``timeout`` is per request, in seconds."""

    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout: float = 60.0
    max_retries: int = 0

    @classmethod
    def from_env(cls) -> JudgeConfig | None:
        url = os.environ.get("RAGSEL_JUDGE_BASE_URL")
        if not url:
            return None
        return cls(
            url,
            os.environ.get("RAGSEL_JUDGE_MODEL", "judge"),
            os.environ.get("RAGSEL_JUDGE_API_KEY", "not-needed"),
            float(os.environ.get("RAGSEL_JUDGE_TIMEOUT", "60")),
        )


@dataclass
class RagasSample:
    """One query's evidence (and answer) in the shape ragas wants."""

    query_id: str
    user_input: str
    retrieved_contexts: list[str]
    retrieved_ids: list[str] = field(default_factory=list)
    reference_contexts: list[str] = field(default_factory=list)
    reference_ids: list[str] = field(default_factory=list)
    response: str | None = None
    reference: str | None = None  # gold answer


@dataclass
class RagasReport:
    """Per-sample values (NaN = unmeasured), means over measured values, and why values are
    missing: ``unmeasured[metric][reason] = count``."""

    per_sample: dict[str, dict[str, float]]
    summary: dict[str, dict[str, float]]
    unmeasured: dict[str, dict[str, int]]
    judge: str | None
    judge_down: bool = False

    @property
    def means(self) -> dict[str, float]:
        return {m: s["mean"] for m, s in self.summary.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_sample": self.per_sample,
            "summary": self.summary,
            "unmeasured": self.unmeasured,
            "judge": self.judge,
            "judge_down": self.judge_down,
        }


class _MiniLMEmbeddings:
    """ragas ``BaseRagasEmbedding`` over a ragsel embedder (for answer relevancy)."""

    def __new__(cls, embedder: Any):
        from ragas.embeddings.base import BaseRagasEmbedding

        class _Impl(BaseRagasEmbedding):
            def __init__(self, emb: Any) -> None:
                super().__init__()
                self._emb = emb

            def embed_text(self, text: str, **kw: Any) -> list[float]:
                return self._emb.embed([text])[0].tolist()

            async def aembed_text(self, text: str, **kw: Any) -> list[float]:
                return await asyncio.to_thread(self.embed_text, text)

        return _Impl(embedder)


def _is_nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


class RagasBridge:
    """Score :class:`RagasSample`\\ s with ragas (see the module docstring).

    ``metrics`` restricts which metrics run; ``judge`` configures the LLM judge (default: from
    the environment, else none); ``embedder`` is a ragsel embedder for answer relevancy
    (default: ``load_embedder("minilm")`` on first use).
    """

    def __init__(
        self,
        *,
        judge: JudgeConfig | None | str = "env",
        metrics: tuple[str, ...] | None = None,
        threshold: float = 0.5,
        embedder: Any = None,
    ) -> None:
        os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
        self.judge = JudgeConfig.from_env() if judge == "env" else judge
        wanted = metrics or (NON_LLM_METRICS + (LLM_METRICS if self.judge else ()))
        unknown = set(wanted) - set(NON_LLM_METRICS) - set(LLM_METRICS)
        if unknown:
            from ragsel.errors import ConfigError

            raise ConfigError(
                f"unknown ragas metric(s) {sorted(unknown)}; known: "
                f"{', '.join(NON_LLM_METRICS + LLM_METRICS)}"
            )
        self.metrics = tuple(wanted)
        self.threshold = threshold
        self._embedder = embedder
        self._judge_down = False
        self._non_llm: dict[str, Any] | None = None
        self._llm: dict[str, Any] | None = None

    # --- metric objects ---------------------------------------------------------------------
    def _non_llm_metrics(self) -> dict[str, Any]:
        if self._non_llm is None:
            require("ragas", "eval", "the ragas bridge")
            require("rapidfuzz", "eval", "ragas string similarity")
            from ragas.metrics._context_precision import (
                IDBasedContextPrecision,
                NonLLMContextPrecisionWithReference,
            )
            from ragas.metrics._context_recall import IDBasedContextRecall, NonLLMContextRecall
            from ragas.metrics._string import NonLLMStringSimilarity

            objs: dict[str, Any] = {
                "non_llm_context_precision": NonLLMContextPrecisionWithReference(
                    threshold=self.threshold
                ),
                "non_llm_context_recall": NonLLMContextRecall(threshold=self.threshold),
                "id_context_precision": IDBasedContextPrecision(),
                "id_context_recall": IDBasedContextRecall(),
                "string_similarity": NonLLMStringSimilarity(),
            }
            if "rouge_l" in self.metrics:
                require("rouge_score", "eval", "ragas ROUGE")
                from ragas.metrics._rouge_score import RougeScore

                objs["rouge_l"] = RougeScore(rouge_type="rougeL")
            self._non_llm = objs
        return self._non_llm

    def _llm_metrics(self) -> dict[str, Any]:
        if self._llm is None:
            assert self.judge is not None
            openai = require("openai", "eval", "the ragas LLM judge")
            from ragas.llms.base import llm_factory
            from ragas.metrics.collections import (
                AnswerRelevancy,
                ContextPrecisionWithReference,
                ContextRecall,
                Faithfulness,
            )

            client = openai.AsyncOpenAI(
                base_url=self.judge.base_url,
                api_key=self.judge.api_key,
                timeout=self.judge.timeout,
                max_retries=self.judge.max_retries,
            )
            llm = llm_factory(self.judge.model, client=client)
            objs: dict[str, Any] = {
                "faithfulness": Faithfulness(llm=llm),
                "context_precision": ContextPrecisionWithReference(llm=llm),
                "context_recall": ContextRecall(llm=llm),
            }
            if "answer_relevancy" in self.metrics:
                emb = self._embedder
                if emb is None:
                    from ragsel.backends.embedders import load_embedder

                    emb = load_embedder("minilm")
                objs["answer_relevancy"] = AnswerRelevancy(
                    llm=llm, embeddings=_MiniLMEmbeddings(emb)
                )
            self._llm = objs
        return self._llm

    # --- scoring ------------------------------------------------------------------------------
    async def _non_llm_one(self, name: str, s: RagasSample) -> tuple[float, str | None]:
        from ragas.dataset_schema import SingleTurnSample

        m = self._non_llm_metrics()[name]
        if name.startswith("non_llm_context"):
            if not s.reference_contexts:
                return math.nan, "no gold passages"
            if not s.retrieved_contexts:
                return 0.0, None  # nothing selected: no gold recovered, no precision
            sample = SingleTurnSample(
                retrieved_contexts=s.retrieved_contexts, reference_contexts=s.reference_contexts
            )
        elif name.startswith("id_context"):
            if not s.reference_ids:
                return math.nan, "no gold chunk ids"
            if not s.retrieved_ids:
                return 0.0, None
            sample = SingleTurnSample(
                retrieved_context_ids=s.retrieved_ids, reference_context_ids=s.reference_ids
            )
        else:
            if s.response is None:
                return math.nan, "no generated answer"
            if not s.reference:
                return math.nan, "no gold answer"
            sample = SingleTurnSample(response=s.response, reference=s.reference)
        value = await m.single_turn_ascore(sample)
        if _is_nan(value):
            return math.nan, "ragas returned NaN"
        # ragas' AP divides by (hits + 1e-10): 0 hits gives 0, keep it, it is measured
        return float(value), None

    async def _llm_one(self, name: str, s: RagasSample) -> tuple[float, str | None]:
        if self._judge_down:
            return math.nan, "judge unreachable"
        needs_response = name in ("faithfulness", "answer_relevancy")
        if needs_response and not s.response:
            return math.nan, "no generated answer"
        if name in ("context_precision", "context_recall") and not s.reference:
            return math.nan, "no gold answer"
        if not s.retrieved_contexts and name != "answer_relevancy":
            return math.nan, "no context selected"
        m = self._llm_metrics()[name]
        try:
            if name == "faithfulness":
                res = await m.ascore(
                    user_input=s.user_input,
                    response=s.response,
                    retrieved_contexts=s.retrieved_contexts,
                )
            elif name == "answer_relevancy":
                res = await m.ascore(user_input=s.user_input, response=s.response)
            elif name == "context_precision":
                res = await m.ascore(
                    user_input=s.user_input,
                    reference=s.reference,
                    retrieved_contexts=s.retrieved_contexts,
                )
            else:
                res = await m.ascore(
                    user_input=s.user_input,
                    retrieved_contexts=s.retrieved_contexts,
                    reference=s.reference,
                )
        except Exception as exc:  # a judge failure leaves the value unmeasured
            chain, e = [], exc
            while e is not None and len(chain) < 8:
                chain.append(type(e).__name__)
                e = e.__cause__ or e.__context__
            if any(c in _CONNECTION_ERRORS for c in chain):
                self._judge_down = True
                return math.nan, "judge unreachable"
            return math.nan, f"judge error: {type(exc).__name__}"
        value = getattr(res, "value", res)
        if _is_nan(value):
            return math.nan, "judge returned NaN"
        return float(value), None

    async def ascore(self, samples: list[RagasSample]) -> RagasReport:
        per: dict[str, dict[str, float]] = {s.query_id: {} for s in samples}
        why: dict[str, Counter[str]] = defaultdict(Counter)
        for s in samples:
            for name in self.metrics:
                if name in NON_LLM_METRICS:
                    value, reason = await self._non_llm_one(name, s)
                else:
                    value, reason = await self._llm_one(name, s)
                per[s.query_id][name] = value
                if reason:
                    why[name][reason] += 1
        summary = {
            name: summarize([per[s.query_id][name] for s in samples]) for name in self.metrics
        }
        judge = f"{self.judge.model} @ {self.judge.base_url}" if self.judge else None
        return RagasReport(
            per, summary, {k: dict(v) for k, v in why.items()}, judge, self._judge_down
        )

    def score(self, samples: list[RagasSample]) -> RagasReport:
        """Synchronous :meth:`ascore` (not from inside a running event loop)."""
        return asyncio.run(self.ascore(samples))
