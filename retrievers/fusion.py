"""Score fusion helpers: normalisation, reciprocal rank fusion, weighted sums, and
mapping scores of finer units (sentences, facts, entities) up to their passages.

All functions are pure numpy/scipy, take arrays in and return new arrays.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["minmax", "rrf", "weighted_sum", "scatter_max", "scatter_sum", "map_to_passages"]

REDUCES = ("max", "sum")


def _finite_1d(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def minmax(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] by (x − min) / (max − min); a constant (or empty) vector gives zeros.

    Zeros rather than NaN (or ones) so a scorer that cannot tell items apart adds nothing
    to a fusion.
    """
    a = _finite_1d(x, "minmax input")
    if a.size == 0:
        return a.copy()
    lo, hi = a.min(), a.max()
    span = hi - lo
    if span <= 0:
        return np.zeros_like(a)
    return (a - lo) / span


def rrf(rankings: Sequence[np.ndarray], k: float = 60, n: int | None = None) -> np.ndarray:
    """Reciprocal rank fusion (Cormack et al. 2009): score(i) = Σ_lists 1 / (k + rank_i).

    Each ranking is an array of item ids, best first; ranks start at 1.  Items missing
    from a list get nothing from it.  `n` is the number of items (default: max id + 1).
    A ranking that repeats an id is an error (it would count the item twice).
    """
    if k < 0:
        raise ValueError(f"rrf k must be ≥ 0, got {k}")
    ids = []
    for j, ranking in enumerate(rankings):
        r = np.asarray(ranking)
        if r.ndim != 1:
            raise ValueError(f"ranking {j} must be a 1-D array of item ids, got shape {r.shape}")
        if r.size and not np.issubdtype(r.dtype, np.integer):
            raise ValueError(f"ranking {j} must hold integer item ids, got dtype {r.dtype}")
        r = r.astype(np.int64, copy=False)
        if r.size and r.min() < 0:
            raise ValueError(f"ranking {j} contains a negative item id ({r.min()})")
        if np.unique(r).size != r.size:
            raise ValueError(f"ranking {j} repeats an item id")
        ids.append(r)
    max_id = max((int(r.max()) for r in ids if r.size), default=-1)
    if n is None:
        n = max_id + 1
    elif max_id >= n:
        raise ValueError(f"item id {max_id} out of range for n={n}")
    scores = np.zeros(int(n), dtype=np.float64)
    for r in ids:
        scores[r] += 1.0 / (k + np.arange(1, r.size + 1, dtype=np.float64))
    return scores


def weighted_sum(score_vectors: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Σ_g weights[g] · minmax(score_vectors[g]) over items aligned across vectors.

    A vector with no entry in `weights` contributes 0 (like a router weight of 0); weights
    for names without a vector are ignored.  Weights are used as given (not renormalised).
    """
    if not score_vectors:
        raise ValueError("weighted_sum needs at least one score vector")
    lengths = {g: np.asarray(v).shape for g, v in score_vectors.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"score vectors must have the same shape, got {lengths}")
    out = None
    for g, v in score_vectors.items():
        w = float(weights.get(g, 0.0))
        if not np.isfinite(w):
            raise ValueError(f"weight for {g!r} is not finite: {w}")
        term = w * minmax(_finite_1d(v, f"score vector {g!r}"))
        out = term if out is None else out + term
    return out


def _check_units(unit_scores: np.ndarray, n_passages: int) -> np.ndarray:
    s = _finite_1d(unit_scores, "unit_scores")
    if int(n_passages) < 0:
        raise ValueError(f"n_passages must be ≥ 0, got {n_passages}")
    return s


def _reduce(values: np.ndarray, targets: np.ndarray, n: int, reduce: str, fill: float) -> np.ndarray:
    """Reduce `values` grouped by `targets` (validated int ids < n) into n slots."""
    if reduce == "sum":
        out = np.bincount(targets, weights=values, minlength=n).astype(np.float64)
        if fill != 0.0:
            out[np.bincount(targets, minlength=n) == 0] = fill
        return out
    if reduce == "max":
        out = np.full(n, -np.inf)
        np.maximum.at(out, targets, values)
        out[np.isneginf(out)] = fill
        return out
    raise ValueError(f"unknown reduce {reduce!r}; expected one of {REDUCES}")


def scatter_max(
    unit_scores: np.ndarray, unit_to_passage: np.ndarray, n_passages: int, *, fill: float = 0.0
) -> np.ndarray:
    """Passage score = max score of its units; passages without units get `fill`.

    `unit_to_passage[u]` is the passage index of unit u (one passage per unit; use
    `map_to_passages` when a unit can belong to several).
    """
    s = _check_units(unit_scores, n_passages)
    t = _check_index(unit_to_passage, s.size, n_passages)
    return _reduce(s, t, int(n_passages), "max", fill)


def scatter_sum(
    unit_scores: np.ndarray, unit_to_passage: np.ndarray, n_passages: int, *, fill: float = 0.0
) -> np.ndarray:
    """Passage score = sum of its units' scores; passages without units get `fill`."""
    s = _check_units(unit_scores, n_passages)
    t = _check_index(unit_to_passage, s.size, n_passages)
    return _reduce(s, t, int(n_passages), "sum", fill)


def _check_index(unit_to_passage: np.ndarray, n_units: int, n_passages: int) -> np.ndarray:
    t = np.asarray(unit_to_passage)
    if t.shape != (n_units,):
        raise ValueError(f"unit_to_passage must have shape ({n_units},) like unit_scores, got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"unit_to_passage must hold integer passage ids, got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    if t.size and (t.min() < 0 or t.max() >= n_passages):
        raise ValueError(
            f"unit_to_passage has ids outside [0, {n_passages}): min {t.min()}, max {t.max()}"
        )
    return t


def map_to_passages(
    unit_scores: np.ndarray,
    mapping: sp.spmatrix | sp.sparray,
    reduce: str = "max",
    *,
    fill: float = 0.0,
) -> np.ndarray:
    """Map unit scores to passages through a sparse units × passages membership matrix.

    A stored non-zero at (u, p) means unit u occurs in passage p (a fact or entity can
    occur in several passages); the stored values are ignored, so a mapping built from
    counts gives the same result as a 0/1 one.  `reduce` is "max" or "sum"; passages
    with no member units get `fill`.
    """
    if reduce not in REDUCES:
        raise ValueError(f"unknown reduce {reduce!r}; expected one of {REDUCES}")
    if not sp.issparse(mapping):
        raise TypeError(f"mapping must be a scipy sparse units×passages matrix, got {type(mapping).__name__}")
    s = _finite_1d(unit_scores, "unit_scores")
    if mapping.shape[0] != s.size:
        raise ValueError(f"mapping has {mapping.shape[0]} rows but there are {s.size} unit scores")
    m = sp.coo_matrix(mapping, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    return _reduce(s[m.row], m.col.astype(np.int64), int(mapping.shape[1]), reduce, fill)
