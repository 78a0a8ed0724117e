"""Cost of a small update: add 1 % more documents to an index of a few thousand passages.

    python eval/bench_add_cost.py --work DIR [--passages 3000] [--adds 2] [--keep-base]

A synthetic corpus (eval/synth_corpus.py) of `--passages` passages is indexed with the
zero-model TF-IDF embedder through the CLI (`hippograph index`), then its 1 % extra documents
are added (`hippograph index extra.json --index … --no-delete`) to a copy of that index, in a
child process: wall time, the child's peak RSS (``ru_maxrss``), the add's stage timings and
the index size per passage. Run it twice (e.g. against two checkouts through PYTHONPATH) in
the same session to compare; the build itself is not the point and is cached in DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli() -> list[str]:
    return [sys.executable, "-c", "import sys; from hippograph.cli import main; sys.exit(main())"]


def run(cmd: list[str]) -> dict:
    """Run a child; (wall seconds, peak RSS in bytes of that child, parsed JSON stdout)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        fo.seek(0), fe.seek(0)
        out, err = fo.read(), fe.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[-6:])}: exit {proc.returncode}: {err.strip()[-2000:]}")
    peak = usage.ru_maxrss
    return {"wall": wall, "peak_rss": peak * 1024 if peak else None, "json": json.loads(out or "{}")}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--passages", type=int, default=3000)
    ap.add_argument("--adds", type=int, default=2, help="repeat the add this many times (each on a fresh copy)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from eval import synth_corpus

    data = args.work / f"synth{args.passages}"
    if not (data / "extra.json").is_file():
        synth_corpus.write(data, args.passages, seed=0, n_questions=20)
    base = args.work / "base.idx"
    common = ["--json", "--quiet", "--embedder", "tfidf"]
    if not (base / "manifest.json").is_file():
        b = run(_cli() + ["index", str(data / "corpus.json"), "--index", str(base), *common])
        print(f"build: {b['json'].get('passages')} passages in {b['wall']:.1f} s, peak RSS {b['peak_rss'] / 2**20:.0f} MiB")
    n = json.loads((base / "manifest.json").read_text())["counts"]["passages"]
    print(f"base: {n} passages, {dir_bytes(base) / n / 1024:.1f} KB/passage on disk")
    for i in range(args.adds):
        idx = args.work / "add.idx"
        shutil.rmtree(idx, ignore_errors=True)
        shutil.copytree(base, idx)
        a = run(_cli() + ["index", str(data / "extra.json"), "--index", str(idx), "--no-delete", *common])
        timings = a["json"].get("timings", {})
        top = sorted(((v, k) for k, v in timings.items() if k != "total" and isinstance(v, (int, float))), reverse=True)[:6]
        print(f"add {i + 1}: {a['json'].get('added', {}).get('passages')} passages in {a['wall']:.2f} s, "
              f"peak RSS {a['peak_rss'] / 2**20 if a['peak_rss'] else float('nan'):.0f} MiB; "
              + ", ".join(f"{k} {v:.2f}" for v, k in top)
              + f"; vectors {timings.get('vectors', 0):.3f}, graph+BM25+synonymy+vectors "
              f"{sum(timings.get(k, 0) for k in ('graph', 'BM25', 'synonymy', 'vectors')):.2f}")
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
