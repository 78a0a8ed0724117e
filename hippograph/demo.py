"""`python -m hippograph.demo INDEX QUESTIONS.jsonl`: answer the sample questions and compare modes.

Prints the top passages for a few multi-hop questions with their explanation, then
recall@2/@5 of every retrieval mode over all questions (gold = document titles).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .api import HippoGraph
from .retrievers.engine import hop_summary


def _recall(hits_titles: list[str], gold: list[str], k: int) -> float:
    top = []
    for t in hits_titles:  # dedupe by title: one document may have several passages
        if t not in top:
            top.append(t)
    return len(set(top[:k]) & set(gold)) / len(gold) if gold else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("index")
    ap.add_argument("questions")
    ap.add_argument("--show", type=int, default=3, help="questions to print in full")
    args = ap.parse_args(argv)
    questions = [json.loads(line) for line in Path(args.questions).read_text(encoding="utf-8").splitlines() if line.strip()]
    hg = HippoGraph.open(args.index)
    multi = [q for q in questions if q.get("hops", 1) > 1][: args.show]
    for q in multi:
        print(f"\nQ: {q['question']}   (answer: {q['answer']}; gold: {', '.join(q['gold'])})")
        for i, h in enumerate(hg.retrieve(q["question"], top_k=3, explain=True), 1):
            seeds = ", ".join(s["entity"] for s in h.explanation["seeds"][:4])
            print(f"  {i}. [{h.score:.3f}] {h.title}: {' '.join(h.text.split())[:100]}…")
            print(f"     seeds: {seeds or '-'}; facts: {'; '.join(h.explanation['connecting_facts'][:2]) or '-'}")
            hop = h.explanation.get("bridge")
            if hop and hop["role"] == "second hop":
                print(f"     {hop_summary(hop, max_via=2)}")
    print(f"\nrecall over {len(questions)} sample questions (gold = document titles):")
    print(f"  {'mode':<8} {'R@2':>6} {'R@5':>6}")
    texts = [q["question"] for q in questions]
    for mode in ("bm25", "dense", "ppr", "hybrid"):
        results = hg.retrieve_many(texts, top_k=20, mode=mode)
        r2 = sum(_recall([h.title for h in hits], q["gold"], 2) for hits, q in zip(results, questions)) / len(questions)
        r5 = sum(_recall([h.title for h in hits], q["gold"], 5) for hits, q in zip(results, questions)) / len(questions)
        print(f"  {mode:<8} {r2:>6.3f} {r5:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
