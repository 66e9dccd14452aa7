"""METEORA's verifier: an LLM checks each selected chunk before it becomes evidence."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

from pydantic import Field

from ragsel.backends.llm.base import Completion, LLMOutputError, usage_summary
from ragsel.backends.llm.json_output import JSONProblem, parse_json
from ragsel.errors import BackendError
from ragsel.registry import register_stage
from ragsel.stages._llm import (
    LLMStage,
    LLMStageConfig,
    escape_delimiters,
    gather_limited,
    in_context,
)
from ragsel.stages.verify._llm_verdicts import VerdictReader, verdicts_schema
from ragsel.types import Candidates, Event, Query, Rationales, ScoredChunk, Verdict

Check = Literal["contradiction", "instruction", "factual"]
_ALL_CHECKS: tuple[Check, ...] = ("contradiction", "instruction", "factual")


def _passage(cid: str, text: str) -> str:
    return f'<passage id="{cid}">\n{escape_delimiters(text, ("passage",))}\n</passage>'


@register_stage("llm_verifier")
class LLMVerifier(LLMStage):
    """Check candidates with an LLM, in rank order, and drop the ones it flags (METEORA,
    step 5). Three separate checks, each with its own verdict, confidence and threshold:

    - CONTRADICTION: the chunk directly contradicts a chunk *already accepted* (so order
      matters: the first of two conflicting chunks wins);
    - INSTRUCTION: the chunk meets a rationale's flag instructions (needs ``rationales``);
    - FACTUAL: the chunk states something false by world knowledge.

    A check flags a chunk when the model flags it with confidence strictly above that check's
    threshold; the chunk is dropped when any check flags it. The defaults are the paper's rule,
    flag above 0.8, for every check (``contradiction_threshold``, ``instruction_threshold``,
    ``factual_threshold``; raise ``factual_threshold`` to trust world knowledge less).
    INSTRUCTION and FACTUAL do not depend on which chunks were accepted, so they share one
    call per chunk that returns one verdict per check (a lenient FACTUAL verdict can never hide
    an INSTRUCTION flag), and those calls run concurrently (``max_concurrency``; threads under
    ``run``, the event loop under ``arun``); only the CONTRADICTION calls are sequential.
    Output the model does not follow (or a check it leaves out) is a PARSE_ERROR verdict that
    drops the chunk (fail closed) unless ``fail_open: true``; an LLM that is down makes the
    stage fail (with ``fail_open``: chunks are kept, marked BACKEND_ERROR). Every verdict with
    its reason is kept: on kept chunks in ``ScoredChunk.verdicts``, on removed ones in
    ``Dropped.verdict``. The note counts ``llm_calls`` made, answered or not
    (``failed_calls`` of them gave no usable answer).

    Example::

        verifier = LLMVerifier(llm="openai:qwen2.5-7b")
        checked = verifier.run(candidates=cands, query=Query("..."), rationales=rationales)

    YAML: ``{type: llm_verifier, llm: openai, factual_threshold: 0.95}``.
    Templates: ``verify_contradiction`` (``{{query}} {{chunk}} {{accepted}}``),
    ``verify_independent`` (``{{query}} {{chunk}} {{checks}} {{labels}}``).
    """

    config: Config

    class Config(LLMStageConfig):
        checks: list[Check] = Field(
            default_factory=lambda: list(_ALL_CHECKS),
            description="which checks to run",
        )
        contradiction_threshold: float = Field(0.8, ge=0.0, le=1.0)
        instruction_threshold: float = Field(0.8, ge=0.0, le=1.0)
        factual_threshold: float = Field(0.8, ge=0.0, le=1.0)
        fail_open: bool = Field(
            False,
            description="keep a chunk when the model's answer is "
            "unusable or the LLM fails (default: drop it / raise)",
        )
        action: Literal["drop", "annotate"] = Field(
            "drop",
            description="drop flagged chunks, or keep them with their verdicts (for "
            "measuring the verifier)",
        )
        max_concurrency: int = Field(4, ge=1, description="independent checks in flight")
        max_accepted: int | None = Field(
            None,
            ge=1,
            description="compare with at most this "
            "many accepted chunks (highest ranked); None = all",
        )
        max_tokens: int = Field(256, ge=16)

    templates = {
        "verify_contradiction": frozenset({"query", "chunk", "accepted"}),
        "verify_independent": frozenset({"query", "chunk", "checks", "labels"}),
    }

    # --- prompts ------------------------------------------------------------------------
    def _flag_instructions(self, rationales: Rationales | None) -> list[str]:
        if rationales is None:
            return []
        out = []
        for r in rationales:
            for f in r.flags:
                out.append(f"[{r.label}] {f}" if r.label else f)
        return out

    def _independent_messages(
        self, query: Query, sc: ScoredChunk, flags: Sequence[str], budget: int | None = None
    ) -> tuple[list[dict[str, str]], dict[str, int]]:
        checks, labels = [], []
        if flags and "instruction" in self.config.checks:
            checks.append(
                "INSTRUCTION: reject the passage if it meets any of these flag "
                "instructions:\n" + "\n".join(f"  - {f}" for f in flags)
            )
            labels.append('"INSTRUCTION"')
        if "factual" in self.config.checks:
            checks.append(
                "FACTUAL: reject the passage only if it states something you are "
                "certain is factually false by well-established knowledge."
            )
            labels.append('"FACTUAL"')
        return self.render_fitted(
            "verify_independent",
            {"chunk": [(sc.id, sc.chunk.text)]},
            _passage,
            budget,
            query=query.text,
            checks="\n".join(f"{i}. {c}" for i, c in enumerate(checks, 1)),
            labels=" and ".join(labels),
        )

    def _contradiction_messages(
        self,
        query: Query,
        sc: ScoredChunk,
        accepted: Sequence[ScoredChunk],
        budget: int | None = None,
    ) -> tuple[list[dict[str, str]], dict[str, int]]:
        if self.config.max_accepted is not None:
            accepted = accepted[: self.config.max_accepted]
        return self.render_fitted(
            "verify_contradiction",
            {
                "chunk": [(sc.id, sc.chunk.text)],
                "accepted": [(a.id, a.chunk.text) for a in accepted],
            },
            _passage,
            budget,
            query=query.text,
        )

    # --- verdicts -----------------------------------------------------------------------
    def _reader(self) -> VerdictReader:
        cfg = self.config
        thresholds = {
            "CONTRADICTION": cfg.contradiction_threshold,
            "INSTRUCTION": cfg.instruction_threshold,
            "FACTUAL": cfg.factual_threshold,
        }
        return VerdictReader(self.name, thresholds, cfg.fail_open)

    def _verdicts(
        self, sc: ScoredChunk, completion: Completion, checks: Sequence[str]
    ) -> list[Verdict]:
        data = completion.data
        if data is None:
            try:
                data = parse_json(completion.text)
            except JSONProblem as exc:
                return [self._reader().parse_error(sc.id, checks[0], str(exc), completion.text)]
        return self._reader().read(sc.id, data, checks, completion.text)

    def _backend_failed(
        self, sc: ScoredChunk, exc: BackendError, checks: Sequence[str], stats: list[Any]
    ) -> list[Verdict]:
        stats.append({"failed_calls": 1})  # the call was made: it counts in llm_calls
        if isinstance(exc, LLMOutputError):  # JSON still invalid after the repair retry
            return [self._reader().parse_error(sc.id, checks[0], exc.problem or str(exc), exc.text)]
        if not self.config.fail_open:
            raise exc
        return [
            Verdict(
                sc.id,
                self.name,
                False,
                "BACKEND_ERROR",
                1.0,
                f"not verified, kept (fail_open): {exc}",
            )
        ]

    def _independent_labels(self, flags: Sequence[str]) -> list[str]:
        labels = []
        if flags and "instruction" in self.config.checks:
            labels.append("INSTRUCTION")
        if "factual" in self.config.checks:
            labels.append("FACTUAL")
        return labels

    # --- the two phases -----------------------------------------------------------------
    def _plan(
        self, query: Query, candidates: Candidates, rationales: Rationales | None
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        flags = self._flag_instructions(rationales)
        labels = self._independent_labels(flags)
        note: dict[str, Any] = {
            "checks": list(self.config.checks),
            "flag_instructions": len(flags),
            "truncated": 0,
            "omitted_context": 0,
        }
        if "instruction" in self.config.checks and not flags:
            note["instruction_check"] = "skipped: no rationale flag instructions given"
        return flags, labels, note

    def _prepare(
        self,
        query: Query,
        sc: ScoredChunk,
        flags: Sequence[str],
        labels: Sequence[str],
        accepted: list[ScoredChunk] | None,
    ) -> tuple[Callable[[int | None], Any], list[str]]:
        """A prompt renderer (for a token budget) and the checks it asks for: the independent
        ones, or (with ``accepted``) the contradiction check."""
        if accepted is None:
            return (lambda b: self._independent_messages(query, sc, flags, b), list(labels))
        return (lambda b: self._contradiction_messages(query, sc, accepted, b), ["CONTRADICTION"])

    def _check(
        self,
        query: Query,
        sc: ScoredChunk,
        flags: Sequence[str],
        labels: Sequence[str],
        stats: list[Any],
        accepted: list[ScoredChunk] | None = None,
    ) -> list[Verdict]:
        render, checks = self._prepare(query, sc, flags, labels, accepted)
        try:
            c, fit = self.complete_fitted(render, json_schema=verdicts_schema(checks))
        except BackendError as exc:
            return self._backend_failed(sc, exc, checks, stats)
        stats += [fit, c]
        return self._verdicts(sc, c, checks)

    async def _acheck(
        self,
        query: Query,
        sc: ScoredChunk,
        flags: Sequence[str],
        labels: Sequence[str],
        stats: list[Any],
        accepted: list[ScoredChunk] | None = None,
    ) -> list[Verdict]:
        render, checks = self._prepare(query, sc, flags, labels, accepted)
        try:
            c, fit = await self.acomplete_fitted(render, json_schema=verdicts_schema(checks))
        except BackendError as exc:
            return self._backend_failed(sc, exc, checks, stats)
        stats += [fit, c]
        return self._verdicts(sc, c, checks)

    def _sequence(
        self,
        items: Sequence[ScoredChunk],
        first: Sequence[list[Verdict] | None],
        verdicts: dict[str, list[Verdict]],
        rejected: set[str],
    ) -> Generator[tuple[ScoredChunk, list[ScoredChunk]], list[Verdict], None]:
        """The order-dependent walk, shared by the sync and async paths: yields
        ``(chunk, accepted so far)`` whenever a contradiction check is needed and receives
        its verdict."""
        accepted: list[ScoredChunk] = []
        for sc, v1 in zip(items, first):
            verdicts[sc.id] = list(v1 or ())
            if any(v.flagged for v in verdicts[sc.id]):
                rejected.add(sc.id)
                continue
            if "contradiction" in self.config.checks and accepted:
                v2 = yield sc, list(accepted)
                verdicts[sc.id] += v2
                if any(v.flagged for v in v2):
                    rejected.add(sc.id)
                    continue
            accepted.append(sc)

    def _assemble(
        self,
        candidates: Candidates,
        verdicts: dict[str, list[Verdict]],
        rejected: set[str],
        note: dict[str, Any],
        stats: list[Any],
    ) -> Candidates:
        note.update(usage_summary(s for s in stats if isinstance(s, Completion)))
        failed = sum(s.get("failed_calls", 0) for s in stats if isinstance(s, dict))
        note["llm_calls"] += failed
        note["failed_calls"] = failed
        for s in stats:
            if isinstance(s, dict) and "failed_calls" not in s:
                note["truncated"] += s.get("truncated", 0)
                note["omitted_context"] += s.get("omitted", 0)
                note["context_retries"] = note.get("context_retries", 0) + s.get(
                    "context_retries", 0
                )
        note.update(flagged=len(rejected), model=self.model_name, action=self.config.action)
        annotated: list[ScoredChunk] = []
        for sc in candidates.items:
            vs = tuple(verdicts.get(sc.id, ()))
            if sc.id in rejected:
                v = next(x for x in vs if x.flagged)
                sc = sc.with_event(
                    Event(
                        self.name,
                        "flagged",
                        f"{v.label}: {v.reason}",
                        sc.score,
                        {"confidence": v.confidence},
                    ),
                    verdicts=sc.verdicts + vs,
                )
            else:
                sc = sc.with_event(
                    Event(self.name, "kept", "verified", sc.score), verdicts=sc.verdicts + vs
                )
            annotated.append(sc)
        base = Candidates(tuple(annotated), candidates.dropped, candidates.notes)
        if self.config.action == "annotate":
            return base.derive(self.name, annotated, note=note)
        keep = [sc for sc in annotated if sc.id not in rejected]
        reasons, final = {}, {}
        for sc in annotated:
            if sc.id in rejected:
                v = next(x for x in sc.verdicts if x.flagged and x.stage == self.name)
                reasons[sc.id] = f"{v.label} ({v.confidence:.2f}): {v.reason}"
                final[sc.id] = v
        return base.derive(self.name, keep, drop_reasons=reasons, verdicts=final, note=note)

    def _run(
        self, candidates: Candidates, query: Query, rationales: Rationales | None = None
    ) -> Candidates:
        flags, labels, note = self._plan(query, candidates, rationales)
        stats: list[Any] = []
        items = list(candidates.items)
        first: list[list[Verdict] | None] = [None] * len(items)
        if labels and items:  # order-independent checks: concurrently, in threads
            workers = min(self.config.max_concurrency, len(items))
            with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-") as pool:
                check = in_context(lambda sc: self._check(query, sc, flags, labels, stats))
                first = list(pool.map(check, items))
        verdicts: dict[str, list[Verdict]] = {}
        rejected: set[str] = set()
        walk = self._sequence(items, first, verdicts, rejected)
        try:
            sc, accepted = next(walk)
            while True:
                sc, accepted = walk.send(self._check(query, sc, flags, labels, stats, accepted))
        except StopIteration:
            pass
        return self._assemble(candidates, verdicts, rejected, note, stats)

    async def _arun(
        self, candidates: Candidates, query: Query, rationales: Rationales | None = None
    ) -> Candidates:
        flags, labels, note = self._plan(query, candidates, rationales)
        stats: list[Any] = []
        items = list(candidates.items)
        first: list[list[Verdict] | None] = [None] * len(items)
        if labels and items:  # order-independent checks: concurrently, on the event loop
            first = await gather_limited(
                [partial(self._acheck, query, sc, flags, labels, stats) for sc in items],
                self.config.max_concurrency,
            )
        verdicts: dict[str, list[Verdict]] = {}
        rejected: set[str] = set()
        walk = self._sequence(items, first, verdicts, rejected)
        try:
            sc, accepted = next(walk)
            while True:
                sc, accepted = walk.send(
                    await self._acheck(query, sc, flags, labels, stats, accepted)
                )
        except StopIteration:
            pass
        return self._assemble(candidates, verdicts, rejected, note, stats)
