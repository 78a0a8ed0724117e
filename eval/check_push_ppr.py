"""Forward-push PPR and top-k BM25 candidates against the exact query path, on the eval datasets.

    python eval/check_push_ppr.py [--datasets musique_train100,...] [--cache eval/cache/hippograph]
                                  [--eps 1e-3,3e-4,1e-4,3e-5,1e-5] [--filter FILTER ...] [--out eval/results/push_ppr.md]

For each dataset the cached eval index (`python -m eval run --datasets D --systems hippograph`
builds it; `--cache` may point at another checkout's cache, opened read-only) answers every
question with:

* exact — power iteration (`ppr_method="power"`) and BM25 scored over every passage
  (`bm25_candidates` = all passages): the query path before forward push;
* candidates — power iteration, BM25 as the default top-k list (the effect of candidate-only fusion);
* push ε — forward push at residual bound ε with top-k BM25 (the default query path at one ε).

It reports the mean top-10 overlap with exact (|top10 ∩ exact top10| / 10) of the `hybrid` ranking
and of the `ppr` ranking (PPR scores alone), the dataset's recall metrics through eval/metrics.py,
and the mean search time per query. Acceptance (issue 17): overlap ≥ 0.98 and recall within 0.3 point.
`--filter` (the CLI's syntax, e.g. `--filter 'doc_id~=*7'`) runs every variant, exact included, under
that metadata filter: push and power iteration then walk the filter's induced subgraph.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import glob
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = {
    "musique_train100": "musique_train100",
    "hotpotqa_train100": "hotpotqa_train100",
    "scifact": "scifact",
    "locomo": "locomo",
    "2wiki_dev300": "custom:/work/shared/datasets/2wiki_dev300/2wikimultihopqa_corpus.json,"
                    "/work/evalcache/2wiki_dev300_q.jsonl",
}
K = 10


def find_index(cache: Path, bench_name: str) -> Path:
    dirs = [Path(d) for d in glob.glob(str(cache / f"{bench_name}-spacy-*")) if Path(d).is_dir()]
    if not dirs:
        raise SystemExit(f"{cache}: no cached {bench_name} index; build one with "
                         f"`python -m eval run --datasets {bench_name} --systems hippograph`")
    return max(dirs, key=lambda d: d.stat().st_mtime)


def run_variant(hg: Any, bench: Any, mode: str, overrides: dict[str, Any], depth: int,
                filters: dict | None = None) -> tuple[list, list, float]:
    """(passage-row top-10 per question, deduped doc ids per question, seconds per query)."""
    questions = [q.question for q in bench.queries if q.gold]
    t0 = time.perf_counter()
    hits = hg.retrieve_many(questions, top_k=depth, mode=mode, filters=filters, **overrides)
    secs = (time.perf_counter() - t0) / max(1, len(questions))
    tops = [[h.passage_id for h in row[:K]] for row in hits]
    from eval.metrics import dedupe

    docs = [dedupe(h.doc_id for h in row) for row in hits]
    return tops, docs, secs


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    return sum(len(set(x) & set(y)) / max(1, min(K, len(y))) for x, y in zip(a, b)) / max(1, len(a))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--cache", type=Path, default=REPO / "eval" / "cache" / "hippograph")
    ap.add_argument("--eps", default="1e-3,3e-4,1e-4,3e-5,1e-5")
    ap.add_argument("--filter", action="append", dest="filters", metavar="FILTER",
                    help="run every variant under this metadata filter (repeatable: all must hold)")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "push_ppr.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    logging.basicConfig(level=logging.WARNING)
    from eval.datasets import load_dataset
    from eval.metrics import evaluate
    from hippograph import HippoGraph
    from hippograph.config import Config
    from hippograph.retrievers.filters import merge_filters, parse_cli_filter

    filters = merge_filters([parse_cli_filter(f) for f in args.filters or []])

    eps_list = [float(e) for e in args.eps.split(",")]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = ["## Forward-push PPR and top-k BM25 vs the exact query path (`eval/check_push_ppr.py`)", "",
             f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · commit {commit} · load average "
             f"{os.getloadavg()[0]:.1f} at the start · command: `python eval/check_push_ppr.py --datasets "
             f"{args.datasets} --cache {args.cache} --eps {args.eps}"
             + "".join(f" --filter '{f}'" for f in args.filters or []) + "`", "",
             f"exact = power iteration (tol {Config.ppr_tol:g}) + BM25 over every passage; candidates = power "
             f"iteration + top-{Config.bm25_candidates} BM25; push ε = forward push + top-{Config.bm25_candidates} "
             "BM25. Overlap = mean |top-10 ∩ exact top-10| / 10 (hybrid ranking; `ppr` mode ranking in brackets). "
             "ms = mean search time per query (`retrieve_many`, blocks of 64).", ""]
    for name in args.datasets.split(","):
        spec = DATASETS.get(name, name)
        bench = load_dataset(spec)
        index = find_index(args.cache, bench.name)
        hg = HippoGraph.open(index)
        n = hg.snapshot.n_passages
        metrics = [f"recall@{k}" for k in bench.metrics.ks] + [f"ndcg@{bench.metrics.ndcg_k}"]
        metrics += [f"{lvl}/recall@{k}" for lvl in bench.metrics.levels for k in bench.metrics.ks]
        depth = 3 * max(bench.metrics.ks)
        variants = [("exact", dict(ppr_method="power", bm25_candidates=n)),
                    ("candidates", dict(ppr_method="power"))]
        variants += [(f"push ε={e:g}", dict(ppr_method="push", ppr_push_eps=e)) for e in eps_list]
        hg.retrieve_many([q.question for q in bench.queries[:5]], top_k=depth)  # warm-up (models)
        rows = []
        ref: dict[str, list] = {}
        for label, ov in variants:
            res = {}
            for mode in ("hybrid", "ppr"):
                tops, docs, secs = run_variant(hg, bench, mode, ov, depth, filters)
                res[mode] = (tops, docs, secs)
            if label == "exact":
                ref = {m: res[m][0] for m in res}
            qids = [q.id for q in bench.queries if q.gold]
            _, agg = evaluate(bench, {qid: d for qid, d in zip(qids, res["hybrid"][1])})
            rows.append((label, overlap(res["hybrid"][0], ref["hybrid"]), overlap(res["ppr"][0], ref["ppr"]),
                         {m: agg["mean"].get(m, float("nan")) for m in metrics}, res["hybrid"][2] * 1000))
            print(name, rows[-1], flush=True)
        snap = hg.snapshot
        lines += [f"### {name} (`{index.name}`: {n:,} passages, {snap.n_entities:,} entities, "
                  f"{snap.adjacency.nnz:,} edges; {len(rows and ref['hybrid'])} questions"
                  + ("" if filters is None else f"; filter keeps {hg.retriever.passage_filter(filters).count:,} passages")
                  + ")", "",
                  "| variant | top-10 overlap | " + " | ".join(metrics) + " | ms/query |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        base = rows[0][3]
        for label, ov_h, ov_p, vals, ms in rows:
            cells = [f"{vals[m]:.3f}" + ("" if label == "exact" else f" ({100 * (vals[m] - base[m]):+.1f})")
                     for m in metrics]
            lines.append(f"| {label} | {ov_h:.3f} ({ov_p:.3f}) | " + " | ".join(cells) + f" | {ms:.1f} |")
        lines.append("")
        hg.close() if hasattr(hg, "close") else None
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
