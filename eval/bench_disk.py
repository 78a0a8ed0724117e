"""Disk per passage of a built index, file by file and SQLite table by table, and what the
SPANN version-5 / band-key layouts save against the layouts before them (computed exactly
from the index's own arrays: every-slot HNSW neighbours + offsets, int64 posting and live ids,
128-byte MinHash signatures).

    python eval/bench_disk.py INDEX_DIR [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def live_generation(index: Path) -> Path:
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    return index / manifest["generation"]


def file_groups(gen: Path) -> dict[str, int]:
    """Bytes per file, generation numbers dropped from the names (postings.g3.i32 → postings.i32)."""
    groups: dict[str, int] = defaultdict(int)
    for f in gen.rglob("*"):
        if f.is_file():
            groups[re.sub(r"\.g\d+", "", f.relative_to(gen).as_posix())] += f.stat().st_size
    return dict(groups)


def sqlite_tables(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    except sqlite3.Error:
        return {}
    finally:
        con.close()


def older_layout_bytes(gen: Path, n_entities: int, num_perm: int) -> dict[str, tuple[int, int]]:
    """{what: (bytes now, bytes in the layout before)} for the parts SPANN versions 5 to 7 and the band
    keys changed (before version 6 every head was stored as int8 codes + a scale; before version 7 the
    live ids were a plain array)."""
    out: dict[str, tuple[int, int]] = {}
    for header_path in sorted((gen / "vectors").glob("*/header.json")):
        h = json.loads(header_path.read_text(encoding="utf-8"))
        if h.get("format") != "hippograph-spann":
            continue
        d, files, gran = header_path.parent, h.get("files", {}), header_path.parent.name
        if "hnsw_links" in files:
            levels = np.load(d / files["hnsw_levels"]["name"])
            import faiss

            shape = faiss.IndexHNSWFlat(8, int(h["params"]["hnsw_m"]))  # kept alive while its vector is read
            cum = faiss.vector_to_array(shape.hnsw.cum_nneighbor_per_level).astype(np.int64)
            slots = int(cum[levels.astype(np.int64)].sum())
            now = files["hnsw_links"]["bytes"] + files["hnsw_degrees"]["bytes"]
            out[f"{gran} HNSW graph"] = (now, 128 + 4 * slots + 128 + 8 * (levels.size + 1))
        if "head_ids" in files:
            n_heads = int(np.load(d / files["head_ids"]["name"], mmap_mode="r").shape[0])
            now = sum(files[r]["bytes"] for r in ("head_ids", "head_vectors", "head_scales") if r in files)
            out[f"{gran} heads"] = (now, 128 + n_heads * int(h["dim"]) + 128 + 4 * n_heads)
        post = h["postings"]
        if post.get("id_bytes", 8) == 4:
            n = int(post["n_entries"])
            live = files["id_runs" if "id_runs" in files else "ids"]["bytes"]  # runs: version 7
            out[f"{gran} posting + live ids"] = ((d / post["ids"]).stat().st_size + live,
                                                 8 * n + 128 + 8 * int(h["n_vectors"]))
    bands = gen / "graph" / "minhash_bands.npy"
    if bands.is_file():
        out["MinHash"] = (bands.stat().st_size, 128 + n_entities * num_perm)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from hippograph.config import Config

    gen = live_generation(args.index)
    con = sqlite3.connect(f"file:{gen / 'meta.sqlite'}?mode=ro", uri=True)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("passages", "sentences", "facts", "entities", "mentions", "synonyms")}
    con.close()
    manifest = json.loads((args.index / "manifest.json").read_text(encoding="utf-8"))
    config = Config.from_manifest(manifest.get("config", {}), args.index)
    n = counts["passages"]
    groups = file_groups(gen)
    total = sum(groups.values())
    lines = [f"# Disk per passage: {args.index}", "",
             f"{gen.name}: {n:,} passages, {total / 1e6:.1f} MB = **{total / n / 1e3:.2f} KB per passage**; "
             + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "passages"), "",
             "| file | MB | bytes per passage |", "|---|---:|---:|"]
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        if v / n >= 1:
            lines.append(f"| {k} | {v / 1e6:.2f} | {v / n:,.0f} |")
    tables = sqlite_tables(gen / "meta.sqlite")
    if tables:
        lines += ["", "| meta.sqlite table or index | MB | bytes per passage |", "|---|---:|---:|"]
        lines += [f"| {k} | {v / 1e6:.2f} | {v / n:,.0f} |" for k, v in sorted(tables.items(), key=lambda kv: -kv[1])]
    older = older_layout_bytes(gen, counts["entities"], config.minhash_num_perm)
    if older:
        saved = sum(b - a for a, b in older.values())
        lines += ["", "Against the layouts before SPANN header versions 5 and 6 and the MinHash band keys (computed from "
                  "this index's arrays):", "", "| part | MB now | MB before | bytes per passage saved |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {k} | {a / 1e6:.2f} | {b / 1e6:.2f} | {(b - a) / n:,.0f} |" for k, (a, b) in older.items()]
        lines += ["", f"Before those layouts: {(total + saved) / n / 1e3:.2f} KB per passage; now {total / n / 1e3:.2f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
