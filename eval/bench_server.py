"""HTTP server benchmark: requests/s and latency percentiles of POST /retrieve on the MuSiQue sample index.

    python eval/bench_server.py [--embedder sentence-transformers|tfidf] [--workers 1,2] [--concurrency 1,4,8]
                                [--requests 400] [--index DIR] [--keep DIR] [--out FILE]

Builds an index of the MuSiQue sample corpus (1,890 passages) in a temp dir (or reuses
`--index DIR`), starts `hippograph serve` on a loopback port in a subprocess, and drives it
with a Python load generator (threads, one keep-alive httpx client each) cycling over the
100 MuSiQue questions. For each worker count and concurrency level it reports requests/s,
p50/p95/p99 latency and errors, plus the in-process `HippoGraph.retrieve` latency for the
same queries (the HTTP + JSON overhead is the difference). The load generator runs on the
same machine as the server and competes with it for the CPU. The 1-minute load average
before and after is recorded, because numbers taken on a busy machine are not comparable
with numbers taken on an idle one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "musique_train100"
CORPUS = DATASET / "musique_train_corpus.json"
QUESTIONS = DATASET / "musique_train.json"


@dataclass
class LoadResult:
    workers: int
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return _percentile(self.latencies_ms, q)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def build_index(path: Path, embedder: str, jobs: int) -> float:
    from hippograph import Config, HippoGraph

    records = json.loads(CORPUS.read_text(encoding="utf-8"))
    docs = [{"id": str(i), "title": r["title"], "text": r["text"]} for i, r in enumerate(records)]
    t0 = time.perf_counter()
    HippoGraph.build(docs, path, Config(embedder=embedder, n_process=jobs)).close()
    return time.perf_counter() - t0


def start_server(index: Path, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "hippograph.cli", "serve", str(index), "--port", str(port), "--workers", str(workers)]
    fh = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    fh.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            ready = log.read_text(errors="replace").count("Application startup complete")
            if ready >= workers and httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url  # every worker has warmed up (spaCy + embedder loaded)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start within 600 s")


def stop_server(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def run_load(url: str, queries: list[str], concurrency: int, n_requests: int, top_k: int, mode: str,
             workers: int) -> LoadResult:
    import httpx

    counter = iter(range(n_requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {"query": queries[i % len(queries)], "top_k": top_k, "mode": mode}
                t0 = time.perf_counter()
                try:
                    r = client.post("/retrieve", json=body)
                    ok = r.status_code == 200 and len(r.json()["hits"]) > 0
                except httpx.HTTPError:
                    ok = False
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(workers, concurrency, n_requests, time.perf_counter() - t0, latencies, errors[0])


def in_process_latency(index: Path, queries: list[str], top_k: int, mode: str) -> list[float]:
    """Serial `HippoGraph.retrieve` latencies (ms), set up the way the server runs queries.

    Like the server, the models load in the main thread (one warm-up query) and queries run
    in a worker thread: on a busy 2-core machine, torch's 2-thread intra-op pool made
    queries in the thread that loaded the model 2-10x slower than in other threads.
    """
    from hippograph import HippoGraph

    out: list[float] = []

    def measure(hg: "HippoGraph") -> None:
        for q in queries:  # one unmeasured pass: open vector indexes, fill the page cache
            hg.retrieve(q, top_k, mode=mode)
        for q in queries:
            t0 = time.perf_counter()
            hg.retrieve(q, top_k, mode=mode)
            out.append((time.perf_counter() - t0) * 1000)

    with HippoGraph.open(index) as hg:
        hg.retrieve("warm up the models", 1)
        t = threading.Thread(target=measure, args=(hg,))
        t.start()
        t.join()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="sentence-transformers", choices=["sentence-transformers", "tfidf"])
    ap.add_argument("--index", type=Path, help="reuse this index instead of building one")
    ap.add_argument("--keep", type=Path, help="build the index here and keep it (for reruns with --index)")
    ap.add_argument("--jobs", type=int, default=2, help="spaCy processes for the build")
    ap.add_argument("--workers", default="1", help="comma-separated server worker counts (default 1)")
    ap.add_argument("--concurrency", default="1,4,8", help="comma-separated client thread counts")
    ap.add_argument("--requests", type=int, default=400, help="requests per (workers, concurrency) cell")
    ap.add_argument("--warmup", type=int, default=30, help="unmeasured requests after each server start")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--mode", default="hybrid", choices=["hybrid", "ppr", "dense", "bm25"])
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "server.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    questions = [r["question"] for r in json.loads(QUESTIONS.read_text(encoding="utf-8"))]
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-server-"))
    build_s = None
    try:
        if args.index:
            index = args.index
        else:
            index = args.keep or tmp / "musique"
            print(f"building {index} ({args.embedder}) ...", file=sys.stderr)
            build_s = build_index(index, args.embedder, args.jobs)
            print(f"built in {build_s:.1f} s", file=sys.stderr)
        from hippograph import HippoGraph

        with HippoGraph.open(index) as hg:
            counts = hg.stats()
        inproc = in_process_latency(index, questions, args.top_k, args.mode)
        results: list[LoadResult] = []
        for workers in [int(w) for w in args.workers.split(",")]:
            proc, url = start_server(index, workers, tmp / f"server-{workers}.log")
            try:
                run_load(url, questions, max(workers, 2), args.warmup * workers, args.top_k, args.mode, workers)
                for conc in [int(c) for c in args.concurrency.split(",")]:
                    res = run_load(url, questions, conc, args.requests, args.top_k, args.mode, workers)
                    print(f"workers={workers} concurrency={conc}: {res.rps:.1f} req/s, p50 {res.pct(50):.1f} ms, "
                          f"p95 {res.pct(95):.1f} ms, errors {res.errors}", file=sys.stderr)
                    results.append(res)
            finally:
                rc = stop_server(proc)
                if rc != 0:
                    print(f"warning: server exit status {rc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()[0]
    report = render(args, results, inproc, counts, build_s, load_before, load_after, argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


def _embedder_name(stats: dict) -> str:
    e = stats.get("embedder") or {}
    return " ".join(str(x) for x in (e.get("backend"), e.get("model")) if x) or "unknown"


def render(args, results, inproc, counts, build_s, load_before, load_after, argv) -> str:  # noqa: ANN001
    cmd = "python eval/bench_server.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cores = os.cpu_count()
    busy = max(load_before, load_after) > 0.75 * (cores or 1)
    lines = [
        "# HTTP server benchmark (`POST /retrieve`)",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; commit {_git_commit()}",
        f"- machine: {cores} cores ({_cpu_model()}), Python {platform.python_version()}, {platform.system()}",
        f"- 1-min load average before / after: {load_before:.1f} / {load_after:.1f}"
        + (" — **measured on a busy machine (other jobs were running); expect better numbers on an idle one**"
           if busy else ""),
        f"- index: MuSiQue train100 corpus, {counts.get('passages')} passages, {counts.get('entities')} entities, "
        f"{counts.get('facts')} facts; embedder `{_embedder_name(counts)}`"
        + (f"; built in {build_s:.0f} s" if build_s else ""),
        f"- queries: the 100 MuSiQue questions, cycled; top_k={args.top_k}, mode={args.mode}; "
        f"{args.requests} measured requests per row after {args.warmup} warm-up requests per worker",
        "- load generator: Python threads on the same machine, one keep-alive httpx client per thread "
        "(it competes with the server for the same cores)",
        "",
        f"In-process `HippoGraph.retrieve` (no HTTP, serial in one worker thread, second pass over the queries): p50 {_percentile(inproc, 50):.1f} ms, "
        f"p95 {_percentile(inproc, 95):.1f} ms, {1000 / statistics.mean(inproc):.1f} queries/s serial.",
        "",
        "| server workers | client threads | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.workers} | {r.concurrency} | {r.rps:.1f} | {r.pct(50):.1f} | {r.pct(95):.1f} | "
                     f"{r.pct(99):.1f} | {r.errors} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
