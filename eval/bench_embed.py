"""Embedding throughput and agreement: the engine's MiniLM encoder in float32 and bfloat16 against
plain sentence-transformers, on the units an index really embeds.

    python eval/bench_embed.py INDEX_DIR [--sample 2000] [--out eval/results/embed.md]

INDEX_DIR is any hippograph index built with the sentence-transformers embedder (e.g. one of
eval/cache/hippograph/*); up to `--sample` units of each granularity (passages, sentences,
facts, entities) are drawn from it with a fixed seed. Reported per granularity and path:
texts/s (one thread pool of `torch.get_num_threads()` threads), minimum and mean cosine to
the plain sentence-transformers float32 vectors, and batch invariance — the largest
1 − cosine between a unit embedded in a shuffled batch and embedded alone.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def unit_texts(index_dir: Path, sample: int, seed: int = 0) -> dict[str, list[str]]:
    """Texts of each embedded granularity of an index, `sample` of each (fixed seed)."""
    from hippograph import HippoGraph
    from hippograph.text import passage_embedding_text

    snap = HippoGraph.open(index_dir).snapshot
    rng = np.random.default_rng(seed)

    def pick(n: int) -> np.ndarray:
        return np.sort(rng.choice(n, size=min(sample, n), replace=False))

    return {
        "passages": [passage_embedding_text(p.title, p.text) for p in snap.passages(pick(snap.n_passages).tolist())],
        "sentences": [snap.sentence_text(int(i)) for i in pick(snap.sentence_passages.shape[0])],
        "facts": [snap.fact_text(int(i)) for i in pick(len(snap.fact_subject))],
        "entities": [snap.entities[int(i)] for i in pick(len(snap.entities))],
    }


def timed(fn, texts: list[str]) -> tuple[np.ndarray, float]:
    fn(texts[:32])  # warm kernels for this shape range
    t0 = time.perf_counter()
    vecs = fn(texts)
    return vecs, len(texts) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--sample", type=int, default=2000, help="units per granularity (default 2000)")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "embed.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from hippograph.embedders import SentenceTransformerEmbedder, cpu_has_native_bf16

    units = unit_texts(args.index, args.sample)
    engines = {p: SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision=p) for p in ("float32", "bfloat16")}
    st = engines["float32"]._load()

    def plain(texts: list[str]) -> np.ndarray:  # sentence-transformers' own batching (char-length sort, padding)
        return st.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    load0 = os.getloadavg()[0]
    rows = []
    for gran, texts in units.items():
        ref, ref_tps = timed(plain, texts)
        rows.append((gran, len(texts), "sentence-transformers encode, float32", ref_tps, 1.0, 1.0, None))
        rng = np.random.default_rng(1)
        probe = rng.choice(len(texts), size=min(50, len(texts)), replace=False)
        for prec, emb in engines.items():
            vecs, tps = timed(emb.encode, texts)
            cos = (vecs * ref).sum(axis=1)
            alone = emb.encode([texts[i] for i in probe][:1])  # one text alone …
            for i in probe[1:]:
                alone = np.vstack([alone, emb.encode([texts[i]])])
            drift = float((1 - (alone * vecs[probe]).sum(axis=1)).max())  # … vs inside the big batch
            rows.append((gran, len(texts), f"hippograph encoder, {prec}", tps, float(cos.min()), float(cos.mean()), drift))
        print(f"{gran}: done", flush=True)
    load1 = os.getloadavg()[0]

    lines = [
        "# Embedding throughput: float32 vs bfloat16 (MiniLM-L6-v2)",
        "",
        f"- Command: `python eval/bench_embed.py {args.index} --sample {args.sample}`",
        f"- Machine: {os.cpu_count()} logical cores, {platform.processor() or platform.machine()}, "
        f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"load average {load0:.1f} at start, {load1:.1f} at end",
        "- Units: a fixed-seed sample of each granularity of the index above. Cosines are against "
        "sentence-transformers' own `encode` in float32; batch drift = max 1 − cosine between a unit "
        "embedded alone and inside the full batch (50 units probed).",
        "",
        "| granularity | n | path | texts/s | × plain | min cos | mean cos | batch drift |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {}
    for gran, n, path, tps, cmin, cmean, drift in rows:
        base.setdefault(gran, tps)
        lines.append(f"| {gran} | {n} | {path} | {tps:,.0f} | {tps / base[gran]:.2f} | {cmin:.6f} | {cmean:.6f} | "
                     f"{'–' if drift is None else f'{drift:.1e}'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
