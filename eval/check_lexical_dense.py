"""Sanity check of the lexical and dense building blocks on the MuSiQue 100-question sample.

Reports passage recall@2/@5 of: hippograph's BM25 (bm25s, our tokenizer), rank_bm25 on
the same tokens (the reference baseline), the TF-IDF/LSA embedder and the MiniLM
embedder; plus BM25 query latency of bm25s vs rank_bm25 and MiniLM encoding speed.
Gold = paragraphs with is_supporting, matched to the corpus by title + text.

    python eval/check_lexical_dense.py                  # everything (~1 min on 2 cores)
    python eval/check_lexical_dense.py --no-dense       # skip MiniLM
    python eval/check_lexical_dense.py --scale 200000   # BM25 latency on a corpus tiled to 200k docs
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "musique_train100"


def load(data_dir: Path) -> tuple[list[str], list[str], list[set[int]]]:
    corpus = json.loads((data_dir / "musique_train_corpus.json").read_text(encoding="utf-8"))
    records = json.loads((data_dir / "musique_train.json").read_text(encoding="utf-8"))
    texts = [f"{p['title']} {p['text']}" for p in corpus]
    key = {(p["title"], p["text"]): i for i, p in enumerate(corpus)}
    questions, gold = [], []
    for r in records:
        g = {key[(p["title"], p["paragraph_text"])] for p in r["paragraphs"] if p["is_supporting"]}
        questions.append(r["question"])
        gold.append(g)
    return texts, questions, gold


def recall(ranked: np.ndarray, gold: list[set[int]], k: int) -> float:
    return float(np.mean([len(set(row[:k].tolist()) & g) / len(g) for row, g in zip(ranked, gold)]))


def timed_ms(fn, queries) -> tuple[float, float]:
    """Median and mean milliseconds per query (one warm-up call)."""
    fn(queries[0])
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), statistics.fmean(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="musique_train100 directory")
    ap.add_argument("--no-dense", action="store_true", help="skip the MiniLM embedder")
    ap.add_argument("--tfidf-dim", type=int, default=256)
    ap.add_argument("--scale", type=int, default=0, help="also time BM25 on the corpus tiled to this many docs")
    args = ap.parse_args(argv)

    from rank_bm25 import BM25Okapi

    from hippograph.embedders import SentenceTransformerEmbedder, TfidfEmbedder
    from hippograph.retrievers.lexical import BM25Index, tokenize

    texts, questions, gold = load(args.data)
    print(f"MuSiQue sample: {len(texts)} passages, {len(questions)} questions, {sum(map(len, gold))} gold passages")

    # ---- BM25 (bm25s) vs rank_bm25 ----
    t = time.perf_counter()
    bm25 = BM25Index.build(texts)
    print(f"BM25Index.build: {time.perf_counter() - t:.2f} s ({len(bm25.vocab)} terms)")
    _, idx = bm25.search(questions, 5)
    print(f"BM25 (bm25s)      recall@2 {recall(idx, gold, 2):.3f}  recall@5 {recall(idx, gold, 5):.3f}")

    t = time.perf_counter()
    rb = BM25Okapi(tokenize(texts))
    rb_build = time.perf_counter() - t
    rb_rank = np.stack([np.argsort(-rb.get_scores(toks), kind="stable")[:5] for toks in tokenize(questions)])
    print(f"rank_bm25 Okapi   recall@2 {recall(rb_rank, gold, 2):.3f}  recall@5 {recall(rb_rank, gold, 5):.3f}"
          f"  (build {rb_build:.2f} s)")

    med, mean = timed_ms(lambda q: bm25.search(q, 10), questions)
    print(f"latency bm25s     median {med:.3f} ms  mean {mean:.3f} ms / query (top-10, incl. tokenize)")
    med, mean = timed_ms(lambda q: np.argsort(-rb.get_scores(tokenize(q)[0]))[:10], questions)
    print(f"latency rank_bm25 median {med:.3f} ms  mean {mean:.3f} ms / query")

    if args.scale:
        reps = math.ceil(args.scale / len(texts))
        big = (texts * reps)[: args.scale]
        t = time.perf_counter()
        big_index = BM25Index.build(big)
        print(f"scale {len(big)} docs: build {time.perf_counter() - t:.1f} s")
        med, mean = timed_ms(lambda q: big_index.search(q, 10), questions)
        print(f"scale {len(big)} docs: bm25s median {med:.2f} ms  mean {mean:.2f} ms / query")
        big_rb = BM25Okapi(tokenize(big))
        med, mean = timed_ms(lambda q: np.argsort(-big_rb.get_scores(tokenize(q)[0]))[:10], questions[:20])
        print(f"scale {len(big)} docs: rank_bm25 median {med:.1f} ms  mean {mean:.1f} ms / query (20 queries)")

    # ---- TF-IDF / LSA ----
    t = time.perf_counter()
    tfidf = TfidfEmbedder(args.tfidf_dim).fit(texts)
    doc_vecs = tfidf.encode(texts)
    fit_s = time.perf_counter() - t
    ranked = np.argsort(-(tfidf.encode(questions) @ doc_vecs.T), axis=1, kind="stable")
    print(f"TF-IDF/LSA {tfidf.dim}-d recall@2 {recall(ranked, gold, 2):.3f}  recall@5 {recall(ranked, gold, 5):.3f}"
          f"  (fit+encode {fit_s:.1f} s)")

    # ---- MiniLM ----
    if not args.no_dense:
        emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        emb.encode(["warm up"])
        t = time.perf_counter()
        doc_vecs = emb.encode(texts)
        enc_s = time.perf_counter() - t
        q_vecs = emb.encode(questions)
        ranked = np.argsort(-(q_vecs @ doc_vecs.T), axis=1, kind="stable")
        print(f"MiniLM {emb.dim}-d     recall@2 {recall(ranked, gold, 2):.3f}  recall@5 {recall(ranked, gold, 5):.3f}"
              f"  (encode {len(texts) / enc_s:.0f} passages/s)")
        norms = np.linalg.norm(doc_vecs, axis=1)
        print(f"MiniLM row norms: min {norms.min():.4f} max {norms.max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
