"""Disk per passage before / after compact flat vector indexes, on an existing index.

    python eval/bench_compact.py INDEX_DIR [--out eval/results/compact.md]

Copies the live generation of INDEX_DIR (built by any version) to a temporary folder,
measures its size, then rewrites every flat vector index of the copy the way the builder
now writes them (``FlatIndex.build(..., shared_vectors="../../embeddings/<gran>.npy")``: no
copy of the vectors, the embeddings file read through a memory map), checks that each
rewritten index returns the same ids and scores for a sample of its own vectors as queries,
and measures again. SPANN indexes (≥ `spann_min_vectors`) are left as they are.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "compact.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from hippograph.indexers.flat import FORMAT as FLAT, FlatIndex
    from hippograph.indexers.spann import open_vector_index

    manifest = json.loads((args.index / "manifest.json").read_text(encoding="utf-8"))
    src = args.index / manifest["generation"]
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-compact-"))
    try:
        gen = tmp / src.name
        shutil.copytree(src, gen)
        before = dir_bytes(gen)
        import sqlite3

        con = sqlite3.connect(gen / "meta.sqlite")
        passages = con.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        con.close()
        rows = []
        for vdir in sorted((gen / "vectors").iterdir()):
            if not vdir.is_dir():
                continue
            header = json.loads((vdir / "header.json").read_text(encoding="utf-8"))
            size0 = dir_bytes(vdir)
            if header.get("format") != FLAT:
                rows.append((vdir.name, header.get("format"), size0, size0, "kept"))
                continue
            old = open_vector_index(vdir)
            emb = np.load(gen / "embeddings" / f"{vdir.name}.npy")
            rng = np.random.default_rng(0)
            q = emb[rng.choice(len(emb), min(200, len(emb)), replace=False)]
            s0, i0 = old.search(q, 10)
            shutil.rmtree(vdir)
            FlatIndex.build(emb, path=vdir, shared_vectors=f"../../embeddings/{vdir.name}.npy")
            new = open_vector_index(vdir)
            s1, i1 = new.search(q, 10)
            same = bool(np.array_equal(i0, i1) and np.allclose(s0, s1))
            rows.append((vdir.name, "flat", size0, dir_bytes(vdir), "same top-10" if same else "DIFFERENT"))
        after = dir_bytes(gen)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "## Compact files: flat vector indexes without a copy of the vectors", "",
        f"`python eval/bench_compact.py {args.index}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}.", "",
        f"{passages:,} passages. Whole generation: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB "
        f"({before / passages / 1024:.1f} → {after / passages / 1024:.1f} KB per passage).", "",
        "| granularity | index | MiB before | MiB after | search check |", "|---|---|---:|---:|---|",
    ]
    lines += [f"| {g} | {k} | {a / 2**20:.1f} | {b / 2**20:.1f} | {c} |" for g, k, a, b, c in rows]
    lines.append("")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
