"""The per-query unit of evaluation work: run one pipeline on one query and score it.

:func:`evaluate_query` takes and returns plain JSON-ready dicts so it runs the same in this
process or on a Ray worker. Pipelines are loaded from their YAML once per process and kept in
a small cache keyed by file hash and variables.

Gold handling works for any chunking: a selected chunk is gold when it overlaps a gold span of
its document (or, with document-level qrels only, when its document is relevant); recall is the
share of the query's *gold units* (the gold chunks under the evaluation chunker) that the
selection covers (same id, or overlapping span in the same document).
"""

from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from time import perf_counter
from typing import Any

from ragsel_eval.datasets.base import EvalQuery, GoldSpan, gold_chunk_ids
from ragsel_eval.metrics.answers import contains_answer, exact_match, token_f1
from ragsel_eval.metrics.ranking import doc_ranking, ranking_metrics
from ragsel_eval.metrics.robustness import attack_success, detection_scores, gold_retention
from ragsel_eval.metrics.selection import count_tokens, prf

NAN = float("nan")
_PIPELINES: OrderedDict[tuple, Any] = OrderedDict()
_PIPELINES_LOCK = threading.Lock()
_MAX_PIPELINES = 8


def query_to_dict(q: EvalQuery) -> dict[str, Any]:
    return {
        "id": q.id,
        "text": q.text,
        "qrels": dict(q.qrels),
        "spans": [[s.doc_id, s.start, s.end] for s in q.spans],
        "poisoned": sorted(q.poisoned),
        "answers": list(q.answers),
    }


def query_from_dict(d: dict[str, Any]) -> EvalQuery:
    return EvalQuery(
        d["id"],
        d["text"],
        qrels=d.get("qrels") or {},
        spans=tuple(GoldSpan(s[0], s[1], s[2]) for s in d.get("spans") or ()),
        poisoned=frozenset(d.get("poisoned") or ()),
        answers=tuple(d.get("answers") or ()),
    )


def get_pipeline(
    path: str, sha: str, variables: dict[str, str], allow_modules: tuple[str, ...] = ()
) -> Any:
    """The pipeline for (file, content hash, variables), loaded once per process."""
    key = (path, sha, tuple(sorted(variables.items())), tuple(allow_modules))
    with _PIPELINES_LOCK:
        p = _PIPELINES.get(key)
        if p is not None:
            _PIPELINES.move_to_end(key)
            return p
    from ragsel.spec import load_pipeline

    p = load_pipeline(path, variables=variables, allow_modules=allow_modules)
    with _PIPELINES_LOCK:
        _PIPELINES[key] = p
        while len(_PIPELINES) > _MAX_PIPELINES:
            _PIPELINES.popitem(last=False)
    return p


def _overlap(a: Sequence[int] | None, b: Sequence[int] | None) -> bool:
    if a is None or b is None:
        return True  # no offsets: the same document is all we can compare
    return min(a[1], b[1]) - max(a[0], b[0]) >= 1


def _covered(units: list[dict], chunks: list[Any]) -> int:
    """How many gold units the chunks cover (same id, or overlap in the same document)."""
    ids = {c.id for c in chunks}
    by_doc: dict[str, list[Any]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c.span)
    n = 0
    for u in units:
        if u["id"] in ids or any(_overlap(u["span"], s) for s in by_doc.get(u["doc_id"], ())):
            n += 1
    return n


def _pool(selection: Any) -> list[Any]:
    """The ranking the pipeline worked from: final chunks in order, then the dropped ones, the
    last stage's drops first (they ranked just below what it kept), each stage's drops by
    descending score. Exact for a linear pipeline ending in a cutoff; scores of different
    stages are never compared."""
    seen: set[str] = set()
    out = []
    for sc in selection.chunks:
        if sc.chunk.id not in seen:
            seen.add(sc.chunk.id)
            out.append(sc.chunk)
    stages: dict[str, list[Any]] = {}
    for d in selection.dropped:
        stages.setdefault(d.stage, []).append(d)
    for drops in reversed(list(stages.values())):
        for d in sorted(drops, key=lambda d: -d.item.score):
            if d.id not in seen:
                seen.add(d.id)
                out.append(d.item.chunk)
    return out


def _flagged(selection: Any) -> set[str]:
    out = {sc.chunk.id for sc in selection.chunks if any(v.flagged for v in sc.verdicts)}
    for d in selection.dropped:
        if (d.verdict is not None and d.verdict.flagged) or any(v.flagged for v in d.item.verdicts):
            out.add(d.id)
    return out


#: Stage modules that cut a ranked list (their input is "the ranking before the cut").
_CUT_MODULES = ("ragsel.stages.cutoff.", "ragsel.stages.select.")


def ranked_before_cut(result: Any) -> tuple[str, list[Any]] | None:
    """``(cut stage, chunks)``: the ranked list that entered the first cutting stage of the
    run (a cutoff or selector), or ``None`` when the pipeline has none. Ranking metrics of
    the final selection measure the cut as much as the ranking; these measure the ranking."""
    pipe = result.pipeline
    from ragsel._plan import input_key
    from ragsel.types import Candidates

    for name in pipe.order:
        if not type(pipe.stages[name]).__module__.startswith(_CUT_MODULES):
            continue
        for c in pipe.connections:
            if c.dst == name and c.dst_in == "candidates":
                value = result.values.get(f"{c.src}.{c.src_out}")
                if isinstance(value, Candidates):
                    return name, [sc.chunk for sc in value.items]
        value = result.values.get(input_key(f"{name}.candidates"))  # a declared input
        if isinstance(value, Candidates):
            return name, [sc.chunk for sc in value.items]
        return None
    return None


