"""How a granularity's vector search grows with its size, as the engine runs it.

    python eval/bench_spann_growth.py [--sizes 25000,1000000] [--queries 200] [--out eval/results/spann_growth.md]

The engine's SPANN layout (indexers/vectors.py): posting lists of ids over the generation's int8
embeddings file, no sketches, replica `Config.spann_replica`; a search asks for
`Config.candidates_per_granularity` units over `Config.spann_max_lists` lists and reads the probed
vectors from the embeddings file (dequantised). Vectors and queries are eval/bench_ann.py's
synthetic MiniLM-shaped clusters. Wall ms per one-query search on a quiet machine: the number
eval/bench_query_scale.py cannot see, since its vector search is timed at the real index's size.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "spann_growth.md")
    args = ap.parse_args(argv)
    from eval.bench_ann import synthetic
    from hippograph.config import Config
    from hippograph.format import open_embeddings, write_embeddings_file
    from hippograph.indexers.spann import SpannIndex, VectorsById

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    k, lists = Config.candidates_per_granularity, Config.spann_max_lists
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        X, Q = synthetic(n, args.queries, seed=n)
        with tempfile.TemporaryDirectory() as tmp:
            emb = Path(tmp) / "emb.npy"
            write_embeddings_file(emb, X, "int8")
            t0 = time.perf_counter()
            SpannIndex.build(X, np.arange(n, dtype=np.int64), path=Path(tmp) / "idx", metric="ip", sketch_bits=0,
                             replica_count=Config.spann_replica, store_vectors=False)
            build_s = time.perf_counter() - t0
            del X
            index = SpannIndex.open(Path(tmp) / "idx", vectors=VectorsById(open_embeddings(emb)))
            for q in Q[:20]:
                index.search(q[None, :], k, max_lists=lists)
            ms, read = [], []
            for q in Q:
                t0 = time.perf_counter()
                index.search(q[None, :], k, max_lists=lists)
                ms.append((time.perf_counter() - t0) * 1000)
                read.append(index.last_stats.entries_read)
            rows.append(dict(n=n, build_s=build_s, p50=float(np.median(ms)), p95=float(np.percentile(ms, 95)),
                             read=float(np.mean(read)), load=os.getloadavg()[0]))
            print(rows[-1], flush=True)
            del index
    lines = ["## Vector search cost against granularity size (`eval/bench_spann_growth.py`)", "",
             f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · commit {commit} · 2 cores · wall ms, one query "
             f"per call · k={k}, {lists} lists, int8 embeddings read by id, replica {Config.spann_replica} · command: "
             f"`python eval/bench_spann_growth.py --sizes {args.sizes} --queries {args.queries}`", "",
             "| vectors | build s | search p50 ms | search p95 ms | entries read | load |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['build_s']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['read']:,.0f} | {r['load']:.1f} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
