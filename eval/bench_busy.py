"""Build throughput on a busy machine: quiet vs 1 and 2 other busy processes, per torch thread policy.

    python eval/bench_busy.py [--limit 400] [--busy 0,1,2] [--policies fixed,adaptive,one]
                              [--corpus FILE] [--checkout PATH ...] [--out FILE]

Each build runs in a fresh process (same model loads, same torch state) over the first
`--limit` documents of the HotpotQA-100 corpus (or `--corpus`: a JSON list of records with
"title" and "text", e.g. bench_scale's generated corpus.json) at default settings (MiniLM, spaCy).
HotpotQA-100 makes one shard below the spaCy pool's threshold (2,048 passages), so its builds
extract in one process; a corpus of 4,096 generated documents makes one full shard, and the
shard worker extracts with a pool of spaCy processes, as a large build does.
Busy processes are pure-Python spin loops started `--warmup` seconds before the build (so the
load average sees them) and killed after it. Torch thread policies of the embedder:

* ``fixed``: the default (`Config.threads` = 0): as many single-threaded embedding passes side by
  side as there are available CPUs (before b2d94e7: every pass on all available CPUs);
* ``adaptive``: `Config.adaptive_threads` (`threads.busy_threads`): fewer passes (before: fewer
  threads) while the load average says other work holds cores;
* ``one``: `Config.threads` = 1.

`--checkout` runs the builds of other checkouts (each with its own ``.venv``) in the same run,
interleaved per busy count, so a baseline shares the machine's state with the change.

Share = passages/s with N busy processes ÷ passages/s quiet, per policy (issue #13 targets:
≥ 45 % with one busy process, ≥ 35 % with two). Writes eval/results/busy.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "datasets" / "hotpotqa_train100" / "hotpotqa_train_corpus_list.json"
SPIN = "while True:\n    pass\n"


def _child(limit: int, policy: str, corpus: Path = CORPUS) -> None:
    """One build in this process; prints a JSON line with wall time and stage timings."""
    import shutil

    from hippograph import Config, HippoGraph

    policies = {"fixed": {}, "adaptive": {"adaptive_threads": True}, "one": {"threads": 1}}
    records = json.loads(Path(corpus).read_text(encoding="utf-8"))[:limit]
    docs = [{"id": str(i), "title": r["title"], "text": r["text"]} for i, r in enumerate(records)]
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-busy-"))
    try:
        t0 = time.perf_counter()
        hg = HippoGraph.build(docs, tmp / "idx", Config(embedder="sentence-transformers", **policies[policy]))
        wall = time.perf_counter() - t0
        stats = hg.stats()
        hg.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"wall": wall, "passages": stats["passages"], "timings": stats["timings"]}))


def _git_commit(checkout: Path = ROOT) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def run_one(limit: int, policy: str, busy: int, warmup: float, checkout: Path = ROOT, corpus: Path = CORPUS) -> dict:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        if busy:
            time.sleep(warmup)
        load_before = os.getloadavg()[0]
        python = checkout / ".venv" / "bin" / "python" if checkout != ROOT else Path(sys.executable)
        out = subprocess.run([str(python), str(checkout / "eval" / "bench_busy.py"), "--child", str(limit), policy, str(corpus)],
                             capture_output=True, text=True, check=True, env=dict(os.environ), cwd=checkout)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(policy=policy, busy=busy, load_before=load_before, load_after=os.getloadavg()[0],
                      commit=_git_commit(checkout))
        return result
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=400, help="documents of the corpus (default 400)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="JSON list of title/text records (default HotpotQA-100)")
    ap.add_argument("--busy", default="0,1,2", help="numbers of busy processes (default 0,1,2)")
    ap.add_argument("--policies", default="fixed,adaptive,one")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds the busy loops run before a build")
    ap.add_argument("--checkout", type=Path, nargs="*", default=[ROOT], help="checkouts to measure (default: this one)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "busy.md"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(int(args.child[0]), args.child[1], Path(args.child[2]))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    busy_counts = [int(x) for x in args.busy.split(",")]
    policies = args.policies.split(",")
    results = []
    for busy in busy_counts:
        for checkout in args.checkout:
            for policy in policies:
                r = run_one(args.limit, policy, busy, args.warmup, checkout.resolve(), args.corpus.resolve())
                results.append(r)
                print(f"busy={busy} {r['commit']} policy={policy}: {r['wall']:.1f} s, "
                      f"{r['passages'] / r['wall']:.2f} passages/s, load {r['load_before']:.2f} → {r['load_after']:.2f}",
                      flush=True)
    quiet: dict[tuple[str, str], float] = {}
    for r in results:  # the first quiet run of each checkout and policy is its reference
        if r["busy"] == 0:
            quiet.setdefault((r["commit"], r["policy"]), r["passages"] / r["wall"])
    corpus_name = "HotpotQA-100" if args.corpus.resolve() == CORPUS.resolve() else f"`{args.corpus}`"
    cmd = "python eval/bench_busy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "## Builds on a busy machine (thread policy)",
        "",
        f"`{cmd.strip()}` — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, bench at commit {_git_commit()}, "
        f"{os.cpu_count()} cores; {corpus_name}, first {args.limit} documents ({results[0]['passages'] if results else 0} passages), "
        "MiniLM + spaCy at defaults.",
        "",
        "| busy processes | code | policy | wall s | passages/s | share of its quiet run | share of quiet `fixed` | embed s | extract s | load 1-min before → after |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rate = r["passages"] / r["wall"]
        own = rate / quiet[(r["commit"], r["policy"])] if (r["commit"], r["policy"]) in quiet else float("nan")
        ref = rate / quiet[(r["commit"], "fixed")] if (r["commit"], "fixed") in quiet else float("nan")
        tm = r["timings"]
        embed = sum(v for k, v in tm.items() if k == "embed" or k.startswith("embed "))  # one stage per granularity
        lines.append(f"| {r['busy']} | {r['commit']} | {r['policy']} | {r['wall']:.1f} | {rate:.2f} | {100 * own:.0f} % | "
                     f"{100 * ref:.0f} % | {embed:.1f} | {tm.get('extract', 0):.1f} | "
                     f"{r['load_before']:.2f} → {r['load_after']:.2f} |")
    lines += ["", "The machine is shared: the load column includes other users' work, so \"quiet\" means no busy loop of ours.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    (Path(args.out).with_suffix(".json")).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
