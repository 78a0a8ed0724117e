"""Size-penalised (balanced) k-means and hierarchical head selection for SPANN.

SPTAG's BKT clustering assigns a point to ``argmin_k dist(x, c_k) + λ·|cluster_k|`` so
that clusters — and therefore posting lists — come out of similar size, and recurses
with branching 32 until clusters are small. faiss's k-means has no balance term, so
the penalised assignment is done here in numpy on the ``faiss.knn`` candidate
centroids of each point (the few nearest centroids are the only ones a bounded
penalty can move a point to).

λ is chosen automatically each iteration the way SPTAG's ``RefineLambda`` does it:
λ = (max − mean distance inside the largest cluster) / its size, i.e. the penalty
of the largest cluster equals the spread of its own distances; if clusters are still
unbalanced (largest > ``max_imbalance`` × mean) the factor is doubled.

All distances are squared L2 (for normalised vectors this ranks like cosine).
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

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return None
    return ThreadpoolController()


def blas_single_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread. Small matrix products are latency-bound, and a
    multi-threaded OpenBLAS on a busy 2-core machine spends 10-100× longer in thread
    hand-off than in arithmetic (measured: 32×5000 @ 5000×48 in 36 ms vs 0.4 ms)."""
    ctl = _controller()
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()


@dataclass
class KMeansResult:
    """Centroids, the label of every input point, and the cluster sizes."""

    centroids: np.ndarray
    labels: np.ndarray
    counts: np.ndarray


