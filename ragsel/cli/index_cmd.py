"""``ragsel index CORPUS --into INDEX_DIR``: build or extend a local index."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsel.cli._common import command, print_json, stderr_console


@command
def index(
    corpus: Path = typer.Argument(
        ...,
        help="A folder or file: .txt, .md, .jsonl, or a BEIR dataset folder (its corpus.jsonl).",
    ),
    into: Path = typer.Option(..., "--into", "-o", help="The index folder (created if needed)."),
    chunker: str = typer.Option(
        "words", "--chunker", help="words | sentences | document (one chunk per document)."
    ),
    chunk_size: int = typer.Option(256, "--chunk-size", min=1, help="Words per chunk."),
    overlap: int = typer.Option(
        None, "--overlap", min=0, help="Words shared by neighbouring chunks (default 10%)."
    ),
    embedder: str = typer.Option(
        "minilm",
        "--embedder",
        help="minilm | minilm-onnx | minilm-onnx-q8 | a local sentence-transformers dir.",
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="CPU threads for embedding (default: the library's)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per forward pass."),
    stemmer: str = typer.Option("english", "--stemmer", help="BM25 stemmer language, or 'none'."),
    stopwords: str = typer.Option("en", "--stopwords", help="BM25 stop-word list, or 'none'."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Delete the index at --into first and build it anew."
    ),
    keep_missing: bool = typer.Option(
        False,
        "--keep-missing",
        help="Keep indexed documents that are no longer in CORPUS (default: remove them).",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local | ray: chunk and embed on a Ray cluster; this process writes the index.",
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="The Ray cluster for --engine ray (default: start one here)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Chunk, embed and store a corpus (chroma + BM25), so that the index equals CORPUS:
    new and changed documents are embedded, deleted ones removed, unchanged ones skipped.
    An interrupted run resumes when re-run. Progress goes to stderr: a bar in a terminal,
    a line every 10 seconds otherwise."""
    from ragsel.index import BM25Config, LocalIndex
    from ragsel.index.builder import read_corpus
    from ragsel.index.progress import IndexProgress
    from ragsel.ingest import ChunkerConfig

    cfg = ChunkerConfig(chunker, chunk_size, overlap)  # type: ignore[arg-type]
    bm25 = BM25Config(
        stemmer=None if stemmer.lower() == "none" else stemmer,
        stopwords=None if stopwords.lower() == "none" else stopwords,
    )
    console = stderr_console()
    if engine not in ("local", "ray"):
        from ragsel.errors import InputError

        raise InputError(f"--engine must be 'local' or 'ray', got {engine!r}")
    docs, ingest_warnings = read_corpus(corpus)  # a bad corpus fails before --into is touched
    show = not quiet and not json_out
    with LocalIndex.create(
        into,
        embedder=embedder,
        chunker=cfg,
        bm25=bm25,
        threads=threads,
        batch_size=batch_size,
        rebuild=rebuild,
    ) as ix:
        report = ix.add_documents(
            docs,
            progress=IndexProgress() if show else False,
            prune=not keep_missing,
            engine=engine,
            ray_address=ray_address,
        )
    report.warnings[:0] = ingest_warnings
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True, markup=True)
    if json_out:
        from dataclasses import asdict

        print_json({**asdict(report), "index": str(ix.path)})
        return
    console.print(
        f"[green]indexed[/] {report.added} new, {report.updated} changed, {report.unchanged} "
        f"unchanged, {report.removed} removed document(s): +{report.chunks_added} / -{report.chunks_removed} chunks in "
        f"{report.seconds:.1f}s ({report.chunks_per_second:.0f} chunks/s); the index at "
        f"{ix.path} holds {report.total_chunks} chunks",
        markup=True,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("index")(index)
