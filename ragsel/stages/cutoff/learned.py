"""Learned ranked-list truncation (in the spirit of Choppy, SIGIR 2020, and AttnCut, AAAI 2021).

A small model (GBDT or logistic regression) predicts, for every chunk of a candidate list, the
probability that it is relevant, from features of the list itself: the current score and its
gaps and z-scores, each retriever's score, rank and reciprocal rank (read from the chunks'
"retrieved" events), how many retrievers agree, the chunk's position in its document, the
scores of its document neighbours and of its document's best chunk, its length, whether a
rationale paired it, where the elbow rule would cut; and, when fitted with the queries (the
default of ``ragsel fit`` for this stage), how the chunk covers the query's terms (IDF-weighted
within the list, whole chunk and best window), the query's rarest term and bigrams, and its
document title (named in the query, or in the top chunks of other documents). See
``_learned_features``; everything is normalised within the query's list. With corpus priors
(default) also what the labelled queries found in this corpus (``_learned_priors``).
Probabilities are Platt-scaled on out-of-fold predictions (the expected-F1 cut reads them).

At run time the stage may first re-rank the list by that probability (``order:
probability``), then keeps the prefix that maximises the exact expected F1 (``ef1``) or an
approximate expected F-beta (``f1``), the shortest prefix expected to reach
``target_recall``, everything up to the last chunk above a probability ``threshold``, or the
``k`` most probable (``top_k``); by default (``auto``) the order and rule chosen when the model
was fitted: re-rank and cut at the exact expected F1 (:data:`DEFAULT_RULE`), unless another
rule beat it by more than one standard error on out-of-fold predictions over the training
queries (two 3-fold splits averaged; a few dozen queries make the grid's best mostly noise).

**The shipped general model** (``model: general``) needs no labels and no fitting: it reads
only features that transfer between corpora (``_general_features``: list shape, retriever
agreement, query-performance predictors, query-term coverage; no retriever names, no corpus
priors) and was fitted on several public datasets (``eval/benchmarks/studies/selection_lodo.py``,
which also measures it leave-one-dataset-out). It runs in any pipeline, scores the first 30
candidates (its ``max_rank``; the rest are dropped as beyond its horizon), and is the cut of
``pipelines/local.yaml``.

The model is fitted with ``ragsel fit PIPELINE --dataset NAME --out MODEL`` (or
:func:`fit_cutoff_model`) and stored as one ``.npz`` file holding plain arrays (no pickle, so
loading a model file never runs code) plus a JSON header: ``feature_version``, the retriever
stage names the features use, the hash of the pipeline stages upstream of the cutoff, and
training facts. A file from another feature version or another pipeline is refused with a
clear error; fitting on fewer than :data:`MIN_QUERIES` labelled queries is refused too.
Pure numpy at run time (``_learned_model``); scikit-learn only to fit (``_learned_fit``).
A ``max_tokens`` budget stops the cut before the chunk that would exceed it (see ``_apply``).

**Elbow for one-answer queries** (``elbow_below: T``): the model's expected number of relevant
candidates (the sum of its calibrated probabilities over the list) decides the rule. Below
``T`` the list is cut where ``elbow_cutoff`` would cut it (the list as ranked, by score;
``z_threshold`` 1.0, at most :data:`ELBOW_MAX_K` = 10 and at most ``max_k``, at least
``min_k``: the settings of local-elbow.yaml); otherwise the model's cut. Meant for a model
that over-keeps when one chunk answers (the elbow under-keeps when many do); for the shipped
general model no ``T`` chosen on held-out datasets helped (``selection_lodo_switch.py``), so
it is off by default. The trace note records ``expected_relevant``,
``elbow_below`` and the rule used (``rule: elbow`` or ``rule: model``).
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragsel.registry import register_stage
from ragsel.stage import Stage
from ragsel.stages.cutoff._apply import ClampConfig, token_budget
from ragsel.stages.cutoff._curve import as_scores, clamp, elbow_index
from ragsel.stages.cutoff._learned_fit import MIN_QUERIES, fit_cutoff_model
from ragsel.stages.cutoff._learned_model import (
    MODEL_FORMAT,
    CutoffModel,
    model_features,
    pipeline_hash,
    resolve_model,
    shipped_models,
)
from ragsel.stages.cutoff._learned_rules import choose_cut
from ragsel.types import Candidates, Event, Query

__all__ = [
    "ELBOW_MAX_K",
    "MIN_QUERIES",
    "MODEL_FORMAT",
    "CutoffModel",
    "LearnedCutoff",
    "fit_cutoff_model",
    "model_features",
    "pipeline_hash",
    "resolve_model",
    "shipped_models",
]
ELBOW_MAX_K = 10  # the elbow branch of ``elbow_below`` keeps at most this many (local-elbow.yaml)
ELBOW_Z = 1.0  # and cuts at the first gap with a z-score above this (local-elbow.yaml)


@register_stage("learned_cutoff")
class LearnedCutoff(Stage):
    """Keep the prefix a fitted model expects to be best (see the module docstring).

    Example (YAML): ``{type: learned_cutoff, model: general}`` (the shipped model),
    ``{type: learned_cutoff, model: models/cut.npz}`` (order and rule as fitted) or ``{type: learned_cutoff, model: cut.npz, order: probability, objective: ef1}``.
    Models fitted with query features read the pipeline query (the ``query`` input).
    With ``keep_paired`` (default) chunks a rationale paired are kept even below the cut, so
    ``rationale_selector (cutoff: none) -> learned_cutoff`` is METEORA with a learned cut.
    """

    config: Config

    class Config(ClampConfig):
        model: str = Field(
            ...,
            description="a shipped model by name (general: fitted on several public "
            "datasets, no corpus priors, any pipeline) or a model file written by 'ragsel fit'",
        )
        objective: Literal["auto", "f1", "ef1", "recall", "threshold", "top_k"] = Field(
            "auto",
            description="auto: the rule chosen when the model was fitted; ef1: exact "
            "expected F1; top_k: the k most probable (with order: probability)",
        )
        beta: float = Field(1.0, gt=0, description="F-beta for objective f1 (>1 favours recall)")
        target_recall: float = Field(0.9, gt=0, le=1.0)
        threshold: float = Field(
            0.5,
            gt=0,
            lt=1.0,
            description="objective threshold: keep up "
            "to the last chunk with this relevance probability",
        )
        k: int = Field(5, ge=1, description="how many to keep for objective top_k")
        keep_paired: bool = True
        order: Literal["auto", "input", "probability"] = Field(
            "auto",
            description="cut the list as ranked, or re-rank it by predicted relevance "
            "first; auto: what the model was fitted to do best",
        )
        elbow_below: float | None = Field(
            None,
            gt=0,
            description="cut at the elbow (z 1.0, at most 10) when the model expects fewer "
            "than this many relevant candidates (sum of probabilities); None: always the "
            "model's cut",
        )

    blocking = False

    def _setup(self) -> None:
        self._model: CutoffModel | None = None
        self._expect: str | None = None
        self._lock = threading.Lock()

    def check_pipeline(self, pipeline: Any) -> None:
        """Called by the pipeline before the first run: refuse a model from another pipeline."""
        self._expect, _ = pipeline_hash(pipeline, self.name)
        with self._lock:
            self._model = None
        self._get_model()

    def _get_model(self) -> CutoffModel:
        with self._lock:
            if self._model is None:
                self._model = CutoffModel.load(self.config.model, expect_pipeline=self._expect)
            return self._model

    def warm_up(self) -> None:
        self._get_model()

    def _run(self, candidates: Candidates, query: Query | None = None) -> Candidates:
        c = self.config
        if not candidates.items:
            return candidates.derive(self.name, [], note={"empty": True})
        model = self._get_model()
        p = model.probabilities(candidates, query)
        items = list(candidates.items)
        expected = float(p.sum())
        if c.elbow_below is not None and expected < c.elbow_below:
            order, k, info = self._elbow(items)
            how, label = "score", "elbow"
        else:
            order, k, info, how = self._model_cut(model, p)
            label = "learned"
        if c.elbow_below is not None:
            info.update(
                expected_relevant=round(expected, 4),
                elbow_below=c.elbow_below,
                rule="elbow" if how == "score" else "model",
            )
        budget, budget_drops, k = token_budget([items[i] for i in order], k, c.max_tokens)
        keep = set(order[:k].tolist())
        if c.keep_paired:
            keep |= {i for i, sc in enumerate(items) if sc.rationales}
        out, drops = [], {}
        horizon = model.horizon if label == "learned" else None
        for rank, i in enumerate(order.tolist(), 1):
            sc = items[i]
            if i in keep:
                why_kept = f"in the {label} cut" if rank <= k else "paired by a rationale"
                out.append(
                    sc.with_event(
                        Event(
                            self.name,
                            "kept",
                            why_kept,
                            sc.score,
                            {"p_relevant": round(float(p[i]), 4), "rank": rank},
                        )
                    )
                )
            else:
                drops[sc.chunk.id] = budget_drops.get(
                    sc.chunk.id,
                    f"beyond the first {horizon} candidates the model scores (rank {i + 1})"
                    if horizon is not None and i >= horizon
                    else f"below the {label} cut (rank {rank}, kept {k}; p={p[i]:.2f})",
                )
        info.update(kept=len(out), cut=k, order=how, model=str(c.model))
        seen = min(model.horizon or len(items), len(items))
        info.setdefault("why", _why(info, k, seen, how))
        if budget:
            info["budget"] = budget
        return candidates.derive(self.name, out, drop_reasons=drops, note=info)

    def _model_cut(
        self, model: CutoffModel, p: np.ndarray
    ) -> tuple[np.ndarray, int, dict[str, Any], str]:
        """The model's cut: the order (as ranked or by probability), the cut and its note."""
        c = self.config
        fitted = dict(model.header.get("defaults") or {"objective": "f1"})
        how = fitted.pop("order", "input") if c.order == "auto" else c.order
        fitted.pop("order", None)
        order = np.argsort(-p, kind="stable") if how == "probability" else np.arange(p.size)
        rule = (
            fitted
            if c.objective == "auto"
            else {
                "objective": c.objective,
                "beta": c.beta,
                "target_recall": c.target_recall,
                "threshold": c.threshold,
                "k": c.k,
            }
        )
        k, info = choose_cut(p[order], **rule, min_k=c.min_k, max_k=c.max_k)
        return order, k, info, how

    def _elbow(self, items: list) -> tuple[np.ndarray, int, dict[str, Any]]:
        """``elbow_cutoff``'s cut (z 1.0, at most ELBOW_MAX_K) on the list sorted by score."""
        c = self.config
        scores = as_scores([sc.score for sc in items], sort=False)
        order = np.argsort(-scores, kind="stable")
        cut, info = elbow_index(scores[order], ELBOW_Z)
        top = ELBOW_MAX_K if c.max_k is None else min(ELBOW_MAX_K, c.max_k)
        return order, clamp(cut, len(items), c.min_k, top), dict(info)


def _why(info: dict[str, Any], k: int, scored: int, how: str) -> str:
    """One sentence for the trace: what the model's cut kept and on what grounds."""
    seen = f"the first {scored} candidates"
    ranked = "re-ranked by relevance" if how == "probability" else "as ranked"
    expected = info.get("expected_relevant")
    grounds = {
        "ef1": "the best expected F1",
        "f1": f"the best expected F{info.get('beta', 1.0):g}",
        "recall": f"expected recall {info.get('target_recall')}",
        "threshold": f"relevance probability >= {info.get('threshold')}",
        "top_k": "a fixed k",
    }.get(str(info.get("objective")), "the model's rule")
    return f"kept {k} ({ranked}) at {grounds}" + (
        f"; the model expects {expected:g} relevant among {seen}" if expected else ""
    )
