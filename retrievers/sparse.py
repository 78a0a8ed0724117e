"""Sparse score vectors for the query path: a score per passage (or entity) stored as the few
ids that have evidence, so one query costs what its candidates cost, not the corpus size.

`SparseScores` is a length-n vector held as ascending ids, their values and one `fill` value
for every other id.  Its operations (`minmax`, weighted sums, `top`) give exactly what the
same operation gives on the dense vector `toarray()` (same ties: lower id first), which is
what lets the engine fuse candidate lists instead of n-long arrays (tests/test_engine.py
checks candidate-only scoring against full scoring).  It converts to a numpy array on demand
(`np.asarray`, slicing with masks, arithmetic), so callers that want a dense vector get one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SparseScores", "sorted_unique", "weighted_sum"]


def sorted_unique(ids: np.ndarray) -> np.ndarray:
    """`np.unique(ids)` for an integer array, by sorting: the same ascending distinct ids, but
    numpy 2.4's hash-based unique is 6–7× slower on the 2k–44k ids a query's push and fusion
    produce (44k ids: 4.0 vs 0.6 ms)."""
    ids = np.sort(np.asarray(ids).ravel())
    if ids.size < 2:
        return ids
    first = np.empty(ids.size, dtype=bool)
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    return ids[first]


class SparseScores:
    """Length-`n` score vector: `val[j]` at id `idx[j]` (ascending, unique), `fill` elsewhere."""

    __slots__ = ("n", "idx", "val", "fill")

    def __init__(self, n: int, idx: np.ndarray, val: np.ndarray, fill: float = 0.0) -> None:
        self.n = int(n)
        self.idx = np.asarray(idx, dtype=np.int64)
        self.val = np.asarray(val, dtype=np.float64)
        self.fill = float(fill)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def zeros(cls, n: int) -> "SparseScores":
        return cls(n, np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def from_dense(cls, x: np.ndarray) -> "SparseScores":
        """The non-zero entries of a dense vector (fill 0)."""
        x = np.asarray(x, dtype=np.float64)
        idx = np.flatnonzero(x)
        return cls(len(x), idx, x[idx])

    @classmethod
    def max_at(cls, n: int, ids: np.ndarray, scores: np.ndarray) -> "SparseScores":
        """Like ``out = zeros(n); np.maximum.at(out, ids, scores)``: the best score per id, floored at 0."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return cls.zeros(n)
        uniq, inv = np.unique(ids, return_inverse=True)
        best = np.full(uniq.size, -np.inf)
        np.maximum.at(best, inv, np.asarray(scores, dtype=np.float64))
        return cls(n, uniq, np.maximum(best, 0.0))

    # ---- access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"SparseScores(n={self.n}, stored={self.idx.size}, fill={self.fill:g})"

    def at(self, i: int) -> float:
        """The score of id `i` (a binary search, not a dense lookup)."""
        j = int(np.searchsorted(self.idx, i))
        if j < self.idx.size and self.idx[j] == i:
            return float(self.val[j])
        return self.fill

    def values_at(self, ids: np.ndarray) -> np.ndarray:
        """Scores of many ids at once."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, self.fill)
        if self.idx.size:
            j = np.minimum(np.searchsorted(self.idx, ids), self.idx.size - 1)
            hit = self.idx[j] == ids
            out[hit] = self.val[j[hit]]
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            if not -self.n <= key < self.n:
                raise IndexError(f"index {key} out of range for {self.n} scores")
            return self.at(int(key) % self.n)
        return self.toarray()[key]

    def toarray(self) -> np.ndarray:
        out = np.full(self.n, self.fill)
        out[self.idx] = self.val
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self.toarray()
        return a if dtype is None else a.astype(dtype)

    def covers_all(self) -> bool:
        return self.idx.size >= self.n

    def any(self) -> bool:
        """True if some score is non-zero (like ``toarray().any()``)."""
        return bool((self.fill != 0 and not self.covers_all()) or np.any(self.val != 0))

    # ---- arithmetic -------------------------------------------------------------------------
    def minmax(self) -> "SparseScores":
        """`fusion.minmax` of the dense vector: (x − min) / (max − min), zeros when constant."""
        if self.n == 0:
            return self
        vals = self.val if self.covers_all() else np.append(self.val, self.fill)
        lo, hi = vals.min(), vals.max()
        span = hi - lo
        if span <= 0:
            return SparseScores.zeros(self.n)
        return SparseScores(self.n, self.idx, (self.val - lo) / span, (self.fill - lo) / span)

    def scaled(self, w: float) -> "SparseScores":
        return SparseScores(self.n, self.idx, self.val * w, self.fill * w)

    def plus(self, other: "SparseScores") -> "SparseScores":
        """Element-wise sum over the union of both supports."""
        if other.n != self.n:
            raise ValueError(f"cannot add score vectors of length {self.n} and {other.n}")
        idx = sorted_unique(np.concatenate((self.idx, other.idx)))
        return SparseScores(self.n, idx, self.values_at(idx) + other.values_at(idx), self.fill + other.fill)

    def times(self, other: "SparseScores") -> "SparseScores":
        """Element-wise product."""
        if other.n != self.n:
            raise ValueError(f"cannot multiply score vectors of length {self.n} and {other.n}")
        if self.fill == 0 or other.fill == 0:  # the product is zero off the smaller support
            a, b = (self, other) if self.fill == 0 else (other, self)
            return SparseScores(self.n, a.idx, a.val * b.values_at(a.idx), 0.0)
        idx = sorted_unique(np.concatenate((self.idx, other.idx)))
        return SparseScores(self.n, idx, self.values_at(idx) * other.values_at(idx), self.fill * other.fill)

    def where(self, keep: np.ndarray) -> "SparseScores":
        """``np.where(keep, x, 0)`` for a boolean mask `keep` (a metadata filter's passages)."""
        if self.fill == 0:
            sel = np.asarray(keep, dtype=bool)[self.idx]
            return SparseScores(self.n, self.idx[sel], self.val[sel])
        return SparseScores.from_dense(np.where(keep, self.toarray(), 0.0))

    def with_values(self, ids: np.ndarray, values: np.ndarray) -> "SparseScores":
        """A copy with the scores of `ids` set to `values`."""
        ids = np.asarray(ids, dtype=np.int64)
        idx = sorted_unique(np.concatenate((self.idx, np.asarray(ids, dtype=np.int64))))
        val = self.values_at(idx)
        val[np.searchsorted(idx, ids)] = values
        return SparseScores(self.n, idx, val, self.fill)

    # ---- ranking ---------------------------------------------------------------------------
    def top(self, k: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Ids of the k largest scores, best first, ties by lower id — ``_topk(toarray(), k)``
        without building the dense vector (k=None ranks all n). With `rows` (ascending ids; a
        filter's kept passages) only those are ranked: ``rows[_topk(toarray()[rows], k)]``."""
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            pos = np.searchsorted(rows, self.idx)
            hit = pos < rows.size
            hit[hit] = rows[pos[hit]] == self.idx[hit]
            return rows[SparseScores(rows.size, pos[hit], self.val[hit], self.fill).top(k)]
        k = self.n if k is None else min(int(k), self.n)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        order = np.lexsort((self.idx, -self.val))
        ranked_idx, ranked_val = self.idx[order], self.val[order]
        above = ranked_idx[ranked_val > self.fill]
        if above.size >= k:
            return above[:k]
        need = k - above.size
        # ids scoring exactly `fill`: stored ones equal to it and every id not stored, ascending
        stored_equal = ranked_idx[ranked_val == self.fill]
        upto = min(self.n, need + self.idx.size)
        unstored = np.setdiff1d(np.arange(upto, dtype=np.int64), self.idx, assume_unique=True)
        equal = sorted_unique(np.concatenate((stored_equal, unstored)))[:need]
        below = ranked_idx[ranked_val < self.fill][: max(0, need - equal.size)]
        return np.concatenate([above, equal, below])

    def top_values(self, k: int) -> np.ndarray:
        """The k largest scores, best first."""
        return self.values_at(self.top(k))


def _delegate(name: str):
    def op(self: SparseScores, *args):
        return getattr(self.toarray(), name)(*args)

    op.__name__ = name
    op.__doc__ = f"Dense `{name}` (builds the n-long array: for tests and small corpora)."
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__neg__", "__gt__", "__ge__", "__lt__", "__le__"):
    setattr(SparseScores, _name, _delegate(_name))


def weighted_sum(terms: Sequence[tuple[float, SparseScores]], n: int) -> SparseScores:
    """Σ w · x over `terms` (an empty sum is all zeros)."""
    total = SparseScores.zeros(n)
    for w, x in terms:
        total = total.plus(x.scaled(w))
    return total
