"""Features of the *general* cutoff model: only what transfers between corpora.

One row per candidate, everything normalised within the query's own list, nothing keyed by a
retriever's stage name (a pipeline may call its retrievers anything) and no corpus priors:

- list shape of the scores the cut reads (ratio to the top score, z-scores of the score and
  of the gap after it, rank, where the elbow and the largest gap fall, the document's best
  chunk, how the chunk's document neighbours score);
- retriever agreement, aggregated over however many retrievers ranked the list (read from
  the chunks' "retrieved" events): how many ranked the chunk, its best and worst rank, its
  best and worst score relative to that retriever's top score;
- query-performance prediction (one value per query, repeated on its rows; Shtok et al.'s NQC,
  Zhou & Croft's WIG, Tao & Wu's SMV, computed on each retriever's own top scores, then the
  mean over retrievers), top-10 overlap of the retrievers, query length and type (question
  word, a claim without "?"), IDF of the query terms over the list (max, mean);
- query-term coverage of the chunk (IDF over the candidate list, see ``_learned_features``)
  and a list-level estimate of how many candidates cover the query well.

Pure numpy (plus a regular expression per chunk); versioned by :data:`GENERAL_VERSION`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.stages.cutoff._curve import elbow_index
from ragsel.stages.cutoff._learned_features import (
    _doc_groups,
    _neighbor_values,
    _z,
    retriever_scores,
    terms,
)
from ragsel.types import Candidates

GENERAL_VERSION = 1
_QTYPES = ("what", "which", "who", "when", "where", "how", "why", "yesno")
_YESNO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b")
_QPP_K = 10
_NONWORD = re.compile(r"[\W_]+")
# ASCII punctuation and whitespace -> space: word starts become " " + letter. Applied to the
# UTF-8 bytes (bytes.translate is a table lookup in C, several times faster than str.translate;
# UTF-8 leaves ASCII bytes alone and is self-synchronising, so byte and text substring tests
# agree); a regular expression over every chunk costs ~10x more
_SPACES = str.maketrans({c: " " for c in string.punctuation + "\t\n\r\f\v"})
_SPACE_BYTES = bytes.maketrans(
    (string.punctuation + "\t\n\r\f\v").encode(), b" " * (len(string.punctuation) + 5)
)


def _spaced(text: str) -> bytes:
    """``" " + text`` lowered, punctuation and whitespace as spaces, as UTF-8 bytes."""
    return (" " + text.lower()).encode("utf-8", "surrogatepass").translate(_SPACE_BYTES)


GENERAL_FEATURES = [
    # list shape
    "score_ratio_top",
    "score_range_frac",
    "score_z",
    "gap_next_z",
    "gap_prev_z",
    "rank",
    "log_rank",
    "rank_frac",
    "log_n",
    "before_largest_gap",
    "above_elbow",
    "elbow_frac",
    "log_chars",
    "chars_ratio_median",
    "doc_first",
    "neighbors_above",
    "same_doc_top5",
    "paired",
    "prev_neighbor_z",
    "next_neighbor_z",
    "doc_best_z",
    "doc_rank_frac",
    "doc_share",
    # retriever agreement
    "n_retrievers",
    "agreement",
    "best_rank_log",
    "worst_rank_log",
    "best_ret_ratio",
    "worst_ret_ratio",
    "mean_ret_z",
    # query performance prediction (per query)
    "qpp_nqc",
    "qpp_wig",
    "qpp_smv",
    "qpp_top_drop",
    "qpp_overlap10",
    "q_terms_log",
    *[f"q_type_{t}" for t in _QTYPES],
    "q_is_claim",
    "q_idf_max",
    "q_idf_mean",
    "q_est_relevant_log",
    "q_est_relevant_frac",
    # query-chunk
    "q_cover",
    "q_idf_cover",
    "q_idf_cover_z",
    "q_idf_cover_ratio",
    "q_idf_cover_rank_frac",
    "q_rarest_hit",
    "q_phrase",
    "doc_best_q_idf_cover",
    "title_in_query",
]


def _qpp(vals: np.ndarray) -> tuple[float, float, float, float]:
    """NQC, WIG, SMV and the top-1-to-top-k drop of one retriever's scores (descending),
    each divided by the retriever's top score so they compare across score scales."""
    top = vals[:_QPP_K]
    scale = abs(float(vals[0])) or 1.0
    mu = float(vals.mean())
    nqc = float(top.std()) / scale
    wig = (float(top.mean()) - mu) / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(top > 0, top / mu, 1.0) if mu > 0 else np.ones_like(top)
        smv = float(np.mean(top * np.abs(np.log(np.maximum(ratio, 1e-9))))) / scale
    drop = (float(top[0]) - float(top[-1])) / scale
    return nqc, wig, smv, drop


