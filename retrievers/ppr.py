"""Personalized PageRank by power iteration on a cached sparse transition matrix.

Semantics follow igraph's `personalized_pagerank(..., implementation="prpack")`
(DESIGN §3.3), which is the reference in the tests:

* ``damping`` d is the probability of following an edge; with probability 1 − d the
  walker jumps back to the reset distribution r (normalised to sum 1).
* Edge weights are proportional transition probabilities: from node i the walker moves
  to j with probability A[i, j] / Σ_k A[i, k].
* A dangling node (no edge of positive weight) sends all of its mass to r, not to the
  uniform distribution: igraph passes the reset vector to prpack both as the teleport
  vector v and as the dangling-node vector u.
* A self-loop stored as A[i, i] = w moves the walker from i back to i with weight w.
  (igraph's undirected graphs count a loop edge twice; `igraph_reference` compensates.)

The fixed point is x = (1 − d)·r + d·Pᵀx + d·(Σ_{i dangling} x_i)·r.  Serving it from
a cached CSR matrix is ≈5× faster than prpack, which re-preprocesses the graph on
every call (measured in eval/bench_ppr.py, see eval/results/ppr.md).

Two solvers share these semantics (docs/ppr_push.md):

* `PPR.run` — power iteration over the whole graph (exact to `tol`; its cost grows with
  the graph, so it is the checking path).
* `PPR.push` — forward push (Andersen, Chung & Lang 2006) from the seeds: a node u holding
  residual res_u ≥ ε·outdeg(u) keeps (1 − d)·res_u and sends d·res_u along its out-edges
  (a dangling node sends it back to r).  It touches only the part of the graph the seeds
  reach with enough mass, at most 1 / ((1 − d)·ε) edge visits per query whatever the graph
  size, and returns a sparse vector.  The estimate is p + (1 − d)·res (the share of the
  residual a walk keeps at once), a lower bound of the exact scores within L1 distance
  d·Σ res; on MuSiQue's graph it matches the exact top 10 as well as pushing to a 3× smaller
  ε without it (docs/ppr_push.md).

Both accept `mask`, a boolean mask of the kept nodes (metadata filters): PPR then runs on the
subgraph they induce (`restricted`) — an excluded node gets no reset weight and no mass, each kept
node's out-probabilities are renormalised over its kept neighbours, and one left without any is
dangling — so push and power iteration agree under a filter as they do without one.
"""
from __future__ import annotations

import hashlib
import logging
import threading

import numpy as np
import scipy.sparse as sp

from .sparse import sorted_unique

logger = logging.getLogger(__name__)

__all__ = ["transition_matrix", "PPR", "igraph_reference", "METHODS", "PUSH_IMPLS"]

METHODS = ("push", "power")
"""PPR solvers selectable by `Config.ppr_method`."""
PUSH_IMPLS = ("frontier", "loop")
"""Forward-push implementations: numpy-vectorised synchronous frontier rounds, or one node per
step (ACL's queue). Same guarantee; eval/bench_query_scale.py measures both."""


def _check_adjacency(adjacency: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csr_matrix:
    """Return `adjacency` as a float64 CSR matrix after validating shape and weights."""
    if not (sp.issparse(adjacency) or isinstance(adjacency, np.ndarray)):
        raise TypeError(f"adjacency must be a scipy sparse matrix or numpy array, got {type(adjacency).__name__}")
    a = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)  # never mutate the caller's matrix
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square n×n matrix, got shape {a.shape}")
    if a.nnz:
        if not np.all(np.isfinite(a.data)):
            raise ValueError("adjacency contains NaN or infinite edge weights")
        if a.data.min() < 0:
            raise ValueError(f"adjacency contains negative edge weights (min {a.data.min():g}); weights must be ≥ 0")
    a.sum_duplicates()
    a.eliminate_zeros()
    return a


def _out_degree(a: sp.csr_matrix) -> np.ndarray:
    return np.asarray(a.sum(axis=1)).ravel()


