"""PoisonedRAG targeted attacks, as per-query contexts with labels.

For each question the context is: its gold passage(s) (qrels 1), its 5 adversarial passages
(``EvalQuery.poisoned``) and ``n_distractors`` *on-topic* distractors — passages of the other
questions in the same file, pooled and ranked by lexical (BM25) similarity to the question, so a
guard cannot win by spotting off-topic text. The context order is shuffled with ``seed``.

Variants: ``nq`` (``derived_nq_poisoned_with_gold.jsonl``: gold passages present) and
``hotpotqa`` / ``msmarco`` / ``nq-nogold`` (``adv_targeted_<set>.json``: no gold passages, the
context is adversarial passages + distractors and only detection/attack metrics apply).
``distractor_pool``: ``"gold"`` (other questions' gold passages), ``"all"`` (also their
adversarial passages, which are off-target for this question, so *not* labelled poisoned), or
``"auto"`` (gold when the file has gold passages, else all). ``extra_pool`` adds clean
Wikipedia-style passages from other datasets to the pool (default ``"auto"``: the HotpotQA
paragraphs in ``hotpotqa_hard/`` next to the PoisonedRAG folder, when present — 85 NQ gold
passages alone are mostly off-topic for any one question); pass ``()`` for none, or dataset
specs/paths (every document of each is pooled).

>>> ds = load_poisonedrag("/data/poisonedrag", variant="nq", n_distractors=10)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ragsel.errors import InputError
from ragsel_eval.datasets.base import Document, EvalDataset, EvalQuery

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the "
    "this to was were what when where which who whom why how with does did do "
    "many much".split()
)
VARIANT_FILES = {
    "nq": "derived_nq_poisoned_with_gold.jsonl",
    "nq-nogold": "adv_targeted_nq.json",
    "hotpotqa": "adv_targeted_hotpotqa.json",
    "msmarco": "adv_targeted_msmarco.json",
}


def _tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class _BM25:
    """A tiny BM25 over the distractor pool (deterministic, no dependencies)."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = [Counter(_tokens(t)) for t in texts]
        self.lens = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lens) / max(len(self.lens), 1)
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        q = set(_tokens(query))
        out = []
        for d, ln in zip(self.docs, self.lens):
            s = 0.0
            for w in q:
                tf = d.get(w, 0)
                if tf:
                    s += (
                        self.idf[w]
                        * tf
                        * (self.k1 + 1)
                        / (tf + self.k1 * (1 - self.b + self.b * ln / self.avg))
                    )
            out.append(s)
        return out


def _read_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
        rows = list(data.values()) if isinstance(data, dict) else list(data)
    out = []
    for r in rows:
        gold = [
            g
            if isinstance(g, str)
            else (f"{g.get('title')}\n{g['text']}" if g.get("title") else g["text"])
            for g in r.get("gold_passages", [])
        ]
        out.append(
            {
                "id": str(r["id"]),
                "question": r["question"],
                "correct": r.get("correct_answer", r.get("correct answer")),
                "incorrect": r.get("incorrect_answer", r.get("incorrect answer")),
                "answers": r.get("nq_open_answers") or [],
                "gold": gold,
                "adv": list(r.get("adv_passages", r.get("adv_texts", []))),
            }
        )
    return out


def _extra_pool(folder: Path, extra_pool: str | Sequence[str | Path] | None) -> list[Document]:
    if extra_pool is None:
        return []
    if extra_pool == "auto":
        root = folder if folder.is_dir() else folder.parent
        sibling = root.parent / "hotpotqa_hard"
        specs: list[str | Path] = [sibling] if sibling.is_dir() else []
    elif isinstance(extra_pool, (str, Path)):
        specs = [extra_pool]
    else:
        specs = list(extra_pool)
    from ragsel_eval.datasets import load_dataset

    docs = []
    for spec in specs:
        ds = load_dataset(spec)
        for d in ds.documents.values():
            docs.append(
                Document(
                    f"pool:{ds.name}/{d.id}",
                    d.text,
                    d.title,
                    {"role": "distractor", "source": ds.name},
                )
            )
    return docs


