"""Balanced k-means and hierarchical head selection for SPANN.

SPTAG's BKT clustering assigns a point to ``argmin_k dist(x, c_k) + λ·|cluster_k|`` so
that clusters — and therefore posting lists — come out of similar size, and recurses
(branching 32) until clusters are small. faiss's k-means has no balance term, so the
assignment is done here in numpy on each point's few nearest centroids.

The size penalty is applied as a capacity (per-cluster prices: a cluster is free until
it holds ``max_imbalance`` × n / k points, then closed), solved exactly in vectorised
proposal rounds (:func:`capacitated_assign`). The single global λ of SPTAG, computed
from the previous round's sizes (RefineLambda), was tried first and oscillated on
384-d data: clusters that were small last round attract every border point at once,
and at 4-16× the RefineLambda value one cluster took 143 of a node's 180 points.
Over-full posting lists are split by :func:`split_to_cap` (recursive balanced
bisection), the SPFresh split.

All distances are squared L2 (for normalised vectors this ranks like cosine).

The input may be a row source (`hippograph.format.Embeddings`: memory-mapped int8 rows,
dequantised on access) instead of a float32 matrix: passes over every point (nearest
centroids, centroid sums, distances to the leaf centroid) then read it a block of rows at
a time (`hippograph.indexers.flat.row_blocks`), and only nodes below the root of the tree
are copied out as float32, so clustering n points holds about n / branching of them, not n.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from .flat import row_blocks

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _blas_libs() -> tuple[Any, ...]:
    """threadpoolctl controllers of the BLAS libraries loaded in this process (cached)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


class blas_single_thread(contextlib.AbstractContextManager):
    """Limit BLAS to one thread inside the block (a couple of µs to enter and leave).

    Small matrix products are latency-bound, and a multi-threaded OpenBLAS on a busy
    2-core machine spends 10-100× longer in thread hand-off than in arithmetic
    (measured: 32×5000 @ 5000×48 in 36 ms with 2 threads vs 0.4 ms with 1). The setting
    is process-wide while the block runs.
    """

    def __enter__(self) -> "blas_single_thread":
        self._prev = []
        for lib in _blas_libs():
            n = lib.get_num_threads()
            self._prev.append((lib, n))
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        for lib, n in self._prev:
            if n != 1:
                lib.set_num_threads(n)


@dataclass
class KMeansResult:
    """Centroids, the label of every input point, and the cluster sizes."""

    centroids: np.ndarray
    labels: np.ndarray
    counts: np.ndarray


