"""Text embedders and the process-wide embedder cache.

The interface is :class:`ragsel.backends.embedders.base.Embedder`. Use :func:`load_embedder`
rather than constructing backends directly, so every stage that names the same model shares
one loaded copy::

    from ragsel.backends.embedders import load_embedder

    emb = load_embedder("minilm")            # MiniLM fp32 on onnxruntime (the default)
    st = load_embedder("sentence-transformers")  # the same vectors through torch
    fast = load_embedder("minilm-onnx")      # int8-stored weights (cosine ~0.999)
    faster = load_embedder("minilm-onnx-q8") # ... with int8 matrix products (cosine ~0.99)
    own = load_embedder("/models/my-st-dir") # any local sentence-transformers directory
    tuned = load_embedder(EmbedderSpec("minilm", threads=1, batch_size=32))
    vectors = emb.embed(["a sentence", "another"])   # (2, 384) float32, unit rows

Names: ``"minilm"`` (alias ``"minilm-fp32"``: the packaged all-MiniLM-L6-v2 exported to ONNX
once, one path for indexing and queries, chosen on speed at equal vectors; see
``onnx_minilm.py``), ``"sentence-transformers"`` (the same model on torch, equal vectors),
``"minilm-onnx"`` (alias ``"onnx"``) and ``"minilm-onnx-q8"``; anything else is taken as a
local sentence-transformers directory. Hub names are
never fetched (no network); a name that is not a directory is a :class:`ConfigError`.

**The cache** (the only global state here): ``load_embedder`` keeps one embedder per
:class:`EmbedderSpec` (model + threads + batch size + max length + device) for the life of the
process, so a dense retriever, a rationale selector and a cutoff stage in one pipeline load
MiniLM once. Embedders load their weights lazily (first ``embed`` or ``warm_up``), so
``load_embedder`` itself is cheap. :func:`clear_embedder_cache` drops every cached embedder
(tests, or to free memory); :func:`cached_embedders` lists what is cached.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ragsel.backends.embedders.base import Embedder, normalize
from ragsel.errors import ConfigError

__all__ = [
    "Embedder",
    "EmbedderSpec",
    "load_embedder",
    "clear_embedder_cache",
    "cached_embedders",
    "normalize",
    "EMBEDDER_NAMES",
    "same_vectors",
]

#: Registered short names -> backend kind.
EMBEDDER_NAMES: dict[str, str] = {
    "minilm": "onnx-fp32",
    "minilm-fp32": "onnx-fp32",
    "sentence-transformers": "st",
    "all-minilm-l6-v2": "st",
    "minilm-onnx": "onnx",
    "onnx": "onnx",
    "minilm-int8": "onnx",
    "minilm-onnx-q8": "onnx-q8",
}


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedder to load and how. Hashable: it is the cache key.

    ``threads`` sets torch's (or onnxruntime's) intra-op threads; ``None`` leaves the library
    default (``OMP_NUM_THREADS`` or the core count). On a busy machine fewer threads is often
    faster. ``batch_size`` is how many texts one forward pass takes. ``max_length`` truncates
    long texts in tokens (MiniLM was trained with 256).
    """

    model: str = "minilm"
    threads: int | None = None
    batch_size: int = 64
    max_length: int = 256
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.model or not str(self.model).strip():
            raise ConfigError(
                "embedder: the model name is empty; use 'minilm' or "
                "'minilm-onnx' or a local sentence-transformers directory"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"embedder: threads must be >= 1, got {self.threads}")
        if self.batch_size < 1:
            raise ConfigError(f"embedder: batch_size must be >= 1, got {self.batch_size}")
        if self.max_length < 8:
            raise ConfigError(f"embedder: max_length must be >= 8, got {self.max_length}")

    @property
    def kind(self) -> str:
        return EMBEDDER_NAMES.get(self.model.lower(), "st-path")


#: Embedder names whose vectors are equal (cosine >= 0.9999 on SciFact abstracts): an index
#: built with one can be extended with the other.
_EQUAL_VECTORS = {"sentence-transformers:all-MiniLM-L6-v2", "onnx-fp32:all-MiniLM-L6-v2"}


def same_vectors(a: str, b: str) -> bool:
    """Whether embedders named ``a`` and ``b`` produce the same vectors."""
    return a == b or {a, b} <= _EQUAL_VECTORS


_cache: dict[EmbedderSpec, Embedder] = {}
_lock = threading.Lock()


def _build(spec: EmbedderSpec) -> Embedder:
    kind = spec.kind
    if kind in ("onnx", "onnx-q8", "onnx-fp32"):
        from ragsel.backends.embedders.onnx_minilm import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(
            threads=spec.threads,
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            int8_compute=kind == "onnx-q8",
            fp32=kind == "onnx-fp32",
        )
    from ragsel.backends.embedders.sentence_transformers import SentenceTransformerEmbedder

    if kind == "st":
        return SentenceTransformerEmbedder(
            None,
            threads=spec.threads,
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            device=spec.device,
        )
    path = Path(spec.model).expanduser()
    if not path.is_dir():
        known = ", ".join(
            sorted({"minilm", "sentence-transformers", "minilm-onnx", "minilm-onnx-q8"})
        )
        raise ConfigError(
            f"unknown embedder {spec.model!r}: use one of {known} or the path of a local "
            "sentence-transformers directory (models are never downloaded by hub name)"
        )
    return SentenceTransformerEmbedder(
        str(path.resolve()),
        threads=spec.threads,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        device=spec.device,
    )


def load_embedder(spec: str | EmbedderSpec = "minilm", **options: object) -> Embedder:
    """The shared embedder for ``spec`` (a name, a directory or an :class:`EmbedderSpec`).

    Keyword ``options`` override spec fields: ``load_embedder("minilm", threads=1)``.
    Cheap: the model loads on first use. Unknown names raise :class:`ConfigError`; a missing
    optional package raises :class:`~ragsel.errors.MissingExtraError` on first use.
    """
    if isinstance(spec, str):
        spec = EmbedderSpec(spec, **options)  # type: ignore[arg-type]
    elif isinstance(spec, EmbedderSpec):
        if options:
            from dataclasses import replace

            spec = replace(spec, **options)  # type: ignore[arg-type]
    else:
        raise ConfigError(
            f"embedder spec must be a name or EmbedderSpec, got {type(spec).__name__}"
        )
    with _lock:
        emb = _cache.get(spec)
        if emb is None:
            emb = _cache[spec] = _build(spec)
        return emb


def clear_embedder_cache() -> None:
    """Forget every cached embedder (their models are freed once nothing else holds them)."""
    with _lock:
        _cache.clear()


def cached_embedders() -> dict[EmbedderSpec, Embedder]:
    """A copy of the cache: spec -> embedder."""
    with _lock:
        return dict(_cache)
