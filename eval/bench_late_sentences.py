"""Embedding cost of passages + sentences: each sentence embedded on its own vs read from its passage's pass.

    python eval/bench_late_sentences.py --corpus ../shared/datasets/musique_train100/musique_train_corpus.json \
        --limit 1000 --rounds 2

The corpus is a JSON list of {title, text}. Each round times both ways in turn on the same passages
(alternating, so load drifts hit both): `separate` = `encode(passages)` + `encode(sentences)`, `late` =
`encode_with_spans(passages, sentence spans)`. Prints a markdown table (passages/s per way, speed-up)
and how many sentences the model's window covers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hippograph.embedders import SentenceTransformerEmbedder  # noqa: E402
from hippograph.text import passage_embedding_text  # noqa: E402
from indexers.chunking import split_sentences  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    docs = json.loads(Path(args.corpus).read_text(encoding="utf-8"))[: args.limit]
    texts = [passage_embedding_text(d.get("title", ""), d["text"]) for d in docs]
    spans = []
    for d, t in zip(docs, texts):
        shift = len(t) - len(d["text"])
        spans.append([(a + shift, b + shift) for a, b in split_sentences(d["text"])])
    sentences = [t[a:b] for t, row in zip(texts, spans) for a, b in row]
    emb = SentenceTransformerEmbedder()
    emb.encode(texts[:64])  # load and warm up
    emb.encode_with_spans(texts[:64], spans[:64])
    times: dict[str, list[float]] = {"separate": [], "late": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        emb.encode(texts)
        emb.encode(sentences)
        times["separate"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        emb.encode_with_spans(texts, spans)
        times["late"].append(time.perf_counter() - t0)
        load.append(os.getloadavg()[0])
    tok = emb._load().tokenizer
    seen = 0
    for t, row in zip(texts, spans):
        enc = tok(t, truncation=True, max_length=emb._load().max_seq_length, return_offsets_mapping=True)
        end = max(e for _, e in enc["offset_mapping"])
        seen += sum(b <= end for _, b in row)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"`python eval/bench_late_sentences.py --corpus {args.corpus} --limit {args.limit} --rounds {args.rounds}`; "
          f"commit {commit}; {platform.machine()}, {os.cpu_count()} cores, precision {emb.precision}; "
          f"1-minute load {', '.join(f'{x:.1f}' for x in load)}\n")
    print(f"{len(texts)} passages, {len(sentences)} sentences; {seen} ({seen / max(1, len(sentences)):.1%}) "
          f"inside the model's window, the rest embedded on their own\n")
    print("| way | seconds per round | passages/s (best round) |")
    print("|---|---|---:|")
    for way, ts in times.items():
        print(f"| {way} | {', '.join(f'{x:.1f}' for x in ts)} | {len(texts) / min(ts):.1f} |")
    print(f"\nlate / separate time (best rounds): {min(times['late']) / min(times['separate']):.2f}")


if __name__ == "__main__":
    main()
