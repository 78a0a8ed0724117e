"""The on-disk format of one index generation: names, and safe ways to read and write its files.

Both the writer (`hippograph.indexers`) and the reader (`hippograph.snapshot`) go through
this module, so a file name or an array's dtype is stated once. A generation holds::

    meta.sqlite                 tables (documents, passages, sentences, entities, facts, …)
    embeddings/<gran>.npy       unit embeddings, one row per table row, stored as
                                `Config.embedding_storage` says (see "Embedding storage")
    embeddings/<gran>.scale.npy float32 per-row scale of int8 storage
    embedder/                   the embedder's own files (TF-IDF fit), when it has any
    graph/upper_indptr.npy …    adjacency (entities 0..E-1, then passages) as its upper triangle,
                                entity-pair weights and kinds, MinHash band keys of entity names
    vectors/<gran>/             flat or SPANN vector index; vectors/<gran>.vid2row.npy maps
                                stable vector ids to rows once a delete renumbered rows
    lexical/passages/           BM25 index of passage texts

Arrays are always read with ``allow_pickle=False``: an index directory is data, not code.

Embedding storage (format version 2): each vector is stored once, in the generation's
embeddings file, and every reader (flat indexes, synonymy, the documents view, later writes)
reads it through `Embeddings`, which upcasts to float32 on access. ``int8`` (default): codes
``round(x / s)`` with the per-row scale ``s = max|x| / 127`` in ``<gran>.scale.npy`` (a
quarter of float32's bytes; cosine to the float32 vector ≥ 0.9999 on MiniLM vectors);
``float16``: half; ``float32``: as computed. Stored rows are copied as codes, never
re-quantised, so an index grown by `add` holds exactly the bytes a scratch build writes.
Version 1 generations (float32 files, no scales) are read as they are.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from .errors import IndexCorruptError

FORMAT_VERSION = 7
"""On-disk format version written into the manifest. 2: embeddings stored per
`EMBEDDING_STORAGE` (int8 + scales by default). 3: ``fact_passages`` holds each triple's
sentence as a character span of the passage text, not the sentence text (`tables.sentence_span`).
4: ``mentions`` is a WITHOUT ROWID table (`tables.upgrade_mentions`). 5: a passage text is stored
zlib-compressed (a BLOB) where that is smaller (`tables.pack_text`, `tables.upgrade_passage_text`).
6: ``synonyms`` is a WITHOUT ROWID table keyed by the entity pair with coded kinds
(`tables.SYNONYMS_TABLE`, `tables.upgrade_synonyms`) and ``facts_key`` indexes entity pairs only
(`tables.FACTS_KEY_INDEX`, `tables.upgrade_facts_key`).
7: the graph stores its symmetric adjacency once, as the strict upper triangle, with weights and
kinds of entity–entity edges only (`GRAPH_FILES`, `upper_graph`), and ``fact_passages`` is a WITHOUT
ROWID table keyed by (passage_idx, seq) (`tables.FACT_PASSAGES_TABLE`, `tables.upgrade_fact_passages_key`).
This code reads versions 1 to 7 (an older table is rewritten by the next write); a newer index
is refused with one line ("upgrade hippograph")."""

EMBEDDING_STORAGE = ("int8", "float16", "float32")
"""Stored dtypes of the embeddings files (`Config.embedding_storage`)."""
SCALE_SUFFIX = ".scale.npy"

GRANULARITIES = ("passages", "sentences", "facts", "entities")
"""The embedded unit kinds, in the order they are written and routed."""

META_DB = "meta.sqlite"
EMBEDDINGS_DIR = "embeddings"
EMBEDDER_DIR = "embedder"
GRAPH_DIR = "graph"
VECTORS_DIR = "vectors"
LEXICAL_DIR = "lexical"
LEXICAL_PASSAGES = "passages"

GRAPH_UPPER_INDPTR = "upper_indptr.npy"
GRAPH_UPPER_INDICES = "upper_indices.npy"
GRAPH_PAIR_WEIGHTS = "pair_weights.npy"
GRAPH_PAIR_KINDS = "pair_kinds.npy"
GRAPH_FILES = (GRAPH_UPPER_INDPTR, GRAPH_UPPER_INDICES, GRAPH_PAIR_WEIGHTS, GRAPH_PAIR_KINDS)
"""Format 7's graph: the symmetric adjacency stored once, as its strict upper triangle (CSR; entities
0..E-1 come before passages, so a mention edge is an entity row's passage column), and the weight
(float32) and kind (int8) of its entity–entity edges only: a mention edge weighs 1 and entity
specificity is 1 / its mention count (`graph_from_upper`). Kernel docs: 1,360 → 502 bytes per passage."""
GRAPH_INDPTR = "indptr.npy"
GRAPH_INDICES = "indices.npy"
GRAPH_WEIGHTS = "weights.npy"
GRAPH_KINDS = "kinds.npy"
GRAPH_SPECIFICITY = "specificity.npy"
"""Format 6 and before: both directions of every edge (CSR), a weight and kind per entry, specificity."""
MINHASH_FILE = "minhash.npy"
"""MinHash signatures (uint8, one row per entity) as indexes before the band keys stored them; read to convert."""
MINHASH_BANDS_FILE = "minhash_bands.npy"
"""MinHash LSH band keys (uint32, one row per entity, one column per band): what a write reads to link
new entities' surface forms (`indexers.graph_builder.band_keys`)."""
VID_MAP = "{gran}.vid2row.npy"
"""Per-generation map vector id → row (-1 = deleted), present only when ids are not row numbers."""

