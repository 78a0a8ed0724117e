"""Ray vs local executor: wall time of one build of the same corpus, and whether the indexes match.

    python -m eval.bench_ray --corpus /work/shared/datasets/musique_train100/musique_train_corpus.json \
        --shard-passages 256 --out eval/results/ray.md

Builds with executor='local', then executor='ray' with 1 and 2 actors on a local Ray instance
started once (`ray.init(num_cpus=N)`; its start-up time is reported separately), with the
same config (TF-IDF embedder by default, the real spaCy model). Each Ray index is compared
with the local one table by table.
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from hippograph import Config, HippoGraph

TABLES = ("documents", "passages", "sentences", "entities", "facts", "fact_passages", "mentions", "synonyms")


def _rows(hg: HippoGraph) -> dict[str, list]:
    conn = sqlite3.connect(hg.dir.generation_path(hg.manifest) / "meta.sqlite")
    try:
        out = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in TABLES}
        out["synonyms_raw"] = conn.execute("SELECT a, b, score, kind FROM synonyms").fetchall()
        return out
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--shard-passages", type=int, default=256)
    ap.add_argument("--embedder", default="tfidf")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--precision", default="auto", help="Config.embedding_precision (sentence-transformers)")
    ap.add_argument("--out", default=None, help="append a markdown section here")
    args = ap.parse_args()
    # the code measured is the checkout at the start: a commit landing during an hours-long run is not in it
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    import ray

    base = Config(embedder=args.embedder, shard_passages=args.shard_passages, embedding_precision=args.precision)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        local = HippoGraph.build(args.corpus, Path(tmp) / "local", base)
        t_local = time.perf_counter() - t0
        reference = _rows(local)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        t_init = time.perf_counter() - t0
        results = []
        for actors in (1, 2):
            t0 = time.perf_counter()
            hg = HippoGraph.build(args.corpus, Path(tmp) / f"ray{actors}",
                                  base.replace(executor="ray", ray_concurrency=actors))
            dt = time.perf_counter() - t0
            rows = _rows(hg)
            diff = {t: len(set(rows[t]) ^ set(reference[t])) for t in TABLES if rows[t] != reference[t]}
            if "synonyms" in diff:  # scores are cosines of independently computed vectors: compare pairs + 1e-3
                pairs = lambda rs: {(a, b, kind): score for a, b, score, kind in rs}
                got, ref = pairs(rows["synonyms_raw"]), pairs(reference["synonyms_raw"])
                worst = max((abs(got[k] - ref[k]) for k in got.keys() & ref.keys()), default=0.0)
                diff["synonyms"] = (f"{len(got.keys() ^ ref.keys())} pairs differ of {len(ref)}, "
                                    f"scores of the others within {worst:.1e}")
            results.append((actors, dt, diff, hg.stats()["passages"]))
        ray.shutdown()
    load = os.getloadavg()
    n = results[0][3]
    lines.append(f"## Ray vs local executor — {Path(args.corpus).name}, {n} passages, "
                 f"shard_passages {args.shard_passages}, embedder {args.embedder}, precision {args.precision}")
    lines.append("")
    lines.append(f"Command: `python -m eval.bench_ray --corpus {args.corpus} --shard-passages {args.shard_passages}"
                 f" --embedder {args.embedder} --precision {args.precision} --cpus {args.cpus}`; commit {commit}; "
                 f"{platform.machine()}, "
                 f"{os.cpu_count()} cores; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.")
    lines.append("")
    lines.append("| executor | actors | build s | passages/s | vs local | same tables as local |")
    lines.append("|---|---|---|---|---|---|")
    lines.append(f"| local | – | {t_local:.1f} | {n / t_local:.1f} | 1.00 | – |")
    for actors, dt, diff, _ in results:
        same = "yes" if not diff else "NO: " + ", ".join(f"{t}: {c}" for t, c in diff.items())
        lines.append(f"| ray | {actors} | {dt:.1f} | {n / dt:.1f} | {dt / t_local:.2f} | {same} |")
    lines.append("")
    lines.append(f"`ray.init(num_cpus={args.cpus})` took {t_init:.1f} s (not included above).")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
