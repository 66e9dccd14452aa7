"""``ragsel fit PIPELINE --dataset NAME --out MODEL``: fit a learned cutoff.

A thin command over :mod:`ragsel.stages.cutoff.fitting`, which runs the stages upstream of the
pipeline's ``learned_cutoff`` (or of a ``rationale_selector`` with ``cutoff: learned``, whose
pooled ranking is then recomputed with ``cutoff: none``) over the dataset's queries, labels each candidate with the dataset's gold (a chunk is gold when it
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
from ragsel.stages.cutoff import fitting
from ragsel.stages.cutoff.fitting import collect_lists, find_target, index_of

__all__ = [
    "adapt_for_pipeline",
    "collect_lists",
    "find_target",
    "fit",
    "fit_for_pipeline",
    "index_of",
    "register",
]


# The fitting itself lives in the library (ragsel.stages.cutoff.fitting); these bind the eval
# package's gold labels and keep the old import path working.
def fit_for_pipeline(pipe: Any, dataset: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`ragsel.stages.cutoff.fitting.fit_for_pipeline` with ``gold_chunk_ids`` labels."""
    from ragsel_eval.datasets import gold_chunk_ids

    return fitting.fit_for_pipeline(pipe, dataset, gold=gold_chunk_ids, **options)


def adapt_for_pipeline(pipe: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`ragsel.stages.cutoff.fitting.adapt_for_pipeline` with ``gold_chunk_ids`` labels."""
    from ragsel_eval.datasets import gold_chunk_ids

    return fitting.adapt_for_pipeline(pipe, gold=gold_chunk_ids, **options)


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
    max_rank: int = typer.Option(
        None,
        "--max-rank",
        min=2,
        help="Fit on, and at run time score, only the first N candidates of each list "
        "(the rest are dropped); default: all.",
    ),
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
        max_rank=max_rank,
    )
    path = model.save(out)
    print_json({"model": str(path), **summary})


@command
def fit_fusion(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML with a fusion stage."),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="Labelled queries: a name (scifact:train, ...) or a path."
    ),
    stage: str = typer.Option(None, "--stage", help="The fusion stage (if several)."),
    limit: int = typer.Option(None, "--limit", help="Use only the first N queries."),
    var: list[str] = typer.Option(None, "--var", help="Set a ${VAR} (KEY=VALUE); repeatable."),
    index: Path = typer.Option(None, "--index", help="Index folder (sets RAGSEL_INDEX)."),
) -> None:
    """Learn how to weigh each retriever's scores before fusion from labelled queries, and
    print the fusion stage's `method: calibrated` settings for the YAML."""
    import yaml

    from ragsel.errors import InputError
    from ragsel.spec import load_pipeline
    from ragsel.stages.retrieve.fusion_calibration import fit_for_pipeline as fit_fusion_for
    from ragsel.stages.retrieve.fusion_calibration import fusion_stage

    try:
        from ragsel_eval.datasets import gold_chunk_ids, load_dataset
    except ImportError as exc:  # pragma: no cover - ragsel_eval ships with ragsel
        raise InputError("'ragsel fit-fusion' needs the ragsel_eval package") from exc
    variables = parse_vars(var)
    if index is not None:
        variables["RAGSEL_INDEX"] = str(index)
    pipe = load_pipeline(pipeline, variables=variables)
    target = fusion_stage(pipe, stage)  # before loading the data
    ds = load_dataset(dataset)
    if ds.per_query_corpus:
        raise InputError(
            f"dataset {ds.name!r} gives each query its own corpus; fit-fusion runs one index"
        )
    queries = ds.queries[:limit] if limit is not None else ds.queries
    name, calibration, summary = fit_fusion_for(pipe, queries, gold_chunk_ids, stage=target)
    block = {name: {"method": "calibrated", "calibration": calibration}}
    typer.echo(f"# fitted on {summary['queries']} queries of {dataset} in {summary['seconds']} s")
    typer.echo("# replace these keys of the fusion stage (drop its k: and weights:)")
    typer.echo(yaml.safe_dump(block, sort_keys=False, default_flow_style=None).rstrip())


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("fit-fusion")(fit_fusion)