EDGE_FACT = 0
EDGE_MENTION = 1
EDGE_SYNONYM = 2
EDGE_KIND_NAMES = {EDGE_FACT: "fact", EDGE_MENTION: "mention", EDGE_SYNONYM: "synonym"}
"""Edge-family codes (``graph/pair_kinds.npy`` stores them for entity–entity edges)."""

_CHUNK = 1 << 24


def embedding_path(gen: Path, gran: str) -> Path:
    return gen / EMBEDDINGS_DIR / f"{gran}.npy"


def scale_path(path: Path) -> Path:
    """The per-row scale file next to an int8 embeddings file (``entities.npy`` → ``entities.scale.npy``)."""
    path = Path(path)
    return path.with_name(path.name[: -len(".npy")] + SCALE_SUFFIX if path.name.endswith(".npy") else path.name + SCALE_SUFFIX)


def vid_map_path(gen: Path, gran: str) -> Path:
    return gen / VECTORS_DIR / VID_MAP.format(gran=gran)


# ---- reading ------------------------------------------------------------------------------
def load_array(path: Path, *, mmap: bool = False) -> np.ndarray:
    """np.load without pickle (memory-mapped with `mmap`); a missing, garbled or pickled file
    raises IndexCorruptError naming it."""
    from .validate import load_npy

    return load_npy(path, mmap=mmap)  # header checked against the file size before anything is allocated


def load_embeddings(gen: Path, *, mmap: bool = True) -> dict[str, "Embeddings"]:
    """The unit embeddings of a generation (memory-mapped by default, float32 on access;
    granularities without a file are absent)."""
    out = {}
    for gran in GRANULARITIES:
        path = embedding_path(gen, gran)
        if path.is_file():
            out[gran] = open_embeddings(path, mmap=mmap)
    return out


def open_embeddings(path: Path, *, mmap: bool = True) -> "Embeddings":
    """An embeddings file (float32, float16, or int8 with its scale file) as `Embeddings`;
    anything else raises IndexCorruptError naming the file."""
    from .validate import load_npy

    path = Path(path)
    codes = load_npy(path, mmap=mmap)
    if codes.ndim != 2 or codes.dtype not in (np.float32, np.float16, np.int8):
        raise IndexCorruptError(f"{path}: embeddings have dtype {codes.dtype} and {codes.ndim} dimensions, "
                                f"expected a matrix of {', '.join(EMBEDDING_STORAGE)}")
    scales = None
    if codes.dtype == np.int8:
        sp_ = scale_path(path)
        if not sp_.is_file():
            raise IndexCorruptError(f"{sp_}: scale file of the int8 embeddings {path.name} is missing")
        scales = load_npy(sp_, mmap=mmap)
        if scales.dtype != np.float32 or scales.shape != (len(codes),):
            raise IndexCorruptError(f"{sp_}: scales have dtype {scales.dtype} and shape {scales.shape}, "
                                    f"expected float32 ({len(codes)},)")
    return Embeddings(codes, scales)


