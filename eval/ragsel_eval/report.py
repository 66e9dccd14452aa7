"""Write an evaluation's report folder: ``results.json`` (every per-query figure and the
reproducibility record), ``summary.md`` (comparison table with 95% CIs) and ``report.html``
(one self-contained page: the table plus matplotlib plots embedded as base64 PNGs).

Plots: recall vs chunks per query (each pipeline's own ranking cut at fixed k drawn as a dashed
curve, each pipeline's actual selection as a point with CI bars, so an adaptive cutoff can be
read against fixed-k on the same ranking); chunks per query per pipeline; poisoning detection
bars (when the dataset has poisoned passages); latency distribution.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from ragsel_eval.aggregate import HEADLINE, LOWER_IS_BETTER, metric_names
from ragsel_eval.report_sections import (
    detection_lines,
    metric_label,
    ragas_lines,
    sections_html,
    table_notes,
)

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def _fmt(x: float, metric: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if metric in ("chunks", "tokens", "candidates") or abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.3f}"


def _cell(s: dict[str, float], metric: str) -> str:
    if not s or s.get("n", 0) == 0:
        return "–"
    txt = _fmt(s["mean"], metric)
    if s.get("ci_low") == s.get("ci_low") and s["n"] > 1:
        txt += f" [{_fmt(s['ci_low'], metric)}, {_fmt(s['ci_high'], metric)}]"
    if s.get("unmeasured"):
        txt += f" (n={s['n']})"
    return txt


def _cell_html(s: dict[str, float], metric: str) -> str:
    if not s or s.get("n", 0) == 0:
        return "–"
    out = html.escape(_fmt(s["mean"], metric))
    if s["n"] > 1 and s.get("ci_low") == s.get("ci_low"):
        out += (
            f"<br><small>[{html.escape(_fmt(s['ci_low'], metric))}, "
            f"{html.escape(_fmt(s['ci_high'], metric))}]</small>"
        )
    if s.get("unmeasured"):
        out += f"<br><small>n={s['n']}</small>"
    return out


def _table_rows(report: Any, cell: Any = None) -> tuple[list[str], list[list[str]]]:
    cell = cell or _cell
    metrics = [
        m
        for m in metric_names(report.records)
        if m in report.summary[report.pipelines[0]]
        and not m.startswith(
            (
                "precision@",
                "mrr@1",
                "map@",
                "detection_tp",
                "detection_flagged",
                "detection_poisoned",
                "candidates",
                "poisoned_in_context",
            )
        )
        # of the ranking metrics at many k, only the headline ones get a column
        and not (m.startswith(("ndcg@", "recall@", "mrr@", "ranked_")) and m not in HEADLINE)
    ]
    header = ["pipeline", *map(metric_label, metrics), "latency p50 / p95 (ms)", "failed"]
    # a cell whose n differs from another row's n covers other queries: mark it
    ns = {m: {report.summary[p].get(m, {}).get("n", 0) for p in report.pipelines} for m in metrics}
    rows = []
    for p in report.pipelines:
        s = report.summary[p]
        lat = s["latency_ms"]
        rows.append(
            [
                p,
                *[cell(s.get(m, {}), m) + (" †" if len(ns[m]) > 1 else "") for m in metrics],
                f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])}",
                f"{s['queries']['failed']} / {s['queries']['total']}",
            ]
        )
    return header, rows


def summary_markdown(report: Any) -> str:
    header, rows = _table_rows(report)
    ds = report.dataset
    lines = [
        f"# ragsel eval: {ds['name']}" + (f" ({ds['split']})" if ds.get("split") else ""),
        "",
        f"{ds['queries']} queries, {ds['documents']} documents; chunker "
        f"`{report.reproducibility['chunker_spec']}`; mean [95% bootstrap CI]. "
        + " ".join(table_notes(report)),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += detection_lines(report)
    if report.comparisons:
        lines += [
            "",
            f"## Paired comparison against `{report.pipelines[0]}` (randomization test, two-sided)",
            "",
            "| pipeline | metric | baseline | pipeline | diff [95% CI] | p | n |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in report.comparisons:
            lines.append(
                f"| {c['pipeline']} | {c['metric']} | {_fmt(c['mean_a'], c['metric'])} "
                f"| {_fmt(c['mean_b'], c['metric'])} | {c['diff']:+.3f} "
                f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['p_value']:.4f} "
                f"| {c['n']} |"
            )
    fails = {p: f for p, f in report.failures.items() if f}
    if fails:
        lines += ["", "## Failed queries", ""]
        for p, fl in fails.items():
            for f in fl[:20]:
                lines.append(f"- `{p}` on `{f['query_id']}`: {f['error'][:200]}")
            if len(fl) > 20:
                lines.append(f"- `{p}`: {len(fl) - 20} more (see results.json)")
    lines += ragas_lines(report)
    return "\n".join(lines) + "\n"


# --- plots ----------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(report: Any) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    pipes = report.pipelines
    color = {p: _COLORS[i % len(_COLORS)] for i, p in enumerate(pipes)}
    if any(report.summary[p].get("recall", {}).get("n") for p in pipes):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for p in pipes:
            c = report.curves.get(p)
            if c and len(c["k"]) > 1:
                ax.plot(
                    c["chunks"],
                    c["recall"],
                    "--",
                    color=color[p],
                    alpha=0.6,
                    marker=".",
                    label=f"{p}: its ranking cut at fixed k",
                )
            s = report.summary[p]
            if s.get("recall", {}).get("n"):
                r, ch = s["recall"], s["chunks"]
                ax.errorbar(
                    [ch["mean"]],
                    [r["mean"]],
                    xerr=[[ch["mean"] - ch["ci_low"]], [ch["ci_high"] - ch["mean"]]],
                    yerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]],
                    fmt="o",
                    ms=9,
                    color=color[p],
                    capsize=3,
                    label=f"{p} (selection)",
                )
        top = max(
            [max(c["chunks"]) for c in report.curves.values() if c.get("chunks")]
            + [
                report.summary[p]["chunks"]["mean"]
                for p in pipes
                if report.summary[p].get("chunks", {}).get("n")
            ]
            + [1.0]
        )
        if top > 30:
            ax.set_xscale("log")
        ax.set_xlim(left=0 if top <= 30 else None)
        ax.set_xlabel("chunks per query")
        ax.set_ylabel("chunk recall")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("Recall vs evidence size")
        out.append(("Recall vs chunks per query", _png(fig)))
    counts = {
        p: [r["metrics"]["chunks"] for r in report.records[p] if r["status"] == "ok"] for p in pipes
    }
    if any(counts.values()):
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(pipes) + 1.5))
        data = [counts[p] or [0] for p in pipes]
        import numpy as np

        bp = ax.boxplot(data, vert=False, patch_artist=True, widths=0.6, showfliers=False)
        for patch, p in zip(bp["boxes"], pipes):
            patch.set_facecolor(color[p])
            patch.set_alpha(0.35)
        rng = np.random.default_rng(0)  # jitter only, for legibility
        for i, (p, d) in enumerate(zip(pipes, data), 1):
            ax.scatter(d, i + rng.uniform(-0.2, 0.2, len(d)), s=8, color=color[p], alpha=0.6)
        ax.set_yticks(range(1, len(pipes) + 1), pipes)
        ax.set_xlabel("chunks selected per query")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title("Per-query chunk counts")
        out.append(("Per-query chunk counts", _png(fig)))
    det = [
        "detection_precision",
        "detection_recall",
        "detection_f1",
        "gold_retention",
        "attack_success",
    ]
    if any(report.summary[p].get("detection_f1", {}).get("n") for p in pipes):
        import numpy as np

        fig, ax = plt.subplots(figsize=(8, 4))
        x = np.arange(len(det))
        w = 0.8 / len(pipes)
        for i, p in enumerate(pipes):
            s = report.summary[p]
            vals = np.array([s.get(m, {}).get("mean", np.nan) for m in det], dtype=float)
            lo = np.array([s.get(m, {}).get("ci_low", np.nan) for m in det], dtype=float)
            hi = np.array([s.get(m, {}).get("ci_high", np.nan) for m in det], dtype=float)
            ok = ~np.isnan(vals)  # unmeasured (e.g. no poisoned chunk ever reached): no bar
            ax.bar(
                (x + i * w)[ok],
                vals[ok],
                w,
                yerr=[np.nan_to_num(vals - lo)[ok], np.nan_to_num(hi - vals)[ok]],
                color=color[p],
                alpha=0.8,
                label=p,
                capsize=2,
            )
        ax.set_xticks(
            x + w * (len(pipes) - 1) / 2,
            ["detect P", "detect R", "detect F1", "gold kept", "attack success\n(lower is better)"],
        )
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("Poisoning: detection, gold retention, attack success")
        out.append(("Poisoning detection", _png(fig)))
    lats = {p: [r["latency_ms"] for r in report.records[p] if r["status"] == "ok"] for p in pipes}
    if any(lats.values()):
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(pipes) + 1.5))
        data = [lats[p] or [0] for p in pipes]
        parts = ax.violinplot(data, vert=False, showmedians=True)
        for body, p in zip(parts["bodies"], pipes):
            body.set_facecolor(color[p])
        ax.set_yticks(range(1, len(pipes) + 1), pipes)
        _plain_ms_axis(ax, [x for d in data for x in d])
        ax.set_xlabel("latency per query (ms, log scale)")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title("Latency distribution")
        out.append(("Latency distribution", _png(fig)))
    return out


def _plain_ms_axis(ax: Any, values: list[float]) -> None:
    """A log latency axis labelled in plain milliseconds (``2``, ``20``, ``200``), not
    ``2×10¹``."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:8px 0 20px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,#paired td:nth-child(2){text-align:left}
