"""Approximate vs exact synonymy on real entity vectors: recall of the synonym pairs and time.

    python eval/bench_synonymy.py [INDEX_DIR ...] [--union] [--nprobe 8,16,32,64] [--out FILE]

INDEX_DIR: built hippograph indexes (default: the spaCy-built eval caches of the shared
corpora under eval/cache/hippograph/ of this checkout and of /work/main). For each one the
entity vectors and names of its live generation are read and synonymy is computed the way a
scratch build does it (every entity new, Config defaults: cosine ≥ 0.8, ≤ 100 neighbours),
once exactly (faiss flat) and once per `--nprobe` through indexers/synonymy.py's IVF index.
`--union` adds all the indexes' entities together (deduplicated by name), the size where
exact search starts to hurt. Recall = approximate pairs ∩ exact pairs / exact pairs (target
≥ 0.98, issue #13). Writes eval/results/synonymy.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _default_indexes() -> list[Path]:
    out = []
    for base in (ROOT / "eval" / "cache" / "hippograph", Path("/work/main/eval/cache/hippograph")):
        if base.is_dir():
            out += sorted(p for p in base.iterdir() if p.is_dir() and "-spacy-" in p.name and (p / "manifest.json").is_file())
    seen, unique = set(), []
    for p in out:  # one per dataset name
        key = p.name.split("-spacy-")[0]
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_entities(index: Path) -> tuple[np.ndarray, list[str]]:
    """Entity vectors and names of an index's live generation (read-only)."""
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    gen = index / manifest.get("generation", "")
    if not (gen / "meta.sqlite").is_file():
        gen = sorted(index.glob("gen-*"))[-1]
    sys.path.insert(0, str(ROOT))
    from hippograph.format import open_embeddings

    vecs = open_embeddings(gen / "embeddings" / "entities.npy")  # int8 codes × their scales, as the index reads them
    con = sqlite3.connect(f"file:{gen / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM entities ORDER BY idx")]
    finally:
        con.close()
    return np.ascontiguousarray(vecs[np.arange(len(vecs))], dtype=np.float32), names


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def measure(name: str, vecs: np.ndarray, names: list[str], nprobes: list[int]) -> list[dict]:
    from hippograph.config import Config
    from hippograph.indexers.graph_builder import embedding_synonyms
    from hippograph.indexers.synonymy import synonym_edges

    c = Config()
    kw = dict(threshold=c.synonymy_threshold, max_neighbors=c.synonymy_max_neighbors, min_chars=c.synonymy_min_chars)
    ids = np.arange(len(vecs))
    t0 = time.perf_counter()
    exact = {(e.a, e.b) for e in embedding_synonyms(vecs, names, ids, **kw)}
    t_exact = time.perf_counter() - t0
    rows = [{"set": name, "entities": len(vecs), "method": "exact (flat)", "seconds": t_exact, "pairs": len(exact),
             "recall": 1.0, "extra": 0, "load": os.getloadavg()[0]}]
    print(f"{name}: exact {len(exact)} pairs in {t_exact:.1f} s", flush=True)
    for nprobe in nprobes:
        t0 = time.perf_counter()
        approx = {(e.a, e.b) for e in synonym_edges(vecs, names, ids, exact_work=0, nprobe=nprobe, **kw)}
        t = time.perf_counter() - t0
        recall = len(approx & exact) / max(1, len(exact))
        rows.append({"set": name, "entities": len(vecs), "method": f"IVF nprobe={nprobe}", "seconds": t,
                     "pairs": len(approx), "recall": recall, "extra": len(approx - exact), "load": os.getloadavg()[0]})
        print(f"{name}: nprobe {nprobe}: recall {recall:.4f}, {t:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("indexes", nargs="*", type=Path)
    ap.add_argument("--union", action="store_true", help="also all indexes' entities together")
    ap.add_argument("--nprobe", default="8,16,32,64")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "synonymy.md"))
    args = ap.parse_args(argv)
    indexes = args.indexes or _default_indexes()
    if not indexes:
        print("bench_synonymy: no index given and no eval cache found", file=sys.stderr)
        return 2
    nprobes = [int(x) for x in args.nprobe.split(",")]
    rows: list[dict] = []
    union_vecs, union_names, seen = [], [], set()
    for index in indexes:
        vecs, names = load_entities(index)
        rows += measure(index.name.split("-spacy-")[0], vecs, names, nprobes)
        keep = [i for i, n in enumerate(names) if n not in seen]
        seen.update(names[i] for i in keep)
        union_vecs.append(vecs[keep])
        union_names += [names[i] for i in keep]
    if args.union and len(indexes) > 1:
        rows += measure("union", np.vstack(union_vecs), union_names, nprobes)
    cmd = "python eval/bench_synonymy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "## Synonymy: approximate (IVF) vs exact",
        "",
        f"`{cmd.strip()}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {_git_commit()}, "
        f"{os.cpu_count()} cores (shared machine: 1-minute load in the last column).",
        "",
        "Scratch-build synonymy (every entity new) at Config defaults (cosine ≥ 0.8, ≤ 100 neighbours); "
        "recall = approximate pairs ∩ exact pairs / exact pairs; extra = approximate pairs the exact search does not keep.",
        "",
        "| entity set | entities | method | seconds | pairs | recall | extra | load |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['set']} | {r['entities']:,} | {r['method']} | {r['seconds']:.1f} | {r['pairs']:,} | "
                     f"{r['recall']:.4f} | {r['extra']} | {r['load']:.1f} |")
    lines.append("")
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
