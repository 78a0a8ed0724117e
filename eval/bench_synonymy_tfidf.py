"""Time `synonym_edges` on a built index's entities the way a scratch build's merge calls it.

    python eval/bench_synonymy_tfidf.py INDEX_DIR [--first N] [--exact] [--pairs OUT.pkl]

Reads the live generation's entity vectors (as stored, memory-mapped) and names; every entity (or
the first N) is new, Config defaults (cosine ≥ 0.8, ≤ 100 neighbours). Prints seconds, edges, the
triples `_Hits` re-sorted, and peak RSS; `--pairs` pickles [(a, b, score)] for comparing runs or
measuring recall against `--exact`. Numbers: eval/results/synonymy_tfidf.md.
"""
from __future__ import annotations

import argparse
import json
import pickle
import resource
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hippograph.format import open_embeddings  # noqa: E402
from indexers import synonymy  # noqa: E402
from indexers.graph_builder import synonymy_eligible  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("index", type=Path)
    ap.add_argument("--first", type=int, default=0, help="only the first N entities")
    ap.add_argument("--exact", action="store_true", help="force the exact search (default: as the merge decides)")
    ap.add_argument("--pairs", type=Path)
    args = ap.parse_args()
    manifest = json.loads((args.index / "manifest.json").read_text(encoding="utf-8"))
    gen = args.index / manifest["generation"]
    ents = open_embeddings(gen / "embeddings" / "entities.npy")
    con = sqlite3.connect(f"file:{gen / 'meta.sqlite'}?mode=ro", uri=True)
    names = [r[0] for r in con.execute("SELECT name FROM entities ORDER BY idx")]
    n = args.first or len(names)
    if n < len(names):
        ents = np.ascontiguousarray(ents[:n], dtype=np.float32)
    eligible = np.fromiter((synonymy_eligible(s, 3) for s in names[:n]), dtype=bool, count=n)
    sorted_triples = [0]
    best = synonymy._Hits._best

    def counting_best(self):  # noqa: ANN001
        sorted_triples[0] += sum(int(q.size) for q in self.q)
        return best(self)

    synonymy._Hits._best = counting_best
    t = time.perf_counter()
    edges = synonymy.synonym_edges(ents, None, np.arange(n), threshold=0.8, max_neighbors=100, min_chars=3,
                                   eligible=eligible, **({"exact_work": float("inf")} if args.exact else {}))
    seconds = time.perf_counter() - t
    print(f"entities={n} eligible={int(eligible.sum())} seconds={seconds:.1f} edges={len(edges)} "
          f"sorted_triples={sorted_triples[0]} peak_rss_MB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    if args.pairs:
        with open(args.pairs, "wb") as f:
            pickle.dump([(e.a, e.b, e.score) for e in edges], f)


if __name__ == "__main__":
    main()
