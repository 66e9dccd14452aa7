"""Features of a ranked candidate list for the learned cutoff (one row per position).

Two groups, both normalised *within the query's own list* (z-scores, ranks, fractions of the
list's best) so a model moves between corpora and score scales:

- list features (:data:`_BASE_FEATURES` + three per retriever): the score, its gaps and
  z-scores, each retriever's z-score, rank and reciprocal rank, agreement, position in the
  document, the scores of the chunk's document neighbours and of its document's best chunk;
- query features (:data:`QUERY_FEATURES`, only when the query text is given): how much of the
  query the chunk covers, weighted by how rare each query term is *among the candidates*
  (an IDF over the list, not over a corpus), the same inside the chunk's best window of
  :data:`_WINDOW` content words (long chunks: is the match local?), the rarest query term,
  query bigrams, the
  chunk's title (``chunk.metadata["title"]``, set by ragsel's chunker from the document
  title) in the query, and whether the title is named in the text of the top chunks of other
  documents (a bridge entity in multi-hop questions).

Versioned by :data:`FEATURE_VERSION`: a model file records the version it was fitted with and
is refused by a ragsel that computes other features.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragsel.stages.cutoff._curve import elbow_index
from ragsel.types import Candidates

FEATURE_VERSION = 2
_RANK = re.compile(r"rank (\d+)")
_TOKEN = re.compile(r"[^\W_]+")
_PREFIX = 6  # crude stemming: "policies"/"policy" -> "polici"/"policy", "sharing" -> "sharin"
_STOP = frozenset(
    """a an and are as at be been but by can could did do does for from had has
have how i if in into is it its me my no not of on or our so that the their them then there
these they this to was we were what when where which who whom whose why will with would you
your yours about after before than also any all may might shall should such""".split()
)
_TOP_FOR_TITLES = 3  # titles named in the text of this many top chunks count as bridges

_BASE_FEATURES = [
    "score",
    "score_minus_top",
    "score_ratio_top",
    "score_z",
    "gap_next",
    "gap_next_z",
    "gap_prev",
    "rank",
    "rank_frac",
    "log_n",
    "before_largest_gap",
    "above_elbow",
    "top_score",
    "score_std",
    "log_words",
    "log_doc_position",
    "doc_first",
    "neighbors_above",
    "same_doc_top5",
    "paired",
    "n_paired_by",
    "retriever_agreement",
    "prev_neighbor_z",
    "next_neighbor_z",
    "doc_best_z",
    "doc_rank_frac",
    "doc_share",
]
QUERY_FEATURES = [
    "q_cover",
    "q_idf_cover",
    "q_idf_cover_z",
    "q_idf_cover_ratio",
    "q_idf_cover_rank_frac",
    "q_rarest_hit",
    "q_bigram",
    "q_density",
    "neighbor_q_idf_cover",
    "doc_best_q_idf_cover",
    "has_title",
    "title_in_query",
    "query_in_title",
    "title_in_top_text",
    "log_query_terms",
    "q_window_cover",
]
_WINDOW = 25  # content words: about one or two sentences, where an answer usually sits


def feature_names(retrievers: Sequence[str], query_features: bool = False) -> list[str]:
    names = list(_BASE_FEATURES)
    for r in retrievers:
        names += [f"{r}:present", f"{r}:score_z", f"{r}:rank_frac", f"{r}:recip_rank"]
    return names + (list(QUERY_FEATURES) if query_features else [])


def retriever_scores(sc: Any) -> dict[str, tuple[float, int | None]]:
    """``{retriever stage: (score, rank)}`` from a chunk's "retrieved" events."""
    out: dict[str, tuple[float, int | None]] = {}
    for e in sc.events:
        if e.action == "retrieved" and e.score is not None:
            m = _RANK.search(e.reason or "")
            out[e.stage] = (float(e.score), int(m.group(1)) if m else None)
    return out


def discover_retrievers(lists: Sequence[Candidates]) -> list[str]:
    names: set[str] = set()
    for cands in lists:
        for sc in cands.items:
            names.update(retriever_scores(sc))
    return sorted(names)


