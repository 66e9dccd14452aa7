"""``neighbor_expansion``: add the chunks next to each selected chunk (METEORA step 4)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from ragsel.backends.stores import ChunkStore, InMemoryChunkStore
from ragsel.errors import ConfigError
from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Candidates, Chunk, Event, ScoredChunk, StageNote, content_id

_TOKEN = re.compile(r"\w+|[^\w\s]")


def text_cost(text: str, unit: str) -> int:
    """Size of ``text`` for a budget: characters, or tokens counted as words and punctuation
    marks (a tokenizer-free estimate; subword tokenizers give ~1.1-1.4x more)."""
    return len(text) if unit == "chars" else len(_TOKEN.findall(text))


def uncovered(span: tuple[int, int], covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``span`` that no span in ``covered`` overlaps, in order."""
    parts, start = [], span[0]
    for a, b in sorted(covered):
        if b <= start or a >= span[1]:
            continue
        if a > start:
            parts.append((start, a))
        start = max(start, b)
    if start < span[1]:
        parts.append((start, span[1]))
    return parts


def trim_to_new_text(chunk: Chunk, covered: list[tuple[int, int]]) -> Chunk | None:
    """``chunk`` without the text that ``covered`` spans (of the same document) already hold:
    the chunk itself when nothing overlaps (or it cannot be trimmed: no span, text not its
    span's length, new text on both sides), a trimmed copy keeping its id (``metadata
    ["trimmed_from"]`` is the original span), or ``None`` when it adds no new words."""
    span = chunk.span
    if span is None or span[1] - span[0] != len(chunk.text) or not covered:
        return chunk
    parts = uncovered(span, covered)
    if parts == [span]:
        return chunk
    if not parts or not any(
        ch.isalnum() for a, b in parts for ch in chunk.text[a - span[0] : b - span[0]]
    ):
        return None
    if len(parts) > 1:
        return chunk  # new text on both sides of selected text: keep the window whole
    a, b = parts[0]
    meta = {**chunk.metadata, "trimmed_from": list(span)}
    return Chunk(
        chunk.id, chunk.text[a - span[0] : b - span[0]], chunk.doc_id, chunk.position, (a, b), meta
    )


