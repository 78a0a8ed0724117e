"""Quality of compact embedding storage against float32, on an index that already exists (query side only).

    python eval/check_storage.py --index DIR --dataset musique_train100 [--storage int8 float16] [--modes hybrid dense]

The index (any format; never modified) is copied once per storage into a temp directory, its
live generation's embeddings files are rewritten in that storage from their float32 values
(`hippograph.format.write_embeddings_file`; flat-index headers follow; MinHash signatures
cut to the 8 bits version 2 stores, the float32 copy included), and the dataset's
questions are retrieved from each copy: recall@2/@5 per mode, the share of questions whose
top-5 documents changed, and the cosine of stored to float32 vectors. No extraction and no
passage embedding run (query vectors come from the model), so it costs a few query batches.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def convert(gen: Path, storage: str) -> dict[str, float]:
    """Rewrite every embeddings file of `gen` in `storage`; min cosine to the float32 rows per granularity."""
    from hippograph.format import GRANULARITIES, embedding_path, open_embeddings, write_embeddings_file

    worst = {}
    for gran in GRANULARITIES:
        path = embedding_path(gen, gran)
        if not path.is_file():
            continue
        x = np.asarray(open_embeddings(path, mmap=False))
        write_embeddings_file(path, x, storage)
        y = np.asarray(open_embeddings(path, mmap=False))
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        ok = (nx > 0) & (ny > 0)
        worst[gran] = float(((x[ok] * y[ok]).sum(1) / (nx[ok] * ny[ok])).min()) if ok.any() else 1.0
        header = gen / "vectors" / gran / "header.json"
        if header.is_file():
            h = json.loads(header.read_text())
            ref = h.get("files", {}).get("vectors")
            if isinstance(ref, dict) and "ref" in ref:
                ref["bytes"] = path.stat().st_size
                header.write_text(json.dumps(h))
    mh = gen / "graph" / "minhash.npy"
    if mh.is_file():  # what a version-2 build stores: 8-bit MinHash values
        from hippograph.indexers.graph_builder import stored_signatures

        np.save(mh, stored_signatures(np.load(mh)), allow_pickle=False)
    return worst


def evaluate(index: Path, bench, modes: list[str], k: int = 5) -> dict[str, dict]:
    from eval.metrics import dedupe, evaluate as score
    from hippograph import HippoGraph

    queries = [q for q in bench.queries if q.gold]
    out = {}
    hg = HippoGraph.open(index)
    try:
        for mode in modes:
            hits = hg.retrieve_many([q.question for q in queries], top_k=4 * k, mode=mode)
            ranked = {q.id: dedupe(h.doc_id for h in row)[:k] for q, row in zip(queries, hits)}
            _, agg = score(bench, ranked)
            out[mode] = {"metrics": agg["mean"], "ranked": ranked}
    finally:
        hg.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--storage", nargs="+", default=["int8", "float16"])
    ap.add_argument("--modes", nargs="+", default=["hybrid", "dense"])
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from eval.datasets import load_dataset
    from hippograph.storage import IndexDir

    bench = load_dataset(args.dataset)
    with tempfile.TemporaryDirectory(prefix="check-storage-") as tmp:
        results = {}
        for storage in ["float32", *args.storage]:
            dst = Path(tmp) / storage
            shutil.copytree(args.index, dst)
            idx = IndexDir(dst)
            cos = convert(idx.generation_path(idx.read_manifest()), storage)
            results[storage] = evaluate(dst, bench, args.modes)
            size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
            passages = idx.read_manifest().counts.get("passages", 1)
            print(f"{storage}: {size / passages / 1024:.1f} KB/passage; min cosine to float32 "
                  + ", ".join(f"{g} {c:.5f}" for g, c in cos.items()), flush=True)
            shutil.rmtree(dst)
        for storage, res in results.items():
            for mode, r in res.items():
                ref = results["float32"][mode]["ranked"]
                changed = sum(r["ranked"][q] != ref[q] for q in ref) / max(1, len(ref))
                m = {k: round(100 * v, 2) for k, v in r["metrics"].items() if isinstance(v, float)}
                print(f"{args.dataset} {storage:8s} {mode:7s} top-5 changed {100 * changed:5.1f} % {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
