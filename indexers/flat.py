"""Exact vector search (faiss IndexFlatIP / IndexFlatL2 + external ids) with the
same contract as :class:`hippograph.indexers.spann.SpannIndex`.

Small granularities (below a few thousand vectors) are searched exactly: brute force
is then faster than any ANN structure and has perfect recall. The directory format
mirrors SPANN's: ``header.json`` + ``vectors.gN.npy`` + ``ids.gN.npy``.

Compact variant: built with ``shared_vectors`` (a path relative to the index folder, inside
the folder two levels up — the generation), the index stores no vectors of its own and reads
that file (the generation's ``embeddings/<gran>.npy``, the same rows) through a memory map
when opened (upcast to float32 from the stored int8 / float16 codes: `hippograph.format.Embeddings`);
the header records it as ``files.vectors = {"ref": ..., "bytes": ...}``. Any
`add` / `remove` writes the index's own vectors file again.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hippograph.errors import IndexCorruptError
from hippograph.format import open_embeddings

from . import _diskio as dio

logger = logging.getLogger(__name__)

FORMAT = "hippograph-flat"
VERSION = 1
INDEX_FORMATS = ("hippograph-flat", "hippograph-spann")
METRICS = ("ip", "l2")


# ----------------------------------------------------------------- input checks (shared)
def check_metric(metric: str) -> str:
    """Validate a metric name: 'ip' (inner product / cosine on normalised vectors) or 'l2'."""
    m = str(metric).lower()
    if m not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return m


def as_matrix(vectors: Any, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """float32 C-contiguous n × d matrix; clear errors for wrong shape / NaN / inf."""
    X = np.asarray(vectors)
    if X.dtype == object:
        raise TypeError(f"{what}: expected a numeric array, got dtype object")
    if X.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (n × dim), got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"{what}: dimension {X.shape[1]} does not match the index dimension {dim}")
    if X.size and not np.isfinite(X).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return X


ROW_BLOCK = 65_536
"""Rows per block of a whole-input pass over a row source (finite check, nearest centroids,
centroid sums, projections): 96 MiB of float32 at 384 dimensions."""


def as_row_source(vectors: Any, what: str = "vectors") -> Any:
    """float32 rows to build an index from, without copying a stored matrix.

    Arrays and lists become the float32 matrix `as_matrix` makes. An object with a 2-D
    ``shape`` that returns float32 rows for slices and row arrays (`hippograph.format.Embeddings`:
    memory-mapped int8 codes, dequantised on access) is kept as it is and checked a block at a
    time, so a build of millions of vectors holds blocks of them rather than all of them as float32.
    """
    if isinstance(vectors, (np.ndarray, list, tuple)) or not (hasattr(vectors, "shape") and hasattr(vectors, "__getitem__")):
        return as_matrix(vectors, what=what)
    shape = tuple(vectors.shape)
    if len(shape) != 2:
        raise ValueError(f"{what}: expected a 2-D array (n × dim), got shape {shape}")
    for _, block in row_blocks(vectors):
        if not np.isfinite(block).all():
            raise ValueError(f"{what}: contains NaN or infinite values")
    return vectors


def row_blocks(X: Any, block: int | None = None) -> Any:
    """(first row, float32 C-contiguous rows) blocks of a matrix or row source, in order
    (`ROW_BLOCK` rows each by default; blocks of a float32 matrix are views, not copies)."""
    block = block or ROW_BLOCK
    for b0 in range(0, int(X.shape[0]), block):
        yield b0, np.ascontiguousarray(X[b0:b0 + block], dtype=np.float32)


def as_ids(ids: Any, n: int, start: int = 0) -> np.ndarray:
    """int64 ids (default start..start+n-1); must be unique and ≥ 0 (-1 is the padding id)."""
    if ids is None:
        return np.arange(start, start + n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"ids: expected {n} ids (one per vector), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError("ids: must be ≥ 0 (-1 marks padding in search results)")
    if np.unique(arr).size != arr.size:
        raise ValueError("ids: contains duplicates")
    return arr


def as_queries(queries: Any, dim: int) -> tuple[np.ndarray, bool]:
    """(nq × d float32, was_single) — a 1-D vector is one query."""
    Q = np.asarray(queries)
    single = Q.ndim == 1
    if single:
        Q = Q[None, :]
    Q = as_matrix(Q, dim, "queries")
    return Q, single


def check_k(k: Any) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def pad_value(metric: str) -> float:
    """Score given to padding slots: worst possible for the metric."""
    return -np.inf if metric == "ip" else np.inf


# ------------------------------------------------------------------------------ index
class FlatIndex:
    """Exact search over all vectors; same API as SpannIndex.

    Scores: inner product (descending) for ``metric="ip"``, squared L2 distance
    (ascending) for ``metric="l2"``. Missing results are padded with id -1.
    """

    def __init__(self, path: Path, metric: str, dim: int, vectors: Any, ids: np.ndarray,
                 header: dict[str, Any]):
        self.path = Path(path)
        self.metric = metric
        self.dim = dim
        self._ids = ids
        self._header = header
        self._pending: Any = vectors  # loaded into faiss on first use (a shared file stays memory-mapped till then)
        self._faiss: Any = None
        self._lock = threading.Lock()

    @property
    def _index(self) -> Any:
        """The faiss index, filled from the vectors on first use: opening an index (e.g. by a
        writer that only reads the manifest's generation) costs no float32 copy of them."""
        if self._faiss is None:
            with self._lock:  # concurrent first searches (server threads) load it once
                if self._faiss is None:
                    index = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
                    if len(self._pending):
                        index.add(np.ascontiguousarray(np.asarray(self._pending), dtype=np.float32))
                    self._faiss, self._pending = index, None
        return self._faiss

    # ---- construction -----------------------------------------------------------
    @classmethod
    def build(cls, vectors: Any, ids: Any = None, *, path: str | Path, metric: str = "ip",
              overwrite: bool = False, shared_vectors: str | None = None) -> "FlatIndex":
        """Store ``vectors`` (n × d) with ``ids`` (default 0..n-1) in directory ``path``.

        `shared_vectors`: an embeddings file (`hippograph.format.open_embeddings`), relative to
        `path`, whose rows read back as exactly these vectors (see the module docstring); the
        index then stores only its ids and refers to it.
        """
        metric = check_metric(metric)
        X = as_matrix(vectors)
        I = as_ids(ids, X.shape[0])
        path = Path(path)
        gen = dio.prepare_dir(path, INDEX_FORMATS, overwrite)
        header = {"format": FORMAT, "version": VERSION, "metric": metric, "dim": int(X.shape[1]),
                  "n_vectors": int(X.shape[0]), "generation": gen - 1, "created": time.time(), "files": {}}
        self = cls(path, metric, int(X.shape[1]), X, I, header)
        if shared_vectors is not None:
            ref = _shared_path(path, str(shared_vectors))
            stored = _load_shared(ref) if ref.is_file() else None
            if stored is None or stored.shape != X.shape or not np.array_equal(stored, X):
                raise ValueError(f"shared_vectors {ref}: does not hold exactly the vectors being indexed")
            self._write(X, shared=str(shared_vectors))
        else:
            self._write(X)
        return self

    @classmethod
    def write_shared(cls, path: str | Path, shared_vectors: str, *, metric: str = "ip", overwrite: bool = False) -> None:
        """Write a flat index over every row of an embeddings file (ids = row numbers) without
        reading the vectors: only the ids and the header are written, so a write that rebuilds
        a small granularity's index costs its row count, not its vectors (`open` reads them)."""
        metric = check_metric(metric)
        path = Path(path)
        gen = dio.prepare_dir(path, INDEX_FORMATS, overwrite)
        ref = _shared_path(path, str(shared_vectors))
        if not ref.is_file():
            raise ValueError(f"shared_vectors {ref}: no such file")
        n, dim = open_embeddings(ref, mmap=True).shape  # header only
        header = {"format": FORMAT, "version": VERSION, "metric": metric, "dim": int(dim), "n_vectors": int(n),
                  "generation": gen - 1, "created": time.time(), "files": {}}
        self = cls.__new__(cls)
        self.path, self.metric, self.dim = path, metric, int(dim)
        self._ids, self._header = np.arange(n, dtype=np.int64), header
        self._write(np.zeros((0, dim), np.float32), shared=str(shared_vectors))

    @classmethod
    def open(cls, path: str | Path) -> "FlatIndex":
        """Open an index written by :meth:`build`; raises IndexNotFoundError / IndexCorruptError."""
        path = Path(path)
        header = dio.read_header(path, FORMAT, VERSION)
        try:
            metric = check_metric(header["metric"])
            dim = int(header["dim"])
            n = int(header["n_vectors"])
            files = header["files"]
            shared = isinstance(files["vectors"], dict) and "ref" in files["vectors"]
            vpath = _check_shared(path, files["vectors"]) if shared else dio.check_file(path, files["vectors"], "vectors")
            ipath = dio.check_file(path, files["ids"], "ids")
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{path / dio.HEADER}: incomplete flat-index header ({exc!r})") from exc
        X = _open_shared(vpath) if shared else dio.load_npy(vpath, "vectors", dtype=np.float32, ndim=2)
        I = dio.load_npy(ipath, "ids", dtype=np.int64, ndim=1)
        if X.shape != (n, dim) or I.shape != (n,):
            raise IndexCorruptError(f"{path}: arrays have shapes {X.shape}, {I.shape}; header says {n} × {dim}")
        return cls(path, metric, dim, X, I, header)

    def _vectors(self) -> np.ndarray:
        if self._index.ntotal == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, self._index.ntotal)

    def _write(self, X: np.ndarray | None = None, shared: str | None = None) -> None:
        X = self._vectors() if X is None else X
        g = int(self._header["generation"]) + 1  # fresh names: the live files stay untouched
        if shared is not None:
            vectors = {"ref": shared, "bytes": _shared_path(self.path, shared).stat().st_size}
        else:
            vectors = dio.write_npy(self.path, f"vectors.g{g}.npy", X)
        files = {"vectors": vectors, "ids": dio.write_npy(self.path, f"ids.g{g}.npy", self._ids)}
        self._header.update(files=files, n_vectors=int(self._ids.size), generation=g, updated=time.time())
        dio.write_header(self.path, self._header)
        dio.remove_unreferenced(self.path, {r["name"] for r in files.values() if "name" in r})

    # ---- search -----------------------------------------------------------------
    def search(self, queries: Any, k: int, **_ignored: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: (scores, ids), shapes (nq, k) — or (k,) for one 1-D query.

        SPANN search parameters (max_lists, dist_ratio, lsh_radius) are accepted and
        ignored so callers need not know which index they hold.
        """
        k = check_k(k)
        Q, single = as_queries(queries, self.dim)
        nq = Q.shape[0]
        scores = np.full((nq, k), pad_value(self.metric), dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        n = self._index.ntotal
        if n and nq:
            kk = min(k, n)
            D, P = self._index.search(Q, kk)
            ok = P >= 0
            scores[:, :kk] = np.where(ok, D, scores[:, :kk])
            ids[:, :kk] = np.where(ok, self._ids[np.maximum(P, 0)], -1)
        return (scores[0], ids[0]) if single else (scores, ids)

    # ---- updates ----------------------------------------------------------------
    def add(self, vectors: Any, ids: Any) -> None:
        """Append vectors with new unique ids (rewrites the files, then the header)."""
        X = as_matrix(vectors, self.dim)
        I = as_ids(ids, X.shape[0])
        dup = I[np.isin(I, self._ids)]
        if dup.size:
            raise ValueError(f"add: ids already in the index: {dup[:10].tolist()}")
        if not X.shape[0]:
            return
        self._index.add(X)
        self._ids = np.concatenate([self._ids, I])
        self._write()

    def remove(self, ids: Any) -> int:
        """Delete vectors by id; unknown ids raise KeyError. Returns the number removed."""
        I = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        missing = I[~np.isin(I, self._ids)]
        if missing.size:
            raise KeyError(f"remove: ids not in the index: {missing[:10].tolist()}")
        if not I.size:
            return 0
        keep = ~np.isin(self._ids, I)
        X = self._vectors()[keep]
        self._ids = self._ids[keep]
        self._index.reset()
        if len(X):
            self._index.add(X)
        self._write(X)
        return int(I.size)

    def compact(self) -> None:
        """Nothing to do: removals are physical in a flat index."""

    # ---- introspection ----------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def ids(self) -> np.ndarray:
        """All stored ids (a copy)."""
        return self._ids.copy()

    def memory_bytes(self) -> int:
        """Bytes held in RAM: all vectors plus the ids."""
        return int(self._ids.size * self.dim * 4 + self._ids.nbytes)

    def __repr__(self) -> str:
        return f"FlatIndex(path={str(self.path)!r}, metric={self.metric!r}, dim={self.dim}, n={len(self)})"


# ------------------------------------------------------------------- shared vectors (compact files)
def _shared_path(index_dir: Path, ref: str) -> Path:
    """Resolve a shared-vectors reference; it must stay inside the generation (two levels up)."""
    base = Path(index_dir).resolve()
    target = (base / ref).resolve()
    generation = base.parent.parent
    if not ref or Path(ref).is_absolute() or generation not in target.parents:
        raise IndexCorruptError(f"{index_dir / dio.HEADER}: shared vectors {ref!r} point outside the index generation")
    return target


def _check_shared(index_dir: Path, rec: dict[str, Any]) -> Path:
    path = _shared_path(index_dir, str(rec["ref"]))
    if not path.is_file():
        raise IndexCorruptError(f"{path}: shared vectors file named in {index_dir / dio.HEADER} is missing")
    size = path.stat().st_size
    if size != int(rec["bytes"]):
        raise IndexCorruptError(f"{path}: shared vectors file has {size} bytes, {index_dir / dio.HEADER} says {rec['bytes']}")
    return path


def _open_shared(path: Path) -> Any:
    """A shared embeddings file, memory-mapped (`hippograph.format.Embeddings`, float32 on access)."""
    try:
        return open_embeddings(path, mmap=True)
    except IndexCorruptError:
        raise
    except Exception as exc:  # noqa: BLE001 - garbled header, pickled data, I/O error
        raise IndexCorruptError(f"{path}: cannot read shared vectors ({exc})") from exc


def _load_shared(path: Path) -> np.ndarray:
    """The float32 rows of a shared embeddings file."""
    return np.asarray(_open_shared(path))