def score_selection(
    q: EvalQuery,
    selection: Any,
    gold_units: list[dict],
    *,
    ks: Sequence[int],
    curve_ks: Sequence[int],
    ranked: list[Any] | None = None,
) -> dict[str, Any]:
    """Every per-query figure for one selection (see the module docstring); ``ranked`` (the
    list before the cut, :func:`ranked_before_cut`) adds ``ranked_*`` ranking metrics."""
    final = [sc.chunk for sc in selection.chunks]
    pool = _pool(selection)
    gold_pool = gold_chunk_ids(q, pool)
    final_ids = [c.id for c in final]
    m: dict[str, float] = {
        "chunks": float(len(final)),
        "tokens": float(count_tokens(c.text for c in final)),
        "candidates": float(len(pool)),
    }
    n_gold = len(gold_units)
    tp = sum(1 for c in final if c.id in gold_pool)
    if n_gold:
        p, _, _ = prf(tp, len(final), n_gold)
        r = _covered(gold_units, [c for c in final if c.id in gold_pool]) / n_gold
        m.update(
            precision=p,
            recall=r,
            f1=(2 * p * r / (p + r) if p + r else 0.0),
            found=float(tp > 0),
            pool_recall=_covered(gold_units, [c for c in pool if c.id in gold_pool]) / n_gold,
        )
    else:
        m.update(precision=NAN, recall=NAN, f1=NAN, found=NAN, pool_recall=NAN)
    if any(g > 0 for g in q.qrels.values()):
        m.update(ranking_metrics(doc_ranking(c.doc_id for c in final), q.qrels, ks))
        if ranked is not None:
            before = ranking_metrics(doc_ranking(c.doc_id for c in ranked), q.qrels, ks)
            m.update({f"ranked_{k}": v for k, v in before.items()})
    curve: dict[str, list[float]] = {"k": [], "precision": [], "recall": [], "chunks": []}
    if n_gold:
        for k in curve_ks:
            top = pool[:k]
            g_top = [c for c in top if c.id in gold_pool]
            curve["k"].append(float(k))
            curve["precision"].append(len(g_top) / len(top) if top else 0.0)
            curve["recall"].append(_covered(gold_units, g_top) / n_gold)
            curve["chunks"].append(float(len(top)))
    if q.poisoned:
        poisoned_pool = {c.id for c in pool if c.doc_id in q.poisoned}
        det = detection_scores(_flagged(selection), poisoned_pool, available=[c.id for c in pool])
        m.update(
            {f"detection_{k}": v for k, v in det.items() if k in ("precision", "recall", "f1")}
        )
        m.update(
            detection_tp=det["tp"],
            detection_flagged=det["flagged"],
            detection_poisoned=det["poisoned"],
        )
        m["gold_retention"] = gold_retention(final_ids, gold_pool)
        m.update(attack_success(final_ids, poisoned_pool, gold_pool))
    answer = selection.answer.text if selection.answer is not None else None
    if answer is not None and q.answers:
        m.update(
            em=exact_match(answer, q.answers),
            answer_f1=token_f1(answer, q.answers),
            answer_contains=contains_answer(answer, q.answers),
        )
    return {"metrics": m, "curve": curve, "answer": answer}


def evaluate_query(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task["pipeline_path"]`` on ``task["query"]`` and score it. Never raises for a
    pipeline failure: the record then has ``status: "failed"`` and the error."""
    q = query_from_dict(task["query"])
    rec: dict[str, Any] = {"query_id": q.id, "pipeline": task["pipeline"]}
    t0 = perf_counter()
    try:
        from ragsel.types import Query

        pipe = get_pipeline(
            task["pipeline_path"],
            task["pipeline_sha"],
            task["variables"],
            tuple(task.get("allow_modules") or ()),
        )
        result = pipe.run(Query(q.text, id=q.id))
        selection = result.selection
    except Exception as exc:  # recorded, the run goes on
        rec.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
            traceback=traceback.format_exc(limit=6)[-2000:],
            latency_ms=(perf_counter() - t0) * 1000,
        )
        return rec
    before = ranked_before_cut(result)
    scored = score_selection(
        q,
        selection,
        task["gold_units"],
        ks=task["ks"],
        curve_ks=task["curve_ks"],
        ranked=before[1] if before else None,
    )
    rec.update(
        status="ok",
        ranked_before=before[0] if before else None,
        latency_ms=result.trace.total_ms,
        stage_ms={s.stage: round(s.ms, 4) for s in result.trace.stages},
        selected=[[sc.chunk.id, sc.chunk.doc_id, round(sc.score, 6)] for sc in selection.chunks],
        **scored,
    )
    if task.get("keep_texts"):
        rec["texts"] = [sc.chunk.text for sc in selection.chunks]
    return rec
