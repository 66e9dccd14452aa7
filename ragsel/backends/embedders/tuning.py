"""Adapting an embedder to a corpus: fine-tuning on (query, passage) pairs.

Two sources of pairs:

- :func:`labelled_pairs`: your labelled queries, each paired with every chunk that answers it.
- :func:`pseudo_pairs`: no labels. Pseudo-queries are made from the corpus itself, without an
  LLM (the GPL / InPars idea with extraction instead of generation): a document's **title**
  paired with its chunk, and a chunk's **key sentence** (the one whose words are rarest in the
  corpus, i.e. most specific to it) paired with the rest of the chunk. The query part is taken
  *out* of the passage (the inverse cloze task of Lee et al. 2019), so the model must learn to
  match a statement with the context around it, not to find the same words.

:func:`tune_embedder` fine-tunes a sentence-transformers model on such pairs with in-batch
negatives (the multiple-negatives ranking loss: cross-entropy of each query against every
passage of its batch) and writes a sentence-transformers folder plus ``ragsel-embedder.json``
(how it was made). Every ragsel place that takes an embedder takes that folder: ``ragsel index
--embedder DIR``, a stage's ``embedder: DIR``, ``load_embedder(DIR)``.

Needs the ``local`` extra (torch, sentence-transformers). On 2 CPU cores, training runs at
about 4 pairs of 256-token passages per second on a quiet machine and 1-2 under load
(``eval/benchmarks/studies/embedder_finetune.py``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragsel.errors import InputError, require
from ragsel.types import Chunk

__all__ = ["Pair", "TuneSettings", "labelled_pairs", "pseudo_pairs", "tune_embedder"]

#: The manifest written beside the model.
MANIFEST = "ragsel-embedder.json"

_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_MIN_WORDS, _MAX_WORDS = 6, 40


@dataclass(frozen=True)
class Pair:
    """One training example: ``query`` should embed close to ``passage`` (of chunk
    ``chunk_id``: two pairs of one chunk in a batch are not each other's negatives)."""

    query: str
    passage: str
    chunk_id: str
    kind: str = "labelled"  # labelled | title | sentence


@dataclass(frozen=True)
class TuneSettings:
    """How to train. One epoch at lr 2e-5, batch 16: the settings of the SciFact study."""

    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    scale: float = 20.0  # cosine similarities are multiplied by this before the softmax
    max_length: int = 256
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.max_length < 8:
            raise InputError(
                "tuning needs epochs >= 1, batch_size >= 2 (in-batch negatives) and "
                f"max_length >= 8; got {self.epochs}, {self.batch_size}, {self.max_length}"
            )
        if not 0 < self.lr < 1:
            raise InputError(f"the learning rate must be in (0, 1), got {self.lr}")


@dataclass
class TuneReport:
    """What :func:`tune_embedder` did; also written to the model folder's manifest."""

    model: str
    base: str
    source: str
    pairs: int
    pair_kinds: dict[str, int]
    settings: dict[str, Any]
    train_seconds: float
    loss_first: float
    loss_last: float
    extra: dict[str, Any] = field(default_factory=dict)


def labelled_pairs(
    queries: Iterable[tuple[str, Iterable[str]]], chunks: Sequence[Chunk]
) -> list[Pair]:
    """(query text, ids of its relevant chunks) -> one pair per relevant chunk found."""
    by_id = {c.id: c for c in chunks}
    out = [
        Pair(text, by_id[cid].text, cid)
        for text, gold in queries
        for cid in sorted(set(gold))
        if cid in by_id and text.strip()
    ]
    if not out:
        raise InputError(
            "no labelled query has a relevant chunk in this index: check that the dataset's "
            "document ids are the ones the index was built from"
        )
    return out


def pseudo_pairs(
    chunks: Sequence[Chunk], n: int = 2000, *, seed: int = 0, title_share: float = 0.3
) -> list[Pair]:
    """Up to ``n`` label-free pairs from ``chunks`` (seeded): ``title_share`` of them
    title -> chunk (documents with a title of two words or more), the rest key sentence ->
    the chunk without that sentence. Chunks too short to lose a sentence are skipped."""
    if n < 1:
        raise InputError(f"the number of pseudo-queries must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    idf = _idf(chunks)
    out: list[Pair] = []
    titled = [c for c in chunks if _title(c)]
    for i in rng.permutation(len(titled))[: int(round(n * title_share))].tolist():
        c = titled[i]
        title = _title(c)
        body = _without(c.text, title)
        if len(body.split()) >= _MIN_WORDS:
            out.append(Pair(title, body, c.id, "title"))
    for i in rng.permutation(len(chunks)).tolist():
        if len(out) >= n:
            break
        c = chunks[i]
        key = _key_sentence(_without(c.text, _title(c)), idf)
        if key is None:
            continue
        rest = _without(c.text, key)
        if len(rest.split()) >= _MIN_WORDS:
            out.append(Pair(key, rest, c.id, "sentence"))
    if not out:
        raise InputError(
            "the corpus gave no pseudo-query: its chunks have no sentence of "
            f"{_MIN_WORDS}-{_MAX_WORDS} words with enough text around it; tune from labelled "
            "queries instead"
        )
    return out


def tune_embedder(
    pairs: Sequence[Pair],
    out: str | Path,
    *,
    base: str = "minilm",
    settings: TuneSettings | None = None,
    source: str = "",
    on_batch: Callable[[int, int, float], None] | None = None,
) -> TuneReport:
    """Fine-tune ``base`` (a registered MiniLM name or a sentence-transformers folder) on
    ``pairs`` and save it to ``out``. ``on_batch(done, total, loss)`` reports progress."""
    st = require("sentence_transformers", "local", "fine-tuning an embedder")
    torch = require("torch", "local", "fine-tuning an embedder")
    s = settings or TuneSettings()
    if len(pairs) < 2:
        raise InputError(f"fine-tuning needs at least 2 pairs, got {len(pairs)}")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; choose a new folder for --out")
    base_dir = _base_dir(base)
    torch.manual_seed(s.seed)
    if s.threads:
        torch.set_num_threads(s.threads)
    model = st.SentenceTransformer(str(base_dir), device="cpu", local_files_only=True)
    model.max_seq_length = s.max_length
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr)
    rng = np.random.default_rng(s.seed)
    total = s.epochs * math.ceil(len(pairs) / s.batch_size)
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    for _ in range(s.epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), s.batch_size):
            batch = [pairs[i] for i in order[start : start + s.batch_size]]
            if len(batch) < 2:  # a lone pair has no in-batch negative
                continue
            losses.append(_step(model, opt, batch, s.scale, torch))
            if on_batch is not None:
                on_batch(len(losses), total, losses[-1])
    model.eval()
    seconds = time.perf_counter() - t0
    model.save(str(out))
    report = TuneReport(
        model=str(out),
        base=str(base),
        source=source,
        pairs=len(pairs),
        pair_kinds=dict(Counter(p.kind for p in pairs)),
        settings=asdict(s),
        train_seconds=round(seconds, 1),
        loss_first=round(losses[0], 4),
        loss_last=round(float(np.mean(losses[-10:])), 4),
    )
    (out / MANIFEST).write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def _step(model: Any, opt: Any, batch: list[Pair], scale: float, torch: Any) -> float:
    emb = []
    for side in ("query", "passage"):
        feats = model.preprocess([getattr(p, side) for p in batch])
        emb.append(torch.nn.functional.normalize(model(feats)["sentence_embedding"], dim=-1))
    logits = scale * emb[0] @ emb[1].T
    # two pairs of one chunk in a batch: the other's passage is no negative
    ids = [p.chunk_id for p in batch]
    same = torch.tensor([[a == b for b in ids] for a in ids])
    logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), -1e4)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _base_dir(base: str) -> Path:
    from ragsel.backends.embedders import EMBEDDER_NAMES
    from ragsel.backends.embedders.sentence_transformers import minilm_model_dir

    if base in EMBEDDER_NAMES:
        return minilm_model_dir()  # every registered name is the packaged MiniLM
    p = Path(base).expanduser()
    if not (p / "modules.json").is_file() and not (p / "config.json").is_file():
        raise InputError(
            f"--base {base!r} is neither a registered embedder ({', '.join(EMBEDDER_NAMES)}) "
            "nor a local sentence-transformers folder"
        )
    return p


