"""One eval run: datasets × systems → metrics, speed, memory; JSON + per-question JSONL on disk."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import resource
import subprocess
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .datasets import Benchmark, load_dataset, slice_benchmark
from .metrics import evaluate
from .report import project_relative
from .systems import RunContext, System, SystemUnavailable, embedding_precision

logger = logging.getLogger(__name__)

DEFAULT_DATASETS = ("musique_train100", "hotpotqa_train100", "scifact", "locomo", "2wiki_dev300")
QUICK_DATASETS = ("musique_train100",)


@dataclass
class RunOptions:
    """Everything that decides what a run computes (mirrors the CLI flags)."""

    datasets: Sequence[str] = DEFAULT_DATASETS
    systems: Sequence[System] = ()
    out_dir: Path = Path("eval/results")
    cache_dir: Path = Path("eval/cache")
    embedder: str = "minilm"
    quick: bool = False
    quick_questions: int = 10
    quick_distractors: int = 100
    rebuild: bool = False
    jobs: int = 1
    """spaCy worker processes for hippograph builds (speed only; not part of the cache key)."""
    latency_queries: int = 100
    """Questions timed one at a time per system (p50/p95); all questions are run batched."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Engine Config fields changed from the defaults (`--set`); index-time ones key the index cache."""
    progress: bool = True
    command: str = ""
    data_root: Path | None = None
    benchmarks: list[Benchmark] = field(default_factory=list)
    """Pre-loaded benchmarks (tests); used instead of `datasets` when given."""


class RssSampler:
    """Peak resident memory of this process during a block, sampled every 10 ms in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()

    def _rss(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> "RssSampler":
        self.start_mb = self.peak_mb = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())

    def as_dict(self) -> dict[str, float]:
        return {"start_mb": round(self.start_mb, 1), "peak_mb": round(self.peak_mb, 1),
                "delta_mb": round(self.peak_mb - self.start_mb, 1)}


def engine_config(embedder: str, jobs: int = 1, embedding_cache_dir: Path | None = None,
                  overrides: dict[str, Any] | None = None) -> Any:
    """The engine Config every system shares: `minilm` (sentence-transformers) or `tfidf`; defaults otherwise.

    `embedding_cache_dir` lets hippograph builds reuse MiniLM vectors of texts embedded by an
    earlier build (index content is the same; build times then exclude that embedding work and
    are flagged in the build record). `--rebuild` runs without it, so its timings are complete."""
    from hippograph.config import Config

    names = {"minilm": "sentence-transformers", "tfidf": "tfidf"}
    if embedder not in names:
        raise ValueError(f"unknown embedder {embedder!r}; use one of {', '.join(names)}")
    return Config(embedder=names[embedder], n_process=jobs,
                  embedding_cache_dir=str(embedding_cache_dir) if embedding_cache_dir else None).replace(
                      **(overrides or {}))


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, RAM, OS and library versions, for the report."""
    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("hippograph", "numpy", "faiss-cpu", "torch", "sentence-transformers", "spacy", "bm25s", "rank-bm25"):
        try:  # metadata only: importing torch/spacy just for a version string costs seconds
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return {"cores": usable, "cpu_count": os.cpu_count(), "cpu": cpu,
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}",
            "versions": versions}


def git_info(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "none (no commit yet)", "dirty": bool(status)}


def _percentile(xs: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), p)) if xs else float("nan")


