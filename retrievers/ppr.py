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
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["transition_matrix", "PPR", "igraph_reference"]


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
        self.matrix: sp.csr_matrix = _transition(a)
        self.dangling: np.ndarray = _out_degree(a) == 0
        self._dangling_idx = np.flatnonzero(self.dangling)
        self._restricted: dict[bytes, tuple[sp.csr_matrix, np.ndarray]] = {}
        self.last_iterations: int = 0
        """Iterations of the last `run` (the maximum over the columns of a block)."""
        self.last_converged: bool = True

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
