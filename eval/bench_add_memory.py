"""Peak memory of an add: the CLI's whole add per checkout, and per write stage through the API.

    python eval/bench_add_memory.py INDEX EXTRA.json [--checkout PATH ...] [--work DIR] [--stages]

Each measurement runs on a fresh copy of INDEX (copied into --work, removed afterwards) so every
row starts from the same state. CLI rows: `hippograph index EXTRA --index COPY --no-delete --json
--quiet` run by the checkout's own `.venv/bin/python`, with eval/bench_scale.py's process-tree RSS
sampler (every 0.25 s). `--stages`: `HippoGraph.open(COPY).add(EXTRA)` in a child process of this
checkout, its RSS (private and file-backed) sampled every 20 ms and attributed to the write stage
running (the build report's stage names). Prints Markdown rows for eval/results/add_memory.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES_CHILD = r"""
import contextlib, json, sys, threading, time
from hippograph import HippoGraph
from hippograph.indexers import report

def rss():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile")):
            out[line.split(":")[0]] = int(line.split()[1]) // 1024
    return out

current, peaks = {"stage": "open (the read snapshot)"}, {}

def sample():
    while True:
        r, p = rss(), peaks.setdefault(current["stage"], {"VmRSS": 0, "RssAnon": 0, "RssFile": 0})
        for k in p:
            p[k] = max(p[k], r.get(k, 0))
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
stage_of = report.Progress.stage

@contextlib.contextmanager
def stage(self, name, *a, **k):
    before, current["stage"] = current["stage"], name
    try:
        with stage_of(self, name, *a, **k):
            yield
    finally:
        current["stage"] = before

report.Progress.stage = stage
hg = HippoGraph.open(sys.argv[1])
current["stage"] = "outside stages (commit, reopening the read view)"
hg.add(json.load(open(sys.argv[2], encoding="utf-8")))
hg.close()
print(json.dumps(peaks))
"""


def fresh_copy(index: Path, work: Path, name: str) -> Path:
    copy = work / name
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(index, copy)
    return copy


def cli_add(index: Path, extra: Path, checkout: Path, work: Path) -> dict:
    import eval.bench_scale as bs

    bs.CHECKOUT = checkout.resolve()
    copy = fresh_copy(index, work, f"add-{checkout.name}")
    try:
        r = bs.run_measured(bs.hippograph_cmd() + ["index", str(extra), "--index", str(copy), "--no-delete", "--json",
                                                   "--quiet"], work / "add.log")
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    timings = (r["json"] or {}).get("timings", {})
    return {"commit": commit, "wall": r["wall"], "peak_mib": r["peak_rss_tree"] / 2**20, "load": r["load"][0],
            "vectors_s": timings.get("vectors", float("nan"))}


def stage_peaks(index: Path, extra: Path, work: Path) -> dict:
    copy = fresh_copy(index, work, "add-stages")
    try:
        proc = subprocess.run([sys.executable, "-c", STAGES_CHILD, str(copy), str(extra)], capture_output=True,
                              text=True, check=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("extra", type=Path, help="JSON list of documents to add")
    ap.add_argument("--checkout", type=Path, nargs="*", default=[ROOT])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_add_memory"))
    ap.add_argument("--stages", action="store_true", help="also the per-stage peaks through the API (this checkout)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("| code | wall s | peak RSS MiB | vectors stage s | load |\n|---|---:|---:|---:|---:|")
    for checkout in args.checkout:
        r = cli_add(args.index, args.extra, checkout, args.work)
        print(f"| {r['commit']} | {r['wall']:.1f} | {r['peak_mib']:,.0f} | {r['vectors_s']:.1f} | {r['load']:.1f} |",
              flush=True)
    if args.stages:
        print("\n| stage | RSS | anon | file |\n|---|---:|---:|---:|")
        for name, p in stage_peaks(args.index, args.extra, args.work).items():
            print(f"| {name} | {p['VmRSS']:,} | {p['RssAnon']:,} | {p['RssFile']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
