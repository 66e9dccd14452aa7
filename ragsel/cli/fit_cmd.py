"""``ragsel fit PIPELINE --dataset NAME --out MODEL``: fit a learned cutoff.

Runs the stages upstream of the pipeline's ``learned_cutoff`` (or of a ``rationale_selector``
with ``cutoff: learned``, whose pooled ranking is then recomputed with ``cutoff: none``) over
the dataset's queries, labels each candidate with the dataset's gold (a chunk is gold when it
overlaps a gold span, or belongs to a relevant document), fits the model and writes it.
The model also reads the query text (query-term and title features) unless ``--list-only``;
both targets pass the pipeline query to it at run time.

Without labels, ``ragsel fit PIPELINE --unsupervised --out MODEL`` adapts the shipped general
model (or ``--from MODEL``) to the pipeline's corpus: it makes pseudo-queries from the index
(a sentence of a chunk -> that chunk; a document title -> its chunks), runs them through the
pipeline and re-calibrates the model's probabilities and cut rule on them
(:mod:`ragsel.stages.cutoff._adapt`). With labels, ``--from general`` does the same
calibration on the dataset's queries instead of fitting a corpus model from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

import typer

from ragsel.cli._common import command, parse_vars, print_json


def find_target(pipe: Any, stage: str | None) -> str:
    """The stage a model is fitted for: ``stage``, or the only learned one in ``pipe``."""
    from ragsel.errors import InputError

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
    ranker = None
    if stage.type_name == "rationale_selector":
        ranker = type(stage)(stage.config.model_copy(update={"cutoff": "none", "model": None}))
        ranker.name = stage.name
        ranker._embedders = stage._embedders  # bound components carry over
    out = []
    for q in queries:
        res = sub.run(q)
        cands = res.values[feeds["candidates"]]
        if ranker is not None:
            kw = {"candidates": cands, "rationales": res.values[feeds["rationales"]]}
            cands = ranker._run(**kw, query=q)
        out.append(cands)
    return out


def fit_for_pipeline(
    pipe: Any,
    dataset: Any,
    *,
    stage: str | None = None,
    kind: Literal["gbdt", "logistic", "auto"] = "gbdt",
    seed: int = 0,
    list_only: bool = False,
    priors: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Fit a cutoff model for ``pipe`` on an :class:`~ragsel_eval.datasets.EvalDataset`
    (with query features unless ``list_only``; with corpus priors, what the labelled queries
    found in this corpus, unless not ``priors``)."""
    from ragsel_eval.datasets import gold_chunk_ids

    from ragsel.errors import InputError
    from ragsel.stages.cutoff.learned import fit_cutoff_model, pipeline_hash
    from ragsel.types import Query

    if dataset.per_query_corpus:
        raise InputError(
            f"dataset {dataset.name!r} gives each query its own small corpus; "
            "'ragsel fit' runs one index for all queries. Use a shared-corpus "
            "dataset (e.g. privacyqa, scifact) or eval/benchmarks/studies/selection_cv.py"
        )
    target = find_target(pipe, stage)
    pipe.validate()
    queries = [Query(q.text, id=q.id) for q in dataset.queries]
    lists = collect_lists(pipe, target, queries)
    golds = [gold_chunk_ids(q, c.items) for q, c in zip(dataset.queries, lists)]
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
        **model.header["training"],
        "queries_with_gold_in_candidates": sum(bool(g) for g in golds),
    }
    return model, summary