def terms(text: str) -> list[str]:
    """Content-word prefixes of ``text`` (lower-cased, stop words dropped), in order."""
    return [
        t[:_PREFIX]
        for t in _TOKEN.findall(text.lower())
        if t not in _STOP and (len(t) > 1 or t.isdigit())
    ]


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std()) if x.size else 0.0
    return np.zeros_like(x) if sd <= 0 else (x - x.mean()) / sd


def _neighbor_values(items: Sequence[Any], values: np.ndarray, missing: float) -> np.ndarray:
    """``(n, 2)``: ``values`` of the previous / next chunk of the same document when that
    chunk is in the list, else ``missing``."""
    at = {
        (sc.chunk.doc_id, sc.chunk.position): i
        for i, sc in enumerate(items)
        if sc.chunk.position is not None
    }
    out = np.full((len(items), 2), missing)
    for i, sc in enumerate(items):
        if sc.chunk.position is not None:
            for col, d in enumerate((-1, 1)):
                j = at.get((sc.chunk.doc_id, sc.chunk.position + d))
                if j is not None:
                    out[i, col] = values[j]
    return out


def _doc_groups(items: Sequence[Any]) -> list[np.ndarray]:
    docs: dict[str, list[int]] = {}
    for i, sc in enumerate(items):
        docs.setdefault(sc.chunk.doc_id, []).append(i)
    return [np.array(v) for v in docs.values()]


def list_features(
    cands: Candidates, retrievers: Sequence[str], query: str | None = None
) -> np.ndarray:
    """``(n, F)`` feature matrix for the candidates in their given order; the query
    features are added when ``query`` (its text) is given."""
    items = cands.items
    n = len(items)
    names = feature_names(retrievers, query is not None)
    if n == 0:
        return np.zeros((0, len(names)))
    s = np.array([sc.score for sc in items], dtype=np.float64)
    gap_next = np.append(s[:-1] - s[1:], 0.0)
    gap_prev = np.insert(s[:-1] - s[1:], 0, 0.0)
    largest = int(np.argmax(gap_next[:-1])) if n > 1 else 0
    elbow, _ = elbow_index(s, 1.0) if n else (0, {})
    top = s[0]
    rank = np.arange(n, dtype=np.float64)
    sz = _z(s)
    pos_of = {
        (sc.chunk.doc_id, sc.chunk.position): i
        for i, sc in enumerate(items)
        if sc.chunk.position is not None
    }
    docs_top5 = [sc.chunk.doc_id for sc in items[:5]]
    per_ret = [retriever_scores(sc) for sc in items]
    X = np.zeros((n, len(names)))
    X[:, 0] = s
    X[:, 1] = s - top
    X[:, 2] = s / top if top > 0 else 0.0
    X[:, 3] = sz
    X[:, 4] = gap_next
    X[:, 5] = _z(gap_next)
    X[:, 6] = gap_prev
    X[:, 7] = rank
    X[:, 8] = rank / n
    X[:, 9] = math.log(n)
    X[:, 10] = rank <= largest
    X[:, 11] = rank < elbow
    X[:, 12] = top
    X[:, 13] = s.std()
    for i, sc in enumerate(items):
        ch = sc.chunk
        X[i, 14] = math.log1p(len(ch.text.split()))
        if ch.position is not None:
            X[i, 15] = math.log1p(ch.position)
            X[i, 16] = ch.position == 0
            X[i, 17] = sum(1 for d in (-1, 1) if pos_of.get((ch.doc_id, ch.position + d), n) < i)
        X[i, 18] = sum(d == ch.doc_id for d in docs_top5) / max(1, len(docs_top5))
        X[i, 19] = bool(sc.rationales)
        X[i, 20] = len(sc.rationales)
        X[i, 21] = sum(r in per_ret[i] for r in retrievers) / len(retrievers) if retrievers else 1.0
    X[:, 22:24] = _neighbor_values(items, sz, float(sz.min()) - 1.0)
    groups = _doc_groups(items)
    for g in groups:  # the document's best chunk, and how the documents rank
        X[g, 24] = sz[g].max()
        X[g, 25] = g.min() / n
        X[g, 26] = g.size / n
    col = len(_BASE_FEATURES)
    for r in retrievers:
        present = np.array([r in pr for pr in per_ret], dtype=bool)
        raw = np.array([pr[r][0] if r in pr else np.nan for pr in per_ret])
        if present.any():
            vals = raw[present]
            sd = vals.std()
            z = np.where(
                present,
                (np.nan_to_num(raw, nan=vals.min()) - vals.mean()) / (sd if sd > 0 else 1.0),
                0.0,
            )
            z[~present] = ((vals.min() - vals.mean()) / (sd if sd > 0 else 1.0)) - 1.0
        else:
            z = np.full(n, -3.0)
        ranks = np.array(
            [
                (pr[r][1] if r in pr and pr[r][1] is not None else (i + 1 if r in pr else 2 * n))
                for i, pr in enumerate(per_ret)
            ],
            dtype=np.float64,
        )
        X[:, col] = present
        X[:, col + 1] = z
        X[:, col + 2] = ranks / n
        X[:, col + 3] = 1.0 / np.maximum(ranks, 1.0)
        col += 4
    if query is not None:
        X[:, col:] = _query_features(items, query, groups)
    return X