def _qtype(query: str) -> list[float]:
    q = query.strip().lower()
    first = q.split()[0] if q.split() else ""
    out = [float(first == t or (t == "what" and first == "what's")) for t in _QTYPES[:-1]]
    out.append(float(bool(_YESNO.match(q))))
    return out


def general_features(cands: Candidates, query: str | None) -> np.ndarray:
    """``(n, len(GENERAL_FEATURES))`` for the candidates in their given order."""
    items = cands.items
    n = len(items)
    X = np.zeros((n, len(GENERAL_FEATURES)))
    if n == 0:
        return X
    s = np.array([sc.score for sc in items], dtype=np.float64)
    top, low = float(s.max()), float(s.min())
    gap_next = np.append(s[:-1] - s[1:], 0.0)
    gap_prev = np.insert(s[:-1] - s[1:], 0, 0.0)
    largest = int(np.argmax(gap_next[:-1])) if n > 1 else 0
    elbow, _ = elbow_index(s, 1.0)
    rank = np.arange(n, dtype=np.float64)
    sz = _z(s)
    X[:, 0] = s / top if top > 0 else 0.0
    X[:, 1] = (s - low) / (top - low) if top > low else 1.0
    X[:, 2] = sz
    X[:, 3] = _z(gap_next)
    X[:, 4] = _z(gap_prev)
    X[:, 5] = rank
    X[:, 6] = np.log1p(rank)
    X[:, 7] = rank / n
    X[:, 8] = math.log(n)
    X[:, 9] = rank <= largest
    X[:, 10] = rank < elbow
    X[:, 11] = elbow / n
    chars = np.array([len(sc.chunk.text) for sc in items], dtype=np.float64)
    X[:, 12] = np.log1p(chars)
    X[:, 13] = chars / max(1.0, float(np.median(chars)))
    pos_of = {
        (sc.chunk.doc_id, sc.chunk.position): i
        for i, sc in enumerate(items)
        if sc.chunk.position is not None
    }
    docs_top5 = [sc.chunk.doc_id for sc in items[:5]]
    for i, sc in enumerate(items):
        ch = sc.chunk
        if ch.position is not None:
            X[i, 14] = ch.position == 0
            X[i, 15] = sum(1 for d in (-1, 1) if pos_of.get((ch.doc_id, ch.position + d), n) < i)
        X[i, 16] = sum(d == ch.doc_id for d in docs_top5) / len(docs_top5)
        X[i, 17] = bool(sc.rationales)
    X[:, 18:20] = _neighbor_values(items, sz, float(sz.min()) - 1.0)
    groups = _doc_groups(items)
    for g in groups:
        X[g, 20] = sz[g].max()
        X[g, 21] = g.min() / n
        X[g, 22] = g.size / n
    per = [_retrievals(sc) for sc in items]
    X[:, 23:30] = _retriever_block(per, n)
    X[:, 30:] = _query_block(items, per, query, groups, n)
    return X


def _retrievals(sc: Any) -> dict[str, tuple[float, int | None]]:
    """``{retriever: (score, rank)}`` from the "retrieved" events (rank from the event data,
    else from its reason as ``retriever_scores`` reads it)."""
    out: dict[str, tuple[float, int | None]] = {}
    for e in sc.events:
        if e.action == "retrieved" and e.score is not None:
            rank = e.data.get("rank")
            if rank is None:
                return retriever_scores(sc)
            out[e.stage] = (float(e.score), int(rank))
    return out


def _retriever_block(per: list[dict], n: int) -> np.ndarray:
    names = sorted({r for pr in per for r in pr})
    out = np.zeros((n, 7))
    if not names:
        out[:, 1] = 1.0
        out[:, 2] = out[:, 3] = np.log1p(np.arange(n))
        out[:, 4] = out[:, 5] = 1.0
        return out
    ranks = np.full((n, len(names)), 2.0 * n)
    ratio = np.zeros((n, len(names)))
    zs = np.full((n, len(names)), -3.0)
    for j, r in enumerate(names):
        present = np.array([r in pr for pr in per])
        raw = np.array([pr[r][0] if r in pr else 0.0 for pr in per])
        vals = raw[present]
        top = float(vals.max())
        sd = float(vals.std()) or 1.0
        ratio[present, j] = vals / top if top > 0 else 1.0
        zs[present, j] = (vals - vals.mean()) / sd
        zs[~present, j] = (vals.min() - vals.mean()) / sd - 1.0
        for i, pr in enumerate(per):
            if r in pr:
                ranks[i, j] = pr[r][1] if pr[r][1] is not None else i + 1
    out[:, 0] = len(names)
    out[:, 1] = (ranks < 2.0 * n).mean(axis=1)
    out[:, 2] = np.log(ranks.min(axis=1))
    out[:, 3] = np.log(ranks.max(axis=1))
    out[:, 4] = ratio.max(axis=1)
    out[:, 5] = ratio.min(axis=1)
    out[:, 6] = zs.mean(axis=1)
    return out


