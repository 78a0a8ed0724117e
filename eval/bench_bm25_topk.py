"""BM25 top-k cost against corpus size: the baseline algorithm against the current `BM25Index.search`,
on the same synthetic indexes and queries, with a check that both return identical results.

    python eval/bench_bm25_topk.py [--profile INDEX_DIR] [--sizes 100000,1000000,3000000] [--queries 50]
                                   [--baseline-rev 247d0cc] [--filter-share 0.1] [--out eval/results/bm25_topk.md]

The indexes are eval/bench_query_scale.py's `synth_bm25` (the posting lists of real MuSiQue query terms at
their real share of the corpus, with that term's real BM25 values), built with the same seed, so the sizes
match its query_scale.md rows. The baseline is `retrievers/lexical.py` as of `--baseline-rev` (read with
`git show` and imported as a module; default: main before the block MaxScore), wrapped around the very same
arrays. Each query runs once untimed in both (per-term state such as maximum contributions is computed on a
term's first query and kept, as on a long-running server; the new path's first-query cost is reported
separately), then the two are timed alternately query by query in process CPU time (`time.process_time`:
the machine is shared, wall time would count waiting for a core). Results must be identical (indices and
float32 scores, every row) with and without an `allowed` filter keeping `--filter-share` of the documents.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

clock = time.process_time


def baseline_module(rev: str) -> ModuleType:
    """retrievers/lexical.py at git revision `rev`, imported under another name."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:retrievers/lexical.py"], capture_output=True,
                         text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "lexical_baseline.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("lexical_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def timed(fn, *args, **kw):
    t0 = clock()
    out = fn(*args, **kw)
    return (clock() - t0) * 1000, out


def same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return a[0].dtype == b[0].dtype and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, default=None, help="real index whose query terms are copied")
    ap.add_argument("--dataset", default="musique_train100")
    ap.add_argument("--sizes", default="100000,1000000,3000000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=None, help="top k (default Config.bm25_candidates)")
    ap.add_argument("--baseline-rev", default="247d0cc", help="git revision of the baseline retrievers/lexical.py")
    ap.add_argument("--filter-share", type=float, default=0.1, help="share of documents an `allowed` filter keeps")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "bm25_topk.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from eval.bench_query import default_index
    from eval.bench_query_scale import bm25_query_terms, real_questions, synth_bm25
    from hippograph import HippoGraph
    from hippograph.config import Config

    k = args.k or Config.bm25_candidates
    index = args.profile or default_index(args.dataset)
    real = HippoGraph.open(index).snapshot.bm25
    prof = {"q_term_fracs": bm25_query_terms(real, real_questions(args.dataset, args.queries))}
    baseline = baseline_module(args.baseline_rev)
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "retrievers", "eval/bench_bm25_topk.py"],
                           capture_output=True, text=True).stdout.strip()
    uptime0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = _dt.datetime.now(_dt.timezone.utc)
    rows = []

    def write_report() -> None:
        cmd = (f"nice -n 19 python eval/bench_bm25_topk.py --sizes {args.sizes} --queries {args.queries} "
               f"--baseline-rev {args.baseline_rev} --filter-share {args.filter_share}")
        lines = ["## BM25 exact top-k against corpus size (`eval/bench_bm25_topk.py`)", "",
                 f"{started:%Y-%m-%d %H:%M} UTC · commit {commit}{' (+ uncommitted changes)' if dirty else ''} · "
                 f"baseline `retrievers/lexical.py` at {args.baseline_rev} · k = {k} · {args.queries} queries "
                 f"(real `{index.name}` query terms) · **process CPU ms per query** · command: `{cmd}`", "",
                 f"`uptime` at the start: `{uptime0}`", "",
                 "| passages | query postings / passages | baseline p50 / p95 | **new p50 / p95** | p50 speed-up | "
                 "new: queries scanned in blocks | new, first query of its terms p50 | "
                 f"filtered ({args.filter_share:.0%} kept) baseline / new p50 | identical rows | load |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(
                f"| {r['n']:,} | {r['post']:.2f} | {pct(r['old'], 50):.2f} / {pct(r['old'], 95):.2f} | "
                f"**{pct(r['new'], 50):.2f} / {pct(r['new'], 95):.2f}** | {pct(r['old'], 50) / pct(r['new'], 50):.1f}× | "
                f"{r['read']:.0%} | {pct(r['cold'], 50):.2f} | {pct(r['old_f'], 50):.2f} / {pct(r['new_f'], 50):.2f} | "
                f"{r['same']} / {r['checked']} | {r['load']:.1f} |")
        if len(rows) >= 2:
            lo, hi = rows[0], rows[-1]
            slope = lambda key: np.log(pct(hi[key], 50) / pct(lo[key], 50)) / np.log(hi["n"] / lo["n"])  # noqa: E731
            lines += ["", f"Log–log slope of p50 from {lo['n']:,} to {hi['n']:,} passages: baseline "
                          f"{slope('old'):.2f}, new {slope('new'):.2f}."]
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")

    for n in [int(x) for x in args.sizes.split(",")]:
        rng = np.random.default_rng(n)  # the seed eval/bench_query_scale.py uses: the same BM25 arrays
        try:
            new, queries = synth_bm25(prof, n, args.queries, rng)
        except MemoryError:
            print(f"{n:,} passages: the synthetic index does not fit in memory; stopping", flush=True)
            break
        old = baseline.BM25Index(new.vocab, new.data, new.indices, new.indptr, n)
        kk = min(k, n)
        allowed = np.random.default_rng(n + 1).random(n) < args.filter_share
        r = dict(n=n, post=len(new.data) / len(queries) / n, old=[], new=[], cold=[], old_f=[], new_f=[],
                 same=0, checked=0, read=0.0)
        read = []
        for q in queries:  # first query of each term: lazy per-term state; results checked
            t, a = timed(new.search, [q], kk)
            r["cold"].append(t)
            read.append(new.last_blocks > 0)
            b = old.search([q], kk)
            r["same"] += same(a, b)
            r["checked"] += 1
        for q in queries:
            for impl, key in ((old, "old"), (new, "new")):
                r[key].append(timed(impl.search, [q], kk)[0])
            for impl, key in ((old, "old_f"), (new, "new_f")):
                t, res = timed(impl.search, [q], kk, allowed=allowed)
                r[key].append(t)
                if impl is old:
                    b = res
                else:
                    r["same"] += same(res, b)
                    r["checked"] += 1
        r["read"] = float(np.mean(read))
        r["load"] = os.getloadavg()[0]
        rows.append(r)
        print(n, {key: round(pct(r[key], 50), 2) for key in ("old", "new", "cold", "old_f", "new_f")},
              f"identical {r['same']}/{r['checked']}", flush=True)
        del new, old, queries, allowed
        gc.collect()
        write_report()
    write_report()
    return 0 if all(r["same"] == r["checked"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
