"""Quick engine check on a prebuilt index: recall@2/5/10 of every mode and ablation.

    python eval/check_engine.py INDEX_DIR --dataset musique_train100|hotpotqa_train100

The index must have been built from the dataset's corpus with ids = list positions
(as `python -m eval run` and eval/bench_index.py do). Faster than a full harness run when
tuning query-time options on one index; the harness (`python -m eval run`) is the reference.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RUNS = [
    ("bm25", {}), ("dense", {}), ("hybrid", {"use_ppr": False}), ("ppr", {}), ("hybrid", {}),
    ("hybrid", {"router": False}), ("hybrid", {"use_synonymy": False}), ("hybrid", {"use_passage_priors": False}),
]


def gold_of(dataset: str) -> tuple[list[str], list[list[str]]]:
    root = SHARED / dataset
    if dataset.startswith("musique"):
        corpus = json.loads((root / "musique_train_corpus.json").read_text())
        key = {(r["title"], r["text"]): str(i) for i, r in enumerate(corpus)}
        qs = json.loads((root / "musique_train.json").read_text())
        return [q["question"] for q in qs], [
            [key[(p["title"], p["paragraph_text"])] for p in q["paragraphs"] if p["is_supporting"]] for q in qs
        ]
    corpus = json.loads((root / "hotpotqa_train_corpus_list.json").read_text())
    title2id: dict[str, str] = {}
    for i, r in enumerate(corpus):
        title2id.setdefault(r["title"], str(i))
    qs = json.loads((root / "hotpotqa_train.json").read_text())
    return [q["question"] for q in qs], [list(dict.fromkeys(title2id[t] for t, _ in q["supporting_facts"])) for q in qs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index")
    ap.add_argument("--dataset", default="musique_train100")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="query-time Config override for every run (indexes keep the config they were built with)")
    args = ap.parse_args(argv)
    base = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    from hippograph import HippoGraph

    questions, gold = gold_of(args.dataset)
    hg = HippoGraph.open(args.index)
    print(f"| mode | overrides | R@2 | R@5 | R@10 | ms/query (batched) |\n|---|---|---|---|---|---|")
    for mode, overrides in RUNS:
        t0 = time.perf_counter()
        results = hg.retrieve_many(questions, top_k=30, mode=mode, **{**base, **overrides})
        ms = (time.perf_counter() - t0) / len(questions) * 1000
        rec = {}
        for k in (2, 5, 10):
            rec[k] = np.mean([
                len(set(list(dict.fromkeys(h.doc_id for h in hits))[:k]) & set(g)) / len(g)
                for hits, g in zip(results, gold)
            ])
        print(f"| {mode} | {overrides or ''} | {rec[2]:.3f} | {rec[5]:.3f} | {rec[10]:.3f} | {ms:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
