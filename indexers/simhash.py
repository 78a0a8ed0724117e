"""SimHash (random-hyperplane LSH) codes and multi-probe masks for posting-list buckets.

bit_i = sign(r_i · (x − h)) with r_i ~ N(0, I): two vectors at angle θ (measured from
h) agree on a bit with probability 1 − θ/π. Inside a posting list the codes are taken
relative to the list's head h ("centred" SimHash): every entry of a list is close to
its head, so planes through the origin would put almost the whole list in one bucket,
while planes through the head split it evenly. A query reads only the buckets whose
code is within Hamming radius r of its own code (multi-probe), not the whole list.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_BITS = 12
"""Each list stores 2**bits + 1 bucket offsets, so bits are kept small."""


@dataclass
class SimHash:
    """Random hyperplanes (bits × dim, float32)."""

    planes: np.ndarray

    @classmethod
    def create(cls, dim: int, bits: int, seed: int = 0) -> "SimHash":
        """Draw ``bits`` Gaussian hyperplanes for ``dim``-dimensional vectors."""
        if not 1 <= bits <= MAX_BITS:
            raise ValueError(f"lsh_bits must be in 1..{MAX_BITS}, got {bits}")
        rng = np.random.default_rng(seed)
        return cls(rng.standard_normal((bits, dim)).astype(np.float32))

    @classmethod
    def pca(cls, R: np.ndarray, bits: int, seed: int = 0, sample: int = 50_000) -> "SimHash":
        """Data-dependent planes: the top ``bits`` principal directions of residuals R."""
        if not 1 <= bits <= MAX_BITS:
            raise ValueError(f"lsh_bits must be in 1..{MAX_BITS}, got {bits}")
        rng = np.random.default_rng(seed)
        if R.shape[0] > sample:
            R = R[rng.choice(R.shape[0], sample, replace=False)]
        R = np.asarray(R, dtype=np.float64)
        R = R - R.mean(axis=0)
        _, vecs = np.linalg.eigh(R.T @ R)
        return cls(np.ascontiguousarray(vecs[:, ::-1][:, :bits].T, dtype=np.float32))

    @property
    def bits(self) -> int:
        return int(self.planes.shape[0])

    def project(self, X: np.ndarray) -> np.ndarray:
        """Projections X·Rᵀ (n × bits)."""
        return np.asarray(X, dtype=np.float32) @ self.planes.T

    def codes(self, proj: np.ndarray, center_proj: np.ndarray | float = 0.0) -> np.ndarray:
        """Integer codes of projections relative to ``center_proj`` (the head's projection)."""
        bits = (np.asarray(proj) - center_proj) > 0
        weights = (1 << np.arange(self.bits)).astype(np.int64)
        return (bits.astype(np.int64) * weights).sum(axis=-1)


@lru_cache(maxsize=64)
def probe_masks(bits: int, radius: int) -> np.ndarray:
    """All XOR masks of ``bits`` bits with popcount ≤ ``radius`` (the multi-probe set)."""
    allm = np.arange(1 << bits, dtype=np.int64)
    pop = np.array([bin(int(m)).count("1") for m in allm])
    masks = allm[pop <= radius]
    masks = masks[np.argsort(pop[pop <= radius], kind="stable")]
    masks.setflags(write=False)
    return masks


def bucket_offsets(codes_sorted: np.ndarray, bits: int) -> np.ndarray:
    """Offsets (2**bits + 1,) of each bucket in a list whose entries are sorted by code."""
    return np.searchsorted(codes_sorted, np.arange((1 << bits) + 1), side="left").astype(np.int32)
