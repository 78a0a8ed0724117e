"""The on-disk format of one index generation: names, and safe ways to read and write its files.

Both the writer (`hippograph.indexers`) and the reader (`hippograph.snapshot`) go through
this module, so a file name or an array's dtype is stated once. A generation holds::

    meta.sqlite                 tables (documents, passages, sentences, entities, facts, …)
    embeddings/<gran>.npy       raw float32 unit embeddings, one row per table row
    embedder/                   the embedder's own files (TF-IDF fit), when it has any
    graph/indptr.npy …          CSR adjacency (entities 0..E-1, then passages), edge kinds,
                                entity specificity, MinHash signatures of entity names
    vectors/<gran>/             flat or SPANN vector index; vectors/<gran>.vid2row.npy maps
                                stable vector ids to rows once a delete renumbered rows
    lexical/passages/           BM25 index of passage texts

Arrays are always read with ``allow_pickle=False``: an index directory is data, not code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from .errors import IndexCorruptError

GRANULARITIES = ("passages", "sentences", "facts", "entities")
"""The embedded unit kinds, in the order they are written and routed."""

META_DB = "meta.sqlite"
EMBEDDINGS_DIR = "embeddings"
EMBEDDER_DIR = "embedder"
GRAPH_DIR = "graph"
VECTORS_DIR = "vectors"
LEXICAL_DIR = "lexical"
LEXICAL_PASSAGES = "passages"

GRAPH_INDPTR = "indptr.npy"
GRAPH_INDICES = "indices.npy"
GRAPH_WEIGHTS = "weights.npy"
GRAPH_KINDS = "kinds.npy"
GRAPH_SPECIFICITY = "specificity.npy"
MINHASH_FILE = "minhash.npy"
VID_MAP = "{gran}.vid2row.npy"
"""Per-generation map vector id → row (-1 = deleted), present only when ids are not row numbers."""

EDGE_FACT = 0
EDGE_MENTION = 1
EDGE_SYNONYM = 2
EDGE_KIND_NAMES = {EDGE_FACT: "fact", EDGE_MENTION: "mention", EDGE_SYNONYM: "synonym"}
"""Edge-family codes stored in ``graph/kinds.npy`` (one int8 per CSR entry)."""

_CHUNK = 1 << 24


def embedding_path(gen: Path, gran: str) -> Path:
    return gen / EMBEDDINGS_DIR / f"{gran}.npy"


def vid_map_path(gen: Path, gran: str) -> Path:
    return gen / VECTORS_DIR / VID_MAP.format(gran=gran)


# ---- reading ------------------------------------------------------------------------------
def load_array(path: Path, *, mmap: bool = False) -> np.ndarray:
    """np.load without pickle (memory-mapped with `mmap`); a missing, garbled or pickled file
    raises IndexCorruptError naming it."""
    from .validate import load_npy

    return load_npy(path, mmap=mmap)  # header checked against the file size before anything is allocated


def load_embeddings(gen: Path, *, mmap: bool = True) -> dict[str, np.ndarray]:
    """The raw unit embeddings of a generation, memory-mapped by default (granularities without a file are absent)."""
    out = {}
    for gran in GRANULARITIES:
        path = embedding_path(gen, gran)
        if path.is_file():
            out[gran] = load_array(path, mmap=mmap)
    return out


def adjacency_from_arrays(graph_dir: Path, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The CSR adjacency and its edge-kind array from a generation's graph/ folder."""
    indptr = load_array(graph_dir / GRAPH_INDPTR)
    indices = load_array(graph_dir / GRAPH_INDICES)
    weights = load_array(graph_dir / GRAPH_WEIGHTS).astype(np.float64)
    kinds = load_array(graph_dir / GRAPH_KINDS)
    return sp.csr_matrix((weights, indices, indptr), shape=(n, n)), kinds


def iter_chunks(path: Path, start: int = 0, end: int | None = None, chunk: int = _CHUNK) -> Iterator[bytes]:
    """Bytes [start, end) of a file (to its end when ``end`` is None), in blocks of ``chunk``;
    stops early at a short file."""
    with open(path, "rb") as f:
        f.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            buf = f.read(chunk if left is None else min(chunk, left))
            if not buf:
                return
            yield buf
            if left is not None:
                left -= len(buf)


# ---- writing ------------------------------------------------------------------------------
def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync, rename over `path`, fsync the directory: all or nothing."""
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    """`write_bytes_atomic` of indented, key-sorted JSON."""
    write_bytes_atomic(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save without pickle, under a temp name renamed into place (a reader never sees half a file)."""
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RowWriter:
    """Fill a float32 ``.npy`` of known shape block by block (memory-mapped, never whole in RAM).

    Written under a temp name; `close` flushes and renames it into place, so a file at
    `path` is always complete.
    """

    def __init__(self, path: Path, rows: int, dim: int):
        self.path = Path(path)
        self.tmp = _tmp_name(self.path)
        self.rows, self.dim = int(rows), int(dim)
        self._out = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(self.rows, self.dim))
        self.filled = 0

    def append(self, block: np.ndarray, chunk_rows: int = 65536) -> None:
        """Append rows (an array or a memory map; copied `chunk_rows` at a time)."""
        n = len(block)
        if self.filled + n > self.rows:
            raise ValueError(f"{self.path}: {self.filled + n} rows written, {self.rows} expected")
        for a in range(0, n, chunk_rows):
            b = min(n, a + chunk_rows)
            self._out[self.filled + a:self.filled + b] = np.asarray(block[a:b], dtype=np.float32)
        self.filled += n

    def close(self) -> None:
        if self.filled != self.rows:
            raise ValueError(f"{self.path}: {self.filled} rows written, {self.rows} expected")
        self._out.flush()
        del self._out
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._out = None  # type: ignore[assignment]
        try:
            self.tmp.unlink()
        except OSError:
            pass


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link an immutable file into a new generation (copy where links are unsupported)."""
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def clone_tree(src: Path, dst: Path) -> None:
    """Recreate `src` at `dst` with hard links (immutable files shared between generations).
    Hidden leftovers (temp files) are not carried over."""
    dst.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            clone_tree(p, dst / p.name)
        else:
            link_or_copy(p, dst / p.name)
