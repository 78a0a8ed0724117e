"""Cost of structural validation on open (issue #15 target: ≤ 5 % of open time).

    python -m eval.bench_validate INDEX_DIR [--repeat 5] [--query "..."]

Opens the index `--repeat` times (HippoGraph.open: manifest, SQLite tables, graph, vector
indexes, BM25; model-backed embedders load lazily and are not part of an open) and times,
inside those opens, every check of `hippograph.validate` (outermost calls only, so a check
calling another is counted once; the array reads themselves are not checks). Reports the
median open time, the median time spent in checks, and their ratio. Then, on one more fresh
open, times the first hybrid query (models loaded there, as a user's first query loads them)
and the checks it runs, and reports checks / (open + first query) too.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time

CHECKS = ("npy_layout", "check_csr", "check_range", "check_finite", "check_length", "check_table_rows",
          "check_pairs", "check_manifest", "check_tree_confined", "check_fields", "check_count", "confined",
          "check_relative", "check_embeddings", "check_vector_index", "check_minhash")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench_validate", description=__doc__.splitlines()[0])
    p.add_argument("index")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--query", default="Which protein regulates the expression of this gene?",
                   help="the first query timed after a fresh open (hybrid mode)")
    args = p.parse_args(argv)

    from hippograph import HippoGraph, validate

    spent = [0.0]
    depth = [0]
    by_check: dict[str, float] = {}

    def timed(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    took = time.perf_counter() - t0
                    spent[0] += took
                    by_check[fn.__name__] = by_check.get(fn.__name__, 0.0) + took / args.repeat
        return wrapper

    for name in CHECKS:
        setattr(validate, name, timed(getattr(validate, name)))
    HippoGraph.open(args.index).close()  # warm the page cache: measure CPU, not the disk
    opens, checks = [], []
    by_check.clear()
    for _ in range(args.repeat):
        spent[0] = 0.0
        t0 = time.perf_counter()
        hg = HippoGraph.open(args.index)
        opens.append(time.perf_counter() - t0)
        checks.append(spent[0])
        counts = hg.manifest.counts
        hg.close()
    per_check = dict(by_check)
    # one more fresh open, then its first query (the query's own checks, e.g. a flat index over float
    # embeddings checked before its first search, count too)
    spent[0] = 0.0
    t0 = time.perf_counter()
    hg = HippoGraph.open(args.index)
    t1 = time.perf_counter()
    hg.retrieve(args.query, top_k=10, mode="hybrid")
    t2 = time.perf_counter()
    first = {"open_s": round(t1 - t0, 4), "first_query_s": round(t2 - t1, 4), "checks_s": round(spent[0], 4),
             "ratio": round(spent[0] / (t2 - t0), 5)}
    hg.close()
    out = {"index": args.index, "repeat": args.repeat, "open_s": round(statistics.median(opens), 4),
           "checks_s": round(statistics.median(checks), 4),
           "ratio": round(statistics.median(c / o for c, o in zip(checks, opens)), 4),
           "open_plus_first_query": first,
           "per_check_ms": {k: round(v * 1000, 2) for k, v in sorted(per_check.items(), key=lambda kv: -kv[1])},
           "counts": {k: counts.get(k) for k in ("passages", "sentences", "entities", "facts", "nodes", "edges")}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
