"""Indexing benchmark: build an index of the MuSiQue sample corpus and report each stage.

    python eval/bench_index.py [--jobs 2] [--embedder sentence-transformers|tfidf] [--limit N] [--out FILE]
    python eval/bench_index.py --write-path BASE_COMMIT [--corpus FILE.json] [--embedder tfidf] [--add-fraction 0.01]

Reports passages/s for extraction (spaCy), embedding and graph stages separately, the
share of wall time spent outside spaCy and the embedding model, peak RSS and index size.
Writes a Markdown section to eval/results/index.md (merged into eval/RESULTS.md).

`--write-path` compares the write path of this checkout with BASE_COMMIT (exported with
`git archive`) in one run: each of build (of all but `--add-fraction` of the corpus, from a
JSONL file, as a user would point the CLI at it) and add (the rest) runs in its own process,
so its wall time and peak RSS are its own; results go to eval/results/write_path.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "datasets" / "musique_train100" / "musique_train_corpus.json"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--embedder", default="sentence-transformers")
    ap.add_argument("--limit", type=int, default=None, help="only the first N passages")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "index.md"))
    ap.add_argument("--write-path", metavar="BASE_COMMIT", help="compare build + add against this commit")
    ap.add_argument("--corpus", default=str(CORPUS), help="JSON list of {title, text} records (--write-path)")
    ap.add_argument("--add-fraction", type=float, default=0.01)
    args = ap.parse_args(argv)
    if args.write_path:
        return compare_write_path(args)

    from hippograph import Config, HippoGraph

    records = json.loads(CORPUS.read_text(encoding="utf-8"))
    if args.limit:
        records = records[: args.limit]
    docs = [{"id": str(i), "title": r["title"], "text": r["text"]} for i, r in enumerate(records)]
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-index-"))
    try:
        t0 = time.perf_counter()
        hg = HippoGraph.build(docs, tmp / "idx", Config(embedder=args.embedder, n_process=args.jobs))
        wall = time.perf_counter() - t0
        stats = hg.stats()
        size = _dir_bytes(tmp / "idx")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    tm = stats["timings"]
    n_pass = stats["passages"]
    units = sum(stats.get(k, 0) for k in ("passages", "sentences", "facts", "entities"))
    embed = tm.get("embed", 0) + sum(v for k, v in tm.items() if k.startswith("embed "))
    tm = dict(tm, embed=embed, lexical=tm.get("lexical", tm.get("BM25", 0)))
    model_time = tm.get("extract", 0) + tm.get("embed", 0)
    other = wall - model_time
    rows = [
        ("extraction (spaCy)", tm.get("extract", 0), f"{n_pass / max(tm.get('extract', 1e-9), 1e-9):.1f} passages/s"),
        ("embedding", tm.get("embed", 0), f"{units / max(tm.get('embed', 1e-9), 1e-9):.1f} units/s ({n_pass / max(tm.get('embed', 1e-9), 1e-9):.1f} passages/s incl. their sentences, facts, entities)"),
        ("synonymy (new-vs-all kNN + MinHash)", tm.get("synonymy", 0), f"{stats['entities'] / max(tm.get('synonymy', 1e-9), 1e-9):.0f} entities/s"),
        ("graph (CSR build)", tm.get("graph", 0), f"{stats['edges']:,} edges"),
        ("vector indexes", tm.get("vectors", 0), ""),
        ("BM25", tm.get("lexical", 0), ""),
        ("chunk + tables + SQLite write / merge",
         tm.get("chunk", 0) + tm.get("tables", 0) + tm.get("write", 0) + tm.get("merge", 0), ""),
    ]
    lines = [
        "## Indexing (MuSiQue sample corpus)",
        "",
        f"`python eval/bench_index.py --jobs {args.jobs} --embedder {args.embedder}"
        + (f" --limit {args.limit}" if args.limit else "") + "`",
        f"— {dt.date.today().isoformat()}, commit {_git_commit()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        "",
        f"{stats['documents']:,} documents → {n_pass:,} passages, {stats['sentences']:,} sentences, "
        f"{stats['entities']:,} entities, {stats['facts']:,} facts ({stats['triples']:,} triples), "
        f"{stats['synonyms']:,} synonymy edges, {stats['edges']:,} graph edges.",
        "",
        "| stage | seconds | throughput |",
        "|---|---:|---|",
        *[f"| {name} | {sec:.2f} | {thr} |" for name, sec, thr in rows],
        f"| **total wall** | **{wall:.2f}** | {n_pass / wall:.1f} passages/s end to end |",
        "",
        f"- Outside spaCy and the embedding model: {other:.2f} s = {100 * other / wall:.1f} % of wall time (target ≤ 15 %).",
        f"- Peak RSS: {peak_rss / 2**20:.0f} MiB (main process), {peak_children / 2**20:.0f} MiB (largest spaCy worker) (target ≤ 2 GB).",
        f"- Index size on disk: {size / 2**20:.1f} MiB.",
        "- Reference: HippoRAG 2 needed 99.5 min and 9.2 M LLM tokens for an 11.6k-passage corpus (published).",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


# ---- write path: this checkout against a base commit, build and add in separate processes ----
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
code, action, corpus, index, embedder, jobs = sys.argv[1:7]
if code != "-":
    sys.path.insert(0, code)  # an exported checkout (hippograph/indexers, /retrievers are symlinks)
from hippograph import Config, HippoGraph
import hippograph
t0 = time.perf_counter()
if action == "build":
    hg = HippoGraph.build(corpus, index, Config(embedder=embedder, n_process=int(jobs)))
else:
    hg = HippoGraph.open(index)
    hg.add(corpus)
wall = time.perf_counter() - t0
st = hg.stats()
print(json.dumps({"wall": wall, "rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rss_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "passages": st["passages"], "documents": st["documents"], "timings": st["timings"],
                  "module": hippograph.__file__}))
"""


