"""The runtime half of the learned cutoff: a fitted model evaluated with numpy only.

A model file is one ``.npz`` of plain arrays (never pickled objects, so loading one runs no
code) plus a JSON header (format, feature set and version, retrievers, pipeline hash, cut rule,
training facts). :func:`resolve_model` also accepts the name of a model shipped inside ragsel
(``general``, in ``ragsel/stages/cutoff/models/``). Fitting lives in ``_learned_fit``
(scikit-learn), the stage in ``learned``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import InputError
from ragsel.stages.cutoff._general_features import (
    GENERAL_FEATURES,
    GENERAL_VERSION,
    general_features,
)
from ragsel.stages.cutoff._learned_features import (
    FEATURE_VERSION,
    discover_retrievers,
    feature_names,
    list_features,
)
from ragsel.stages.cutoff._learned_priors import PRIOR_ARRAYS, PRIOR_FEATURES, CorpusPriors
from ragsel.stages.cutoff._learned_rules import choose_cut
from ragsel.types import Candidates, Query

SHIPPED_DIR = Path(__file__).resolve().parent / "models"
MODEL_FORMAT = "ragsel-learned-cutoff"
_Z_CLIP = 10.0  # standardised features beyond this many training SDs are clipped
_PATHLIKE = ("index", "path", "dir", "file", "model", "corpus")


def model_features(header: Mapping[str, Any]) -> list[str]:
    """The feature names a model with this header reads."""
    if header.get("feature_set") == "general":
        return list(GENERAL_FEATURES)
    return feature_names(header.get("retrievers", []), bool(header.get("query_features"))) + (
        list(PRIOR_FEATURES) if header.get("corpus_priors") else []
    )


def pipeline_hash(pipeline: Any, stage_name: str) -> tuple[str, list[list[str]]]:
    """Hash of the stages upstream of ``stage_name`` (types, configs without paths, wiring),
    and their ``[name, type]`` list. Paths are left out so a model moves with its index."""
    ups = pipeline.upstream_of(stage_name)
    desc = []
    for name in sorted(ups):
        st = pipeline.stages[name]
        cfg = {k: v for k, v in st.to_dict().items() if not any(p in k.lower() for p in _PATHLIKE)}
        desc.append([name, cfg])
    wires = sorted(
        str(c) for c in pipeline.connections if c.dst in ups | {stage_name} and c.src in ups
    )
    blob = json.dumps({"stages": desc, "wires": wires}, sort_keys=True, default=str)
    return (
        hashlib.sha256(blob.encode()).hexdigest()[:16],
        [[n, pipeline.stages[n].type_name] for n in sorted(ups)],
    )


@dataclass
class CutoffModel:
    """A fitted cutoff model: a header (JSON) plus arrays evaluated with numpy only."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _priors: CorpusPriors | None = field(default=None, repr=False, compare=False)

    @property
    def retrievers(self) -> list[str]:
        return list(self.header["retrievers"])

    # --- prediction --------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        a = self.arrays
        if self.header["kind"] == "logistic":
            # clipped: a feature far outside its training range should not decide alone
            z = np.clip((X - a["mean"]) / a["scale"], -_Z_CLIP, _Z_CLIP) @ a["coef"] + float(
                a["intercept"][0]
            )
        else:
            # scikit-learn trees compare float32 copies of the features: do the same, or a
            # value at a split threshold can take the other branch
            X = X.astype(np.float32).astype(np.float64)
            left, right, feat, thr, val = (
                a["left"],
                a["right"],
                a["feature"],
                a["threshold"],
                a["value"],
            )
            # walk every tree for every row at once: node is (rows, trees)
            node = np.broadcast_to(a["roots"], (X.shape[0], a["roots"].size)).copy()
            rows = np.arange(X.shape[0])[:, None]
            for _ in range(int(a["max_depth"][0]) + 1):
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = X[rows, feat[node]] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            z = float(a["init"][0]) + float(a["learning_rate"][0]) * val[node].sum(axis=1)
        if "calibration" in a:  # Platt scaling fitted on out-of-fold predictions
            z = float(a["calibration"][0]) * z + float(a["calibration"][1])
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @property
    def general(self) -> bool:
        """A model of the general feature set: no retriever names, no corpus, any pipeline."""
        return self.header.get("feature_set") == "general"

    def check_candidates(self, cands: Candidates) -> None:
        if self.general:
            return
        seen = set(discover_retrievers([cands]))
        unknown = seen - set(self.retrievers)
        if unknown or (self.retrievers and seen and not seen & set(self.retrievers)):
            raise InputError(
                f"learned cutoff model {self.header.get('path', '')!r} was fitted on candidates "
                f"from retrievers {self.retrievers}, but these come from {sorted(seen)}: it "
                "belongs to another pipeline. Re-fit it with 'ragsel fit' for this pipeline."
            )

    @property
    def uses_query(self) -> bool:
        """Whether the model reads the query text (fitted with ``queries``)."""
        return bool(self.header.get("query_features"))

    @property
    def horizon(self) -> int | None:
        """How many candidates (as ranked) the model was fitted on and scores; ``None``: all."""
        h = self.header.get("max_rank")
        return int(h) if h else None

    def probabilities(self, cands: Candidates, query: Query | str | None = None) -> np.ndarray:
        """Relevance probability of every candidate (in list order). A model fitted on the
        first ``max_rank`` candidates scores those only (its features are normalised over
        that prefix, as in fitting) and gives the rest probability 0: it never saw them."""
        h = self.horizon
        if h is not None and len(cands.items) > h:
            head = self.probabilities(Candidates(cands.items[:h]), query)
            return np.concatenate([head, np.zeros(len(cands.items) - h)])
        self.check_candidates(cands)
        text = query.text if isinstance(query, Query) else query
        if self.general:  # without a query its query features are zero (documented)
            return self.predict_proba(general_features(cands, text))
        if self.uses_query and text is None:
            raise InputError(
                f"learned cutoff model {self.header.get('path', '')!r} was fitted with query "
                "features and needs the query: connect the pipeline query (a 'query' input) or "
                "pass query=..., or fit a model without queries"
            )
        text = text if self.uses_query else None  # as fitted: a list-only model never reads it
        X = list_features(cands, self.retrievers, text)
        if self.header.get("corpus_priors"):
            if self._priors is None:
                self._priors = CorpusPriors.from_arrays(self.arrays)
            X = np.hstack([X, self._priors.features(cands, text)])
        return self.predict_proba(X)

    def cut(
        self, cands: Candidates, query: Query | str | None = None, **options: Any
    ) -> tuple[int, dict[str, Any]]:
        """How many of ``cands`` (as ranked) to keep, with the fitted rule. (A rule fitted to
        re-rank by probability is applied to the list order here: a cut keeps a prefix.)"""
        p = self.probabilities(cands, query)
        opts = {**self.header.get("defaults", {}), **options}
        opts.pop("order", None)
        return choose_cut(p, **opts)

    # --- files -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = (
                path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps(self.header, sort_keys=True)
        arrays: dict[str, Any] = {"__header__": np.array(header), **self.arrays}
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, expect_pipeline: str | None = None) -> CutoffModel:
        path = resolve_model(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                arrays = {k: data[k] for k in data.files if k != "__header__"}
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
            # numpy's own message for a pickled file suggests allow_pickle: never do that
            # with a model file, loading one must not run code
            why = (
                "it holds pickled Python objects, which ragsel never loads"
                if "pickle" in str(exc).lower()
                else f"{type(exc).__name__}: damaged, or not written by 'ragsel fit'"
            )
            raise InputError(
                f"{path} is not a ragsel learned-cutoff model file ({why}). Re-fit it with "
                f"'ragsel fit', or use a shipped model ({', '.join(shipped_models())})"
            ) from None
        if not isinstance(header, dict):
            raise InputError(f"{path} is not a ragsel learned-cutoff model file (bad header)")
        if header.get("format") != MODEL_FORMAT:
            raise InputError(f"{path} is not a ragsel learned-cutoff model file")
        if header.get("feature_version") != FEATURE_VERSION:
            raise InputError(
                f"learned cutoff model {path} uses feature version "
                f"{header.get('feature_version')}, this ragsel computes version "
                f"{FEATURE_VERSION}: re-fit it with 'ragsel fit'"
            )
        if header.get("features") != model_features(header):
            raise InputError(
                f"learned cutoff model {path} lists other features than this "
                f"ragsel computes (feature version {FEATURE_VERSION}): re-fit it "
                "with 'ragsel fit'"
            )
        missing = (
            [k for k in PRIOR_ARRAYS if k not in arrays] if header.get("corpus_priors") else []
        )
        if missing:
            raise InputError(
                f"learned cutoff model {path} declares corpus priors but lacks "
                f"{missing}: the file is damaged; re-fit it with 'ragsel fit'"
            )
        general = header.get("feature_set") == "general"
        if (
            expect_pipeline is not None
            and not general
            and header.get("pipeline_hash") != expect_pipeline
        ):
            raise InputError(
                f"learned cutoff model {path} was fitted for another pipeline (its upstream "
                f"stages {header.get('upstream')} hash to {header.get('pipeline_hash')}, this "
                f"pipeline's to {expect_pipeline}); re-fit it with 'ragsel fit' for this "
                "pipeline"
            )
        if general and header.get("general_version") != GENERAL_VERSION:
            raise InputError(
                f"learned cutoff model {path} uses general feature version "
                f"{header.get('general_version')}, this ragsel computes {GENERAL_VERSION}: "
                "use the model shipped with this ragsel or re-fit it"
            )
        if general and any(k not in arrays for k in _TREE_ARRAYS[header.get("kind", "gbdt")]):
            raise InputError(f"learned cutoff model {path} is damaged (arrays missing): re-fit it")
        header["path"] = str(path)
        return cls(header, arrays)


_TREE_ARRAYS = {
    "gbdt": ("left", "right", "feature", "threshold", "value", "roots", "init"),
    "logistic": ("mean", "scale", "coef", "intercept"),
}


def shipped_models() -> list[str]:
    """Names of the models shipped inside ragsel (``learned_cutoff: {model: NAME}``)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.npz"))


def is_model_name(spec: str | Path) -> bool:
    """Whether ``spec`` names a shipped model rather than a file (no folder, no suffix)."""
    text = str(spec)
    return "/" not in text and "\\" not in text and not text.endswith(".npz")


def resolve_model(spec: str | Path) -> Path:
    """The file of a model given by a shipped name (``general``) or a path."""
    path = Path(spec)
    if path.is_file():
        return path
    text = str(spec)
    if is_model_name(text):
        shipped = SHIPPED_DIR / f"{text}.npz"
        if shipped.is_file():
            return shipped
        raise InputError(
            f"unknown learned cutoff model {text!r}: the shipped models are "
            f"{', '.join(shipped_models()) or 'none'}; or give the path of a model file "
            "written by 'ragsel fit'"
        )
    raise InputError(
        f"learned cutoff model not found: {path}. Fit one with "
        f"'ragsel fit PIPELINE --dataset NAME --out {path}', or use a shipped model "
        f"({', '.join(shipped_models())})"
    )
