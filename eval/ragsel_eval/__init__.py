"""ragsel evaluation: datasets, metrics, runner, reports (see ``eval/README.md``).

>>> from ragsel_eval import load_dataset, run_eval          # doctest: +SKIP
>>> report = run_eval(["pipelines/local.yaml"], "privacyqa", out_dir="eval-out")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ragsel_eval.datasets import (
    EvalDataset,
    EvalQuery,
    GoldSpan,
    gold_chunk_ids,
    load_dataset,
    poisoned_chunk_ids,
)

__all__ = [
    "EvalConfig",
    "EvalDataset",
    "EvalQuery",
    "GoldSpan",
    "gold_chunk_ids",
    "load_dataset",
    "poisoned_chunk_ids",
    "run_eval",
]


def __getattr__(name: str) -> Any:  # the runner imports more; load it on first use
    if name == "run_eval":
        from ragsel_eval.runner import run_eval

        return run_eval
    if name == "EvalConfig":
        from ragsel_eval.config import EvalConfig

        return EvalConfig
    raise AttributeError(name)
