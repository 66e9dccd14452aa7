"""``ragsel eval``: evaluate pipelines on a labelled dataset and write a report folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsel.cli._common import command, parse_vars

VAR_HELP = "Set a ${VAR} used in the pipeline files (KEY=VALUE); repeatable."


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        from ragsel.errors import InputError

        raise InputError(f"{what} expects comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        from ragsel.errors import InputError

        raise InputError(f"{what} values must be >= 1, got {text!r}")
    return values


@command
def eval_(
    pipelines: list[Path] = typer.Argument(..., help="Pipeline YAML files to compare."),
    dataset: str = typer.Option(
        ...,
        "--dataset",
        "-d",
        help="A name under $RAGSEL_DATA_DIR (default ../shared/data: "
        "scifact, scifact:train, privacyqa, poisonedrag[:msmarco], "
        "hotpotqa, financebench) or a path.",
    ),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="Evaluate the first N queries."),
    out: Path = typer.Option(
        Path("ragsel-eval"),
        "--out",
        "-o",
        help="Report folder (results.json, summary.md, report.html); "
        "per-query results and indexes are cached under it.",
    ),
    engine: str = typer.Option(
        "local", "--engine", help="local, or ray (a local Ray instance unless --ray-address)."
    ),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join."),
    chunker: str = typer.Option(
        None,
        "--chunker",
        help="document | words:SIZE[:OVERLAP] | sentences:SIZE[:OVERLAP]"
        " (default per dataset: document for SciFact/HotpotQA/"
        "PoisonedRAG, words:256 for PrivacyQA/FinanceBench).",
    ),
    embedder: str = typer.Option("minilm", "--embedder", help="Embedder the index is built with."),
    index: Path = typer.Option(
        None,
        "--index",
        "-i",
        help="Use this prebuilt index (ragsel index) instead of building "
        "one; its chunker becomes the evaluation chunker.",
    ),
    var: list[str] = typer.Option(None, "--var", help=VAR_HELP),
    ks: str = typer.Option(None, "--ks", help="Cutoffs for ranking metrics, e.g. 1,5,10,100."),
    seed: int = typer.Option(0, "--seed", help="Seed for bootstrap CIs and paired tests."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Re-run queries recorded as failed."
    ),
    ragas: bool = typer.Option(
        False,
        "--ragas",
        help="Add ragas metrics (non-LLM; LLM-judged too when RAGSEL_JUDGE_BASE_URL is set).",
    ),
    allow_module: list[str] = typer.Option(
        None, "--allow-module", help="Allow 'type: module:Class' from this module."
    ),
    exclude_failed: bool = typer.Option(
        False,
        "--exclude-failed",
        help="Leave failed queries out of the means (default: they count as misses).",
    ),
    cache_dir: Path = typer.Option(
        None,
        "--cache-dir",
        help="Where eval indexes are built and reused by every run (default "
        "$RAGSEL_EVAL_CACHE or ~/.cache/ragsel/eval).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate one or more pipelines on a dataset: ranking (nDCG/Recall/MRR/MAP) of the
    selection and of the ranking before the cutoff, chunk precision/recall/F1 and evidence
    size, poisoning robustness, answers, latency; with bootstrap CIs and paired tests. An
    interrupted run resumes from its cache. Exits 1 when a pipeline failed every query."""
    from ragsel_eval.report import summary_markdown
    from ragsel_eval.runner import DEFAULT_KS, run_eval
    from rich.console import Console

    from ragsel.cli._common import stderr_console

    def notify(line: str) -> None:
        stderr_console().print(line, markup=False, highlight=False, soft_wrap=True)

    report = run_eval(
        pipelines,
        dataset,
        out_dir=out,
        failed_as_miss=not exclude_failed,
        cache_dir=cache_dir,
        notify=notify,
        limit=limit,
        engine=engine,
        chunker=chunker,
        embedder=embedder,
        variables=parse_vars(var),
        ks=_ints(ks, "--ks") or DEFAULT_KS,
        seed=seed,
        retry_failed=retry_failed,
        progress=not quiet,
        ragas=ragas,
        ray_address=ray_address,
        allow_modules=allow_module or [],
        index=index,
    )
    console = Console()
    console.print(summary_markdown(report), markup=False, highlight=False, soft_wrap=True)
    for key, path in report.files.items():
        console.print(f"{key}: {path}", markup=False, highlight=False)
    failed = sum(len(f) for f in report.failures.values())
    total = sum(report.summary[p]["queries"]["total"] for p in report.pipelines)
    dead = [p for p in report.pipelines if report.summary[p]["queries"]["ok"] == 0]
    if dead:
        console.print(
            f"failed: {failed} of {total} query runs failed; pipeline(s) "
            f"{', '.join(dead)} failed every query (see summary.md)",
            style="red",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if failed:
        console.print(
            f"{failed} of {total} query runs failed (counted as misses"
            f"{'' if not exclude_failed else ': no, excluded'}); see summary.md",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