def transition_matrix(adjacency: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csr_matrix:
    """Column-stochastic transition matrix M = Pᵀ for power iteration ``x ← d·M x + …``.

    `adjacency` is n×n with non-negative weights, A[i, j] = weight of the edge i→j; a
    symmetric matrix is an undirected graph (the hippograph case).  The row-stochastic
    walk matrix is P[i, j] = A[i, j] / deg(i); this returns its transpose as CSR, so
    column i of M holds the out-probabilities of node i and M @ x is one walk step.
    Columns of dangling nodes (degree 0) are all zero: their mass is redistributed to
    the reset vector by `PPR.run`, not here.
    """
    return _transition(_check_adjacency(adjacency))


def _transition(a: sp.csr_matrix) -> sp.csr_matrix:
    """`transition_matrix` on an already validated CSR adjacency."""
    deg = _out_degree(a)
    inv = np.zeros_like(deg)
    np.divide(1.0, deg, out=inv, where=deg > 0)
    p = sp.diags(inv) @ a  # row-stochastic (dangling rows zero)
    m = sp.csr_matrix(p.T)
    m.sort_indices()
    return m


class PPR:
    """Personalized PageRank over a fixed graph; the transition matrix is built once.

    `run` accepts one reset vector (n,) or a block (n, B) of B reset vectors, solved
    together as sparse×dense products; each column stops at its own convergence, so a
    batched column equals the single-vector result.
    """

    def __init__(
        self,
        adjacency: sp.spmatrix | sp.sparray | np.ndarray,
        *,
        damping: float = 0.5,
        tol: float = 1e-6,
        max_iter: int = 100,
    ) -> None:
        if not 0.0 <= float(damping) <= 1.0:
            raise ValueError(f"damping must be in [0, 1], got {damping}")
        if not float(tol) > 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be ≥ 1, got {max_iter}")
        a = _check_adjacency(adjacency)
        self.n: int = a.shape[0]
        self.damping = float(damping)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.adjacency: sp.csr_matrix = a
        deg = _out_degree(a)
        self.dangling: np.ndarray = deg == 0
        self._dangling_idx = np.flatnonzero(self.dangling)
        # forward push walks rows of P = D⁻¹A: A's CSR arrays with each row's weights over its degree
        inv = np.zeros_like(deg)
        np.divide(1.0, deg, out=inv, where=deg > 0)
        self._indptr = a.indptr.astype(np.int64)
        self._indices = a.indices  # int32 in scipy: no copy of the largest array
        self._prob = a.data * np.repeat(inv, np.diff(self._indptr))
        self._out_edges = np.maximum(np.diff(self._indptr), 1).astype(np.float64)
        self._matrix: sp.csr_matrix | None = None
        self._work = threading.local()  # per-thread p/res buffers reused across pushes (see _buffers)
        self._restricted: dict[bytes, tuple[sp.csr_matrix, np.ndarray]] = {}
        self.last_iterations: int = 0
        """Iterations of the last `run` (the maximum over the columns of a block)."""
        self.last_converged: bool = True
        self.last_pushes: int = 0
        """Node pushes of the last `push` call."""
        self.last_edges: int = 0
        """Edges visited by the last `push` call (its cost; ≤ 1 / ((1 − d)·ε))."""
        self.last_residual: float = 0.0
        """Residual mass Σ res left by the last `push`; d × it bounds the L1 distance to the exact scores
        (of the masked subgraph under a `mask`)."""

    @property
    def matrix(self) -> sp.csr_matrix:
        """Column-stochastic transition matrix Pᵀ of power iteration (built on first use: push does not need it)."""
        if self._matrix is None:
            self._matrix = _transition(self.adjacency)
        return self._matrix

    def _check_mask(self, mask: np.ndarray | None) -> np.ndarray | None:
        """A boolean mask of the kept nodes (shape (n,)), or None when there is none or it keeps every node."""
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != (self.n,) or m.dtype != np.bool_:
            raise ValueError(f"mask must be a boolean array of shape ({self.n},), got {m.dtype} {m.shape}")
        return None if m.all() else m

    def _normalise_reset(self, reset: np.ndarray) -> np.ndarray:
        r = np.asarray(reset, dtype=np.float64)
        if r.ndim not in (1, 2) or r.shape[0] != self.n:
            raise ValueError(f"reset must have shape ({self.n},) or ({self.n}, B), got {r.shape}")
        if r.ndim == 2 and r.shape[1] == 0:
            raise ValueError("reset block has no columns (B = 0)")
        if not np.all(np.isfinite(r)):
            raise ValueError("reset vector contains NaN or infinite values")
        if r.size and r.min() < 0:
            raise ValueError(f"reset vector contains negative values (min {r.min():g})")
        sums = r.sum(axis=0)
        if np.any(sums <= 0):
            bad = np.flatnonzero(np.atleast_1d(sums) <= 0).tolist()
            where = "" if r.ndim == 1 else f" (columns {bad[:10]})"
            raise ValueError(f"reset vector is all zero{where}: PPR needs at least one seed with positive weight")
        return r / sums

    def restricted(self, mask: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """(transition matrix, dangling node ids) of the subgraph induced by the nodes where `mask` is
        True: each kept node's out-probabilities renormalised over its kept neighbours (a node left
        with none is dangling). Cached for the last few masks (a metadata filter reuses its mask)."""
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != (self.n,):
            raise ValueError(f"mask must have shape ({self.n},), got {keep.shape}")
        key = hashlib.blake2b(np.packbits(keep).tobytes(), digest_size=16).digest()
        hit = self._restricted.get(key)
        if hit is None:
            k = sp.diags(keep.astype(np.float64))
            m = sp.csr_matrix(k @ self.matrix @ k)  # drop edges into and out of excluded nodes
            colsum = np.asarray(m.sum(axis=0)).ravel()
            inv = np.zeros_like(colsum)
            np.divide(1.0, colsum, out=inv, where=colsum > 0)
            m = sp.csr_matrix(m @ sp.diags(inv))
            m.sort_indices()
            hit = (m, np.flatnonzero(keep & (colsum <= 0)))
            for old in list(self._restricted)[:-3]:  # keep the 4 newest masks
                self._restricted.pop(old, None)
            self._restricted[key] = hit
        return hit

    def run(self, reset: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """PPR scores for `reset` of shape (n,) → (n,), or (n, B) → (n, B); columns sum to 1.

        Iterates x ← (1 − d)·r + d·(M x + (dangling mass of x)·r) from x = r until the
        L1 change of a column is below `tol` or `max_iter` is reached. With a boolean node
        `mask`, PPR runs on the subgraph of the kept nodes (`restricted`): excluded nodes get
        no reset weight, no mass flows into or through them, and they score exactly 0.
        """
        matrix, dangling = self.matrix, self._dangling_idx
        mask = self._check_mask(mask)
        if mask is not None:
            matrix, dangling = self.restricted(mask)
            reset = np.asarray(reset, dtype=np.float64)
            reset = reset * (mask[:, None] if reset.ndim == 2 else mask)
        r = self._normalise_reset(reset)
        single = r.ndim == 1
        if single:
            r = r[:, None]
        d = self.damping
        out = np.empty_like(r)
        cols = np.arange(r.shape[1])  # original column of each still-moving working column
        x = r.copy()
        rw = r
        tmp = np.empty_like(x)
        iters = 0
        converged = True
        while True:
            if iters >= self.max_iter:
                converged = False
                out[:, cols] = x
                break
            iters += 1
            new = matrix @ x
            # (1 − d)·r + d·(dangling mass)·r, folded into one coefficient per column
            coef = np.full(x.shape[1], 1.0 - d)
            if dangling.size:
                coef += d * x[dangling].sum(axis=0)
            new *= d
            np.multiply(rw, coef, out=tmp)
            new += tmp
            np.subtract(new, x, out=tmp)
            np.abs(tmp, out=tmp)
            change = tmp.sum(axis=0)
            x = new
            done = change < self.tol
            if done.any():
                out[:, cols[done]] = x[:, done]
                if done.all():
                    break
                keep = ~done  # shrink the block to the columns still moving (contiguous copies)
                x, rw, cols = x[:, keep], rw[:, keep], cols[keep]
                tmp = np.empty_like(x)
        self.last_iterations = iters
        self.last_converged = converged
        if not converged:
            logger.warning(
                "PPR did not converge to L1 change < %g within max_iter=%d (%d of %d columns still moving)",
                self.tol, self.max_iter, cols.size, r.shape[1],
            )
        return out[:, 0] if single else out

    # ---- forward push ------------------------------------------------------------------
    def push(
        self,
        nodes: np.ndarray,
        weights: np.ndarray,
        *,
        eps: float = 1e-4,
        mask: np.ndarray | None = None,
        impl: str = "frontier",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate PPR of the sparse reset vector r[nodes] = weights by forward push.

        Returns (node ids ascending, scores) for the nodes given mass. Pushes every node whose
        residual is ≥ `eps` × its out-edge count, so at most 1 / ((1 − d)·eps) edges are
        visited; the scores are p + (1 − d)·res, and `eps` → 0 approaches `run`'s fixed point
        from below. With a kept-node `mask` it approaches `run(reset, mask)` (the induced subgraph).
        """
        if not float(eps) > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if impl not in PUSH_IMPLS:
            raise ValueError(f"unknown push impl {impl!r}; expected one of {', '.join(PUSH_IMPLS)}")
        mask = self._check_mask(mask)
        idx = np.asarray(nodes, dtype=np.int64).ravel()
        val = np.asarray(weights, dtype=np.float64).ravel()
        if idx.shape != val.shape:
            raise ValueError(f"nodes and weights differ in length ({idx.size} vs {val.size})")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(f"reset node ids must be in [0, {self.n}), got {idx.min()}..{idx.max()}")
        if not np.all(np.isfinite(val)) or (val.size and val.min() < 0):
            raise ValueError("reset weights must be finite and ≥ 0")
        # one entry per node (duplicates summed), zero-weight nodes and ones outside `mask` dropped
        idx, inv = np.unique(idx, return_inverse=True)
        val = np.bincount(inv, weights=val, minlength=idx.size)
        keep = val > 0
        if mask is not None:
            keep &= mask[idx]
        idx, val = idx[keep], val[keep]
        if val.sum() <= 0:
            raise ValueError("reset vector is all zero: PPR needs at least one seed with positive weight")
        val = val / val.sum()
        solve = self._push_frontier if impl == "frontier" else self._push_loop
        return solve(idx, val, float(eps), mask)

    def _spread(self, srcs: np.ndarray, mass: np.ndarray, reset_idx: np.ndarray, reset_val: np.ndarray,
                mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Targets and amounts when each node of `srcs` sends `mass` along its out-edges (a dangling
        node sends it to the reset vector). With a kept-node `mask` the walk is `restricted`'s: each
        source's out-probabilities renormalised over its kept targets, a source with none dangling."""
        starts = self._indptr[srcs]
        counts = self._indptr[srcs + 1] - starts
        total = int(counts.sum())
        self.last_edges += total
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
        pos = offsets + np.arange(total)
        tgt = self._indices[pos]
        if mask is None:
            amt = np.repeat(mass, counts) * self._prob[pos]
            dangling_mass = float(mass[counts == 0].sum())
        else:
            src = np.repeat(np.arange(srcs.size), counts)
            kept = mask[tgt]
            tgt, prob, src = tgt[kept], self._prob[pos[kept]], src[kept]
            share = np.bincount(src, weights=prob, minlength=srcs.size)  # each source's kept out-probability
            scale = np.zeros(srcs.size)
            np.divide(mass, share, out=scale, where=share > 0)
            amt = scale[src] * prob
            dangling_mass = float(mass[share <= 0].sum())
        if dangling_mass > 0:
            tgt = np.concatenate([tgt, reset_idx])
            amt = np.concatenate([amt, dangling_mass * reset_val])
        return tgt, amt

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed p and res arrays of n floats, kept per thread: a fresh pair per query would page-fault
        in every page a push touches (most of a push's time on a 10M-node graph). `_estimate` zeroes
        the touched entries again."""
        work = self._work
        if getattr(work, "p", None) is None:
            work.p, work.res = np.zeros(self.n), np.zeros(self.n)
        return work.p, work.res

    def _push_frontier(self, idx: np.ndarray, val: np.ndarray, eps: float, mask: np.ndarray | None):
        """Synchronous rounds: every node over its threshold pushes at once (numpy gathers/scatters)."""
        d = self.damping
        p, res = self._buffers()
        res[idx] = val
        touched = [idx]
        frontier = idx[res[idx] >= eps * self._out_edges[idx]]
        self.last_pushes = self.last_edges = 0
        while frontier.size:
            self.last_pushes += frontier.size
            mass = res[frontier]
            res[frontier] = 0.0
            p[frontier] += (1.0 - d) * mass
            tgt, amt = self._spread(frontier, d * mass, idx, val, mask)
            if not tgt.size:
                break
            np.add.at(res, tgt, amt)
            touched.append(tgt)
            over = tgt[res[tgt] >= eps * self._out_edges[tgt]]
            frontier = sorted_unique(over)
        return self._estimate(p, res, sorted_unique(np.concatenate(touched)))

    def _estimate(self, p: np.ndarray, res: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nodes with mass, p + (1 − d)·res on them) over the `nodes` a push touched."""
        r = res[nodes]
        self.last_residual = float(r.sum())
        x = p[nodes] + (1.0 - self.damping) * r
        p[nodes] = 0.0  # leave the reused buffers zeroed for the next push
        res[nodes] = 0.0
        keep = x > 0
        return nodes[keep], x[keep]

    def _push_loop(self, idx: np.ndarray, val: np.ndarray, eps: float, mask: np.ndarray | None):
        """ACL's queue: one node pushed per step (a FIFO of nodes over their threshold)."""
        from collections import deque

        d = self.damping
        p, res = self._buffers()
        res[idx] = val
        thr = eps * self._out_edges
        touched = [idx]
        queue = deque(int(u) for u in idx if res[u] >= thr[u])
        queued = set(queue)
        self.last_pushes = self.last_edges = 0
        one = np.zeros(1, dtype=np.int64)
        while queue:
            u = queue.popleft()
            queued.discard(u)
            mass = res[u]
            if mass < thr[u]:
                continue
            self.last_pushes += 1
            res[u] = 0.0
            p[u] += (1.0 - d) * mass
            one[0] = u
            tgt, amt = self._spread(one, np.array([d * mass]), idx, val, mask)
            if not tgt.size:
                continue
            if tgt.size > 1 and np.unique(tgt).size != tgt.size:  # dangling mass may hit a neighbour twice
                np.add.at(res, tgt, amt)
            else:
                res[tgt] += amt
            touched.append(tgt)
            for v in tgt[res[tgt] >= thr[tgt]].tolist():
                if v not in queued:
                    queued.add(v)
                    queue.append(v)
        return self._estimate(p, res, sorted_unique(np.concatenate(touched)))


def igraph_reference(
    adjacency: sp.spmatrix | sp.sparray | np.ndarray,
    reset: np.ndarray,
    damping: float,
) -> np.ndarray:
    """igraph prpack personalized PageRank on the graph of `adjacency` (tests/benchmarks only).

    A symmetric adjacency becomes an undirected igraph graph (upper triangle), otherwise a
    directed one.  igraph counts an undirected loop edge twice in the degree, so a
    diagonal weight w is passed as a loop of weight w/2 to mean the same walk.
    """
    import igraph as ig

    a = _check_adjacency(adjacency)
    n = a.shape[0]
    symmetric = (a != a.T).nnz == 0
    if symmetric:
        coo = sp.triu(a, format="coo")
        w = np.where(coo.row == coo.col, coo.data / 2.0, coo.data)
    else:
        coo = a.tocoo()
        w = coo.data
    g = ig.Graph(n=n, edges=np.column_stack([coo.row, coo.col]).tolist(), directed=not symmetric)
    res = g.personalized_pagerank(
        damping=float(damping),
        reset=np.asarray(reset, dtype=np.float64).tolist(),
        weights=w.tolist(),
        directed=not symmetric,
        implementation="prpack",
    )
    return np.asarray(res, dtype=np.float64)
