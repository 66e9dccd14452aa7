"""Cross-encoder reranking with a sentence-transformers CrossEncoder from a local folder."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import Field

from ragsel.errors import ConfigError, InputError, require
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Query

#: Loaded models shared by stages with the same (path, device, max_length): a documented
#: process-wide cache so two rerankers over one model do not load it twice.
_MODELS: dict[tuple[str, str, int | None], Any] = {}
_MODELS_LOCK = threading.Lock()


def load_cross_encoder(path: str, device: str = "cpu", max_length: int | None = None) -> Any:
    """A CrossEncoder from a local directory (never a hub name: ragsel runs offline)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(
            f"cross-encoder model folder not found: {folder}. ragsel loads models from local "
            "paths only: download one (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2) and set "
            "'model' to its folder"
        )
    key = (str(folder.resolve()), device, max_length)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            st = require("sentence_transformers", "local", "the cross-encoder reranker")
            try:
                model = st.CrossEncoder(
                    str(folder), device=device, max_length=max_length, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot load a cross-encoder from {folder}: {exc}") from exc
            _MODELS[key] = model
    return model


@register_stage("cross_encoder_reranker")
class CrossEncoderReranker(Stage):
    """Score (query, chunk) pairs with a cross-encoder and sort by the score.

    The model is loaded from a local folder on first use (or ``warm_up()``) and shared between
    stages using the same folder. Pairs are scored in batches of ``batch_size``; only the first
    ``depth`` candidates are rescored, the rest follow unchanged. Scores are the model's
    activated output (sigmoid for a one-label model), so they are comparable across queries.

    Example::

        rr = CrossEncoderReranker(model="models/ms-marco-MiniLM-L-6-v2", depth=100)
        reranked = rr.run(candidates=cands, query=Query("..."))

    YAML: ``{type: cross_encoder_reranker, model: "${RAGSEL_CROSS_ENCODER}", depth: 100}``.
    """

    config: Config

    class Config(StageConfig):
        model: str = Field(
            ...,
            min_length=1,
            description="local folder of a "
            "sentence-transformers CrossEncoder (or a transformers "
            "sequence-classification model)",
        )
        batch_size: int = Field(32, ge=1)
        max_length: int | None = Field(512, ge=8, description="tokens per (query, chunk) pair")
        depth: int = Field(100, ge=1, description="rescore only the first `depth` candidates")
        device: str = "cpu"
        threads: int | None = Field(None, ge=1, description="torch CPU threads (None: leave as is)")

    def _setup(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self._get_model()

    def _get_model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    if "${" in self.config.model:
                        var = self.config.model.split("${", 1)[1].split("}")[0].split(":-")[0]
                        raise ConfigError(
                            f"model is '{self.config.model}': set the "
                            f"environment variable {var} to a local "
                            "cross-encoder folder",
                            stage=self.name,
                            field="model",
                        )
                    self._model = load_cross_encoder(
                        self.config.model, self.config.device, self.config.max_length
                    )
        return self._model

    def _run(self, candidates: Candidates, query: Query) -> Candidates:
        head = list(candidates.items[: self.config.depth])
        tail = [
            sc.kept(self.name, "below rerank depth") for sc in candidates.items[self.config.depth :]
        ]
        if not head:
            return candidates.derive(self.name, [], note={"scored": 0})
        model = self._get_model()
        if self.config.threads is not None:
            import torch

            torch.set_num_threads(self.config.threads)
        scores = model.predict(
            [(query.text, sc.chunk.text) for sc in head],
            batch_size=self.config.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        flat = [float(s) for s in (scores.reshape(len(head), -1)[:, -1])]
        rescored = [sc.rescored(self.name, s, "cross-encoder") for sc, s in zip(head, flat)]
        order = sorted(range(len(head)), key=lambda i: (-rescored[i].score, i))
        return candidates.derive(
            self.name,
            [rescored[i] for i in order] + tail,
            note={"scored": len(head), "model": self.config.model},
        )
