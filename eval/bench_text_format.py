"""Hybrid query latency and results: an index as format 4 stored it vs the same index with its passage texts
compressed (format 5), queried alternately. Session 17 ran it with the kernel docs' index and its upgraded copy:

    python eval/bench_text_format.py OLD_INDEX NEW_INDEX QUESTIONS.jsonl
"""
import os, sys, json, time, statistics
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hippograph import HippoGraph
qs = [json.loads(l)["question"] for l in open(sys.argv[3])]
a = HippoGraph.open(sys.argv[1]); b = HippoGraph.open(sys.argv[2])
print(a.manifest.generation, b.manifest.generation)
for q in qs[:5]:
    a.retrieve(q, top_k=10); b.retrieve(q, top_k=10)
ta, tb, same = [], [], 0
for q in qs:
    t = time.perf_counter(); ha = a.retrieve(q, top_k=10); ta.append(1000 * (time.perf_counter() - t))
    t = time.perf_counter(); hb = b.retrieve(q, top_k=10); tb.append(1000 * (time.perf_counter() - t))
    same += [h.to_dict() for h in ha] == [h.to_dict() for h in hb]
def pct(x, p): x = sorted(x); return x[int(p * (len(x) - 1))]
print(f"{len(qs)} queries, identical hits (all fields) {same}")
print(f"format 4: p50 {statistics.median(ta):.1f} ms p95 {pct(ta, .95):.1f}")
print(f"format 5: p50 {statistics.median(tb):.1f} ms p95 {pct(tb, .95):.1f}")