def _title(c: Chunk) -> str:
    t = (c.metadata or {}).get("title")
    return t.strip() if isinstance(t, str) and len(t.split()) >= 2 else ""


def _without(text: str, part: str) -> str:
    """``text`` with the first occurrence of ``part`` removed (whitespace tidied)."""
    if not part:
        return text
    i = text.find(part)
    if i < 0:
        return text
    return " ".join((text[:i] + " " + text[i + len(part) :]).split())


def _idf(chunks: Sequence[Chunk]) -> Mapping[str, float]:
    df: Counter[str] = Counter()
    for c in chunks:
        df.update({w.lower() for w in _WORD.findall(c.text)})
    n = max(len(chunks), 1)
    return {w: math.log((n + 1) / (d + 0.5)) for w, d in df.items()}


def _key_sentence(text: str, idf: Mapping[str, float]) -> str | None:
    """The sentence of ``text`` whose words are, on average, rarest in the corpus."""
    best, best_score = None, -1.0
    for s in _SENT.split(text):
        words = _WORD.findall(s)
        if not _MIN_WORDS <= len(words) <= _MAX_WORDS:
            continue
        score = float(np.mean([idf.get(w.lower(), 0.0) for w in words]))
        if score > best_score:
            best, best_score = s.strip(), score
    return best
