"""Per-entry "tangent" SimHash sketches: a cheap in-list prefilter for SPANN posting lists.

An entry x of the list headed by h gets the code bit_i = sign(r_i · (x − (x·h/‖h‖²) h)),
i.e. the SimHash of x's component orthogonal to its head (r_i ~ N(0, I)). Inside one
list every entry is close to h, so the head direction carries almost no information
for telling entries apart; hashing what is left of x once h is projected out spends
all bits on the directions that do. A query q gets, for each probed list j, the code of
q's component orthogonal to h_j, and the Hamming distance to an entry's code estimates
the angle between the two tangent components (agreement probability 1 − θ/π per bit).

Measured (200k synthetic clustered vectors, eval/bench_ann.py): 256-bit sketches
keeping 15 % of the probed entries reach the recall of whole-list scanning at ≈ 3×
fewer bytes read; 128-bit sketches, centred codes sign(r·(x − h)) and plain sign(r·x)
were all weaker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BITS = 1024
"""Codes are stored per entry on disk; beyond this the sketches stop being cheap."""

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
"""Popcount of every byte value (fallback when numpy has no bitwise_count)."""


def check_bits(bits: int) -> int:
    """Validate a sketch width: 0 (disabled) or a positive multiple of 64 up to MAX_BITS."""
    if not isinstance(bits, (int, np.integer)) or bits < 0 or bits % 64 or bits > MAX_BITS:
        raise ValueError(f"sketch_bits must be 0 or a multiple of 64 up to {MAX_BITS}, got {bits!r}")
    return int(bits)


@dataclass
class TangentSketch:
    """Gaussian hyperplanes (bits × dim, float32) for tangent SimHash codes."""

    planes: np.ndarray

    @classmethod
    def create(cls, dim: int, bits: int, seed: int = 0) -> "TangentSketch":
        """Draw ``bits`` Gaussian hyperplanes for ``dim``-dimensional vectors (fixed seed)."""
        if check_bits(bits) == 0:
            raise ValueError("sketch_bits must be > 0 to create sketch planes")
        rng = np.random.default_rng(seed)
        return cls(rng.standard_normal((bits, dim)).astype(np.float32))

    @property
    def bits(self) -> int:
        return int(self.planes.shape[0])

    @property
    def code_bytes(self) -> int:
        """Bytes per stored code (one uint8 row)."""
        return self.bits // 8

    def _codes(self, proj: np.ndarray, alpha: np.ndarray, head_proj: np.ndarray) -> np.ndarray:
        """Packed sign bits of proj − alpha · head_proj (rows), as uint8 (n, bits/8)."""
        return np.packbits((proj - alpha[:, None] * head_proj) > 0, axis=1)

    def head_terms(self, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heads · planesᵀ, heads / ‖head‖²) for heads (m × dim); zero heads get zero terms."""
        H = np.asarray(heads, dtype=np.float32)
        n2 = np.einsum("ij,ij->i", H, H)
        inv = np.divide(1.0, n2, out=np.zeros_like(n2), where=n2 > 0)
        return H @ self.planes.T, H * inv[:, None]

    def encode(self, X: np.ndarray, owner: np.ndarray, heads: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Codes of entries X (n × dim) whose list heads are ``heads[owner]``: uint8 (n, bits/8)."""
        X = np.asarray(X, dtype=np.float32)
        owner = np.asarray(owner, dtype=np.int64)
        out = np.empty((X.shape[0], self.code_bytes), np.uint8)
        for c0 in range(0, X.shape[0], chunk):
            x, o = X[c0:c0 + chunk], owner[c0:c0 + chunk]
            u, inv = np.unique(o, return_inverse=True)
            hp, hn = self.head_terms(heads[u])
            alpha = np.einsum("ij,ij->i", x, hn[inv])
            out[c0:c0 + x.shape[0]] = self._codes(x @ self.planes.T, alpha, hp[inv])
        return out

    def query_codes(self, q: np.ndarray, head_proj: np.ndarray, head_scaled: np.ndarray) -> np.ndarray:
        """Codes of one query q relative to each of m heads, given their :meth:`head_terms`: (m, bits/8)."""
        q = np.asarray(q, dtype=np.float32)
        return self._codes(np.broadcast_to(self.planes @ q, head_proj.shape), head_scaled @ q, head_proj)


def hamming(codes: np.ndarray, qcodes: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances between packed codes (n, nbytes) and (n, nbytes) uint8.

    Popcount over uint64 words with np.bitwise_count (numpy ≥ 2): 0.25 ms per 20k 256-bit
    codes vs 1.1 ms for np.unpackbits or a 256-entry byte table (numpy 2.4, 1 thread);
    the byte table is the fallback for older numpy.
    """
    x = np.bitwise_xor(codes, qcodes)
    if hasattr(np, "bitwise_count") and x.shape[1] % 8 == 0 and x.flags.c_contiguous:
        return np.bitwise_count(x.view(np.uint64)).sum(axis=1, dtype=np.int32)
    return _POPCOUNT8[x].sum(axis=1, dtype=np.int32)
