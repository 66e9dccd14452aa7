"""Fitting a learned cutoff for a pipeline: the library side of ``ragsel fit``.

:func:`fit_for_pipeline` runs the stages upstream of the pipeline's ``learned_cutoff`` (or of a
``rationale_selector`` with ``cutoff: learned``, whose pooled ranking is then recomputed with
``cutoff: none``) over a labelled dataset's queries, labels each candidate with ``gold`` and fits
the model; :func:`adapt_for_pipeline` re-calibrates a shipped model instead, on labelled queries
or on pseudo-queries made from the pipeline's index (:mod:`ragsel.stages.cutoff._adapt`).

Gold labels come from the caller (``gold(query, chunks) -> ids``, e.g.
``ragsel_eval.datasets.gold_chunk_ids``): the library does not import the eval package.
Everything here goes through public pipeline API (``upstream_of``, ``subgraph``, ``run``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from ragsel.errors import InputError

Gold = Callable[[Any, Iterable[Any]], set[str]]
"""``gold(dataset_query, chunks) -> ids of the gold chunks among chunks``."""


def find_target(pipe: Any, stage: str | None) -> str:
    """The stage a model is fitted for: ``stage``, or the only learned one in ``pipe``."""
    if stage is not None:
        if stage not in pipe.stages:
            raise InputError(
                f"the pipeline has no stage '{stage}' (stages: {', '.join(pipe.stages)})"
            )
        return stage
    found = [
        n
        for n, s in pipe.stages.items()
        if s.type_name == "learned_cutoff"
        or (s.type_name == "rationale_selector" and s.config.cutoff == "learned")
    ]
    if len(found) != 1:
        raise InputError(
            f"the pipeline has {len(found) or 'no'} learned cutoff stage(s) "
            f"{found if found else ''}: add one ({{type: learned_cutoff, model: PATH}}) or "
            "name it with --stage"
        )
    return found[0]


def collect_lists(pipe: Any, target: str, queries: list[Any]) -> list[Any]:
    """The candidate list the target stage would cut, for each query (``Query`` objects)."""
    ups = pipe.upstream_of(target)
    sub = pipe.subgraph(ups, name=f"{pipe.name}-upstream-of-{target}")  # same instances
    feeds = {c.dst_in: f"{c.src}.{c.src_out}" for c in pipe.connections if c.dst == target}
    stage = pipe.stages[target]
    ranker = stage.ranking_only() if stage.type_name == "rationale_selector" else None
    out = []
    for q in queries:
        res = sub.run(q)
        cands = res.values[feeds["candidates"]]
        if ranker is not None:
            rationales = res.values[feeds["rationales"]]
            cands = ranker.run(candidates=cands, rationales=rationales, query=q)
        out.append(cands)
    return out


def _labelled(pipe: Any, target: str, dataset: Any, gold: Gold) -> tuple[list, list, list]:
    """``(queries, lists, golds)`` for a labelled dataset's queries."""
    from ragsel.types import Query

    queries = [Query(q.text, id=q.id) for q in dataset.queries]
    lists = collect_lists(pipe, target, queries)
    golds = [gold(q, c.items) for q, c in zip(dataset.queries, lists)]
    return queries, lists, golds


def fit_for_pipeline(
    pipe: Any,
    dataset: Any,
    *,
    gold: Gold,
    stage: str | None = None,
    kind: Literal["gbdt", "logistic", "auto"] = "gbdt",
    seed: int = 0,
    list_only: bool = False,
    priors: bool = True,
    max_rank: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit a cutoff model for ``pipe`` on a labelled dataset (``.name``, ``.queries`` with
    ``.text``/``.id``, ``.per_query_corpus``; e.g. an ``EvalDataset``), labelling candidates with
    ``gold``; with query features unless ``list_only``; with corpus priors, what the labelled
    queries found in this corpus, unless not ``priors``; on the first ``max_rank`` candidates
    of each list only (the model then scores only those at run time), if given."""
    from ragsel.stages.cutoff.learned import fit_cutoff_model, pipeline_hash

    if dataset.per_query_corpus:
        raise InputError(
            f"dataset {dataset.name!r} gives each query its own small corpus; "
            "'ragsel fit' runs one index for all queries. Use a shared-corpus "
            "dataset (e.g. privacyqa, scifact) or eval/benchmarks/studies/selection_cv.py"
        )
    target = find_target(pipe, stage)
    pipe.validate()
    queries, lists, golds = _labelled(pipe, target, dataset, gold)
    phash, upstream = pipeline_hash(pipe, target)
    with_query = not list_only  # both targets pass the query to the model at run time
    model = fit_cutoff_model(
        lists,
        golds,
        queries=queries if with_query else None,
        kind=kind,
        pipeline_hash=phash,
        upstream=upstream,
        priors=priors,
        max_rank=max_rank,
        # the selector's built-in cut keeps a prefix of its ranking
        orders=(
            ("input",)
            if pipe.stages[target].type_name == "rationale_selector"
            else ("input", "probability")
        ),
        seed=seed,
        info={"dataset": dataset.name, "pipeline": pipe.name, "stage": target},
    )
    summary = {
        "stage": target,
        "pipeline_hash": phash,
        "retrievers": model.retrievers,
        "kind": model.header["kind"],
        "query_features": model.uses_query,
        "corpus_priors": bool(model.header.get("corpus_priors")),
        "rule": model.header["defaults"],
        "max_rank": model.header.get("max_rank"),
        **model.header["training"],
        "queries_with_gold_in_candidates": sum(bool(g) for g in golds),
    }
    return model, summary


def index_of(pipe: Any, target: str) -> str:
    """The index folder a stage upstream of ``target`` reads (for pseudo-queries)."""
    for name in sorted(pipe.upstream_of(target)):
        path = getattr(pipe.stages[name].config, "index", None)
        if isinstance(path, str) and path:
            return path
    raise InputError(
        "--unsupervised makes pseudo-queries from the pipeline's index, but no stage "
        f"upstream of '{target}' names an index: pass --index or use a pipeline with a "
        "bm25_retriever/dense_retriever"
    )


def adapt_for_pipeline(
    pipe: Any,
    *,
    start: str = "general",
    dataset: Any = None,
    gold: Gold | None = None,
    stage: str | None = None,
    pseudo: int = 60,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Calibrate the model ``start`` for ``pipe``: on ``dataset``'s labelled queries (labelled
    by ``gold``), or (without a dataset) on ``pseudo`` pseudo-queries made from the pipeline's
    index."""
    from ragsel.index.local import open_index
    from ragsel.stages.cutoff._adapt import calibrate, pseudo_queries
    from ragsel.stages.cutoff.learned import CutoffModel

    target = find_target(pipe, stage)
    pipe.validate()
    base = CutoffModel.load(start)
    if dataset is None:
        pairs = pseudo_queries(open_index(index_of(pipe, target)).chunks, pseudo, seed=seed)
        queries = [q for q, _ in pairs]
        lists = collect_lists(pipe, target, queries)
        golds = [g for _, g in pairs]
        source = f"{len(pairs)} pseudo-queries from the index"
    else:
        if gold is None:
            raise InputError("adapt_for_pipeline: a dataset needs gold= (how to label chunks)")
        queries, lists, golds = _labelled(pipe, target, dataset, gold)
        source = f"dataset {dataset.name}"
    model = calibrate(
        base, lists, golds, queries, info={"from": start, "on": source, "stage": target}
    )
    summary = {"stage": target, "from": start, "on": source, **model.header["adapted"]}
    summary["rule"] = model.header["defaults"]
    return model, summary