def _checkout_env(code: str) -> dict[str, str]:
    """The environment of a child running checkout `code` ("-": this one): its folder on PYTHONPATH, so
    the processes the child spawns (the shard worker, the spaCy pool) import the same code (the child
    runs in that folder too: `python -m` puts the working directory first)."""
    env = dict(os.environ)
    if code != "-":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH", "")) if p)
    return env


def _load() -> str:
    return open("/proc/loadavg").read().split()[0]


def compare_write_path(args: argparse.Namespace) -> int:
    records = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    if args.limit:
        records = records[: args.limit]
    n_add = max(1, int(round(len(records) * args.add_fraction)))
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-write-"))
    try:
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.write_path], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        for pkg in ("indexers", "retrievers"):
            (base / "hippograph" / pkg).symlink_to(base / pkg)
        build_file, add_file = tmp / "build.jsonl", tmp / "add.jsonl"
        for path, part in ((build_file, records[:-n_add]), (add_file, records[-n_add:])):
            with open(path, "w", encoding="utf-8") as fh:
                for i, r in enumerate(part, 0 if path == build_file else len(records) - n_add):
                    fh.write(json.dumps({"id": str(i), "title": r["title"], "text": r["text"]}) + "\n")
        runs = {}
        versions = {"base": (str(base), args.write_path), "head": ("-", _git_commit())}
        for action, corpus in (("build", build_file), ("add", add_file)):
            for name, (code, _) in versions.items():
                index = tmp / f"idx-{name}"
                load_before = _load()
                out = subprocess.run([sys.executable, "-c", CHILD, code, action, str(corpus), str(index),
                                      args.embedder, str(args.jobs)], capture_output=True, text=True,
                                     env=_checkout_env(code), cwd=None if code == "-" else code)
                if out.returncode != 0:
                    sys.stderr.write(out.stderr[-3000:])
                    raise SystemExit(f"{name} {action} failed")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res.update(load_before=load_before, load_after=_load(), size=_dir_bytes(index))
                runs[(name, action)] = res
                sys.stderr.write(f"{name} {action}: {res['wall']:.1f} s, {res['rss_self'] / 2**20:.0f} MiB\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cmd = (f"python eval/bench_index.py --write-path {args.write_path} --corpus {args.corpus} "
           f"--embedder {args.embedder} --jobs {args.jobs} --add-fraction {args.add_fraction}"
           + (f" --limit {args.limit}" if args.limit else ""))
    lines = [
        f"## Write path: build and add {100 * args.add_fraction:g} % ({Path(args.corpus).name}, {args.embedder})",
        "",
        f"`{cmd}` — {dt.datetime.now(dt.timezone.utc).isoformat(timespec='minutes')}, {os.cpu_count()} cores "
        "shared with other processes (load average before → after each step in the table).",
        "",
        f"{len(records) - n_add:,} documents built, then {n_add:,} added; each step in its own process.",
        "",
        "| version | step | passages | seconds | peak RSS (main) | peak RSS (children) | index size | load |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for (name, action), r in runs.items():
        lines.append(
            f"| {name} ({versions[name][1]}) | {action} | {r['passages']:,} | {r['wall']:.1f} | "
            f"{r['rss_self'] / 2**20:.0f} MiB | {r['rss_children'] / 2**20:.0f} MiB | {r['size'] / 2**20:.1f} MiB | "
            f"{r['load_before']} → {r['load_after']} |")
    lines += ["", "Stage seconds (manifest timings):", ""]
    for (name, action), r in runs.items():
        tm = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        lines.append(f"- {name} {action}: {tm}")
    lines.append("")
    text = "\n".join(lines)
    out_path = ROOT / "eval" / "results" / "write_path.md"
    prev = out_path.read_text(encoding="utf-8") if out_path.is_file() else ""
    out_path.write_text(prev + ("\n" if prev else "") + text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