def index_of(pipe: Any, target: str) -> str:
    """The index folder a stage upstream of ``target`` reads (for pseudo-queries)."""
    from ragsel.errors import InputError

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
    stage: str | None = None,
    pseudo: int = 60,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Calibrate the model ``start`` for ``pipe``: on ``dataset``'s labelled queries, or
    (without a dataset) on ``pseudo`` pseudo-queries made from the pipeline's index."""
    from ragsel.index.local import open_index
    from ragsel.stages.cutoff._adapt import calibrate, pseudo_queries
    from ragsel.stages.cutoff.learned import CutoffModel
    from ragsel.types import Query

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
        from ragsel_eval.datasets import gold_chunk_ids

        queries = [Query(q.text, id=q.id) for q in dataset.queries]
        lists = collect_lists(pipe, target, queries)
        golds = [gold_chunk_ids(q, c.items) for q, c in zip(dataset.queries, lists)]
        source = f"dataset {dataset.name}"
    model = calibrate(
        base, lists, golds, queries, info={"from": start, "on": source, "stage": target}
    )
    summary = {"stage": target, "from": start, "on": source, **model.header["adapted"]}
    summary["rule"] = model.header["defaults"]
    return model, summary


@command
def fit(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML with a learned cutoff stage."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        "-d",
        help="Labelled dataset: a name (privacyqa, scifact:train, ...) "
        "or a path (ragsel JSONL, BEIR folder, ...).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the model (.npz)."),
    stage: str = typer.Option(None, "--stage", help="The stage to fit for (if several)."),
    kind: str = typer.Option(
        "gbdt",
        "--kind",
        help="gbdt (default), logistic, or auto (the better of both on out-of-fold predictions).",
    ),
    limit: int = typer.Option(None, "--limit", help="Use only the first N queries."),
    seed: int = typer.Option(0, "--seed"),
    list_only: bool = typer.Option(
        False, "--list-only", help="No query features (the model then ignores the query)."
    ),
    no_priors: bool = typer.Option(
        False,
        "--no-priors",
        help="No corpus priors (what the labelled queries found in this "
        "corpus); they help when many queries share a corpus, and are inert otherwise.",
    ),
    var: list[str] = typer.Option(None, "--var", help="Set a ${VAR} (KEY=VALUE); repeatable."),
    index: Path = typer.Option(None, "--index", help="Index folder (sets RAGSEL_INDEX)."),
    unsupervised: bool = typer.Option(
        False,
        "--unsupervised",
        help="No labels: calibrate the general model (or --from) on pseudo-queries made "
        "from the pipeline's index.",
    ),
    start: str = typer.Option(
        None,
        "--from",
        help="Calibrate this model (a shipped name such as 'general', or a file) instead of "
        "fitting from scratch.",
    ),
    pseudo: int = typer.Option(60, "--pseudo-queries", help="Pseudo-queries to make."),
) -> None:
    """Fit a learned cutoff on labelled queries (or adapt the general model without labels,
    --unsupervised) and write the model file the YAML names."""
    from ragsel.errors import InputError
    from ragsel.spec import load_pipeline

    try:
        from ragsel_eval.datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - ragsel_eval ships with ragsel
        raise InputError("'ragsel fit' needs the ragsel_eval package") from exc
    if kind not in ("gbdt", "logistic", "auto"):
        raise InputError(f"--kind must be gbdt, logistic or auto, got {kind!r}")
    variables = parse_vars(var)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    pipe = load_pipeline(pipeline, variables=variables)
    if unsupervised:
        if dataset is not None:
            raise InputError("--unsupervised uses no labels: drop --dataset (or --unsupervised)")
        model, summary = adapt_for_pipeline(
            pipe, start=start or "general", stage=stage, pseudo=pseudo, seed=seed
        )
        print_json({"model": str(model.save(out)), **summary})
        return
    if dataset is None:
        raise InputError("give --dataset NAME (labelled queries), or --unsupervised")
    ds = load_dataset(dataset)
    if limit is not None:
        ds = ds.subset(limit)
    if start is not None:
        model, summary = adapt_for_pipeline(pipe, start=start, dataset=ds, stage=stage, seed=seed)
        print_json({"model": str(model.save(out)), **summary})
        return
    model, summary = fit_for_pipeline(
        pipe,
        ds,
        stage=stage,
        kind=cast(Literal["gbdt", "logistic", "auto"], kind),  # checked above
        seed=seed,
        list_only=list_only,
        priors=not no_priors,
    )
    path = model.save(out)
    print_json({"model": str(path), **summary})


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
