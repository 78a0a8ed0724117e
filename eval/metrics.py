"""Retrieval metrics over ranked document ids, per question and averaged.

recall@k follows HippoRAG: |top-k ∩ gold| / |gold|. all-recall@k is 1 when every gold
document is in the top k. nDCG@k uses linear gains (trec_eval / BEIR): gain = grade,
discount 1/log2(rank+1). MRR is 1/rank of the first gold document in the retrieved list
(0 if none is retrieved).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

from .datasets import Benchmark, Query


def dedupe(ids: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each id, in rank order (passages → their documents)."""
    seen: set[str] = set()
    out = []
    for x in ids:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    gold = set(gold)
    if not gold:
        raise ValueError("recall is undefined without gold documents")
    return len(set(ranked[:k]) & gold) / len(gold)


def all_recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    gold = set(gold)
    if not gold:
        raise ValueError("all-recall is undefined without gold documents")
    return 1.0 if gold <= set(ranked[:k]) else 0.0


def ndcg_at_k(ranked: Sequence[str], grades: dict[str, float], k: int) -> float:
    """nDCG@k with linear gain; `grades` maps relevant ids to their grade (> 0)."""
    dcg = sum(grades.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        raise ValueError("nDCG is undefined without relevant documents")
    return dcg / idcg


def mrr(ranked: Sequence[str], gold: Iterable[str]) -> float:
    gold = set(gold)
    for i, d in enumerate(ranked):
        if d in gold:
            return 1.0 / (i + 1)
    return 0.0


def question_metrics(ranked: Sequence[str], query: Query, ks: Sequence[int], ndcg_k: int = 10,
                     levels: dict[str, dict[str, str]] | None = None) -> dict[str, float]:
    """All metrics of one question; `ranked` are distinct doc ids, best first."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, query.gold, k)
    for k in ks:
        out[f"all_recall@{k}"] = all_recall_at_k(ranked, query.gold, k)
    grades = query.grades or {g: 1.0 for g in query.gold}
    out[f"ndcg@{ndcg_k}"] = ndcg_at_k(ranked, grades, ndcg_k)
    out["mrr"] = mrr(ranked, query.gold)
    for level, unit_of in (levels or {}).items():
        units = dedupe(unit_of.get(d, d) for d in ranked)
        gold_units = dedupe(unit_of.get(g, g) for g in query.gold)
        for k in ks:
            out[f"{level}/recall@{k}"] = recall_at_k(units, gold_units, k)
    return out


def evaluate(bench: Benchmark, rankings: dict[str, list[str]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-question records and the aggregate for one system on one benchmark.

    `rankings` maps query id → distinct doc ids, best first. Questions with no gold are
    skipped; excluded categories get per-question records (`scored: false`) but do not
    enter the averages. Returns (records, {"n": …, "mean": {metric: value},
    "by_category": {cat: {"n": …, metric: value}}}).
    """
    mc = bench.metrics
    excl = set(mc.exclude_categories)
    records: list[dict[str, Any]] = []
    sums: dict[str, float] = defaultdict(float)
    cat_sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    cat_n: dict[str, int] = defaultdict(int)
    n = 0
    for q in bench.queries:
        if not q.gold:
            continue
        ranked = rankings.get(q.id)
        if ranked is None:
            raise KeyError(f"no ranking for query {q.id!r}")
        m = question_metrics(ranked, q, mc.ks, mc.ndcg_k, mc.levels)
        scored = q.category not in excl
        records.append({"qid": q.id, "question": q.question, "category": q.category, "scored": scored,
                        "gold": q.gold, "retrieved": list(ranked[:max(mc.ks)]), **m})
        if not scored:
            continue
        n += 1
        for key, val in m.items():
            sums[key] += val
        if q.category is not None:
            cat_n[q.category] += 1
            for key, val in m.items():
                cat_sums[q.category][key] += val
    mean = {key: val / n for key, val in sums.items()} if n else {}
    by_cat = {c: {"n": cat_n[c], **{k: v / cat_n[c] for k, v in s.items()}} for c, s in sorted(cat_sums.items())}
    return records, {"n": n, "mean": mean, "by_category": by_cat}
