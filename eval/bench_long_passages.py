"""Dense passage vectors of long passages: truncated to MiniLM's 256-token window (what the engine and
sentence-transformers do) vs the token mean over consecutive 254-token windows, on SciFact's passages
(51 % longer than the window) with exact search; writes nothing, prints recall and nDCG.

    python eval/bench_long_passages.py [--index DIR]   # default: SciFact's newest cached eval index
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.datasets import load_dataset  # noqa: E402
from eval.metrics import dedupe, evaluate  # noqa: E402
from hippograph.tables import unpack_text  # noqa: E402
from hippograph.text import passage_embedding_text  # noqa: E402

WINDOW = 254
"""Tokens per window: MiniLM's 256 less [CLS] and [SEP]."""


def newest_cached_index(name: str) -> Path:
    built = [d for d in (ROOT / "eval" / "cache" / "hippograph").glob(f"{name}-spacy-*") if (d / "manifest.json").exists()]
    if not built:
        sys.exit(f"no cached {name} index under eval/cache/hippograph: run `python -m eval run --datasets {name}`")
    return max(built, key=lambda d: d.stat().st_mtime)


def passages(index: Path) -> tuple[list[str], list[str]]:
    """(embedding text, document id) of every passage, in row order."""
    generation = json.loads((index / "manifest.json").read_text())["generation"]
    conn = sqlite3.connect(f"file:{index / generation / 'meta.sqlite'}?mode=ro", uri=True)
    rows = conn.execute("SELECT doc_id, title, text FROM passages ORDER BY idx").fetchall()
    conn.close()
    return [passage_embedding_text(title, unpack_text(text)) for _, title, text in rows], [r[0] for r in rows]


def windowed(model, texts: list[str], truncated: np.ndarray) -> np.ndarray:
    """Each text longer than the window: the normalised mean of its token vectors over every window."""
    out = truncated.copy()
    pieces, owner = [], []
    for i, text in enumerate(texts):
        offsets = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) + 2 <= 256:
            continue
        for a in range(0, len(offsets), WINDOW):
            pieces.append(text[offsets[a][0]:offsets[min(a + WINDOW, len(offsets)) - 1][1]])
            owner.append(i)
    t0 = time.time()
    token_vectors = model.encode(pieces, batch_size=32, output_value="token_embeddings")
    print(f"windows: {len(pieces)} of {len(set(owner))} long passages, {time.time() - t0:.0f} s", flush=True)
    sums: dict[int, tuple[np.ndarray, int]] = {}
    for i, tv in zip(owner, token_vectors):
        tv = tv.float().numpy() if hasattr(tv, "numpy") else np.asarray(tv)
        total, n = sums.get(i, (0, 0))
        sums[i] = (total + tv.sum(0), n + len(tv))
    for i, (total, n) in sums.items():
        out[i] = total / np.linalg.norm(total)  # the mean's direction
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, default=None, help="a SciFact index (default: the newest cached one)")
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    from hippograph.embedders import resolve_sentence_transformer_model

    texts, docs = passages(args.index or newest_cached_index("scifact"))
    model = SentenceTransformer(str(resolve_sentence_transformer_model("all-MiniLM-L6-v2")), device="cpu")
    t0 = time.time()
    truncated = model.encode(texts, batch_size=64, normalize_embeddings=True)
    print(f"truncated: {len(texts)} passages, {time.time() - t0:.0f} s", flush=True)
    variants = {"truncated": truncated, "windows": windowed(model, texts, truncated)}
    bench = load_dataset("scifact")
    queries = [q for q in bench.queries if q.gold]
    query_vectors = model.encode([q.question for q in queries], batch_size=64, normalize_embeddings=True)
    for name, vectors in variants.items():
        scores = query_vectors @ vectors.T
        rankings = {q.id: dedupe(docs[j] for j in np.argsort(-s)[:200]) for q, s in zip(queries, scores)}
        mean = evaluate(bench, rankings)[1]["mean"]
        print(name, "  ".join(f"{k} {100 * mean[k]:.2f}" for k in ("recall@5", "recall@10", "ndcg@10")), flush=True)


if __name__ == "__main__":
    main()
