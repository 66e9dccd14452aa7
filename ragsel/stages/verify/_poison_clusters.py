"""The clustering maths of :mod:`ragsel.stages.verify.poison_cluster`: the :class:`Cluster`
record, average-linkage agglomeration, peeling edge members, merging groups, claim words and
claim-based expansion, the metadata helpers (site, date), and the texts the stage emits for a
cluster (its note entry, its ``POISON`` verdict). The stage itself lives there.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ragsel.types import ScoredChunk, Verdict

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be been by for from had has have he her his i in into is it its of on "
    "or she that the their them there these they this those to was were what when where which "
    "who whom whose why how will with would does did do can could not no than then so such "
    "also about over after before up out more most many much other some any each all our we "
    "you your us one two".split()
)
SITE_KEYS = ("site", "source", "domain", "host", "publisher", "url")
DATE_KEYS = ("date", "published", "published_at", "timestamp")


@dataclass
class Cluster:
    """A group of near-duplicate chunks (indices into the candidate list, rank order)."""

    members: list[int]
    density: float  # mean pairwise similarity
    sites: list[str] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    suspicious: bool = False
    why: str = ""
    claim: list[str] = field(default_factory=list)
    support: float = 0.0
    supported_by: str | None = None

    @property
    def size(self) -> int:
        return len(self.members)


def _site_of(meta: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for k in keys:
        v = meta.get(k)
        if v:
            v = str(v).strip().lower()
            if k == "url" or "://" in v:
                v = urlparse(v).netloc or v
            return v.removeprefix("www.")
    return None


def _date_of(meta: Mapping[str, Any]) -> str | None:
    for k in DATE_KEYS:
        if meta.get(k):
            return str(meta[k])[:10]
    return None


def average_linkage(sim: np.ndarray, threshold: float) -> list[list[int]]:
    """Agglomerate while the average similarity between two groups is >= ``threshold``.

    Group-average similarities are updated in place (Lance-Williams), O(n^2) per merge.
    """
    n = len(sim)
    groups: list[list[int] | None] = [[i] for i in range(n)]
    avg = np.array(sim, dtype=np.float64, copy=True)
    np.fill_diagonal(avg, -np.inf)
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], avg, -np.inf)
        flat = int(np.argmax(masked))
        a, b = divmod(flat, n)
        if masked[a, b] < threshold:
            break
        ga, gb = groups[a], groups[b]
        assert ga is not None and gb is not None
        wa, wb = len(ga), len(gb)
        merged = (wa * avg[a] + wb * avg[b]) / (wa + wb)
        avg[a, :] = merged
        avg[:, a] = merged
        avg[a, a] = -np.inf
        alive[b] = False
        groups[a] = sorted(ga + gb)
        groups[b] = None
    return sorted((g for g in groups if g is not None), key=lambda g: g[0])


def peel(sim: np.ndarray, group: list[int], margin: float) -> list[list[int]]:
    """Split off members that sit on the edge of a cluster: a member whose mean similarity to
    the rest is ``margin`` below the mean of the others' is peeled (and stays a singleton).
    Copies of one planted text are mutually closer than any of them is to an honest passage
    on the same topic, which average linkage alone can pull in."""
    core, out = list(group), []
    while len(core) >= 3:
        sub = sim[np.ix_(core, core)]
        mean = (sub.sum(axis=1) - 1.0) / (len(core) - 1)
        worst = int(np.argmin(mean))
        rest = np.delete(mean, worst)
        if mean[worst] >= rest.mean() - margin:
            break
        out.append([core.pop(worst)])
    return [core] + out


def merge_groups(sim: np.ndarray, groups: list[list[int]], threshold: float) -> list[list[int]]:
    """Merge multi-member groups whose average cross-similarity is >= ``threshold``.

    Planted copies often form several tight pairs and triples that a single cut splits; an
    honest passage rarely has a near-copy of its own, so joining *groups* (never singletons)
    at a looser threshold recovers the whole set without pulling in a lone gold passage.
    Each step merges the pair with the highest average (ties: the last pair in list order);
    cross-group similarity sums are kept in a matrix and updated in place, so a step costs
    O(groups^2) numpy work rather than one sub-matrix mean per pair."""
    singles = [list(g) for g in groups if len(g) < 2]
    groups = [list(g) for g in groups if len(g) >= 2]
    if len(groups) >= 2:
        member = np.zeros((len(groups), len(sim)))
        for r, g in enumerate(groups):
            member[r, g] = 1.0
        cross = member @ np.asarray(sim, dtype=np.float64) @ member.T
        size = member.sum(axis=1)
        while len(groups) > 1:
            mean = cross / np.outer(size, size)
            mean[np.tril_indices(len(groups))] = -np.inf
            best = mean.max()
            if best < threshold:
                break
            a, b = (int(x) for x in np.argwhere(mean == best)[-1])
            groups[a] = groups[a] + groups[b]
            del groups[b]
            cross[a, :] += cross[b, :]
            cross[:, a] += cross[:, b]
            cross = np.delete(np.delete(cross, b, axis=0), b, axis=1)
            size[a] += size[b]
            size = np.delete(size, b)
    return sorted((sorted(g) for g in groups + singles), key=lambda g: g[0])


def _score_key(score: float) -> float:
    return score if score == score else -math.inf  # NaN scores sort last


def _tokens(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1 or w.isdigit()}


def claim_weights(
    members: Sequence[int],
    toks: list[set[str]],
    df: Counter[str],
    q_toks: set[str],
    quorum: float,
) -> dict[str, float]:
    """Claim words of a group and their weights: words most members (``quorum`` share) have
    in common that the query does not contain, weighted by rarity in the candidate list."""
    counts = Counter(w for i in members for w in toks[i])
    need = max(2, math.ceil(quorum * len(members)))
    n = len(toks)
    return {w: math.log(1 + n / df[w]) for w, c in counts.items() if c >= need and w not in q_toks}


def expand_groups(
    groups: list[list[int]],
    sim: np.ndarray,
    toks: list[set[str]],
    df: Counter[str],
    q_toks: set[str],
    *,
    threshold: float,
    support_threshold: float,
    quorum: float,
) -> list[list[int]]:
    """Absorb looser copies: similar enough to the group (mean similarity >= ``threshold``)
    *and* repeating its claim words (an honest passage on the topic is similar but states its
    own facts)."""
    taken = {i for g in groups for i in g}
    out = []
    for g in sorted(groups, key=len, reverse=True):
        weights = claim_weights(g, toks, df, q_toks, quorum)
        total = sum(weights.values())
        grown = list(g)
        if total and len(g) >= 2:
            for j in range(len(sim)):
                if j in taken or float(sim[j, g].mean()) < threshold:
                    continue
                share = sum(w for t, w in weights.items() if t in toks[j]) / total
                if share >= support_threshold:
                    grown.append(j)
                    taken.add(j)
        out.append(sorted(grown))
    return sorted(out, key=lambda g: g[0])


def describe(cl: Cluster, items: Sequence[ScoredChunk]) -> dict[str, Any]:
    """A cluster as it appears in the stage note (member ids instead of indices)."""
    return {
        "members": [items[i].id for i in cl.members],
        "density": cl.density,
        "suspicious": cl.suspicious,
        "why": cl.why,
        "sites": cl.sites,
        "dates": cl.dates,
        "claim": cl.claim[:8],
        "support": cl.support,
        "supported_by": cl.supported_by,
    }


def poison_verdict(
    stage: str, sc: ScoredChunk, cl: Cluster, items: Sequence[ScoredChunk]
) -> Verdict:
    """The ``POISON`` verdict for a member of a flagged cluster (``stage`` names the guard)."""
    support = (
        f"best independent support {cl.support:.2f} ({cl.supported_by})"
        if cl.supported_by
        else "no independent chunk shares its claim"
    )
    reason = f"suspicious near-duplicate cluster: {cl.why}, density {cl.density:.2f}; {support}"
    evidence = (
        f"claim words: {', '.join(cl.claim[:8]) or '-'}; representative: "
        f"{items[cl.members[0]].chunk.text[:120]}"
    )
    conf = min(1.0, max(0.0, cl.density))
    return Verdict(sc.id, stage, True, "POISON", round(conf, 4), reason, evidence)
