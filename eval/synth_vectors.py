"""Generated vector indexes at sizes the SPANN build cannot reach on 2 cores (11–13M vectors per
granularity at 1M passages), for timing the engine's vector search where the build is not affordable.

Vectors follow eval/bench_ann.py's `synthetic` recipe (MiniLM-shaped clusters: mean direction, topics,
log-normal clusters with a rank-8 spread, anisotropic noise), generated a few clusters at a time
instead of all in RAM. The clustering comes with them, so `SpannIndex.build`'s balanced k-means and
closure search (≈ 40 min at 3M vectors, far longer at 12M) are replaced by an assignment read off the
generation: every tenth vector in cluster order is a head (the engine's head ratio 0.1), and each
vector joins its nearest `replicas` heads among the heads of its own cluster neighbourhood. The index
is then written by `SpannIndex.build_preassigned` exactly as the engine stores one: ids-only posting
lists over an int8 embeddings file, list cap and LSH order as `build`'s, HNSW over the heads. Rows are
stored in a random order, so a posting list's vectors are scattered over the file as in a real index.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
HEAD_EVERY = 10
"""One head per this many vectors in cluster order (`BuildParams.head_ratio` 0.1)."""


class ClusteredStream:
    """`bench_ann.synthetic`'s distribution, cluster by cluster: `chunks()` yields (first position,
    vectors) in cluster order, whole clusters per chunk; `queries` are held-out points of random
    clusters, made with their cluster."""

    def __init__(self, n: int, n_queries: int, seed: int, d: int = DIM):
        from eval.bench_ann import anisotropic_basis

        rng = np.random.default_rng(seed)
        self.n, self.d, self.seed = n, d, seed
        self.B = anisotropic_basis(rng, d)
        mean_dir = rng.standard_normal(d).astype(np.float32)
        mean_dir /= np.linalg.norm(mean_dir)
        n_topics = max(4, n // 2000)
        topics = self._aniso(rng, n_topics)
        sizes = np.maximum(1, rng.lognormal(np.log(60.0), 1.0, size=max(8, n // 40)))
        self.centers = 0.45 * mean_dir[None, :] + topics[rng.integers(0, n_topics, sizes.size)] + 0.75 * self._aniso(
            rng, sizes.size)
        counts = rng.multinomial(n, sizes / sizes.sum())
        self.bounds = np.concatenate([[0], np.cumsum(counts)])
        nonempty = np.flatnonzero(counts)
        self.query_clusters = np.sort(rng.choice(nonempty, n_queries, p=counts[nonempty] / n))
        self.queries = np.zeros((n_queries, d), np.float32)

    def _aniso(self, rng: np.random.Generator, m: int) -> np.ndarray:
        return rng.standard_normal((m, self.d), dtype=np.float32) @ self.B

    def chunks(self, rows: int = 200_000):
        """(position of the first vector, unit vectors) for runs of whole clusters of about `rows` vectors."""
        rng = np.random.default_rng(self.seed + 1)
        n_clusters = self.bounds.size - 1
        c0, qi = 0, 0
        while c0 < n_clusters:
            c1 = max(c0 + 1, int(np.searchsorted(self.bounds, self.bounds[c0] + rows, side="right")) - 1)
            c1 = min(c1, n_clusters)
            s0, s1 = int(self.bounds[c0]), int(self.bounds[c1])
            q_here = self.query_clusters[(self.query_clusters >= c0) & (self.query_clusters < c1)]
            lab = np.repeat(np.arange(c0, c1), np.diff(self.bounds[c0:c1 + 1]))
            lab = np.concatenate([lab, q_here])  # the queries are extra points of their clusters
            x = np.zeros((lab.size, self.d), np.float32)
            for c in np.unique(lab):  # each cluster's own rank-8 spread
                at = np.flatnonzero(lab == c) if c in q_here else np.arange(
                    self.bounds[c] - s0, self.bounds[c + 1] - s0)
                spread = rng.standard_normal((8, self.d), dtype=np.float32) / np.sqrt(self.d * 8)
                x[at] = (rng.standard_normal((at.size, 8), dtype=np.float32) * 1.5) @ spread
            x += self.centers[lab] + 1.1 * self._aniso(rng, lab.size)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            m = s1 - s0
            self.queries[qi:qi + q_here.size] = x[m:]
            qi += q_here.size
            yield s0, x[:m]
            c0 = c1


def generate_index(out: Path, n: int, *, seed: int, n_queries: int = 200, replicas: int = 4, window: int = 3,
                   spann_replica: int = 4) -> dict[str, Any]:
    """Write `out`/emb.npy (int8, rows in random order) and `out`/index (SPANN, ids = rows) for `n`
    generated vectors, plus `out`/queries.npy; reuses a complete earlier run. Returns its info."""
    from hippograph.format import dequantize, open_embeddings, quantize, scale_path
    from hippograph.indexers.spann import SpannIndex

    info_path = out / "info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if (info.get("n"), info.get("seed"), info.get("queries"), info.get("replicas")) == (n, seed, n_queries, replicas):
            return info
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stream = ClusteredStream(n, n_queries, seed)
    perm = np.random.default_rng(seed + 2).permutation(n)  # position in cluster order → row in the file
    codes = np.lib.format.open_memmap(out / "emb.npy", mode="w+", dtype=np.int8, shape=(n, DIM))
    scales = np.lib.format.open_memmap(scale_path(out / "emb.npy"), mode="w+", dtype=np.float32, shape=(n,))
    head_pos = np.arange(0, n, HEAD_EVERY)
    lists = np.full((n, replicas), -1, np.int64)
    dists = np.full((n, replicas), np.inf, np.float32)
    last_head: tuple[int, np.ndarray] | None = None  # (number, vector) of the previous chunk's last head
    for s0, x in stream.chunks():
        c, s = quantize(x, "int8")
        rows = perm[s0:s0 + x.shape[0]]
        codes[rows], scales[rows] = c, s
        xq = dequantize(c, s)  # as the index reads them back
        first = -(-s0 // HEAD_EVERY)  # the chunk's first head number
        local = xq[first * HEAD_EVERY - s0::HEAD_EVERY]
        if local.shape[0] == 0:  # a tail shorter than one head's share joins the previous head
            first, local = last_head[0], last_head[1][None, :]
        h, d = assign_to_heads(xq, s0, first, local, replicas, window)
        lists[rows], dists[rows] = np.where(h >= 0, h + first, -1), d
        last_head = (first + local.shape[0] - 1, local[-1])
    codes.flush()
    scales.flush()
    del codes, scales
    np.save(out / "queries.npy", stream.queries)
    t_gen = time.perf_counter() - t0
    t1 = time.perf_counter()
    emb = open_embeddings(out / "emb.npy")
    index = SpannIndex.build_preassigned(emb, np.arange(n, dtype=np.int64), heads=perm[head_pos], lists=lists,
                                         distances=dists, path=out / "index", metric="ip", overwrite=True,
                                         sketch_bits=0, replica_count=spann_replica, store_vectors=False)
    info = dict(n=n, seed=seed, queries=n_queries, heads=int(index.n_heads), entries=int(index.build_info["entries"]),
                mean_replicas=float(index.build_info["mean_replicas"]), generate_s=t_gen,
                build_s=time.perf_counter() - t1, replicas=replicas, window=window)
    info_path.write_text(json.dumps(info))
    return info


def assign_to_heads(x: np.ndarray, s0: int, first: int, heads: np.ndarray, replicas: int, window: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each of the vectors `x` at positions s0.. (cluster order) joins its `replicas` nearest heads among
    the `window` heads either side of its own (`heads`: this chunk's head vectors, numbered from
    `first`): (head numbers local to `heads`, -1 pads; distances 1 − cos), nearest first."""
    m = x.shape[0]
    own = np.clip((np.arange(s0, s0 + m) // HEAD_EVERY) - first, 0, heads.shape[0] - 1)
    offs = np.arange(-window, window + 1)
    cand = np.clip(own[:, None] + offs[None, :], 0, heads.shape[0] - 1)
    sims = np.einsum("md,mkd->mk", x, heads[cand], optimize=False)
    dup = np.zeros_like(sims, dtype=bool)
    dup[:, 1:] = cand[:, 1:] == cand[:, :-1]  # a clipped window repeats its edge head
    sims[dup] = -np.inf
    k = min(replicas, heads.shape[0])
    best = np.argsort(-sims, axis=1)[:, :k]
    lists = np.full((m, replicas), -1, np.int64)
    dists = np.full((m, replicas), np.inf, np.float32)
    lists[:, :k] = np.take_along_axis(cand, best, axis=1)
    dists[:, :k] = 1.0 - np.take_along_axis(sims, best, axis=1)
    lists[:, :k][~np.isfinite(dists[:, :k])] = -1
    return lists, dists


def open_generated(out: Path) -> tuple[Any, np.ndarray]:
    """(SpannIndex reading its vectors from the int8 file, as the engine opens one; the queries)."""
    from hippograph.format import open_embeddings
    from hippograph.indexers.spann import SpannIndex, VectorsById

    index = SpannIndex.open(out / "index", vectors=VectorsById(open_embeddings(out / "emb.npy")))
    return index, np.load(out / "queries.npy")
