"""Evaluation datasets: one :class:`EvalDataset` shape, many source layouts.

``load_dataset(spec)`` takes a name resolved under the data root (``$RAGSEL_DATA_DIR``, default
``<repo>/../shared/data``) or a path, optionally with a ``:variant`` (the BEIR split, or the
PoisonedRAG attack set)::

    load_dataset("scifact")              # BEIR, split test
    load_dataset("scifact:train")
    load_dataset("privacyqa")            # LegalBench-RAG spans (alias of privacyqa_spans)
    load_dataset("poisonedrag:msmarco", n_distractors=10, seed=0)
    load_dataset("hotpotqa")             # HotpotQA distractor schema (alias of hotpotqa_hard)
    load_dataset("financebench")
    load_dataset("my_labels.jsonl")      # the generic format (eval/README.md)

The layout of a folder or file is detected from its contents.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ragsel.errors import InputError
from ragsel_eval.datasets.base import (
    DatasetWarning,
    Document,
    EvalDataset,
    EvalQuery,
    GoldSpan,
    chunk_grades,
    chunk_overlaps,
    gold_chunk_ids,
    poisoned_chunk_ids,
    spans_in_text,
)
from ragsel_eval.datasets.beir import load_beir, read_qrels
from ragsel_eval.datasets.financebench import load_financebench
from ragsel_eval.datasets.hotpotqa import load_hotpotqa
from ragsel_eval.datasets.jsonl import load_jsonl, save_jsonl
from ragsel_eval.datasets.legalbench import load_legalbench
from ragsel_eval.datasets.poisonedrag import load_poisonedrag

__all__ = [
    "DatasetWarning",
    "Document",
    "EvalDataset",
    "EvalQuery",
    "GoldSpan",
    "ALIASES",
    "chunk_grades",
    "chunk_overlaps",
    "data_root",
    "detect_format",
    "gold_chunk_ids",
    "load_beir",
    "load_dataset",
    "load_financebench",
    "load_hotpotqa",
    "load_jsonl",
    "load_legalbench",
    "load_poisonedrag",
    "poisoned_chunk_ids",
    "read_qrels",
    "resolve_dataset_path",
    "save_jsonl",
    "spans_in_text",
]

#: Short names for the folders in ../shared/data.
ALIASES = {"privacyqa": "privacyqa_spans", "hotpotqa": "hotpotqa_hard"}


def data_root() -> Path:
    """``$RAGSEL_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("RAGSEL_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import ragsel

    return Path(ragsel.__file__).resolve().parents[1].parent / "shared" / "data"


def resolve_dataset_path(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder or file a dataset spec (without ``:variant``) names."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    root = Path(data_dir) if data_dir is not None else data_root()
    looked = [root / ALIASES.get(name, name)]
    if ALIASES.get(name, name) != name:
        looked.append(root / name)
    for cand in looked:
        if cand.exists():
            return cand
    src = (
        "--data-dir / data_dir"
        if data_dir is not None
        else (
            "$RAGSEL_DATA_DIR"
            if os.environ.get("RAGSEL_DATA_DIR")
            else "the default <repo>/../shared/data"
        )
    )
    raise InputError(
        f"dataset {name!r} not found: looked for {', '.join(str(c) for c in looked)} "
        f"and for a path {str(p)!r} (data root {root} from {src}). Set RAGSEL_DATA_DIR to the "
        "folder holding your datasets, or pass the dataset's path."
    )


def _first_line(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return {}
                return row if isinstance(row, dict) else {}
    return {}


def detect_format(path: Path) -> str:
    """``beir``, ``legalbench``, ``financebench``, ``poisonedrag``, ``hotpotqa`` or ``jsonl``."""
    if path.is_dir():
        if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
            return "beir"
        if (path / "corpus").is_dir() and any(path.glob("*.json")):
            return "legalbench"
        if (path / "financebench_open_source.jsonl").is_file():
            return "financebench"
        if any(path.glob("adv_targeted_*.json")) or any(path.glob("*poisoned*.jsonl")):
            return "poisonedrag"
        if (path / "dataset.jsonl").is_file():
            return "jsonl"
        files = sorted(path.glob("*.jsonl"))
        if len(files) == 1:
            return detect_format(files[0])
        raise InputError(
            f"{path}: cannot tell the dataset layout (expected BEIR corpus.jsonl + "
            "queries.jsonl + qrels/, a LegalBench-RAG corpus/ + *.json, a "
            "dataset.jsonl in the generic format, ...; see eval/README.md)"
        )
    if path.suffix == ".json":
        head = path.read_text(encoding="utf-8")[:300]
        if '"tests"' in head:
            raise InputError(
                f"{path}: a LegalBench-RAG benchmark file; pass its folder (the "
                "one holding corpus/) instead"
            )
        return (
            "poisonedrag" if "adv_texts" in path.read_text(encoding="utf-8")[:5000] else "hotpotqa"
        )
    row = _first_line(path)
    if row.get("type") in ("document", "query"):
        return "jsonl"
    if "supporting_facts" in row:
        return "hotpotqa"
    if "adv_passages" in row or "adv_texts" in row:
        return "poisonedrag"
    if "financebench_id" in row:
        return "financebench"
    raise InputError(
        f"{path}: unknown JSONL layout (first line has keys {sorted(row)[:8]}); "
        'the generic format needs a "type" field on every line (eval/README.md)'
    )


def load_dataset(
    spec: str | Path,
    *,
    data_dir: str | Path | None = None,
    split: str | None = None,
    **options: Any,
) -> EvalDataset:
    """Load a dataset by name or path (see the module docstring). ``options`` go to the
    layout's loader (e.g. ``n_distractors``/``seed`` for PoisonedRAG)."""
    spec = str(spec)
    variant = None
    if ":" in spec and not Path(spec).exists():
        spec, variant = spec.rsplit(":", 1)
    path = resolve_dataset_path(spec, data_dir)
    fmt = detect_format(path)
    name = Path(spec).stem if Path(spec).exists() else ALIASES.get(spec, spec)
    ds = _load(fmt, path, spec, variant, split, name, options)
    ds.metadata.setdefault("layout", fmt)
    ds.metadata.setdefault("spec", f"{spec}:{variant}" if variant else spec)
    return ds


def _load(
    fmt: str,
    path: Path,
    spec: str,
    variant: str | None,
    split: str | None,
    name: str,
    options: dict[str, Any],
) -> EvalDataset:
    if fmt == "beir":
        return load_beir(path, split=split or variant or "test", name=name, **options)
    if split is not None:
        raise InputError(f"dataset {spec!r} ({fmt} layout) has no splits; drop split={split!r}")
    if fmt == "poisonedrag":
        return load_poisonedrag(path, variant=variant or "nq", **options)
    if variant is not None:
        raise InputError(f"dataset {spec!r} ({fmt} layout) takes no ':{variant}' variant")
    loaders = {
        "legalbench": load_legalbench,
        "financebench": load_financebench,
        "hotpotqa": load_hotpotqa,
        "jsonl": load_jsonl,
    }
    target = path
    if path.is_dir() and fmt == "jsonl":
        target = (
            path / "dataset.jsonl"
            if (path / "dataset.jsonl").is_file()
            else sorted(path.glob("*.jsonl"))[0]
        )
    return loaders[fmt](target, name=name, **options)
