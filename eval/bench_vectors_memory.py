"""Peak memory and time of the vectors stage of a build, on a built index's embeddings.

    python eval/bench_vectors_memory.py INDEX_DIR [--checkout PATH ...] [--grans facts,...] [--out FILE]

For each checkout (default: this one) and each granularity, a fresh process of that checkout's
`.venv/bin/python` imports its hippograph and builds the granularity's vector index from the
live generation's stored (int8, memory-mapped) embeddings exactly as its vectors stage does for
a fresh build (`VectorIndexes.write`: SPANN above `spann_min_vectors`, ids-only posting lists,
`spann_replica` lists per vector). Reported per granularity: wall seconds, the process's peak
RSS (ru_maxrss) and its RSS after imports, and a hash of the index files (the header's time
left out), which must agree between checkouts that claim to build the same index.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, inspect, json, resource, shutil, sys, tempfile, time
from pathlib import Path
from hippograph.config import Config
from hippograph.format import GRANULARITIES, embedding_path, open_embeddings
from hippograph.indexers.report import BuildReport
from hippograph.indexers.vectors import VectorIndexes

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

gen, gran, work = Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
# a generation holding only this granularity's embeddings (hard links), so the stage builds one index
src = work / "gen"
(src / "embeddings").mkdir(parents=True)
for p in (embedding_path(gen, gran), embedding_path(gen, gran).with_name(f"{gran}.scale.npy")):
    if p.is_file():
        (src / "embeddings" / p.name).hardlink_to(p)
base_rss = rss_mb()
stage = VectorIndexes(Config(), BuildReport())
t0 = time.perf_counter()
if "gen" in inspect.signature(stage.write).parameters:
    stage.write(work / "vectors", src)
else:  # checkouts whose stage took every granularity's embeddings as a dict
    stage.write(work / "vectors", {gran: open_embeddings(embedding_path(src, gran))})
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
h = hashlib.sha256()
for f in sorted((work / "vectors" / gran).iterdir()):
    if f.name != "header.json":
        h.update(f.name.encode())
        h.update(f.read_bytes())
kind = json.loads((work / "vectors" / gran / "header.json").read_text())["format"]
print(json.dumps({"n": len(open_embeddings(embedding_path(src, gran))), "kind": kind, "seconds": round(seconds, 1),
                  "peak_mib": round(peak), "base_mib": round(base_rss), "hash": h.hexdigest()[:16]}))
"""


def live_generation(index: Path) -> Path:
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    return index / manifest["generation"]


def run(checkout: Path, gen: Path, gran: str) -> dict:
    import tempfile

    python = checkout / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="bench-vectors-", dir=os.environ.get("TMPDIR", "/tmp")) as work:
        proc = subprocess.run([str(python), "-c", CHILD, str(checkout), str(gen), gran, work],
                              cwd=checkout, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: the vectors stage failed on {gran}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def git_head(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--checkout", type=Path, nargs="+", default=[ROOT])
    ap.add_argument("--grans", default="passages,sentences,facts,entities")
    ap.add_argument("--out", type=Path, help="append a markdown table here")
    args = ap.parse_args(argv)
    gen = live_generation(args.index)
    rows = []
    for gran in args.grans.split(","):
        for checkout in args.checkout:
            r = run(checkout.resolve(), gen, gran)
            r.update(gran=gran, checkout=str(checkout), commit=git_head(checkout))
            rows.append(r)
            print(json.dumps(r), flush=True)
    load = os.getloadavg()
    lines = [f"- {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, `python eval/bench_vectors_memory.py {args.index} "
             f"--checkout {' '.join(map(str, args.checkout))} --grans {args.grans}`, load at the end "
             f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", "",
             "| granularity | vectors | index | commit | seconds | peak RSS MiB | RSS after imports MiB | files hash |",
             "|---|---:|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['gran']} | {r['n']:,} | {r['kind'].removeprefix('hippograph-')} | {r['commit']} | {r['seconds']} | "
              f"{r['peak_mib']:,} | {r['base_mib']:,} | {r['hash']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