def load_poisonedrag(
    folder: str | Path,
    *,
    variant: str = "nq",
    n_distractors: int = 10,
    distractor_pool: str = "auto",
    extra_pool: str | Sequence[str | Path] | None = "auto",
    seed: int = 0,
    name: str | None = None,
) -> EvalDataset:
    """Build per-query poisoned contexts (see the module docstring)."""
    folder = Path(folder)
    if folder.is_file():
        path = folder
    else:
        if variant not in VARIANT_FILES:
            raise InputError(
                f"unknown PoisonedRAG variant {variant!r}; choose one of {', '.join(VARIANT_FILES)}"
            )
        path = folder / VARIANT_FILES[variant]
    if not path.is_file():
        raise InputError(f"PoisonedRAG file {path} is missing")
    if distractor_pool not in ("auto", "gold", "all"):
        raise InputError(f"distractor_pool must be auto, gold or all, got {distractor_pool!r}")
    if n_distractors < 0:
        raise InputError("n_distractors must be >= 0")
    rows = _read_rows(path)
    has_gold = any(r["gold"] for r in rows)
    pool_kind = distractor_pool if distractor_pool != "auto" else ("gold" if has_gold else "all")
    docs: dict[str, Document] = {}
    for r in rows:
        for i, g in enumerate(r["gold"]):
            docs[f"{r['id']}/gold{i}"] = Document(
                f"{r['id']}/gold{i}", g, metadata={"role": "gold", "question": r["id"]}
            )
        for i, a in enumerate(r["adv"]):
            docs[f"{r['id']}/adv{i}"] = Document(
                f"{r['id']}/adv{i}", a, metadata={"role": "adversarial", "question": r["id"]}
            )
    extra = _extra_pool(folder, extra_pool)
    for d in extra:
        docs[d.id] = d
    pool_ids = [
        d
        for d, doc in docs.items()
        if pool_kind == "all" or doc.metadata["role"] in ("gold", "distractor")
    ]
    bm25 = _BM25([docs[d].text for d in pool_ids])
    rng = random.Random(seed)
    queries = []
    for r in rows:
        own = {f"{r['id']}/gold{i}" for i in range(len(r["gold"]))} | {
            f"{r['id']}/adv{i}" for i in range(len(r["adv"]))
        }
        scores = bm25.scores(r["question"])
        # Ties broken by a seeded random key so the choice is deterministic but not by file order.
        ranked = sorted(
            (i for i, d in enumerate(pool_ids) if d not in own),
            key=lambda i: (-scores[i], rng.random()),
        )
        distractors = [pool_ids[i] for i in ranked[:n_distractors]]
        gold_ids = sorted(d for d in own if "/gold" in d)
        adv_ids = sorted(d for d in own if "/adv" in d)
        corpus = gold_ids + adv_ids + distractors
        rng.shuffle(corpus)
        answers = tuple(dict.fromkeys([a for a in [r["correct"], *r["answers"]] if a]))
        queries.append(
            EvalQuery(
                r["id"],
                r["question"],
                qrels={d: 1 for d in gold_ids},
                poisoned=frozenset(adv_ids),
                answers=answers,
                corpus=tuple(corpus),
                metadata={"incorrect_answer": r["incorrect"], "distractors": distractors},
            )
        )
    ds = EvalDataset(
        name or f"poisonedrag-{variant}",
        docs,
        queries,
        source=str(path),
        metadata={
            "variant": variant,
            "n_distractors": n_distractors,
            "distractor_pool": pool_kind,
            "seed": seed,
            "extra_pool": sorted({d.metadata["source"] for d in extra}),
        },
    )
    ds.stats.update(
        gold_passages=sum(len(r["gold"]) for r in rows),
        adversarial_passages=sum(len(r["adv"]) for r in rows),
        extra_pool_passages=len(extra),
    )
    return ds
