"""Benchmark Personalized PageRank: cached-CSR power iteration vs igraph prpack vs networkx.

Synthetic undirected weighted graph (Chung–Lu, power-law expected degrees), damping 0.5,
reset vectors of 5 weighted seed nodes (HippoRAG 1 style) and, as a second workload,
5 seeds + 0.05 × priors on 20 % of the nodes (HippoRAG 2 style passage priors).

    python eval/bench_ppr.py                       # 100k nodes / 1M edges, writes eval/results/ppr.md
    python eval/bench_ppr.py --nodes 10000 --edges 100000 --out /tmp/ppr.md

Threads are pinned to 1 (numpy/BLAS) so numbers are single-threaded.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as _dt
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp

from hippograph.retrievers.ppr import PPR, igraph_reference


def chung_lu(n: int, m: int, gamma: float, seed: int) -> sp.csr_matrix:
    """Symmetric adjacency with exactly m distinct undirected edges, endpoints ∝ i^(−1/(γ−1))."""
    rng = np.random.default_rng(seed)
    w = (np.arange(1, n + 1, dtype=np.float64)) ** (-1.0 / (gamma - 1.0))
    p = w / w.sum()
    keys = np.empty(0, dtype=np.int64)
    while keys.size < m:
        k = int((m - keys.size) * 1.3) + 1000
        u = rng.choice(n, k, p=p)
        v = rng.choice(n, k, p=p)
        ok = u != v
        lo, hi = np.minimum(u[ok], v[ok]), np.maximum(u[ok], v[ok])
        keys = np.unique(np.concatenate([keys, lo.astype(np.int64) * n + hi]))
    keys = rng.permutation(keys)[:m]
    perm = rng.permutation(n)  # hubs spread over the id range
    r, c = perm[keys // n], perm[keys % n]
    wts = rng.uniform(0.5, 2.0, m)
    a = sp.coo_matrix((np.r_[wts, wts], (np.r_[r, c], np.r_[c, r])), shape=(n, n)).tocsr()
    return a


def make_resets(n: int, q: int, priors: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, q))
    for j in range(q):
        out[rng.choice(n, 5, replace=False), j] = rng.uniform(0.2, 1.0, 5)
        if priors:
            idx = rng.choice(n, n // 5, replace=False)
            out[idx, j] += 0.05 * rng.uniform(0.0, 1.0, idx.size)
    return out


def ms(f, reps: int) -> list[float]:
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        f(i)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--edges", type=int, default=1_000_000, help="distinct undirected edges")
    ap.add_argument("--gamma", type=float, default=2.5, help="power-law exponent of expected degrees")
    ap.add_argument("--damping", type=float, default=0.5)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prpack-queries", type=int, default=10)
    ap.add_argument("--nx-queries", type=int, default=3)
    ap.add_argument("--nx-nodes", type=int, default=0, help="run networkx on a smaller graph of this size (0: same graph)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ppr.md")
    args = ap.parse_args(argv)

    n, m, d = args.nodes, args.edges, args.damping
    t0 = time.perf_counter()
    a = chung_lu(n, m, args.gamma, seed=0)
    gen_s = time.perf_counter() - t0
    deg = np.diff(a.indptr)
    print(f"graph: {n} nodes, {m} undirected edges ({a.nnz} stored), max degree {deg.max()}, "
          f"isolated {int((deg == 0).sum())}, generated in {gen_s:.1f}s", flush=True)

    t0 = time.perf_counter()
    ppr = PPR(a, damping=d, tol=1e-6, max_iter=100)
    build_ms = (time.perf_counter() - t0) * 1000

    rows = []
    for label, priors in (("5 seeds", False), ("5 seeds + 0.05·priors on 20 % nodes", True)):
        resets = make_resets(n, args.queries, priors, seed=1 if priors else 2)
        ppr.run(resets[:, 0])  # warm-up
        iters = []

        def single(i: int) -> None:
            ppr.run(resets[:, i])
            iters.append(ppr.last_iterations)

        t_single = ms(single, args.queries)
        nb = args.queries // args.batch
        t_batch = ms(lambda i: ppr.run(resets[:, i * args.batch:(i + 1) * args.batch]), nb)
        per_q_batch = [t / args.batch for t in t_batch]

        l1s, t_pr = [], []
        igraph_reference_cached(a, resets[:, 0], d)  # build the igraph Graph (and check it) untimed
        for j in range(args.prpack_queries):
            t1 = time.perf_counter()
            ref = igraph_reference_cached(a, resets[:, j], d)
            t_pr.append((time.perf_counter() - t1) * 1000)
            l1s.append(float(np.abs(ppr.run(resets[:, j]) - ref).sum()))
        rows.append(dict(
            label=label,
            single=statistics.mean(t_single), single_p50=statistics.median(t_single), single_min=min(t_single),
            iters=statistics.mean(iters),
            batch=statistics.mean(per_q_batch), batch_min=min(per_q_batch),
            prpack=statistics.mean(t_pr), prpack_min=min(t_pr), l1=max(l1s),
        ))
        r = rows[-1]
        print(f"[{label}] PPR.run {r['single']:.1f} ms/query (p50 {r['single_p50']:.1f}, {r['iters']:.1f} iters); "
              f"batched B={args.batch} {r['batch']:.1f} ms/query; prpack {r['prpack']:.1f} ms/query; "
              f"max L1 to prpack {r['l1']:.2e}", flush=True)

    nx_row = run_networkx(a, args, d)

    lines = report(args, a, deg, gen_s, build_ms, rows, nx_row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(lines)
    print(f"wrote {args.out}")
    return 0


_IG_CACHE: dict[int, object] = {}


def igraph_reference_cached(a: sp.csr_matrix, reset: np.ndarray, d: float) -> np.ndarray:
    """prpack on an igraph Graph built once (graph construction excluded from the timing)."""
    import igraph as ig

    key = id(a)
    if key not in _IG_CACHE:
        up = sp.triu(a, format="coo")
        g = ig.Graph(n=a.shape[0], edges=np.column_stack([up.row, up.col]).tolist(), directed=False)
        _IG_CACHE[key] = (g, up.data.tolist())
        # sanity: the cached path equals the library's reference helper on one query
        ref = igraph_reference(a, reset, d)
        got = np.asarray(g.personalized_pagerank(damping=d, reset=reset.tolist(), weights=up.data.tolist(),
                                                  implementation="prpack"))
        assert np.abs(ref - got).sum() < 1e-12
    g, w = _IG_CACHE[key]
    return np.asarray(g.personalized_pagerank(damping=d, reset=reset.tolist(), weights=w,
                                              implementation="prpack"))


def run_networkx(a: sp.csr_matrix, args: argparse.Namespace, d: float) -> dict:
    import networkx as nx

    if args.nx_queries <= 0:
        return {}
    g_adj = a
    label = f"same graph ({a.shape[0]} nodes)"
    if args.nx_nodes and args.nx_nodes < a.shape[0]:
        nn = args.nx_nodes
        g_adj = chung_lu(nn, int(args.edges * nn / args.nodes), args.gamma, seed=0)
        label = f"smaller graph: {nn} nodes / {int(args.edges * nn / args.nodes)} edges"
    t0 = time.perf_counter()
    g = nx.from_scipy_sparse_array(g_adj)
    conv_s = time.perf_counter() - t0
    n = g_adj.shape[0]
    resets = make_resets(n, args.nx_queries, False, seed=2)
    ppr = PPR(g_adj, damping=d)
    t_nx, l1s = [], []
    for j in range(args.nx_queries):
        pers = {int(i): float(resets[i, j]) for i in np.flatnonzero(resets[:, j])}
        t1 = time.perf_counter()
        res = nx.pagerank(g, alpha=d, personalization=pers, dangling=pers, weight="weight", tol=1e-10, max_iter=200)
        t_nx.append((time.perf_counter() - t1) * 1000)
        x = np.array([res[i] for i in range(n)])
        l1s.append(float(np.abs(x - ppr.run(resets[:, j])).sum()))
    out = dict(label=label, ms=statistics.mean(t_nx), l1=max(l1s), conv_s=conv_s, version=nx.__version__)
    print(f"networkx {out['version']} pagerank on {label}: {out['ms']:.0f} ms/query "
          f"(graph conversion {conv_s:.1f}s once), max L1 to PPR.run {out['l1']:.1e}", flush=True)
    return out


def report(args, a, deg, gen_s, build_ms, rows, nx_row) -> str:
    import igraph as ig

    cmd = "python eval/bench_ppr.py " + " ".join(sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    out = [
        "# PPR benchmark",
        "",
        f"- Date: {_dt.date.today().isoformat()}",
        f"- Command: `{cmd.strip()}`",
        f"- Machine: {os.cpu_count()} cores ({cpu}), single-threaded numpy/BLAS (OMP/OPENBLAS/MKL_NUM_THREADS=1)",
        f"- Load average at the end of the run (other processes share the machine): "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (1/5/15 min)",
        f"- Versions: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"igraph {ig.__version__}",
        f"- Graph: Chung–Lu power-law (γ={args.gamma}), {args.nodes:,} nodes, {args.edges:,} distinct undirected "
        f"edges ({a.nnz:,} stored CSR entries), weights U(0.5, 2), max degree {int(deg.max()):,}, "
        f"median degree {int(np.median(deg))}, {int((deg == 0).sum())} isolated nodes",
        f"- PPR: damping {args.damping}, tol 1e-6 (L1 change), max_iter 100; "
        f"`PPR(...)` construction (transition matrix) {build_ms:.0f} ms, once per index",
        f"- {args.queries} queries for `PPR.run`, batched in blocks of B={args.batch}; "
        f"{args.prpack_queries} queries for prpack (igraph Graph built once, outside the timing)",
        "",
        "| reset vector | PPR.run ms/query (mean / p50 / min) | iterations | batched B=%d ms/query (mean / min) "
        "| igraph prpack ms/query (mean / min) | max L1 vs prpack |" % args.batch,
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['label']} | {r['single']:.1f} / {r['single_p50']:.1f} / {r['single_min']:.1f} | {r['iters']:.1f} "
            f"| {r['batch']:.1f} / {r['batch_min']:.1f} | {r['prpack']:.1f} / {r['prpack_min']:.1f} | {r['l1']:.1e} |"
        )
    if nx_row:
        out += [
            "",
            f"networkx {nx_row['version']} `pagerank` (personalization = dangling = reset, tol 1e-10, which networkx checks as "
            f"L1 change < N·tol) on "
            f"{nx_row['label']}: **{nx_row['ms']:.0f} ms/query** (plus {nx_row['conv_s']:.1f} s one-off "
            f"`from_scipy_sparse_array`), max L1 to `PPR.run` {nx_row['l1']:.1e}.",
        ]
    out += [
        "",
        "Batched = `PPR.run` on an (n, B) block (one sparse×dense product per iteration, columns drop out "
        "as they converge), time divided by B; it is what `retrieve_many` can use. prpack re-preprocesses the "
        "graph on every call, which is why a cached matrix wins even single-query.",
        "",
        "DESIGN §3.3 reported ≈37 ms/query (12 iterations) for the cached CSR iteration vs 180 ms prpack and "
        "3.6 s networkx on a graph of the same size; issue 4's target is ≤ 50 ms/query.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
