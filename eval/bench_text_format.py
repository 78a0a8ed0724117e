"""Hybrid query latency and results: an index in an older on-disk format vs the same index rewritten in a newer
one (session 17: passage texts compressed, format 4 → 5; session 19: the graph stored once, format 6 → 7),
queried alternately so machine noise falls on both. Run with the kernel docs' index and its converted copy:

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
    ap.add_argument("old", type=Path, help="the index in the older format")
    ap.add_argument("new", type=Path, help="the same index in the newer format")
    ap.add_argument("questions", type=Path, help="JSONL, one {\"question\": …} per line")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    opened = {"old": HippoGraph.open(args.old), "new": HippoGraph.open(args.new)}
    indexes = {f"{role} (format {hg.manifest.format_version})": hg for role, hg in opened.items()}
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
