"""Indexing cost against corpus size: generated encyclopedias and a real documents folder, through the CLI.

    nice -n 5 python eval/bench_scale.py [--sizes 10000,30000,100000] [--docs PATH ...] [--jobs 1]
                                         [--work DIR] [--out eval/results/scale.md] [--keep]

For each generated size (eval/synth_corpus.py, seed 0) and each `--docs` folder (e.g. the Linux
kernel documentation of Debian's linux-doc-6.1), as a user would run it:

1. ``hippograph index SRC --index IDX --json`` in a child process, with psutil sampling the
   whole process tree (every process's RSS, every 0.25 s): passages/s per stage (the build
   report's timings) and end to end, peak RSS of the tree and of its largest process, disk per
   passage;
2. hybrid query p50/p95 over the generated questions (one at a time, in a fresh process);
   recall@2/@5 of hybrid vs dense vs bm25 against the questions' gold passages;
3. an `add` of 1 % more documents (``hippograph index MORE --index IDX --no-delete``; for a folder,
   the build leaves out 1 % of the files and the add is a sync of the whole folder): time, peak RSS.

Results are merged by target into ``<out>.json`` (so sizes can be run one at a time and the
table re-made), written as a Markdown table to `--out`, and plotted log–log (build seconds,
peak RSS, disk against passages) next to it; the slopes between the smallest and largest
generated size are reported (issue #13 targets: RSS exponent ≤ 0.3, time ≤ 1.1).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = ROOT
"""The hippograph checkout whose CLI is measured (`--checkout`; its .venv's python runs it)."""


def _python() -> str:
    venv = CHECKOUT / ".venv" / "bin" / "python"
    return str(venv) if CHECKOUT != ROOT and venv.exists() else sys.executable


def hippograph_cmd() -> list[str]:
    return [_python(), "-m", "hippograph.cli"]


# ----------------------------------------------------------------------- measuring a command
class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_total = 0
        self.peak_by_pid: dict[int, tuple[int, str]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = " ".join(p.cmdline()[1:3]) or p.name()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                if rss > self.peak_by_pid.get(p.pid, (0, ""))[0]:
                    self.peak_by_pid[p.pid] = (rss, name)
            self.peak_total = max(self.peak_total, total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_measured(cmd: list[str], log: Path) -> dict:
    """Run `cmd`, sampling its process tree; returns wall seconds, peaks and parsed JSON stdout."""
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as err:
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=CHECKOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate()
        sampler.stop()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} (see {log})")
    procs = sorted(sampler.peak_by_pid.values(), reverse=True)
    return {
        "wall": wall,
        "peak_rss_tree": sampler.peak_total,
        "peak_rss_main": procs[0][0] if procs else 0,
        "processes": len(procs),
        "peak_rss_each": [p[0] for p in procs],
        "json": json.loads(out) if out.strip().startswith("{") else None,
        "load": os.getloadavg(),
    }


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------ queries
def _query_child(index: str, questions_path: str, n_latency: int) -> None:
    """In a fresh process: hybrid latency per single query, and recall@2/@5 per mode."""
    from hippograph import HippoGraph  # the measured checkout's (this runs under its python)

    def recall_at_k(ranked: list[str], gold: list[str], k: int) -> float:
        top = list(dict.fromkeys(ranked))[:k]  # eval/metrics.py: distinct documents, gold share in the top k
        return len(set(top) & set(gold)) / len(set(gold))

    hg = HippoGraph.open(index)
    qs = [json.loads(line) for line in Path(questions_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [q["question"] for q in qs]
    for q in texts[:3]:  # warm-up (model load, first-touch of files)
        hg.retrieve(q, top_k=5)
    lat = []
    for q in texts[:n_latency]:
        t0 = time.perf_counter()
        hg.retrieve(q, top_k=5)
        lat.append(1000 * (time.perf_counter() - t0))
    out: dict = {"p50_ms": statistics.median(lat), "p95_ms": sorted(lat)[max(0, math.ceil(0.95 * len(lat)) - 1)],
                 "queries": len(lat)}
    if all("gold" in q for q in qs):
        for mode in ("hybrid", "dense", "bm25"):
            hits = hg.retrieve_many(texts, top_k=5, mode=mode)
            for k in (2, 5):
                out[f"{mode}_r@{k}"] = statistics.mean(
                    recall_at_k([h.doc_id for h in hs], q["gold"], k) for hs, q in zip(hits, qs))
    hg.close()
    print(json.dumps(out))


def measure_queries(index: Path, questions: Path, n_latency: int, log: Path) -> dict:
    r = run_measured([_python(), str(Path(__file__).resolve()), "--query-child", str(index), str(questions), str(n_latency)], log)
    return {**r["json"], "query_peak_rss": r["peak_rss_tree"]}


# ------------------------------------------------------------------------------ targets
def build_and_measure(name: str, src: list[str], more: list[str], idx: Path, questions: Path, args, log: Path,
                      build_extra: list[str] = (), before_add=None) -> dict:
    if idx.exists():
        shutil.rmtree(idx)
    common = ["--json", "--quiet"] + (["--jobs", str(args.jobs)] if args.jobs else [])
    b = run_measured(hippograph_cmd() + ["index", *src, "--index", str(idx), *common, *build_extra], log)
    stats = b["json"]
    size = dir_bytes(idx)
    res: dict = {
        "target": name, "passages": stats["passages"], "documents": stats["documents"],
        "entities": stats.get("entities"), "facts": stats.get("facts"), "sentences": stats.get("sentences"),
        "build_s": b["wall"], "build_peak_rss_tree": b["peak_rss_tree"], "build_peak_rss_main": b["peak_rss_main"],
        "build_peak_rss_each": b["peak_rss_each"][:6], "build_load": b["load"],
        "timings": stats.get("timings", {}), "disk_bytes": size, "disk_per_passage": size / max(1, stats["passages"]),
    }
    print(f"[{name}] built {res['passages']} passages in {b['wall']:.0f} s, peak RSS {b['peak_rss_tree'] / 2**20:.0f} MiB, "
          f"{res['disk_per_passage'] / 1024:.1f} KB/passage", flush=True)
    res.update(measure_queries(idx, questions, args.latency_queries, log))
    print(f"[{name}] hybrid p50 {res['p50_ms']:.1f} ms p95 {res['p95_ms']:.1f} ms", flush=True)
    if before_add is not None:
        before_add()
    a = run_measured(hippograph_cmd() + ["index", *more, "--index", str(idx), "--no-delete", *common], log)
    added = (a["json"] or {}).get("added", {})
    res.update(add_s=a["wall"], add_peak_rss_tree=a["peak_rss_tree"], add_passages=added.get("passages"),
               add_documents=added.get("documents"), add_load=a["load"],
               add_timings=(a["json"] or {}).get("timings", {}))
    print(f"[{name}] add {added} in {a['wall']:.0f} s, peak RSS {a['peak_rss_tree'] / 2**20:.0f} MiB", flush=True)
    if not args.keep:
        shutil.rmtree(idx, ignore_errors=True)
    return res


def synthetic_target(n: int, args, log: Path) -> dict:
    from eval import synth_corpus

    data = args.work / f"synth{n}"
    meta = synth_corpus.write(data, n, seed=0, n_questions=args.questions)
    res = build_and_measure(f"synthetic {n:,}", [str(data / "corpus.json")], [str(data / "extra.json")],
                            args.work / f"synth{n}.idx", data / "questions.jsonl", args, log)
    res["kind"] = "synthetic"
    res["generator"] = meta
    return res


def docs_target(folder: Path, args, log: Path) -> dict:
    """A real folder, as a user's folder grows: a copy of it without 1 % of its files (seeded) is
    indexed, then those files are copied in and the same folder is indexed again (`add` of 1 %).
    (Building with `--exclude` would not do: the index keeps its loader options, so the second run
    would exclude the same files.)"""
    from hippograph.indexers.loaders import iter_documents

    docs = list(iter_documents(folder))
    rels = sorted({d.id.split("#")[0] for d in docs})
    rng = random.Random(0)
    held = sorted(rng.sample(rels, max(1, len(rels) // 100)))
    qfile = args.work / f"{folder.name}.queries.jsonl"
    sample = rng.sample(docs, min(len(docs), args.latency_queries + 3))
    with qfile.open("w", encoding="utf-8") as fh:  # queries: a document's title and first words (no gold)
        for d in sample:
            fh.write(json.dumps({"question": f"{d.title}: {' '.join(d.text.split()[:12])}"}) + "\n")
    copy = args.work / f"{folder.name}.folder"
    if copy.exists():
        shutil.rmtree(copy)
    held_set = set(held)
    shutil.copytree(folder, copy, ignore=lambda d, names: [
        n for n in names if os.path.relpath(os.path.join(d, n), folder) in held_set])

    def put_back() -> None:
        for rel in held:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / rel, copy / rel)

    res = build_and_measure(f"folder {folder}", [str(copy)], [str(copy)], args.work / f"{folder.name}.idx", qfile,
                            args, log, before_add=put_back)
    res["kind"] = "folder"
    res["held_out_files"] = len(held)
    if not args.keep:
        shutil.rmtree(copy, ignore_errors=True)
    return res


# ------------------------------------------------------------------------------ report
def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.0f}"


def slope(rows: list[dict], key: str) -> float | None:
    pts = sorted((r["passages"], r[key]) for r in rows if r.get(key))
    if len(pts) < 2 or pts[0][0] == pts[-1][0]:
        return None
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


STAGES = ("chunk", "extract", "embed passages", "embed sentences", "embed facts", "embed entities", "synonymy",
          "merge", "graph", "vectors", "BM25", "compact")
"""The build report's stage names (hippograph index --json `timings`), in the order they run."""


def report(results: dict[str, dict], out: Path) -> None:
    rows = list(results.values())
    lines = ["## Indexing at scale (generated encyclopedia and a real documents folder)", ""]
    for r in rows:
        lines.append(f"- {r['target']}: {r.get('checkout', '')} at commit {r['commit']}, {r['date']}, command `{r['command']}`, "
                     f"1-minute load during build {r['build_load'][0]:.1f}, during add {r['add_load'][0]:.1f}"
                     + "".join(f"; {r[k]}" for k in ("build_note", "add_note") if r.get(k)))
    lines += ["", "| target | passages | build s | passages/s | peak RSS tree MiB | largest process MiB | KB/passage | "
              "hybrid p50 / p95 ms | add (passages) s | add peak RSS MiB | R@2 hybrid / dense / bm25 | R@5 hybrid / dense / bm25 |",
              "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|"]
    for r in rows:
        add = f"{r['add_s']:.0f} ({r.get('add_passages')})" if "add_s" in r else "—"
        rec = lambda k: " / ".join(f"{r[f'{m}_r@{k}']:.3f}" for m in ("hybrid", "dense", "bm25")) if "hybrid_r@2" in r else "—"
        lines.append(
            f"| {r['target']} | {r['passages']:,} | {r['build_s']:.0f} | {r['passages'] / r['build_s']:.1f} | "
            f"{_mib(r['build_peak_rss_tree'])} | {_mib(r['build_peak_rss_main'])} | {r['disk_per_passage'] / 1024:.1f} | "
            f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} | {add} | {_mib(r['add_peak_rss_tree']) if 'add_s' in r else '—'} | "
            f"{rec(2)} | {rec(5)} |")
    lines += ["", "Passages/s per stage (build report timings):", "",
              "| target | " + " | ".join(STAGES) + " |", "|---|" + "---:|" * len(STAGES)]
    for r in rows:
        tm = r["timings"]
        cells = [f"{r['passages'] / tm[s]:,.0f}" if tm.get(s) else "—" for s in STAGES]
        lines.append(f"| {r['target']} | " + " | ".join(cells) + " |")
    added = [r for r in rows if r.get("add_timings")]
    if added:
        names = [s for s in ("total",) + STAGES if any(r["add_timings"].get(s) for r in added)]
        lines += ["", "Add 1 %: seconds per stage (the add's own report) and as a share of the build's seconds:", "",
                  "| target | " + " | ".join(names) + " | add / build |", "|---|" + "---:|" * (len(names) + 1)]
        for r in added:
            tm = r["add_timings"]
            cells = [f"{tm[s]:.1f}" if tm.get(s) else "—" for s in names]
            lines.append(f"| {r['target']} | " + " | ".join(cells) + f" | {r['add_s'] / r['build_s']:.1%} |")
    synth = [r for r in rows if r["kind"] == "synthetic"]
    s_t, s_m = slope(synth, "build_s"), slope(synth, "build_peak_rss_tree")
    if s_t is not None:
        lines += ["", f"Log–log slope, smallest → largest generated size: build time {s_t:.2f} (target ≤ 1.1), "
                      f"peak RSS {s_m:.2f} (target ≤ 0.3)."]
    lines += ["", f"![cost against corpus size]({out.with_suffix('.png').name})", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    plot(rows, out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for key, label, scale in (("build_s", "build seconds", 1), ("build_peak_rss_tree", "peak RSS (MiB)", 2**20),
                              ("disk_bytes", "disk (MiB)", 2**20)):
        for kind, marker in (("synthetic", "o-"), ("folder", "s")):
            pts = sorted((r["passages"], r[key] / scale) for r in rows if r["kind"] == kind)
            if pts:
                ax.plot(*zip(*pts), marker, label=f"{label}, {kind}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_title("hippograph indexing cost against corpus size")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000", help="generated corpus sizes in passages, comma-separated ('' = none)")
    ap.add_argument("--docs", nargs="*", type=Path, default=[], help="real document folders to index")
    ap.add_argument("--jobs", type=int, default=0, help="--jobs for hippograph index (default: its own default)")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hippograph-bench-scale"))
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "scale.md")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes in --work")
    ap.add_argument("--checkout", type=Path, default=ROOT,
                    help="hippograph checkout to measure, e.g. /work/main for a 'before' (default: this one)")
    ap.add_argument("--report-only", action="store_true", help="re-render --out from its .json without measuring")
    ap.add_argument("--query-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.report_only:
        report(json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8")), args.out)
        print(args.out.read_text(encoding="utf-8"))
        return 0
    if args.query_child:
        _query_child(args.query_child[0], args.query_child[1], int(args.query_child[2]))
        return 0
    global CHECKOUT
    CHECKOUT = args.checkout.resolve()
    sys.path.insert(0, str(ROOT))  # eval.synth_corpus; hippograph for the folder listing
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "bench_scale.log"
    store = args.out.with_suffix(".json")
    results: dict[str, dict] = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else {}
    command = "python eval/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    todo = [("synthetic", n) for n in sizes] + [("folder", f) for f in args.docs]
    for kind, what in todo:
        commit = _git_commit()  # before the run: the checkout may move while it builds
        res = synthetic_target(what, args, log) if kind == "synthetic" else docs_target(what, args, log)
        end_commit = _git_commit()
        if end_commit != commit:
            commit = f"{commit} (checkout moved to {end_commit} during the run)"
        res.update(commit=commit, checkout=str(CHECKOUT), date=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", command=command.strip())
        results[res["target"]] = res
        store.write_text(json.dumps(results, indent=1), encoding="utf-8")
        report(results, args.out)
    print(args.out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