def _centroids(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster means via a sparse indicator product (fast for millions of points)."""
    n = X.shape[0]
    counts = np.bincount(labels, minlength=k)
    if k * n <= 50_000_000:  # dense one-hot product: one BLAS call
        ind = np.zeros((k, n), dtype=np.float32)
        ind[labels, np.arange(n)] = 1.0
        sums = ind @ X
    else:
        ind = sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n))
        sums = np.asarray(ind @ X, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = sums / np.maximum(counts, 1)[:, None].astype(np.float32)
    return np.ascontiguousarray(cents, dtype=np.float32), counts


def _nearest(X: np.ndarray, C: np.ndarray, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """kc nearest centroids of each row (squared L2, ascending).

    Few centroids (a tree split has ≤ branching): one numpy matmul, faster than
    faiss.knn's per-call overhead on small inputs; many centroids: faiss.knn.
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


def _penalised_assign(D: np.ndarray, I: np.ndarray, counts: np.ndarray, lam: float) -> np.ndarray:
    """argmin over candidate centroids of dist + λ·count (counts of the previous round)."""
    if lam <= 0.0:
        return I[:, 0].copy()
    cost = D + lam * counts[I].astype(np.float32)
    return I[np.arange(I.shape[0]), np.argmin(cost, axis=1)]


def _refine_lambda(d_assigned: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> float:
    """SPTAG RefineLambda: (max − mean distance in the largest cluster) / its size."""
    big = int(np.argmax(counts))
    members = d_assigned[labels == big]
    if members.size == 0:
        return 0.0
    return max(0.0, float(members.max() - members.mean()) / float(members.size))


def balanced_kmeans(
    X: np.ndarray,
    k: int,
    *,
    iters: int = 8,
    lambda_factor: float = 1.0,
    max_imbalance: float = 2.0,
    n_candidates: int = 8,
    max_train: int | None = None,
    seed: int = 0,
) -> KMeansResult:
    """Balanced k-means of ``X`` (n × d float32) into ``k`` clusters.

    ``max_train`` trains on a random subsample of that many points and then runs two
    penalised assignment passes over all points (keeps the top tree levels cheap).
    Returns centroids (k × d), labels (n,) and counts (k,); no cluster is empty when
    n ≥ k.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
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
    counts = np.zeros(k, dtype=np.int64)
    lam = 0.0
    factor = lambda_factor
    for it in range(iters):
        D, I = _nearest(train, cents, kc)
        labels = _penalised_assign(D, I, counts, lam) if it > 0 else I[:, 0].copy()
        new_cents, counts = _centroids(train, labels, k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:  # re-seed empty clusters with points of the largest cluster
            big = np.flatnonzero(labels == int(np.argmax(counts)))
            pick = rng.choice(big, min(empty.size, big.size), replace=False)
            new_cents[empty[: pick.size]] = train[pick]
        cents = new_cents
        d_assigned = ((train - cents[labels]) ** 2).sum(axis=1) if nt <= 200_000 else D[:, 0]
        if counts.max() > max_imbalance * nt / k and it > 0:
            factor *= 2.0
        lam = factor * _refine_lambda(d_assigned, labels, counts)
    if train is not X:  # scale counts to the full set and assign everyone
        counts = (counts * (n / nt)).astype(np.int64)
        D, I = _nearest(X, cents, kc)
        for _ in range(2):
            labels = _penalised_assign(D, I, counts, lam)
            counts = np.bincount(labels, minlength=k)
        cents, counts = _centroids(X, labels, k)
    else:
        D, I = _nearest(X, cents, kc)
        labels = _penalised_assign(D, I, counts, lam)
        cents, counts = _centroids(X, labels, k)
    # any cluster left empty by the last pass: give it the point farthest from its centroid
    for e in np.flatnonzero(counts == 0):
        big = np.flatnonzero(labels == int(np.argmax(counts)))
        far = big[np.argmax(((X[big] - cents[labels[big]]) ** 2).sum(axis=1))]
        labels[far] = e
        counts = np.bincount(labels, minlength=k)
        cents[e] = X[far]
    return KMeansResult(cents, labels.astype(np.int64), counts)


def _branch_k(m: int, leaf_size: float, branching: int) -> int:
    """Children of a node of m points: leaves directly when ≤ branching leaves are
    wanted, otherwise the k that spreads the remaining levels evenly (k^levels ≈ leaves),
    which keeps the tree shallow and the number of small k-means calls low."""
    leaves = m / leaf_size
    if leaves <= branching:
        return int(max(2, math.floor(leaves)))
    levels = math.ceil(math.log(leaves) / math.log(branching) - 1e-9)
    return int(min(branching, max(2, math.ceil(leaves ** (1.0 / levels)))))


def select_heads(
    X: np.ndarray,
    *,
    leaf_size: float,
    branching: int = 32,
    iters: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """Hierarchical balanced clustering; returns the row indices of the head vectors.

    A node with n points is split into at most ``branching`` balanced clusters (the
    last split goes straight to leaf-sized clusters) until it holds fewer than
    1.5·leaf_size points; each leaf's head is the
    real vector nearest the leaf centroid (SPTAG selects real points as heads so that a
    head is also a data point). About n / leaf_size heads result.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    leaf = np.full(n, -1, dtype=np.int64)
    n_leaves = 0
    stack: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
    step = 0
    while stack:
        idx = stack.pop()
        m = idx.size
        if m < 1.5 * leaf_size or m <= 2:
            leaf[idx] = n_leaves
            n_leaves += 1
            continue
        k = _branch_k(m, leaf_size, branching)
        with (contextlib.nullcontext() if m > 50_000 else blas_single_thread()):
            res = balanced_kmeans(
                X[idx], k, iters=iters, seed=seed + step,
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
        stack.extend(children)
    cents, _ = _centroids(X, leaf, n_leaves)
    d = ((X - cents[leaf]) ** 2).sum(axis=1)
    order = np.lexsort((d, leaf))  # by leaf, then distance to the leaf centroid
    first = np.ones(n, dtype=bool)
    first[1:] = leaf[order][1:] != leaf[order][:-1]
    heads = np.sort(order[first])
    logger.info("select_heads: %d points -> %d heads (%d kmeans calls)", n, heads.size, step)
    return heads


def n_splits_for(n: int, target: float) -> int:
    """How many lists a list of n entries becomes when split to ~target entries each."""
    return max(2, int(math.ceil(n / max(target, 1.0))))
