"""Cost of a small add (or delete) to a large index, per stage, for two checkouts in the same run.

    python eval/bench_small_add.py INDEX FOLDER --checkouts OLD_DIR NEW_DIR [--rounds 2] [--work DIR]
        [--out eval/results/incremental.md]
    python eval/bench_small_add.py INDEX --delete DOC_ID [DOC_ID ...] --checkouts OLD_DIR NEW_DIR ...

Each round copies INDEX (a built index, e.g. the kernel docs) to DIR and adds FOLDER to the copy with
`hippograph index FOLDER --index COPY --no-delete --json` run from each checkout in turn (its own
`.venv/bin/python`, e.g. a worktree made by /work/mkwt.sh-style scripts reusing one set of packages),
so both see the same machine state: wall time, peak RSS of the child, and the add's own stage timings
(and, where the checkout reports it, how the graph and BM25 were written). With `--delete` each round
deletes those documents from the copy through `HippoGraph.open(COPY).delete(IDS)` instead.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

STAGES = ("delete", "extract", "merge", "synonymy", "graph", "vectors", "BM25", "compact", "total")

DELETE = ("import json, sys; from hippograph import HippoGraph; "
          "r = HippoGraph.open(sys.argv[1]).delete(sys.argv[2:]).to_dict(); "
          "print(json.dumps({'timings': r['timings'], 'changes': r, 'deleted': r['deleted']}))")


def _commit(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"


def add_once(checkout: Path, index: Path, folder: Path | None, copy: Path, delete: list[str] | None = None) -> dict:
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(index, copy)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    python = str(checkout / ".venv" / "bin" / "python")
    if delete:
        cmd = [python, "-c", DELETE, str(copy), *delete]
    else:
        cmd = [python, "-c", "import sys; from hippograph.cli import main; sys.exit(main())",
               "index", str(folder), "--index", str(copy), "--no-delete", "--json", "--quiet"]
    t0 = time.perf_counter()
    with open(copy.with_name("add.out"), "w+") as out_f, open(copy.with_name("add.err"), "w+") as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env, cwd=str(checkout))
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t0
        out_f.seek(0), err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{checkout}: add failed: {stderr.strip().splitlines()[-1:]}")
    out = json.loads(stdout)
    peak = usage.ru_maxrss
    return {"wall": wall, "peak_mib": peak / 1024, "timings": out.get("timings", {}),
            "derived": (out.get("changes") or {}).get("derived", {}), "added": out.get("added", {}),
            "deleted": out.get("deleted", {}),
            "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("folder", type=Path, nargs="?", help="the documents to add (not with --delete)")
    ap.add_argument("--delete", nargs="+", metavar="DOC_ID", help="delete these documents instead of adding")
    ap.add_argument("--checkouts", type=Path, nargs=2, required=True, metavar=("OLD", "NEW"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hippograph-bench-small-add"))
    ap.add_argument("--out", type=Path, default=None, help="append a markdown section here")
    args = ap.parse_args(argv)
    if (args.folder is None) == (args.delete is None):
        ap.error("give a FOLDER to add or --delete DOC_ID ..., not both")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in range(args.rounds):
        for checkout in args.checkouts:
            res = add_once(checkout.resolve(), args.index, args.folder, args.work / "copy", args.delete)
            rows.append((r, _commit(checkout), res))
            print(r, _commit(checkout), round(res["wall"], 1), res["derived"], res["timings"].get("total"), flush=True)
    shutil.rmtree(args.work / "copy", ignore_errors=True)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = f"--delete {' '.join(args.delete)}" if args.delete else str(args.folder)
    change = f"deleted {rows[0][2]['deleted']}" if args.delete else f"added {rows[0][2]['added']}"
    lines = [f"## Small {'delete from' if args.delete else 'add to'} a large index, per stage (`eval/bench_small_add.py`)", "",
             f"{when} · {os.cpu_count()} cores · command: `python eval/bench_small_add.py {args.index} {what} "
             f"--checkouts {' '.join(map(str, args.checkouts))} --rounds {args.rounds}` · {change}", "",
             "| round | commit | wall s | peak RSS MiB | " + " | ".join(STAGES) + " | graph / BM25 written | load |",
             "|---|---|---:|---:|" + "---:|" * len(STAGES) + "---|---:|"]
    for r, commit, res in rows:
        t = res["timings"]
        derived = res["derived"]
        how = f"{derived.get('graph', 'built')} / {derived.get('bm25', 'built')}"
        lines.append(f"| {r} | {commit} | {res['wall']:.1f} | {res['peak_mib']:,.0f} | "
                     + " | ".join(f"{t.get(s, float('nan')):.2f}" for s in STAGES) + f" | {how} | {res['load']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
