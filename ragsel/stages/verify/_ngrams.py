"""Character n-gram Jaccard similarity for :mod:`ragsel.stages.verify.poison_cluster`.

:func:`ngram_jaccard` is vectorised (hashed n-grams, one sort, one matrix product over the
shared grams); :func:`ngram_jaccard_pairwise` is the plain set implementation it replaced,
kept as the reference the tests compare it with (equal matrices, bit for bit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WS = re.compile(r"\s+")


def char_ngrams(text: str, n: int) -> frozenset[str]:
    t = _WS.sub(" ", text.lower()).strip()
    if len(t) <= n:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i : i + n] for i in range(len(t) - n + 1))


_MIX = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(1_000_003)


def _gram_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hash, text index)`` of every character n-gram of every normalised text, one
    vectorised pass over all texts joined: 64-bit polynomial hashes of the code points,
    mixed. A text of at most ``n`` characters is one gram (itself), as in :func:`char_ngrams`.
    Collisions are possible in principle (about 1e-9 for 1e5 distinct grams)."""
    norm = [" ".join(t.lower().split()) for t in texts]  # == _WS.sub(" ", .).strip()
    k = len(norm)
    lens = np.fromiter((len(t) for t in norm), dtype=np.int64, count=k)
    ends = np.cumsum(lens)
    codes = np.frombuffer("".join(norm).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    total = len(codes)
    with np.errstate(over="ignore"):
        if total >= n:
            h = np.zeros(total - n + 1, dtype=np.uint64)
            for j in range(n):
                h = h * _BASE + codes[j : total - n + 1 + j]
            start = np.arange(len(h))
            doc = np.searchsorted(ends, start, side="right")
            inside = doc < k
            inside[inside] = start[inside] + n <= ends[doc[inside]]
            h, doc = h[inside], doc[inside]
        else:
            h, doc = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        short = np.flatnonzero((lens < n) & (lens > 0))  # len == n: its one window above
        if len(short):
            extra = np.zeros(len(short), dtype=np.uint64)
            for s, i in enumerate(short.tolist()):
                v = np.uint64(lens[i]) + _MIX  # tagged by length: never equal to an n-gram
                for c in codes[ends[i] - lens[i] : ends[i]]:
                    v = v * _BASE + c
                extra[s] = v
            h, doc = np.concatenate([h, extra]), np.concatenate([doc, short])
        h = h ^ (h >> np.uint64(29))
        h = h * _MIX
        h = h ^ (h >> np.uint64(32))
    return h, doc


def ngram_jaccard(texts: Sequence[str], n: int) -> np.ndarray:
    """Pairwise Jaccard similarity of the texts' character n-gram sets (:func:`char_ngrams`).

    Vectorised: n-grams are hashed (:func:`_gram_hashes`), each text's distinct hashes are
    found with one sort, and the intersections come from one matrix product over the grams
    that two or more texts share (~30 ms for 100 abstracts, against ~0.6 s for pairwise set
    intersections)."""
    k = len(texts)
    out = np.eye(k, dtype=np.float32)
    if k < 2:
        return out
    h, doc = _gram_hashes(texts, n)
    # one key per (gram, text): the hash's top bits and the text index in the low bits
    bits = max(1, int(k - 1).bit_length())
    key = (h >> np.uint64(bits) << np.uint64(bits)) | doc.astype(np.uint64)
    key.sort()  # (np.unique's hash path is slower here)
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    doc = (key & np.uint64((1 << bits) - 1)).astype(np.int64)
    gram = key >> np.uint64(bits)
    sizes = np.bincount(doc, minlength=k).astype(np.float64)
    first = np.empty(len(gram), dtype=bool)
    first[:1] = True
    first[1:] = gram[1:] != gram[:-1]
    gid = np.cumsum(first) - 1
    shared = np.bincount(gid)[gid] >= 2
    if not shared.any():
        return out
    col = np.cumsum(first & shared) - 1  # column of each shared gram, in gram order
    col = col[shared]
    member = np.zeros((k, int(col[-1]) + 1), dtype=np.float32)
    member[doc[shared], col] = 1.0
    inter = (member @ member.T).astype(np.float64)  # exact: integer counts < 2**24
    den = sizes[:, None] + sizes[None, :] - inter
    jac = np.where(inter > 0, inter / np.where(den > 0, den, 1.0), 0.0).astype(np.float32)
    np.fill_diagonal(jac, 1.0)
    return jac


def ngram_jaccard_pairwise(texts: Sequence[str], n: int) -> np.ndarray:
    """Reference for :func:`ngram_jaccard`: pairwise intersections of Python n-gram sets
    (the previous implementation, ~20x slower; kept to check the vectorised one against)."""
    grams = [char_ngrams(t, n) for t in texts]
    k = len(texts)
    out = np.eye(k, dtype=np.float32)
    for i in range(k):
        for j in range(i + 1, k):
            inter = len(grams[i] & grams[j])
            if inter:
                out[i, j] = out[j, i] = inter / (len(grams[i]) + len(grams[j]) - inter)
    return out
