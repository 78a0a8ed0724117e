"""Hybrid query latency and results: an index as format 4 stored it vs the same index with its passage texts
compressed (format 5), queried alternately so machine noise falls on both. Session 17 ran it with the kernel
docs' index and its upgraded copy:

    python eval/bench_text_format.py OLD_INDEX NEW_INDEX QUESTIONS.jsonl
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hippograph import HippoGraph  # noqa: E402

WARM_UP = 5
"""Questions asked of both indexes first, untimed (models and file pages loaded)."""


def timed_hits(hg: HippoGraph, question: str) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    hits = hg.retrieve(question, top_k=10)
    return 1000 * (time.perf_counter() - t0), [h.to_dict() for h in hits]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="the index as format 4 wrote it")
    ap.add_argument("new", type=Path, help="the same index with its passage texts compressed")
    ap.add_argument("questions", type=Path, help="JSONL, one {\"question\": …} per line")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    indexes = {"format 4": HippoGraph.open(args.old), "format 5": HippoGraph.open(args.new)}
    for question in questions[:WARM_UP]:
        for hg in indexes.values():
            hg.retrieve(question, top_k=10)
    ms: dict[str, list[float]] = {name: [] for name in indexes}
    same = 0
    for question in questions:
        hits = []
        for name, hg in indexes.items():
            took, found = timed_hits(hg, question)
            ms[name].append(took)
            hits.append(found)
        same += hits[0] == hits[1]
    print(f"{len(questions)} queries, identical hits (all fields) {same}")
    for name, times in ms.items():
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(f"{name}: p50 {statistics.median(times):.1f} ms p95 {p95:.1f}")


if __name__ == "__main__":
    main()