def _list_qpp(items: Sequence[Any], per: list[dict]) -> tuple[list[float], float]:
    """Mean NQC/WIG/SMV/drop over the retrievers (the list's own scores without events),
    and the top-10 overlap (Jaccard) of the first two retrievers."""
    per_ret: dict[str, list[tuple[int, float, int]]] = {}
    for i, pr in enumerate(per):
        for r, (score, rank) in pr.items():
            per_ret.setdefault(r, []).append((rank if rank is not None else i + 1, score, i))
    if not per_ret:
        per_ret = {"": [(i + 1, sc.score, i) for i, sc in enumerate(items)]}
    stats, tops = [], []
    for r in sorted(per_ret):
        ranked = sorted(per_ret[r])
        stats.append(_qpp(np.array([v for _, v, _ in ranked], dtype=np.float64)))
        tops.append({i for _, _, i in ranked[:_QPP_K]})
    overlap = len(tops[0] & tops[1]) / max(1, len(tops[0] | tops[1])) if len(tops) > 1 else 1.0
    return [float(v) for v in np.mean(stats, axis=0)], overlap


def _query_block(
    items: Sequence[Any], per: list[dict], query: str | None, groups: list[np.ndarray], n: int
) -> np.ndarray:
    width = len(GENERAL_FEATURES) - 30
    out = np.zeros((n, width))
    qpp, overlap = _list_qpp(items, per)
    out[:, 0:4] = qpp
    out[:, 4] = overlap
    if query is None:
        return out
    q_list = terms(query)
    q = sorted(set(q_list))
    out[:, 5] = math.log1p(len(q))
    out[:, 6:14] = _qtype(query)
    out[:, 14] = "?" not in query
    if not q:
        return out
    # a query term "occurs" when a word of the chunk starts with it (terms are 6-letter
    # prefixes): substring tests in C, not a Python tokenisation of every chunk
    texts = [_spaced(sc.chunk.text) for sc in items]
    needles = [_spaced(t) for t in q]
    hits = np.array([[nd in tx for nd in needles] for tx in texts], dtype=bool)
    df = hits.sum(axis=0).astype(np.float64)
    idf = np.where(df > 0, np.log((n + 1) / (df + 0.5)), 0.0)
    idf_total = float(idf.sum())
    out[:, 15] = float(idf.max())
    out[:, 16] = float(idf.mean())
    c = 19  # first query-chunk column
    out[:, c] = hits.mean(axis=1)
    cover = (hits @ idf) / idf_total if idf_total > 0 else np.zeros(n)
    out[:, c + 1] = cover
    out[:, c + 2] = _z(cover)
    out[:, c + 3] = cover / cover.max() if cover.max() > 0 else 0.0
    out[:, c + 4] = np.argsort(np.argsort(-cover, kind="stable"), kind="stable") / n
    if idf_total > 0:
        out[:, c + 5] = hits[:, int(np.argmax(idf))]
    phrase = " " + " ".join(query.lower().translate(_SPACES).split()[:4])
    if len(phrase) > 8:
        needle = phrase.encode("utf-8", "surrogatepass")
        out[:, c + 6] = [needle in tx for tx in texts]
    for g in groups:
        out[g, c + 7] = cover[g].max()
    qset = set(q)
    for i, sc in enumerate(items):
        title = (sc.chunk.metadata or {}).get("title")
        if isinstance(title, str) and title.strip():
            t_terms = set(terms(title))
            if t_terms:
                out[i, c + 8] = len(t_terms & qset) / len(t_terms)
    # how many candidates cover the query about as well as the best one: a list-level
    # estimate of how many relevant items it holds
    good = int((cover >= 0.8 * cover.max()).sum()) if cover.max() > 0 else 0
    out[:, 17] = math.log1p(good)
    out[:, 18] = good / n
    return out