def _query_features(items: Sequence[Any], query: str, groups: list[np.ndarray]) -> np.ndarray:
    n = len(items)
    out = np.zeros((n, len(QUERY_FEATURES)))
    q_list = terms(query)
    q = sorted(set(q_list))
    out[:, 14] = math.log1p(len(q))
    if not q:
        return out
    toks = [terms(sc.chunk.text) for sc in items]
    sets = [set(t) for t in toks]
    # IDF over the candidate list: what separates the candidates from each other for this
    # query (a term every candidate has says nothing here, whatever its corpus frequency)
    df = np.array([sum(t in st for st in sets) for t in q], dtype=np.float64)
    idf = np.where(df > 0, np.log((n + 1) / (df + 0.5)), 0.0)
    idf_total = float(idf.sum())
    rarest = q[int(np.argmax(idf))] if idf_total > 0 else None
    q_bigrams = set(zip(q_list, q_list[1:]))
    for i, (tk, st) in enumerate(zip(toks, sets)):
        hit = np.array([t in st for t in q])
        out[i, 0] = hit.mean()
        out[i, 1] = float(idf[hit].sum()) / idf_total if idf_total > 0 else 0.0
        out[i, 5] = rarest in st if rarest is not None else 0.0
        if q_bigrams:
            out[i, 6] = len(q_bigrams & set(zip(tk, tk[1:]))) / len(q_bigrams)
        qset = set(q)
        out[i, 7] = sum(t in qset for t in tk) / max(1, len(tk))
        if idf_total > 0:
            weight = {t: w for t, w in zip(q, idf)}
            best = 0.0
            for start in range(0, max(1, len(tk) - _WINDOW + 1), max(1, _WINDOW // 3)):
                best = max(
                    best, sum(weight.get(t, 0.0) for t in sorted(set(tk[start : start + _WINDOW])))
                )
            out[i, 15] = best / idf_total
    cover = out[:, 1]
    out[:, 2] = _z(cover)
    out[:, 3] = cover / cover.max() if cover.max() > 0 else 0.0
    out[:, 4] = np.argsort(np.argsort(-cover, kind="stable"), kind="stable") / n
    out[:, 8] = _neighbor_values(items, cover, 0.0).max(axis=1)
    for g in groups:
        out[g, 9] = cover[g].max()
    qset = set(q)
    top_text = [(sc.chunk.doc_id, sc.chunk.text.lower()) for sc in items[:_TOP_FOR_TITLES]]
    for i, sc in enumerate(items):
        title = sc.chunk.metadata.get("title") if sc.chunk.metadata else None
        if not isinstance(title, str) or not title.strip():
            continue
        t_terms = set(terms(title))
        out[i, 10] = 1.0
        if t_terms:
            out[i, 11] = len(t_terms & qset) / len(t_terms)
            out[i, 12] = len(t_terms & qset) / len(qset)
        name = re.sub(r"\s*\(.*\)\s*$", "", title).strip().lower()  # "X (writer)" -> "x"
        if len(name) >= 4:
            out[i, 13] = any(name in text for d, text in top_text if d != sc.chunk.doc_id)
    return out
