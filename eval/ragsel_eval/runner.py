"""Evaluate one or more YAML pipelines on a dataset, side by side, resumably.

::

    from ragsel_eval.runner import run_eval
    report = run_eval(["pipelines/local.yaml", "pipelines/topk.yaml"], "scifact",
                      out_dir="eval-out", limit=50)
    report.summary["local"]["ndcg@10"]["mean"]

What it does, in order:

1. loads the dataset (:func:`ragsel_eval.datasets.load_dataset`) and the pipelines (a YAML
   error is reported before any work starts);
2. chunks the corpus with the evaluation chunker and, if a pipeline reads
   ``${RAGSEL_INDEX}``, builds the index(es) in the user cache (:func:`eval_cache_dir`, keyed
   by corpus content, chunker and embedder, so every later run reuses them, whatever its
   ``out_dir``), saying first what will be embedded and roughly how long it takes;
3. runs every pipeline over the same queries (``engine="local"`` in this process, or
   ``engine="ray"`` as Ray tasks), appending each query's record to
   ``<out>/runs/<pipeline>-<key>.jsonl`` as soon as it is done, so an interrupted run resumes
   where it stopped; a query on which the pipeline raises is recorded as a failure and the run
   goes on (it counts as a miss in the means unless ``failed_as_miss=False``);
4. aggregates (bootstrap CIs, paired tests against the first pipeline, fixed-k curves) and
   writes ``results.json``, ``summary.md`` and ``report.html`` (:mod:`ragsel_eval.report`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragsel.errors import InputError
from ragsel_eval._run_parts import existing_index, models_of, package_versions, ragas_scores
from ragsel_eval.aggregate import aggregate
from ragsel_eval.config import DEFAULT_CURVE_KS, DEFAULT_KS, EvalConfig, eval_cache_dir
from ragsel_eval.corpus import PreparedCorpus
from ragsel_eval.datasets import EvalDataset, load_dataset
from ragsel_eval.progress import Progress as _Progress
from ragsel_eval.worker import evaluate_query, query_to_dict

RECORD_VERSION = 2  # bump when per-query records change meaning


@dataclass(frozen=True)
class PipelineFile:
    """A pipeline YAML to evaluate: display name, path and content hash."""

    name: str
    path: Path
    sha256: str
    uses_index: bool

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> PipelineFile:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"pipeline file {p} does not exist")
        text = p.read_text(encoding="utf-8")
        return cls(
            name or p.stem,
            p.resolve(),
            hashlib.sha256(text.encode()).hexdigest(),
            "RAGSEL_INDEX" in text,
        )


@dataclass
class EvalReport:
    """What :func:`run_eval` produced (also written to ``out_dir``)."""

    out_dir: Path
    dataset: dict[str, Any]
    pipelines: list[str]
    summary: dict[str, dict[str, dict[str, float]]]
    records: dict[str, list[dict[str, Any]]]
    comparisons: list[dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    failures: dict[str, list[dict[str, str]]]
    reproducibility: dict[str, Any]
    ragas: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _run_key(
    pf: PipelineFile,
    ds: EvalDataset,
    corpus: PreparedCorpus,
    ks: Sequence[int],
    curve_ks: Sequence[int],
    variables: dict[str, str],
    keep_texts: bool,
) -> str:
    blob = json.dumps(
        {
            "v": RECORD_VERSION,
            "pipeline": pf.sha256,
            "dataset": ds.name,
            "split": ds.split,
            "meta": ds.metadata,
            "chunker": corpus.chunker_spec,
            "embedder": corpus.embedder,
            "ks": list(ks),
            "curve_ks": list(curve_ks),
            "vars": variables,
            "texts": keep_texts,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: that query runs again
            done[rec["query_id"]] = rec
    return done


def _run_local(tasks: list[dict], on_done: Callable[[dict], None]) -> None:
    for t in tasks:
        on_done(evaluate_query(t))


def _run_ray(
    tasks: list[dict], on_done: Callable[[dict], None], address: str | None, num_cpus: int | None
) -> None:
    from ragsel.errors import require

    ray = require("ray", "ray", "--engine ray")
    from ragsel.offline import OFFLINE_ENV

    started = False
    if not ray.is_initialized():
        env = {
            **OFFLINE_ENV,
            **{k: v for k, v in os.environ.items() if k.startswith(("RAGSEL_", "OMP_", "HF_"))},
        }
        ray.init(
            address=address,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": env},
        )
        started = True
    try:
        remote = ray.remote(evaluate_query)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            on_done(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()


def run_eval(
    pipelines: Sequence[str | Path],
    dataset: str | Path | EvalDataset,
    config: EvalConfig | None = None,
    **options: Any,
) -> EvalReport:
    """Evaluate ``pipelines`` on ``dataset`` (see the module docstring). Settings come from
    ``config`` and/or keyword ``options`` (the fields of :class:`EvalConfig`)."""
    cfg = replace(config, **options) if config is not None else EvalConfig(**options)
    if not pipelines:
        raise InputError("give at least one pipeline YAML to evaluate")
    ds = _dataset(dataset, cfg)
    files = _pipeline_files(pipelines, cfg)
    chunker, embedder = cfg.chunker, cfg.embedder
    if cfg.index is not None:
        chunker, embedder = existing_index(cfg.index, ds, chunker)
    cache = Path(cfg.cache_dir) if cfg.cache_dir is not None else eval_cache_dir()
    corpus = PreparedCorpus(ds, chunker=chunker, cache_dir=cache, embedder=embedder)
    gold = {
        q.id: [
            {"id": c.id, "doc_id": c.doc_id, "span": list(c.span) if c.span else None}
            for c in corpus.gold_units(q)
        ]
        for q in ds.queries
    }
    index_dirs = _index_dirs(ds, corpus, files, cfg) if any(f.uses_index for f in files) else {}
    records, run_files, n_todo, run_seconds = _run_queries(ds, files, corpus, gold, index_dirs, cfg)
    agg = aggregate(
        records, [pf.name for pf in files], seed=cfg.seed, failed_as_miss=cfg.failed_as_miss
    )
    ragas_out = ragas_scores(ds, corpus, records, gold) if cfg.ragas else {}
    repro = _reproducibility(ds, corpus, files, run_files, index_dirs, cfg, embedder)
    repro.update(run_seconds=round(run_seconds, 2), queries_run_now=n_todo)
    report = EvalReport(
        cfg.out,
        ds.summary(),
        [pf.name for pf in files],
        agg["summary"],
        records,
        agg["comparisons"],
        agg["curves"],
        agg["failures"],
        repro,
        ragas_out,
    )
    if cfg.write:
        from ragsel_eval.report import write_report

        report.files = write_report(report)
    return report


def _dataset(dataset: str | Path | EvalDataset, cfg: EvalConfig) -> EvalDataset:
    ds = (
        dataset
        if isinstance(dataset, EvalDataset)
        else load_dataset(dataset, **(cfg.dataset_options or {}))
    )
    if cfg.limit is not None:
        ds = ds.subset(cfg.limit)
    if not ds.queries:
        raise InputError(f"dataset {ds.name!r} has no queries to evaluate")
    return ds


def _pipeline_files(pipelines: Sequence[str | Path], cfg: EvalConfig) -> list[PipelineFile]:
    """The pipeline files with unique display names; definition errors before any work."""
    from ragsel.spec import load_pipeline

    files: list[PipelineFile] = []
    for p in pipelines:
        pf = PipelineFile.load(p)
        name, n = pf.name, 2
        while any(f.name == name for f in files):
            name, n = f"{pf.name}-{n}", n + 1
        files.append(PipelineFile(name, pf.path, pf.sha256, pf.uses_index))
    for pf in files:
        load_pipeline(
            pf.path,
            variables={"RAGSEL_INDEX": str(cfg.out / "cache" / "_check"), **cfg.variables},
            allow_modules=cfg.allow_modules,
        )
    return files


#: Rough MiniLM indexing rate on 2 CPU cores (eval/benchmarks: SciFact, 1.24 M tokens in
#: ~8 min), for the notice printed before a build; the real rate varies with the machine.
TOKENS_PER_SECOND = 2600.0


def build_notice(corpus: PreparedCorpus, doc_ids: Sequence[str], folder: Path) -> str:
    """One line saying what an index build will embed and roughly how long it takes."""
    from ragsel_eval.metrics.selection import count_tokens

    chunks = corpus.chunks_of(doc_ids)
    tokens = count_tokens(c.text for c in chunks)
    secs = tokens / TOKENS_PER_SECOND
    eta = f"~{secs / 60:.0f} min" if secs >= 90 else f"~{max(secs, 1):.0f} s"
    return (
        f"building an eval index: {len(doc_ids)} documents -> {len(chunks)} chunks "
        f"(~{tokens:,} tokens) with {corpus.embedder}; {eta} at ~{TOKENS_PER_SECOND:,.0f} "
        f"tokens/s (2 CPU cores); kept in {folder} for later runs"
    )


def _index_dirs(
    ds: EvalDataset, corpus: PreparedCorpus, files: list[PipelineFile], cfg: EvalConfig
) -> dict[str, str]:
    """The index folder each query runs against (built, or reused from the cache)."""
    if cfg.index is not None:
        return {q.id: str(Path(cfg.index).resolve()) for q in ds.queries}
    if ds.per_query_corpus:
        bar = _Progress(cfg.progress, len(ds.queries), "indexing per-query corpora")
        out = {}
        for q in ds.queries:
            out[q.id] = str(corpus.index_for(q))
            bar.advance()
        bar.close()
        return out
    folder = corpus.index_folder(None)
    if cfg.notify is not None and not corpus.is_built(folder):
        cfg.notify(build_notice(corpus, list(ds.documents), folder))
    shared = str(corpus.index_for(None, progress=cfg.progress))
    return {q.id: shared for q in ds.queries}


def _run_queries(
    ds: EvalDataset,
    files: list[PipelineFile],
    corpus: PreparedCorpus,
    gold: dict[str, list[dict]],
    index_dirs: dict[str, str],
    cfg: EvalConfig,
) -> tuple[dict[str, list[dict]], dict[str, Path], int, float]:
    """Run every (pipeline, query) not cached yet; returns the records in query order, the
    run files, how many ran now and the seconds it took."""
    out = cfg.out
    (out / "runs").mkdir(parents=True, exist_ok=True)
    variables = dict(cfg.variables)
    run_files: dict[str, Path] = {}
    todo: list[dict[str, Any]] = []
    cached: dict[str, dict[str, dict[str, Any]]] = {}
    for pf in files:
        key_vars = variables if cfg.index is None else {**variables, "__index": str(cfg.index)}
        key = _run_key(pf, ds, corpus, cfg.ks, cfg.curve_ks, key_vars, cfg.texts)
        run_files[pf.name] = out / "runs" / f"{pf.name}-{key}.jsonl"
        cached[pf.name] = done = _read_cache(run_files[pf.name])
        for q in ds.queries:
            prev = done.get(q.id)
            if prev is not None and (prev["status"] == "ok" or not cfg.retry_failed):
                continue
            v = dict(variables)
            if q.id in index_dirs:
                v["RAGSEL_INDEX"] = index_dirs[q.id]
            todo.append(
                {
                    "pipeline": pf.name,
                    "pipeline_path": str(pf.path),
                    "pipeline_sha": pf.sha256,
                    "variables": v,
                    "query": query_to_dict(q),
                    "gold_units": gold[q.id],
                    "ks": list(cfg.ks),
                    "curve_ks": list(cfg.curve_ks),
                    "keep_texts": cfg.texts,
                    "allow_modules": list(cfg.allow_modules),
                }
            )
    handles = {name: path.open("a", encoding="utf-8") for name, path in run_files.items()}
    bar = _Progress(cfg.progress, len(todo), f"evaluating {len(files)} pipeline(s) on {ds.name}")
    t_run = time.perf_counter()

    def on_done(rec: dict[str, Any]) -> None:
        fh = handles[rec["pipeline"]]
        fh.write(json.dumps(rec, default=float) + "\n")
        fh.flush()
        cached[rec["pipeline"]][rec["query_id"]] = rec
        bar.advance(f"{rec['pipeline']}: {rec['query_id']}")

    try:
        if cfg.engine == "local":
            _run_local(todo, on_done)
        else:
            _run_ray(todo, on_done, cfg.ray_address, cfg.ray_num_cpus)
    finally:
        bar.close()
        for fh in handles.values():
            fh.close()
    records = {pf.name: [cached[pf.name][q.id] for q in ds.queries] for pf in files}
    return records, run_files, len(todo), time.perf_counter() - t_run


def _reproducibility(
    ds: EvalDataset,
    corpus: PreparedCorpus,
    files: list[PipelineFile],
    run_files: dict[str, Path],
    index_dirs: dict[str, str],
    cfg: EvalConfig,
    embedder: str,
) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "engine": cfg.engine,
        "seed": cfg.seed,
        "bootstrap": {"resamples": 2000, "confidence": 0.95, "seed": cfg.seed},
        "paired_test": {"method": "randomization", "resamples": 10000, "seed": cfg.seed},
        "failed_queries": "counted as misses" if cfg.failed_as_miss else "excluded",
        "dataset": {**ds.summary(), "metadata": ds.metadata, "warnings": ds.warnings},
        "chunker": corpus.chunker.to_dict(),
        "chunker_spec": corpus.chunker_spec,
        "embedder": embedder,
        "index_dirs": sorted(set(index_dirs.values()))[:3],
        "index_seconds": round(corpus.index_seconds, 2),
        "ks": list(cfg.ks),
        "curve_ks": list(cfg.curve_ks),
        "pipelines": {
            pf.name: {
                "path": str(pf.path),
                "sha256": pf.sha256,
                "run_file": str(run_files[pf.name]),
                "stages": models_of(
                    pf.path,
                    {"RAGSEL_INDEX": next(iter(index_dirs.values()), ""), **cfg.variables},
                    cfg.allow_modules,
                ),
            }
            for pf in files
        },
        "packages": package_versions(),
    }


__all__ = [
    "DEFAULT_CURVE_KS",
    "DEFAULT_KS",
    "EvalConfig",
    "EvalReport",
    "PipelineFile",
    "eval_cache_dir",
    "run_eval",
]
