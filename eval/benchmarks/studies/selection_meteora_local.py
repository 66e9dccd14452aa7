"""meteora-local.yaml's selection against local.yaml's elbow on the leave-one-dataset-out lists.

meteora-local has nothing fitted, so "leave one dataset out" reduces to running it as shipped
on every setting of ``_lodo_data.py``: its retrieval fusion (RRF k=60, top 50) of the cached
BM25 and MiniLM lists, ``subphrase_rationales`` (max 6 phrases) and ``rationale_selector``
with the YAML's settings (global scope, pairing, rationales may share a chunk, min_pair_z 1.5,
elbow z=1, max_k 5), scored before expansion and guards, beside ``local.yaml``'s elbow on its
own fused list. F1 / chunks per query with 95% bootstrap intervals (as ``selection_lodo``).

Run::

    RAGSEL_DATA_DIR=../shared/data OMP_NUM_THREADS=1 \\
        python -m eval.benchmarks.studies.selection_meteora_local
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from eval.benchmarks import _common
from eval.benchmarks.studies import _lodo_data as data
from eval.benchmarks.studies.selection_lodo import elbow, prf, summarise

RESULTS = _common.results_dir("studies") / "selection_meteora_local.json"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="*", default=list(data.BUILDERS))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from ragsel.stages.rationale.subphrases import SubphraseRationales
    from ragsel.stages.retrieve.fusion import RankFusion
    from ragsel.stages.select.rationale_selector import RationaleSelector

    emb = data.CachedEmbedder(data.CACHE / "minilm-vectors-meteora.npz")
    emb.name, emb.dim = emb.base.name, emb.base.dim  # type: ignore[attr-defined]
    emb.warm_up = lambda: None  # type: ignore[attr-defined]
    rats = SubphraseRationales(max_phrases=6)
    sel = RationaleSelector(
        embedder="cached",
        scope="global",
        pairing=True,
        distinct=False,
        min_pair_z=1.5,
        cutoff="elbow",
        z_threshold=1.0,
        max_k=5,
    )
    sel.bind_components({"cached": emb})
    fuse60 = RankFusion(method="rrf", k=60, top_k=50)
    report: dict = {"settings": {}}
    for name in args.settings:
        cases = data.load(name)
        rows = []
        for c in cases:
            fused = fuse60.run(candidates=list(c.raw))  # re-fused as meteora-local fuses
            out = sel.run(candidates=fused, rationales=rats.run(query=c.query), query=c.query)
            rows.append(prf(out.ids, c.gold))
        res = {
            "meteora-local selector": summarise(np.array(rows)),
            "local.yaml elbow": summarise(elbow(cases)),
        }
        report["settings"][name] = {"queries": len(cases), "methods": res}
        m, e = res["meteora-local selector"], res["local.yaml elbow"]
        print(
            f"{name:16s} meteora-local F1 {m['f1']:.3f} ({m['chunks']:.1f})  "
            f"local elbow F1 {e['f1']:.3f} ({e['chunks']:.1f})",
            flush=True,
        )
    _common.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