def run_system(system: System, bench: Benchmark, ctx: RunContext, opts: RunOptions,
               qdir: Path) -> dict[str, Any]:
    """Index, query (batched for results + throughput, single for latency), evaluate one system."""
    entry: dict[str, Any] = {"family": system.family, "description": system.description}
    reason = system.applicable(bench, ctx)
    if reason:
        return {**entry, "status": "not applicable", "reason": reason}
    k = max(bench.metrics.ks)
    queries = [q for q in bench.queries if q.gold]
    try:
        with RssSampler() as rss_index:
            info = system.index(bench, ctx)
        questions = [q.question for q in queries]
        with RssSampler() as rss_query:
            t0 = time.perf_counter()
            ranked = system.search(questions, k)
            batch_secs = time.perf_counter() - t0
            lat = []
            for q in questions[: opts.latency_queries]:
                t1 = time.perf_counter()
                system.search_one(q, k)
                lat.append((time.perf_counter() - t1) * 1000.0)
    except (SystemUnavailable, ImportError) as exc:  # a component not written/installed yet
        logger.warning("%s on %s: unavailable: %s", system.name, bench.name, exc)
        return {**entry, "status": "unavailable", "reason": str(exc)}
    except Exception as exc:
        logger.error("%s on %s failed:\n%s", system.name, bench.name, traceback.format_exc())
        return {**entry, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    finally:
        system.close()
    if len(ranked) != len(queries):
        return {**entry, "status": "error", "reason": f"returned {len(ranked)} rankings for {len(queries)} queries"}
    records, agg = evaluate(bench, {q.id: r for q, r in zip(queries, ranked)})
    qdir.mkdir(parents=True, exist_ok=True)
    qfile = qdir / f"{system.name}.jsonl"
    with open(qfile, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps({"system": system.name, "dataset": bench.name, **rec}, ensure_ascii=False) + "\n")
    return {
        **entry, "status": "ok", "n": agg["n"], "metrics": agg["mean"], "by_category": agg["by_category"],
        "index": asdict(info) | {"rss": rss_index.as_dict()},
        "query": {"n": len(questions), "batch_seconds": batch_secs,
                  "qps": len(questions) / batch_secs if batch_secs > 0 else None,
                  "latency_ms": {"p50": _percentile(lat, 50), "p95": _percentile(lat, 95),
                                 "mean": float(np.mean(lat)) if lat else float("nan"), "n": len(lat)},
                  "latencies_ms": [round(x, 3) for x in lat], "rss": rss_query.as_dict()},
        "per_question": str(qfile),
    }


def run(opts: RunOptions) -> dict[str, Any]:
    """Run every system on every dataset; write results JSON + per-question JSONL; return the results."""
    from tqdm import tqdm

    from . import REPO_ROOT

    started = _dt.datetime.now(_dt.timezone.utc)
    t_run = time.perf_counter()
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if opts.quick else "")
    run_dir = Path(opts.out_dir) / "runs" / run_id
    ctx = RunContext(
        engine_config(opts.embedder, opts.jobs, None if opts.rebuild else Path(opts.cache_dir) / "vectors",
                      opts.overrides),
        Path(opts.cache_dir), rebuild=opts.rebuild)

    benches = list(opts.benchmarks)
    if not benches:
        for name in opts.datasets:
            b = load_dataset(name, opts.data_root)
            if opts.quick:
                b = slice_benchmark(b, opts.quick_questions, opts.quick_distractors)
            benches.append(b)

    results: dict[str, Any] = {
        "run_id": run_id, "started": started.isoformat(timespec="seconds"), "command": project_relative(opts.command),
        "quick": opts.quick, "embedder": opts.embedder, "latency_queries": opts.latency_queries,
        "embedding_precision": embedding_precision(ctx.config),
        "machine": machine_info(), "git": git_info(REPO_ROOT),
        "engine_config": ctx.config.to_dict(), "datasets": {}, "load_avg_start": list(os.getloadavg()),
    }
    bar = tqdm(total=len(benches) * len(opts.systems), desc="eval", unit="system", disable=not opts.progress)
    for bench in benches:
        t_ds = time.perf_counter()
        ds: dict[str, Any] = {
            "source": project_relative(bench.source), "n_docs": len(bench.corpus), "n_queries": len(bench.queries),
            "n_scored": len(bench.scored_queries()), "ks": list(bench.metrics.ks), "ndcg_k": bench.metrics.ndcg_k,
            "headline": list(bench.metrics.headline), "levels": list(bench.metrics.levels),
            "exclude_categories": list(bench.metrics.exclude_categories),
            "category_names": bench.metrics.category_names, "corpus_hash": bench.corpus_hash(), "systems": {},
        }
        results["datasets"][bench.name] = ds
        for system in opts.systems:
            bar.set_postfix_str(f"{bench.name} / {system.name}")
            ds["systems"][system.name] = run_system(system, bench, ctx, opts, run_dir / bench.name)
            st = ds["systems"][system.name]
            if st["status"] == "ok":
                logger.info("%s / %s: %s", bench.name, system.name,
                            ", ".join(f"{m}={st['metrics'].get(m, float('nan')):.3f}" for m in bench.metrics.headline))
            bar.update(1)
        try:
            ps = ctx.passages(bench)
            ds["n_passages"] = len(ps.texts)
        except SystemUnavailable:
            pass
        ctx.finish(bench)
        ds["seconds"] = time.perf_counter() - t_ds
    bar.close()
    results["seconds"] = time.perf_counter() - t_run
    results["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    results["load_avg_end"] = list(os.getloadavg())
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    latest = Path(opts.out_dir) / ("runs/latest_quick.json" if opts.quick else "latest.json")
    latest.write_text(json.dumps(results, indent=1, default=str))
    results["_paths"] = {"run_dir": str(run_dir), "latest": str(latest)}
    return results