def quantize(block: np.ndarray, storage: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes, per-row scales or None) of float rows in `storage` (one of `EMBEDDING_STORAGE`)."""
    x = np.asarray(block, dtype=np.float32)
    if storage == "float32":
        return x, None
    if storage == "float16":
        return x.astype(np.float16), None
    if storage != "int8":
        raise ValueError(f"embedding storage {storage!r}: choose one of {', '.join(EMBEDDING_STORAGE)}")
    if x.ndim != 2:
        raise ValueError(f"quantize: expected rows (n × dim), got shape {x.shape}")
    scales = (np.abs(x).max(axis=1) / np.float32(127)).astype(np.float32) if x.size else np.zeros(len(x), np.float32)
    safe = np.where(scales > 0, scales, np.float32(1))
    codes = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def dequantize(codes: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """float32 rows from stored codes (and int8 scales)."""
    if scales is None:
        return np.asarray(codes, dtype=np.float32)
    out = np.array(codes, dtype=np.float32)  # a fresh array, scaled in place (no second n × dim temporary)
    out *= np.asarray(scales, dtype=np.float32)[:, None]
    return out


class Embeddings:
    """One granularity's stored embeddings, read as float32: ``len``, ``shape``, indexing by
    slice / row array (dequantised on access) and ``np.asarray`` (the whole matrix).
    `raw` gives the stored codes for copying them unchanged into a new generation."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, codes: np.ndarray, scales: np.ndarray | None = None):
        self.codes = codes
        self.scales = scales

    @property
    def storage(self) -> str:
        return str(self.codes.dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self[np.asarray([rows])][0]
        return dequantize(self.codes[rows], None if self.scales is None else self.scales[rows])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def rows_dot(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """float32 scores ``self[rows] @ q`` without dequantising the rows: int8 codes times q, then
        one multiply by the scale per row (a search's hot path; `np.take` gathers faster than
        fancy indexing of a memory map)."""
        rows = np.asarray(rows, dtype=np.int64)
        s = np.take(self.codes, rows, axis=0).astype(np.float32) @ np.asarray(q, dtype=np.float32)
        if self.scales is not None:
            s *= np.take(self.scales, rows)
        return np.asarray(s, dtype=np.float32)

    def raw(self, rows: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Stored (codes, scales or None) of `rows`."""
        return np.asarray(self.codes[rows]), None if self.scales is None else np.asarray(self.scales[rows])

def upper_graph(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, kinds: np.ndarray,
                n_entities: int) -> dict[str, np.ndarray]:
    """Format 7's graph files (`GRAPH_FILES` → array) from a symmetric CSR adjacency and its
    parallel edge kinds: the strict upper triangle, with weights and kinds of entity pairs only."""
    rows, keep = upper_entries(indptr, indices)
    return upper_files(rows[keep], np.asarray(indices[keep]), weights[keep], kinds[keep], len(indptr) - 1, n_entities)


def upper_entries(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of every entry, whether it lies right of the diagonal) of a square CSR matrix."""
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return rows, indices > rows


def upper_files(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, kinds: np.ndarray, n: int,
                n_entities: int) -> dict[str, np.ndarray]:
    """Format 7's graph files from the upper triangle's entries in CSR order (row, column, weight,
    kind each), over `n` nodes of which the first `n_entities` are entities."""
    nnz = len(cols)
    dtype = np.int32 if nnz <= np.iinfo(np.int32).max else np.int64
    pair = cols < n_entities
    return {GRAPH_UPPER_INDPTR: np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(dtype),
            GRAPH_UPPER_INDICES: cols.astype(np.int32 if n <= np.iinfo(np.int32).max else np.int64),
            GRAPH_PAIR_WEIGHTS: np.asarray(weights[pair], dtype=np.float32),
            GRAPH_PAIR_KINDS: np.asarray(kinds[pair], dtype=np.int8)}


def graph_from_upper(indptr: np.ndarray, indices: np.ndarray, pair_weights: np.ndarray, pair_kinds: np.ndarray,
                     n_entities: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(symmetric CSR adjacency with float64 weights, its int8 edge kinds, entity specificity) from
    format 7's upper triangle: the arrays format 6 stored, value for value (rows sorted)."""
    n = len(indptr) - 1
    nnz = len(indices)
    mention = np.asarray(indices) >= n_entities
    weights = np.ones(nnz, dtype=np.float32)
    weights[~mention] = pair_weights
    kinds = np.full(nnz, EDGE_MENTION, dtype=np.int8)
    kinds[~mention] = pair_kinds
    position = np.int32 if nnz <= np.iinfo(np.int32).max else np.int64  # of an upper entry
    # the lower triangle is the upper one's transpose: a CSC view (scipy's counting sort keeps rows sorted)
    lower = sp.csr_matrix((np.arange(nnz, dtype=position), indices, indptr), shape=(n, n)).tocsc()
    n_low, n_up = np.diff(lower.indptr), np.diff(indptr)
    full_ptr = np.concatenate([[0], np.cumsum(n_low + n_up)]).astype(np.int64)
    # row i = its lower entries (columns < i) then its upper ones (columns > i): sorted without a sort
    low_pos = np.repeat(full_ptr[:-1] - lower.indptr[:-1], n_low) + np.arange(len(lower.indices))
    up_pos = np.repeat(full_ptr[:-1] + n_low - np.asarray(indptr[:-1], np.int64), n_up) + np.arange(nnz)
    full_idx = np.empty(2 * nnz, dtype=np.int32 if n <= np.iinfo(np.int32).max else np.int64)
    source = np.empty(2 * nnz, dtype=position)
    full_idx[low_pos], source[low_pos] = lower.indices, lower.data
    full_idx[up_pos], source[up_pos] = indices, np.arange(nnz, dtype=position)
    adjacency = sp.csr_matrix((weights[source].astype(np.float64), full_idx, full_ptr), shape=(n, n))
    seen = np.concatenate([[0], np.cumsum(mention)])  # mention entries up to each offset: no per-entry row array
    mention_counts = seen[indptr[1:n_entities + 1]] - seen[indptr[:n_entities]]
    return adjacency, kinds[source], specificity_from_counts(mention_counts)


def specificity_from_counts(counts: np.ndarray) -> np.ndarray:
    """Entity specificity 1 / |P_i| (HippoRAG; 0 when no passage mentions it) as stored before
    format 7: float32 values, returned as float64."""
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore"):
        spec = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
    return spec.astype(np.float32).astype(np.float64)


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


@contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only when the block finishes, so a write
    that fails half-way (full disk, Ctrl-C) keeps the previous file and leaves no temp behind."""
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def _copy_range(src: Path, src_offset: int, dst: Path, dst_offset: int, nbytes: int) -> None:
    """Copy `nbytes` from `src` at `src_offset` into the existing file `dst` at `dst_offset` with
    `os.copy_file_range` (in the kernel), else in 8 MB reads and writes; then fsync `dst`."""
    with open(src, "rb") as fi, open(dst, "r+b") as fo:
        done = 0
        while done < nbytes:
            want = min(nbytes - done, 1 << 30)
            try:
                got = os.copy_file_range(fi.fileno(), fo.fileno(), want, src_offset + done, dst_offset + done)
            except (AttributeError, OSError):
                got = 0
            if got <= 0:  # not supported here (or across filesystems): plain reads and writes
                fi.seek(src_offset + done)
                fo.seek(dst_offset + done)
                while done < nbytes:
                    buf = fi.read(min(nbytes - done, 8 << 20))
                    if not buf:
                        raise ValueError(f"{src}: ended {nbytes - done} bytes early")
                    fo.write(buf)
                    done += len(buf)
                break
            done += got
        fo.flush()
        os.fsync(fo.fileno())


class RowWriter:
    """Fill an embeddings file (``storage`` dtype, plus its scale file for int8) of known shape
    block by block through memory maps, never whole in RAM.

    Written under temp names; `close` flushes and renames them into place (scales first), so
    an embeddings file at `path` is always complete.
    """

    def __init__(self, path: Path, rows: int, dim: int, storage: str = "float32"):
        if storage not in EMBEDDING_STORAGE:
            raise ValueError(f"embedding storage {storage!r}: choose one of {', '.join(EMBEDDING_STORAGE)}")
        self.path = Path(path)
        self.storage = storage
        self.tmp = _tmp_name(self.path)
        self.rows, self.dim = int(rows), int(dim)
        self.scale_tmp = _tmp_name(scale_path(self.path)) if storage == "int8" else None
        self._out, self._scales = self._open(self.tmp, np.dtype(storage), (self.rows, self.dim)), None
        if self.scale_tmp is not None:
            self._scales = self._open(self.scale_tmp, np.dtype(np.float32), (self.rows,))
        self.filled = 0

    @staticmethod
    def _open(tmp: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        if shape[0] == 0:  # an empty file cannot be memory-mapped
            with open(tmp, "wb") as fh:
                np.save(fh, np.zeros(shape, dtype=dtype), allow_pickle=False)
            return np.zeros(shape, dtype=dtype)
        return np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)

    def _put(self, codes: np.ndarray, scales: np.ndarray | None) -> None:
        n = len(codes)
        if self.filled + n > self.rows:
            raise ValueError(f"{self.path}: {self.filled + n} rows written, {self.rows} expected")
        self._out[self.filled:self.filled + n] = codes
        if self._scales is not None:
            self._scales[self.filled:self.filled + n] = scales
        self.filled += n

    def append(self, block: Any, chunk_rows: int = 65536) -> None:
        """Append float rows (an array, a memory map or `Embeddings`; `chunk_rows` at a time)."""
        for a in range(0, len(block), chunk_rows):
            self._put(*quantize(np.asarray(block[a:a + chunk_rows], dtype=np.float32), self.storage))

    def append_stored(self, emb: "Embeddings", rows: np.ndarray | slice | None = None, chunk_rows: int = 65536) -> None:
        """Append stored rows of another embeddings file: their codes unchanged when it has
        this writer's storage, else converted through float32. All rows of a memory-mapped file
        of this storage are copied file to file by the kernel: they never pass through this
        process's memory, so growing an index's file does not add its size to the writer's RSS."""
        if rows is None and self._copy_files(emb):
            return
        idx = np.arange(len(emb)) if rows is None else (np.arange(len(emb))[rows] if isinstance(rows, slice) else rows)
        for a in range(0, len(idx), chunk_rows):
            part = idx[a:a + chunk_rows]
            if emb.storage == self.storage:
                self._put(*emb.raw(part))
            else:
                self._put(*quantize(emb[part], self.storage))

    def _copy_files(self, emb: "Embeddings") -> bool:
        """Copy every row of `emb` (same storage and width, C-ordered memory maps) as bytes, codes
        and scales; False when it cannot be copied that way."""
        pairs = [(emb.codes, self._out)] + ([(emb.scales, self._scales)] if self._scales is not None else [])
        if not len(emb) or emb.storage != self.storage or emb.shape[1] != self.dim or (emb.scales is None) != (
                self._scales is None) or self.filled + len(emb) > self.rows:
            return False
        if not all(isinstance(a, np.memmap) and isinstance(b, np.memmap) and a.flags.c_contiguous for a, b in pairs):
            return False
        for src, dst in pairs:
            row_bytes = src.itemsize * int(np.prod(src.shape[1:], dtype=np.int64))
            _copy_range(Path(src.filename), src.offset, Path(dst.filename), dst.offset + self.filled * row_bytes,
                        len(emb) * row_bytes)
        self.filled += len(emb)
        return True

    def close(self) -> None:
        if self.filled != self.rows:
            raise ValueError(f"{self.path}: {self.filled} rows written, {self.rows} expected")
        if isinstance(self._out, np.memmap):
            self._out.flush()
        del self._out
        if self._scales is not None:
            if isinstance(self._scales, np.memmap):
                self._scales.flush()
            del self._scales
            os.replace(self.scale_tmp, scale_path(self.path))
        else:
            scale_path(self.path).unlink(missing_ok=True)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._out = None  # type: ignore[assignment]
        self._scales = None
        for tmp in (self.tmp, self.scale_tmp):
            if tmp is not None:
                try:
                    tmp.unlink()
                except OSError:
                    pass


def write_embeddings_file(path: Path, vectors: np.ndarray, storage: str) -> None:
    """A whole embeddings file (and its scales) from float rows in one call."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"{path}: expected rows (n × dim), got shape {vectors.shape}")
    writer = RowWriter(path, len(vectors), vectors.shape[1], storage)
    try:
        writer.append(vectors)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def link_embeddings(src: Path, dst: Path) -> None:
    """Hard-link an embeddings file and its scale file (when it has one) into a new generation."""
    link_or_copy(src, dst)
    if scale_path(src).is_file():
        link_or_copy(scale_path(src), scale_path(dst))


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