def _cluster_sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster sums of the rows of X via an indicator product (fast for millions of points)."""
    n = X.shape[0]
    if k * n <= 50_000_000:  # dense one-hot product: one BLAS call
        ind = np.zeros((k, n), dtype=np.float32)
        ind[labels, np.arange(n)] = 1.0
        return ind @ X
    ind = sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n))
    return np.asarray(ind @ X, dtype=np.float32)


def _centroids(X: Any, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster means and sizes; a row source is summed a block at a time."""
    counts = np.bincount(labels, minlength=k)
    if isinstance(X, np.ndarray):
        sums = _cluster_sums(X, labels, k)
    else:
        sums = np.zeros((k, X.shape[1]), dtype=np.float32)
        dense = k * X.shape[0] <= 50_000_000
        for b0, rows in row_blocks(X):
            part = labels[b0:b0 + rows.shape[0]]
            if dense:
                sums += _cluster_sums(rows, part, k)
            else:  # x added to its cluster's sum point by point in row order: the sparse product's own order
                np.add.at(sums, part, rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = sums / np.maximum(counts, 1)[:, None].astype(np.float32)
    return np.ascontiguousarray(cents, dtype=np.float32), counts


def _nearest(X: Any, C: np.ndarray, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """kc nearest centroids of each row (squared L2, ascending), a block of rows at a time
    (the distance terms of a block are its only n × d temporaries)."""
    parts = [_nearest_block(rows, C, kc) for _, rows in row_blocks(X)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros((0, min(kc, C.shape[0])), np.float32), np.zeros((0, min(kc, C.shape[0])), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _nearest_block(X: np.ndarray, C: np.ndarray, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """`_nearest` of an in-memory block. Few centroids (a tree split has ≤ branching): one
    numpy matmul, faster than faiss.knn's per-call overhead on small inputs; many: faiss.knn.
    """
    k = C.shape[0]
    if k > 64:
        return faiss.knn(X, C, kc)
    D = (X ** 2).sum(axis=1, keepdims=True) - 2.0 * (X @ C.T) + (C ** 2).sum(axis=1)[None, :]
    if kc >= k:
        I = np.argsort(D, axis=1)
    else:
        I = np.argpartition(D, kc - 1, axis=1)[:, :kc]
        I = np.take_along_axis(I, np.argsort(np.take_along_axis(D, I, axis=1), axis=1), axis=1)
    return np.maximum(np.take_along_axis(D, I, axis=1), 0.0).astype(np.float32), I.astype(np.int64)


def capacitated_assign(X: np.ndarray, cents: np.ndarray, D: np.ndarray, I: np.ndarray,
                       capacity: int) -> np.ndarray:
    """Assign each point to a centroid holding at most ``capacity`` points.

    Rounds over the candidate rank r = 0, 1, …: every unassigned point proposes to its
    r-th nearest centroid, and each centroid accepts its closest proposers up to its
    remaining room. Points left after all candidates go to the nearest centroid with
    room. This is the size penalty of balanced k-means with per-cluster prices (the
    price of a full cluster is infinite), computed exactly and without oscillation.
    """
    n, kc = I.shape
    k = cents.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(k, capacity, dtype=np.int64)
    for r in range(kc):
        un = np.flatnonzero(labels < 0)
        if un.size == 0:
            break
        c, d = I[un, r], D[un, r]
        order = np.lexsort((d, c))
        cs = c[order]
        rank = np.arange(cs.size) - np.searchsorted(cs, cs, side="left")
        ok = rank < room[cs]
        labels[un[order[ok]]] = cs[ok]
        room -= np.bincount(cs[ok], minlength=k)
    left = np.flatnonzero(labels < 0)
    for i in left:  # rare: all candidate centroids were full
        free = np.flatnonzero(room > 0)
        j = free[np.argmin(((cents[free] - X[i]) ** 2).sum(axis=1))]
        labels[i] = j
        room[j] -= 1
    return labels


def balanced_kmeans(
    X: Any,
    k: int,
    *,
    iters: int = 8,
    max_imbalance: float = 1.25,
    n_candidates: int = 8,
    max_train: int | None = None,
    seed: int = 0,
) -> KMeansResult:
    """Balanced k-means of ``X`` (n × d float32) into ``k`` clusters of at most
    ``max_imbalance`` × n / k points each.

    Lloyd iterations whose assignment step is :func:`capacitated_assign` on the
    ``n_candidates`` nearest centroids of every point. (SPTAG's single global penalty
    λ·|cluster| with last round's sizes oscillated here: at 4-16× its RefineLambda value
    one cluster swallowed 143 of 180 points of a 384-d node; capacities cannot.)

    ``max_train`` trains on a random subsample of that many points and then assigns all
    points once (keeps the top tree levels cheap). Returns centroids (k × d), labels (n,)
    and counts (k,); no cluster is empty when n ≥ k. ``X`` may be a row source (see the
    module docstring); it is read whole only when there is no subsample to train on.
    """
    n = X.shape[0]
    if isinstance(X, np.ndarray) or k <= 1 or max_train is None or n <= max_train:
        X = np.ascontiguousarray(X if isinstance(X, np.ndarray) else X[:n], dtype=np.float32)
    if k <= 1 or n <= 1:
        labels = np.zeros(n, dtype=np.int64)
        return KMeansResult(X.mean(axis=0, keepdims=True).astype(np.float32), labels, np.array([n]))
    k = min(k, n)
    rng = np.random.default_rng(seed)
    train = X
    if max_train is not None and n > max_train:
        train = X[np.sort(rng.choice(n, max_train, replace=False))]
    nt = train.shape[0]
    kc = min(k, n_candidates)
    cents = train[rng.choice(nt, k, replace=False)].copy()
    for it in range(iters):
        D, I = _nearest(train, cents, kc)
        cap_t = int(math.ceil(max_imbalance * nt / k))
        labels = capacitated_assign(train, cents, D, I, cap_t) if it > 0 else I[:, 0].copy()
        new_cents, counts = _centroids(train, labels, k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:  # re-seed empty clusters with points of the largest cluster
            big = np.flatnonzero(labels == int(np.argmax(counts)))
            pick = rng.choice(big, min(empty.size, big.size), replace=False)
            new_cents[empty[: pick.size]] = train[pick]
        cents = new_cents
    D, I = _nearest(X, cents, kc)
    labels = capacitated_assign(X, cents, D, I, int(math.ceil(max_imbalance * n / k)))
    cents, counts = _centroids(X, labels, k)
    # any cluster left empty: give it the point farthest from its centroid
    for e in np.flatnonzero(counts == 0):
        big = np.flatnonzero(labels == int(np.argmax(counts)))
        far = big[np.argmax(((X[big] - cents[labels[big]]) ** 2).sum(axis=1))]
        labels[far] = e
        counts = np.bincount(labels, minlength=k)
        cents[e] = X[far]
    return KMeansResult(cents, labels.astype(np.int64), counts)


def balanced_bisect(X: np.ndarray, *, iters: int = 6, min_frac: float = 0.35) -> np.ndarray:
    """2-means whose sides each keep at least ``min_frac`` of the points: labels 0/1.

    Points are ordered by d(x, c0) − d(x, c1) and cut at the natural boundary clamped
    to [min_frac, 1 − min_frac]·n — an exact, oscillation-free balanced assignment for
    two clusters (used to split over-full posting lists, as SPFresh does).
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    labels = np.zeros(n, dtype=np.int64)
    if n < 2:
        return labels
    mu = X.mean(axis=0)
    a = int(np.argmax(((X - mu) ** 2).sum(axis=1)))
    b = int(np.argmax(((X - X[a]) ** 2).sum(axis=1)))
    c0, c1 = X[a].copy(), X[b].copy()
    lo, hi = max(1, int(math.ceil(min_frac * n))), min(n - 1, int(math.floor((1 - min_frac) * n)))
    hi = max(hi, lo)
    for _ in range(iters):
        diff = ((X - c0) ** 2).sum(axis=1) - ((X - c1) ** 2).sum(axis=1)
        order = np.argsort(diff, kind="stable")
        cut = int(np.clip((diff < 0).sum(), lo, hi))
        labels[:] = 1
        labels[order[:cut]] = 0
        c0, c1 = X[labels == 0].mean(axis=0), X[labels == 1].mean(axis=0)
    return labels


def split_to_cap(X: np.ndarray, cap: int, max_depth: int = 32) -> list[np.ndarray]:
    """Recursive balanced bisection of rows of X until every part has ≤ cap rows.

    Returns the parts as arrays of row indices. Identical rows cannot be separated
    by distance; they are then split by position so the cap still holds.
    """
    out: list[np.ndarray] = []
    stack = [(np.arange(X.shape[0]), 0)]
    while stack:
        idx, depth = stack.pop()
        if idx.size <= cap:
            out.append(idx)
            continue
        lab = balanced_bisect(X[idx]) if depth < max_depth else (np.arange(idx.size) >= idx.size // 2)
        left, right = idx[lab == 0], idx[lab == 1]
        if left.size == 0 or right.size == 0:
            left, right = idx[: idx.size // 2], idx[idx.size // 2:]
        stack.append((left, depth + 1))
        stack.append((right, depth + 1))
    return out


def _branch_k(m: int, leaf_size: float, branching: int) -> int:
    """Children of a node of m points: leaves directly when ≤ branching leaves are
    wanted, otherwise the k that spreads the remaining levels evenly (k^levels ≈ leaves),
    which keeps the tree shallow and the number of small k-means calls low."""
    leaves = m / leaf_size
    if leaves <= branching:
        return int(max(2, math.floor(leaves)))
    levels = math.ceil(math.log(leaves) / math.log(branching) - 1e-9)
    return int(min(branching, max(2, math.ceil(leaves ** (1.0 / levels)))))


@dataclass
class HeadSelection:
    """Result of :func:`select_heads`: head rows (one per leaf, by leaf id) and each
    point's leaf id."""

    rows: np.ndarray
    leaf: np.ndarray
    kmeans_calls: int


def select_heads(
    X: Any,
    *,
    leaf_size: float,
    branching: int = 32,
    iters: int = 8,
    seed: int = 0,
) -> HeadSelection:
    """Hierarchical balanced clustering into leaves of about ``leaf_size`` points; each
    leaf's head is the real vector nearest the leaf centroid (SPTAG selects real points
    as heads, so a head is also a data point). About n / leaf_size heads result.

    A node is split into at most ``branching`` balanced clusters; the last split goes
    straight to leaf-sized clusters, whose children are leaves unless one came out
    larger than 2.5·leaf_size (then it is split again). ``X`` may be a row source (see the
    module docstring).
    """
    if isinstance(X, np.ndarray):
        X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    leaf = np.full(n, -1, dtype=np.int64)
    n_leaves = 0
    stack: list[tuple[np.ndarray, bool]] = [(np.arange(n, dtype=np.int64), False)]
    step = 0
    while stack:
        idx, from_last_split = stack.pop()
        m = idx.size
        limit = 2.5 * leaf_size if from_last_split else 1.5 * leaf_size
        if m < limit or m <= 2:
            leaf[idx] = n_leaves
            n_leaves += 1
            continue
        k = _branch_k(m, leaf_size, branching)
        last = m / leaf_size <= branching
        with (contextlib.nullcontext() if m > 50_000 else blas_single_thread()):
            res = balanced_kmeans(
                X if m == n else X[idx],  # the root is every row: no copy of them
                k, iters=iters, seed=seed + step,
                max_train=max(256 * k, 20_000) if m > 50_000 else None,
            )
        step += 1
        order = np.argsort(res.labels, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(res.counts)])
        sorted_idx = idx[order]
        children = [sorted_idx[bounds[c]: bounds[c + 1]] for c in range(k) if res.counts[c] > 0]
        if len(children) == 1:  # could not split (duplicates): make it a leaf
            leaf[idx] = n_leaves
            n_leaves += 1
            continue
        stack.extend((c, last) for c in children)
    cents, _ = _centroids(X, leaf, n_leaves)
    d = np.empty(n, dtype=np.float32)
    for b0, rows in row_blocks(X):
        b1 = b0 + rows.shape[0]
        d[b0:b1] = ((rows - cents[leaf[b0:b1]]) ** 2).sum(axis=1)
    order = np.lexsort((d, leaf))  # by leaf, then distance to the leaf centroid
    first = np.ones(n, dtype=bool)
    first[1:] = leaf[order][1:] != leaf[order][:-1]
    rows = order[first]  # leaf ids are 0..n_leaves-1 in sorted order
    logger.info("select_heads: %d points -> %d heads (%d kmeans calls)", n, rows.size, step)
    return HeadSelection(rows=rows.astype(np.int64), leaf=leaf, kmeans_calls=step)