@register_stage("neighbor_expansion")
class NeighborExpander(Stage):
    """Add the chunks at positions ``p-before .. p+after`` of the same document around every
    selected chunk, so the evidence is read in context.

    A neighbour inherits its anchor's score, is marked ``expanded_from`` the anchor and gets an
    ``added`` event; a chunk reachable from several anchors is added once (from the best
    ranked); originals are never evicted or reordered. Overlapping windows (chunkers overlap
    by default) never add text the selection already holds: a neighbour is trimmed to its new
    text (same id, ``metadata["trimmed_from"]`` keeps its full span) and one that adds no new
    words is not added (the note counts both). With a ``budget`` (in ``chars`` or
    ``tokens``, counting originals too) neighbours are added best anchor first, nearest first,
    until the next one does not fit. ``order: document`` returns the chunks grouped by document
    (documents by their best score) in reading order, and ``merge_adjacent`` joins runs of
    consecutive positions into one passage whose metadata keeps the ids of its parts and
    whose span covers them.

    Neighbours come from a :class:`~ragsel.backends.stores.ChunkStore`: the local index at
    ``index``, a component named by ``store`` (``load_pipeline(..., components={name:
    store})``), one passed with :meth:`use_store`, or, when none is configured, only the chunks
    already retrieved upstream (kept or dropped) -- the trace note says which. Chunks without a
    document position are left as they are and listed in the note.

    Example: ``NeighborExpander(window=1, budget=1500, budget_unit="tokens")`` or in YAML
    ``{type: neighbor_expansion, index: "${RAGSEL_INDEX:-.ragsel/index}", window: 1}``.
    """

    config: Config

    class Config(StageConfig):
        window: int = Field(
            1, ge=0, description="neighbours on each side (default for before/after)"
        )
        before: int | None = Field(None, ge=0, description="neighbours before (overrides window)")
        after: int | None = Field(None, ge=0, description="neighbours after (overrides window)")
        budget: int | None = Field(
            None, ge=1, description="stop adding neighbours when the total size would pass this"
        )
        budget_unit: Literal["chars", "tokens"] = "tokens"
        order: Literal["rank", "document"] = Field(
            "rank",
            description="rank: each anchor followed by its neighbours; document: "
            "grouped by document in reading order",
        )
        merge_adjacent: bool = Field(
            False,
            description="join consecutive chunks of a "
            "document into one passage (needs order: document)",
        )
        separator: str = Field("\n", description="text placed between merged chunks")
        index: str | None = Field(None, description="local index folder to read neighbours from")
        store: str | None = Field(None, description="name of a ChunkStore component")

        @model_validator(mode="after")
        def _check(self) -> NeighborExpander.Config:
            if self.merge_adjacent and self.order != "document":
                raise ValueError(
                    "merge_adjacent needs order: document (merging only makes "
                    "sense in reading order)"
                )
            if self.index is not None and self.store is not None:
                raise ValueError("give either index or store, not both")
            return self

    blocking = True  # may open an index on first use

    def _setup(self) -> None:
        self._store: ChunkStore | None = None
        self._lock = threading.Lock()

    # --- chunk source --------------------------------------------------------------------
    def use_store(self, store: ChunkStore) -> NeighborExpander:
        """Read neighbours from ``store`` (anything with ``chunk_at(doc_id, position)``)."""
        if not isinstance(store, ChunkStore):
            raise ConfigError(
                f"{type(store).__name__} is not a ChunkStore: it needs a "
                "chunk_at(doc_id, position) method",
                stage=self.name,
            )
        self._store = store
        return self

    def bind_components(self, components: Mapping[str, Any]) -> None:
        name = self.config.store
        if name is None:
            return
        if name not in components:
            raise ConfigError(
                f"store '{name}' is not among the components passed to "
                f"load_pipeline (got: {', '.join(sorted(components)) or 'none'})",
                stage=self.name,
                field="store",
            )
        self.use_store(components[name])

    def warm_up(self) -> None:
        self._source()

    def _source(self) -> ChunkStore | None:
        if self._store is None and self.config.index is not None:
            with self._lock:
                if self._store is None:
                    from ragsel.index import open_index

                    self._store = open_index(self.config.index)
        if self._store is None and self.config.store is not None:
            raise ConfigError(
                f"store '{self.config.store}' was never bound: pass "
                f"components={{'{self.config.store}': store}} to load_pipeline",
                stage=self.name,
                field="store",
            )
        return self._store

    # --- running -------------------------------------------------------------------------
    def _run(self, candidates: Candidates) -> Candidates:
        cfg = self.config
        before = cfg.window if cfg.before is None else cfg.before
        after = cfg.window if cfg.after is None else cfg.after
        store = self._source()
        source = "store" if store is not None else "upstream candidates only"
        if store is None:  # neighbours can still come from what retrieval returned
            store = InMemoryChunkStore(
                [sc.chunk for sc in candidates.items] + [d.item.chunk for d in candidates.dropped]
            )
        items = list(candidates.items)
        present = {sc.chunk.id for sc in items}
        spent = sum(text_cost(sc.chunk.text, cfg.budget_unit) for sc in items)
        offsets = sorted(
            [-o for o in range(1, before + 1)] + list(range(1, after + 1)),
            key=lambda o: (abs(o), o),
        )  # nearest first, before on ties
        added: dict[str, list[ScoredChunk]] = {}
        no_position: list[str] = []
        budget_hit = False
        covered: dict[str, list[tuple[int, int]]] = {}  # doc -> spans already selected
        for sc in items:
            if sc.chunk.span is not None and sc.chunk.doc_id:
                covered.setdefault(sc.chunk.doc_id, []).append(sc.chunk.span)
        trimmed = contained = 0
        for anchor in items:
            c = anchor.chunk
            if c.position is None or not c.doc_id:
                no_position.append(c.id)
                continue
            for off in offsets if not budget_hit else ():
                pos = c.position + off
                if pos < 0:
                    continue
                nb = store.chunk_at(c.doc_id, pos)
                if nb is None or nb.id in present:
                    continue
                new = trim_to_new_text(nb, covered.get(c.doc_id, []))
                if new is None:  # wholly inside text already selected
                    contained += 1
                    present.add(nb.id)
                    continue
                trimmed += new is not nb
                nb = new
                cost = text_cost(nb.text, cfg.budget_unit)
                if cfg.budget is not None and spent + cost > cfg.budget:
                    budget_hit = True
                    break
                spent += cost
                present.add(nb.id)
                if nb.span is not None:
                    covered.setdefault(c.doc_id, []).append(nb.span)
                ev = Event(
                    self.name,
                    "added",
                    f"neighbour {off:+d} of {c.id}",
                    anchor.score,
                    {"anchor": c.id, "offset": off},
                )
                added.setdefault(c.id, []).append(
                    ScoredChunk(nb, anchor.score, self.name, (ev,), expanded_from=c.id)
                )
        n_added = sum(len(v) for v in added.values())
        note: dict[str, Any] = {
            "before": before,
            "after": after,
            "added": n_added,
            "trimmed_overlap": trimmed,
            "skipped_already_selected": contained,
            "source": source,
            "order": cfg.order,
        }
        if cfg.budget is not None:
            note.update(
                budget=cfg.budget,
                budget_unit=cfg.budget_unit,
                spent=spent,
                budget_exhausted=budget_hit,
            )
        if no_position:
            note["skipped_no_position"] = no_position
            note["skipped_reason"] = "chunk has no doc_id/position, so it has no neighbours"
        if cfg.order == "rank":
            out: list[ScoredChunk] = []
            for sc in items:
                out.append(sc)
                out.extend(sorted(added.get(sc.chunk.id, ()), key=lambda n: n.chunk.position or 0))
        else:
            out = self._document_order(items, added, note)
        return Candidates(
            tuple(out), candidates.dropped, candidates.notes + (StageNote(self.name, note),)
        )

    def _document_order(
        self, items: list[ScoredChunk], added: dict[str, list[ScoredChunk]], note: dict[str, Any]
    ) -> list[ScoredChunk]:
        """Group by document (best-scored document first), positions ascending; chunks
        without a position stay after their document's positioned chunks, in rank order."""
        docs: dict[str, list[ScoredChunk]] = {}
        for sc in items:
            docs.setdefault(sc.chunk.doc_id, []).append(sc)
            docs[sc.chunk.doc_id].extend(added.get(sc.chunk.id, ()))
        out: list[ScoredChunk] = []
        merged = 0
        for group in docs.values():
            pos = sorted(
                (s for s in group if s.chunk.position is not None),
                key=lambda s: s.chunk.position or 0,  # (None filtered out)
            )
            rest = [s for s in group if s.chunk.position is None]
            if not self.config.merge_adjacent:
                out.extend(pos + rest)
                continue
            run: list[ScoredChunk] = []
            for sc in pos:
                if run and sc.chunk.position != (run[-1].chunk.position or 0) + 1:
                    out.append(self._merge(run))
                    merged += len(run) > 1
                    run = []
                run.append(sc)
            if run:
                out.append(self._merge(run))
                merged += len(run) > 1
            out.extend(rest)
        if self.config.merge_adjacent:
            note["merged_passages"] = merged
        return out

    def _merge(self, run: list[ScoredChunk]) -> ScoredChunk:
        if len(run) == 1:
            return run[0]
        chunks = [sc.chunk for sc in run]
        text = chunks[0].text
        for prev, nxt in zip(chunks, chunks[1:]):
            text += self._joint(prev, nxt)
        spans = [c.span for c in chunks if c.span is not None]
        span = (
            (min(s[0] for s in spans), max(s[1] for s in spans))
            if len(spans) == len(chunks)
            else None
        )
        ids = [c.id for c in chunks]
        meta = {
            **chunks[0].metadata,
            "merged_ids": ids,
            "positions": [chunks[0].position, chunks[-1].position],
        }
        merged = Chunk(
            id=f"merged-{content_id('', *ids)}",
            text=text,
            doc_id=chunks[0].doc_id,
            position=chunks[0].position,
            span=span,
            metadata=meta,
        )
        best = max(run, key=lambda sc: sc.score)
        originals = [sc for sc in run if sc.expanded_from is None]
        events = tuple(e for sc in run for e in sc.events) + (
            Event(
                self.name,
                "added",
                f"merged positions {chunks[0].position}-{chunks[-1].position}",
                best.score,
                {"merged_ids": ids},
            ),
        )
        return ScoredChunk(
            merged,
            best.score,
            self.name,
            events,
            rationales=tuple(dict.fromkeys(r for sc in run for r in sc.rationales)),
            expanded_from=None if originals else run[0].expanded_from,
            verdicts=tuple(v for sc in run for v in sc.verdicts),
        )

    def _joint(self, prev: Chunk, nxt: Chunk) -> str:
        """The text to append for ``nxt``: overlapping windows share text, which is written
        once when the spans say so and the texts agree."""
        if prev.span and nxt.span and nxt.span[0] == prev.span[1]:
            return nxt.text  # contiguous in the source (e.g. a neighbour trimmed to new text)
        if prev.span and nxt.span and nxt.span[0] < prev.span[1]:
            overlap = prev.span[1] - nxt.span[0]
            if 0 < overlap <= len(nxt.text) and prev.text.endswith(nxt.text[:overlap]):
                return nxt.text[overlap:]
        return self.config.separator + nxt.text