figure{display:inline-block;margin:8px;vertical-align:top}figcaption{font-size:13px;color:#555}
img{max-width:100%}code{background:#f4f4f4;padding:1px 3px}.fail{color:#b00}
.scroll{overflow-x:auto}small{color:#666}details{margin:12px 0}
pre{font-size:12px;background:#f8f8f8;padding:8px;overflow:auto}"""


def report_html(report: Any) -> str:
    e = html.escape
    header, rows = _table_rows(report, _cell_html)
    header = [h.replace(" / p95", "<br>/ p95") for h in header]
    ds = report.dataset
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>ragsel eval: {e(ds['name'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>ragsel eval: {e(ds['name'])}"
        + (f" ({e(str(ds['split']))})" if ds.get("split") else "")
        + "</h1>",
        f"<p>{ds['queries']} queries, {ds['documents']} documents, chunker "
        f"<code>{e(report.reproducibility['chunker_spec'])}</code>. Cells: mean "
        "[95% bootstrap CI over queries] (n shown when some were unmeasured). "
        + e(" ".join(table_notes(report)))
        + "</p>",
        "<div class='scroll'><table id='comparison'><thead><tr>"
        + "".join(f"<th>{h if '<br>' in h else e(h)}</th>" for h in header)
        + "</tr></thead><tbody>",
    ]
    for r in rows:
        parts.append(f"<tr><td>{e(r[0])}</td>" + "".join(f"<td>{c}</td>" for c in r[1:]) + "</tr>")
    parts.append("</tbody></table></div>")
    if report.comparisons:
        parts.append(
            f"<h2>Paired comparison against <code>{e(report.pipelines[0])}</code></h2>"
            "<table id='paired'><thead><tr><th>pipeline</th><th>metric</th>"
            "<th>baseline</th><th>pipeline</th><th>diff [95% CI]</th><th>p</th>"
            "<th>n</th></tr></thead><tbody>"
        )
        for c in report.comparisons:
            m = c["metric"]
            parts.append(
                f"<tr><td>{e(c['pipeline'])}</td><td>{e(m)}"
                f"{' (lower is better)' if m in LOWER_IS_BETTER else ''}</td>"
                f"<td>{_fmt(c['mean_a'], m)}</td><td>{_fmt(c['mean_b'], m)}</td>"
                f"<td>{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]</td>"
                f"<td>{c['p_value']:.4f}</td><td>{c['n']}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts += sections_html(report)
    for title, png in _plots(report):
        parts.append(
            f"<figure><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>{e(title)}</figcaption></figure>"
        )
    fails = {p: f for p, f in report.failures.items() if f}
    if fails:
        parts.append("<h2 class='fail'>Failed queries</h2><ul>")
        for p, fl in fails.items():
            for f in fl[:50]:
                parts.append(
                    f"<li class='fail'><code>{e(p)}</code> on "
                    f"<code>{e(f['query_id'])}</code>: {e(f['error'][:300])}</li>"
                )
        parts.append("</ul>")
    repro = {k: v for k, v in report.reproducibility.items() if k != "dataset"}
    parts.append(
        "<details><summary>Reproducibility</summary><pre>"
        + e(json.dumps(repro, indent=2, default=str))
        + "</pre></details>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _clean(x: Any) -> Any:
    """JSON has no NaN: write null (documented as "unmeasured")."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def results_dict(report: Any) -> dict[str, Any]:
    return _clean(
        {
            "dataset": report.dataset,
            "pipelines": report.pipelines,
            "summary": report.summary,
            "comparisons": report.comparisons,
            "curves": report.curves,
            "failures": report.failures,
            "ragas": report.ragas,
            "reproducibility": report.reproducibility,
            "per_query": report.records,
        }
    )


def write_report(report: Any) -> dict[str, str]:
    out = Path(report.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results": out / "results.json",
        "summary": out / "summary.md",
        "html": out / "report.html",
    }
    files["results"].write_text(
        json.dumps(results_dict(report), indent=1, default=str), encoding="utf-8"
    )
    files["summary"].write_text(summary_markdown(report), encoding="utf-8")
    files["html"].write_text(report_html(report), encoding="utf-8")
    return {k: str(v) for k, v in files.items()}
