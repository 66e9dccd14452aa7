"""The query itself as the only rationale (the LLM-free baseline source).

With a single rationale METEORA's selector degenerates to "pair the best chunk + elbow on the
query similarity", i.e. the elbow cutoff on dense scores: useful as a baseline and as the
fallback when no other source is available. Query rewrites (from a rewrite stage) become extra
rationales when ``include_rewrites`` is on.
"""

from __future__ import annotations

from ragsel.registry import register_stage
from ragsel.stage import Stage, StageConfig
from ragsel.types import Query, Rationale, Rationales


@register_stage("query_rationales")
class QueryRationales(Stage):
    """Rationales = the query text (and its rewrites, if any).

    Example: ``QueryRationales()`` or in YAML ``{type: query_rationales}``; feed its
    ``rationales`` output to a ``rationale_selector``.
    """

    config: Config

    class Config(StageConfig):
        include_rewrites: bool = True  # each rewrite from a rewrite stage is one more rationale

    blocking = False

    def _run(self, query: Query) -> Rationales:
        texts = [query.text]
        if self.config.include_rewrites:
            texts += [r for r in query.rewrites if r.strip() and r.strip() != query.text.strip()]
        items = tuple(
            Rationale(t.strip(), label="query" if i == 0 else f"rewrite{i}", source="query")
            for i, t in enumerate(texts)
        )
        return Rationales(items, source="query", notes={"n": len(items)})
