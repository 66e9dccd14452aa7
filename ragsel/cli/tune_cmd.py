"""``ragsel tune-embedder --index IDX --out DIR``: adapt the embedder to a corpus.

A thin command over :mod:`ragsel.backends.embedders.tuning`. Pairs come from labelled queries
(``--dataset``) or, without labels, from the index's own chunks (titles and key sentences).
The tuned model is a sentence-transformers folder; with ``--corpus`` and ``--into`` the corpus
is re-indexed with it (same chunker and BM25 settings as ``--index``), and pipelines then name
it as their query embedder (``RAGSEL_QUERY_EMBEDDER=DIR`` for the shipped ones).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from ragsel.cli._common import command, print_json, stderr_console


@command
def tune_embedder(
    index: Path = typer.Option(..., "--index", help="The index whose chunks the pairs use."),
    out: Path = typer.Option(..., "--out", "-o", help="A new folder for the tuned model."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        "-d",
        help="Labelled queries (a name such as scifact:train, or a path); "
        "without it, pseudo-queries are made from the index (no labels).",
    ),
    pseudo: int = typer.Option(
        2000, "--pseudo-queries", min=1, help="How many pseudo-queries to make (no --dataset)."
    ),
    title_share: float = typer.Option(
        0.3,
        "--title-share",
        min=0.0,
        max=1.0,
        help="Share of pseudo-queries that are document titles (the rest: key sentences).",
    ),
    base: str = typer.Option(
        None, "--base", help="The model to start from (default: the index's embedder)."
    ),
    epochs: int = typer.Option(1, "--epochs", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=2, help="Pairs per step."),
    lr: float = typer.Option(2e-5, "--lr"),
    max_length: int = typer.Option(256, "--max-length", min=8, help="Tokens per text."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(None, "--threads", min=1, help="torch threads."),
    corpus: Path = typer.Option(
        None, "--corpus", help="Re-index this corpus with the tuned model (needs --into)."
    ),
    into: Path = typer.Option(None, "--into", help="The new index folder for --corpus."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Fine-tune the embedder on labelled queries or on pseudo-queries made from the corpus
    (titles and key sentences; no labels, no LLM), write it as a sentence-transformers
    folder, and optionally re-index the corpus with it. Labelled tuning improved SciFact's dense
    list; pseudo-queries hurt there and helped on FinanceBench (README, Results): check on
    your own queries."""
    from ragsel.backends.embedders import tuning
    from ragsel.errors import InputError
    from ragsel.index import open_index

    if (corpus is None) != (into is None):
        raise InputError("--corpus and --into go together: the corpus to re-index, and where")
    if into is not None and into.exists() and any(into.iterdir()):
        # checked before minutes of training, not after
        raise InputError(f"--into {into} is not empty; choose a new folder for the new index")
    settings = tuning.TuneSettings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
        seed=seed,
        threads=threads,
    )
    ix = open_index(index).load()
    chunks = ix.chunks
    if dataset is not None:
        pairs, source = _labelled(dataset, chunks), f"labelled:{dataset}"
    else:
        pairs = tuning.pseudo_pairs(chunks, pseudo, seed=seed, title_share=title_share)
        source = "pseudo-queries"
    console = stderr_console()
    last = [0.0]

    def progress(done: int, total: int, loss: float) -> None:
        if not quiet and (time.monotonic() - last[0] > 10 or done == total):
            last[0] = time.monotonic()
            console.print(f"step {done}/{total}, loss {loss:.3f}", highlight=False)

    if not quiet:
        console.print(f"fine-tuning on {len(pairs)} pairs ({source})", highlight=False)
    report = tuning.tune_embedder(
        pairs,
        out,
        base=base or ix.embedder_spec,
        settings=settings,
        source=source,
        on_batch=progress,
    )
    result: dict[str, Any] = {"model": report.model, "source": source, "pairs": report.pairs}
    result |= {"train_seconds": report.train_seconds, "loss": [report.loss_first, report.loss_last]}
    if corpus is not None and into is not None:
        result["index"] = _reindex(corpus, into, Path(report.model), ix, quiet)
    result["use"] = (
        f"RAGSEL_INDEX={result.get('index', '<an index built with --embedder DIR>')} "
        f"RAGSEL_QUERY_EMBEDDER={report.model} ragsel select pipelines/local.yaml ..."
    )
    print_json(result)


def _labelled(dataset: str, chunks: list[Any]) -> list[Any]:
    from ragsel.backends.embedders import tuning
    from ragsel.errors import InputError

    try:
        from ragsel_eval.datasets import gold_chunk_ids, load_dataset
    except ImportError as exc:  # pragma: no cover - ragsel_eval ships with ragsel
        raise InputError("--dataset needs the ragsel_eval package") from exc
    ds = load_dataset(dataset)
    by_doc: dict[str, list[Any]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    labelled = []
    for q in ds.queries:
        docs = set(q.qrels) | {s.doc_id for s in q.spans}
        near = [c for d in sorted(docs) for c in by_doc.get(d, ())]
        labelled.append((q.text, gold_chunk_ids(q, near)))
    return tuning.labelled_pairs(labelled, chunks)


def _reindex(corpus: Path, into: Path, model: Path, old: Any, quiet: bool) -> str:
    from ragsel.index import LocalIndex
    from ragsel.index.builder import read_corpus
    from ragsel.index.progress import IndexProgress

    docs, _ = read_corpus(corpus)
    with LocalIndex.create(
        into, embedder=str(model), chunker=old.chunker, bm25=old.bm25_config
    ) as ix:
        ix.add_documents(docs, progress=False if quiet else IndexProgress(), prune=True)
    return str(ix.path)


def register(app: typer.Typer) -> None:
    app.command("tune-embedder")(tune_embedder)
