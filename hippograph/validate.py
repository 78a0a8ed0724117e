"""Structural checks of what an index directory hands to numpy, scipy and SQLite readers.

An index may be damaged (a flipped bit, a truncated copy) or crafted. Every array a
snapshot opens is checked here before any indexing uses it — ``.npy`` headers against the
file size before anything is allocated, CSR ``indptr`` monotone and in bounds, ``indices``
in range, lengths against the manifest counts — and every path a manifest names must
resolve inside the index directory. Failures raise `IndexCorruptError` naming the file.
The checks are O(size of the arrays) vectorised passes, cheap next to reading them
(measured in eval/results/fuzz.md), so they run on every open; `hippograph check` runs the
same code through an open.
"""
from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import IndexCorruptError
from .format import (EDGE_FACT, EDGE_SYNONYM, GRAPH_INDICES, GRAPH_INDPTR, GRAPH_KINDS, GRAPH_PAIR_KINDS, GRAPH_PAIR_WEIGHTS,
                     GRAPH_SPECIFICITY, GRAPH_UPPER_INDICES, GRAPH_UPPER_INDPTR, GRAPH_WEIGHTS, graph_from_upper)

MAX_NPY_HEADER = 1 << 16
"""numpy writes headers of a few hundred bytes; a larger one is damage, not data."""


# ---- .npy files ------------------------------------------------------------------------------
def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file, read from its header only,
    after checking that the header describes exactly the bytes the file holds (no allocation
    is ever sized by a header the file does not back)."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            try:
                major, _ = np.lib.format.read_magic(fh)
                if major == 1:
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_NPY_HEADER)
                elif major in (2, 3):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_NPY_HEADER)
                else:
                    raise ValueError(f"unknown .npy version {major}")
            except Exception as exc:  # noqa: BLE001 - numpy parses the header with Python's tokenizer:
                # ValueError, EOFError, SyntaxError, tokenize.TokenError, … all mean a damaged header
                raise IndexCorruptError(f"{path}: not a readable .npy array ({exc})") from exc
            offset = fh.tell()
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{path}: missing array file") from exc
    except OSError as exc:
        raise IndexCorruptError(f"{path}: cannot read array file ({exc.strerror or exc})") from exc
    if dtype.hasobject:
        raise IndexCorruptError(f"{path}: array of Python objects (a pickle); index files hold plain numbers only")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise IndexCorruptError(f"{path}: invalid array shape {shape}")
    expected = offset + math.prod(shape) * dtype.itemsize
    if expected != size:
        raise IndexCorruptError(
            f"{path}: header says {shape} × {dtype} ({expected} bytes with the header) but the file has {size} bytes"
        )
    return tuple(shape), dtype, bool(fortran), offset


def load_npy(path: Path, *, kind: str | None = None, ndim: int | None = None, mmap: bool = False) -> np.ndarray:
    """A checked .npy array: header against file size first, then dtype kind ('i' integer, 'f'
    float, 'b' bool, 'u' unsigned) and number of dimensions; `mmap` maps it read-only."""
    shape, dtype, fortran, offset = npy_layout(path)
    if kind is not None and dtype.kind not in kind:
        raise IndexCorruptError(f"{path}: array has dtype {dtype}, expected {_KIND_NAMES.get(kind, kind)}")
    if ndim is not None and len(shape) != ndim:
        raise IndexCorruptError(f"{path}: array has {len(shape)} dimensions, expected {ndim}")
    order = "F" if fortran else "C"
    try:  # the header was parsed once, above: read the data at its offset (what np.load does)
        if mmap and math.prod(shape):
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = np.fromfile(fh, dtype=dtype, count=math.prod(shape))
        return data.reshape(shape, order=order)
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise IndexCorruptError(f"{path}: unreadable array ({exc})") from exc


_KIND_NAMES = {"i": "integers", "iu": "integers", "f": "floats", "b": "booleans", "u": "unsigned integers"}


# ---- array contents ----------------------------------------------------------------------------
def check_length(path: Any, arr: np.ndarray, n: int, what: str) -> None:
    if len(arr) != n:
        raise IndexCorruptError(f"{path}: {what} has {len(arr)} entries, expected {n}")


def check_range(path: Any, arr: np.ndarray, lo: int, hi: int, what: str) -> None:
    """Every value of an integer array lies in [lo, hi)."""
    if arr.size and (int(arr.min()) < lo or int(arr.max()) >= hi):
        raise IndexCorruptError(
            f"{path}: {what} holds values outside {lo}..{hi - 1} (found {int(arr.min())}..{int(arr.max())})"
        )


def check_finite(path: Any, arr: np.ndarray, what: str) -> None:
    if arr.size and not np.isfinite(arr).all():
        raise IndexCorruptError(f"{path}: {what} holds NaN or infinite values")


def check_csr(path: Any, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int, what: str,
              indptr_path: Any = None) -> None:
    """A CSR structure scipy can index without reading out of bounds: indptr of n_rows + 1
    non-decreasing offsets from 0 to len(indices), every index in [0, n_cols). `path` names
    the indices file, `indptr_path` (default: `path`) the offsets file."""
    ip = path if indptr_path is None else indptr_path
    if indptr.ndim != 1 or indices.ndim != 1:
        raise IndexCorruptError(f"{path}: {what} arrays must be one-dimensional")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise IndexCorruptError(f"{path}: {what} offsets and indices must be integers")
    if len(indptr) != n_rows + 1:
        raise IndexCorruptError(f"{ip}: {what} indptr has {len(indptr)} entries for {n_rows} rows")
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(indices):
        raise IndexCorruptError(
            f"{ip}: {what} indptr runs {int(indptr[0])}..{int(indptr[-1])}, expected 0..{len(indices)}")
    if n_rows and (np.diff(indptr) < 0).any():
        raise IndexCorruptError(f"{ip}: {what} indptr is not monotone")
    check_range(path, indices, 0, n_cols, f"{what} indices")


# ---- JSON files --------------------------------------------------------------------------------
def check_fields(path: Any, data: Any, schema: dict[str, Any], what: str) -> dict[str, Any]:
    """A JSON object whose listed fields have the given types (a type, a tuple of types, or a
    (type, lo, hi) triple for numbers in [lo, hi]); bools never pass as numbers."""
    if not isinstance(data, dict):
        raise IndexCorruptError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    for key, rule in schema.items():
        if key not in data:
            raise IndexCorruptError(f"{path}: {what} lacks field {key!r}")
        value = data[key]
        types, lo, hi = (rule if isinstance(rule, tuple) and len(rule) == 3 and isinstance(rule[0], (type, tuple))
                         and not isinstance(rule[1], type) else (rule, None, None))
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            ok = False
        else:
            ok = isinstance(value, types)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and lo is not None and not (lo <= value <= hi):
            ok = False
        if not ok:
            expected = getattr(types, "__name__", None) or " or ".join(t.__name__ for t in types)
            bounds = f" in {lo}..{hi}" if lo is not None else ""
            raise IndexCorruptError(f"{path}: {what} field {key!r} must be {expected}{bounds}, got {value!r:.80}")
    return data


def check_mapping(path: Any, value: Any, key_type: type, value_types: Any, what: str) -> None:
    """A JSON object {key_type: value_types} (bools never pass as numbers)."""
    if not isinstance(value, dict):
        raise IndexCorruptError(f"{path}: {what} must be a JSON object, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, key_type) or isinstance(v, bool) and bool not in _as_tuple(value_types) \
                or not isinstance(v, value_types):
            raise IndexCorruptError(f"{path}: {what} entry {k!r} has an invalid value {v!r:.80}")


def _as_tuple(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


MANIFEST_FIELDS: dict[str, Any] = {
    "generation": str, "config": dict, "counts": dict, "checksums": dict, "embedder": dict, "timings": dict,
    "lifecycle": dict, "created": str, "updated": str, "hippograph_version": str, "format": str, "format_version": int,
}
"""Type of every manifest field (the field names of `storage.Manifest`)."""


def check_manifest(path: Path, data: dict[str, Any]) -> None:
    """Manifest fields typed, counts non-negative integers, checksums strings under safe names."""
    for key, typ in MANIFEST_FIELDS.items():
        if key in data and (not isinstance(data[key], typ) or isinstance(data[key], bool)):
            raise IndexCorruptError(
                f"{path}: manifest field {key!r} must be {_JSON_NAMES[typ]}, got {type(data[key]).__name__}")
    check_mapping(path, data.get("counts", {}), str, int, "manifest counts")
    if any(v < 0 for v in data.get("counts", {}).values()):
        raise IndexCorruptError(f"{path}: manifest counts must be ≥ 0")
    check_mapping(path, data.get("checksums", {}), str, str, "manifest checksums")
    for rel in data.get("checksums", {}):
        check_relative(path, rel, "checksum entry")
    check_mapping(path, data.get("timings", {}), str, (int, float), "manifest timings")


_JSON_NAMES = {str: "a string", dict: "an object", int: "an integer", list: "a list"}


# ---- confinement -------------------------------------------------------------------------------
def check_relative(path: Any, rel: Any, what: str) -> str:
    """A relative path with no '..', no drive/absolute root, no backslash or NUL."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise IndexCorruptError(f"{path}: {what} {rel!r:.80} is not a relative file name")
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "~")) or ".." in p.parts:
        raise IndexCorruptError(f"{path}: {what} {rel!r:.80} points outside the index directory")
    return rel


def confined(root: Path, rel: str, what: str = "path") -> Path:
    """root/rel after checking that it stays inside `root` once symlinks are resolved."""
    check_relative(root, rel, what)
    target = root / rel
    if not is_inside(target, root):
        raise IndexCorruptError(f"{target}: {what} resolves outside the index directory {root}")
    return target


def is_inside(path: Path, root: Path) -> bool:
    """Does `path` (symlinks resolved) lie in `root` (symlinks resolved)?"""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return real == base or base in real.parents


def check_tree_confined(root: Path, gen: Path) -> None:
    """No entry of a generation directory (the directory itself included) is a symlink that
    leaves the index directory: a reader follows only paths inside what it was given."""
    if not is_inside(gen, root):
        raise IndexCorruptError(f"{gen}: generation directory resolves outside the index directory {root}")
    for dirpath, dirnames, filenames in os.walk(gen):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            if p.is_symlink() and not is_inside(p, root):
                raise IndexCorruptError(f"{p}: symlink leads outside the index directory {root}")


def path_like(name: Any) -> bool:
    """Does a model name look like a filesystem path (rather than an installed package or hub name)?"""
    if not isinstance(name, str):
        return False
    return (name.startswith((".", "~", "/", "\\")) or os.path.isabs(name) or "\\" in name
            or name.count("/") > 1 or os.sep in name and not _hub_name(name))


def _hub_name(name: str) -> bool:
    """'owner/model' as on the Hugging Face hub (one slash, no dots-only parts)."""
    parts = name.split("/")
    return len(parts) == 2 and all(p and p not in (".", "..") for p in parts)


# ---- a generation's parts, as the snapshot opens them -------------------------------------------
@contextlib.contextmanager
def reading_db(db: Path) -> Iterator[None]:
    """Reads of meta.sqlite: a damaged file (SQLite errors, NULLs or text where numbers belong,
    undecodable text) becomes IndexCorruptError naming it, at open and at query time alike."""
    try:
        yield
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"{db}: damaged metadata database ({exc})") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise IndexCorruptError(f"{db}: damaged metadata database ({type(exc).__name__}: {exc})") from exc



def check_count(path: Any, found: int, expected: int, what: str) -> None:
    if found != expected:
        raise IndexCorruptError(f"{path}: {what} is {found}, the metadata database holds {expected}")


def check_pairs(path: Any, pairs: np.ndarray, n_left: int, n_right: int, what: str) -> None:
    """Rows of (left, right) row numbers from a link table, both in range."""
    if len(pairs):
        check_range(path, pairs[:, 0], 0, n_left, f"{what} table (first column)")
        check_range(path, pairs[:, 1], 0, n_right, f"{what} table (second column)")


MANIFEST_COUNTED = ("passages", "sentences", "entities", "facts")
"""Counts in the manifest that must equal the rows the metadata database holds."""


def check_table_rows(db: Path, snap: Any, fact_passages: np.ndarray, counts: dict[str, int]) -> None:
    """Row numbers stored in meta.sqlite point at rows that exist, and the tables hold what
    the manifest counted."""
    held = {"passages": snap.n_passages, "sentences": len(snap.sentence_passage), "entities": snap.n_entities,
            "facts": snap.n_facts}
    for key in MANIFEST_COUNTED:
        if key in counts and counts[key] != held[key]:
            raise IndexCorruptError(f"{db}: holds {held[key]} {key}, the manifest counted {counts[key]}")
    check_range(db, snap.sentence_passage, 0, snap.n_passages, "sentences.passage_idx")
    check_range(db, snap.fact_subject, 0, snap.n_entities, "facts.subject_idx")
    check_range(db, snap.fact_object, 0, snap.n_entities, "facts.object_idx")
    check_pairs(db, fact_passages, snap.n_facts, snap.n_passages, "fact_passages")


def load_graph(graph_dir: Path, n_entities: int, n_passages: int, counts: dict[str, int]) -> tuple[Any, np.ndarray, np.ndarray]:
    """(CSR adjacency over entity + passage nodes, edge kinds, entity specificity), every array
    checked: no out-of-range index can reach scipy or a PPR kernel. Format 7 stores the graph once
    (`format.GRAPH_FILES`), older formats both directions of every edge."""
    n = n_entities + n_passages
    if "nodes" in counts and counts["nodes"] != n:
        raise IndexCorruptError(f"{graph_dir}: the manifest counts {counts['nodes']} graph nodes, the tables {n}")
    if (graph_dir / GRAPH_UPPER_INDPTR).exists():
        return _load_upper_graph(graph_dir, n_entities, n)
    return _load_full_graph(graph_dir, n_entities, n)


def _load_upper_graph(graph_dir: Path, n_entities: int, n: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Format 7: the upper triangle, entity-pair weights and kinds (`format.graph_from_upper`)."""
    return graph_from_upper(*load_upper_arrays(graph_dir, n_entities, n), n_entities)


def load_upper_arrays(graph_dir: Path, n_entities: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Format 7's graph files as stored (upper indptr, upper indices, pair weights, pair kinds), checked:
    every entry right of the diagonal, none between two passages, one weight and kind per entity pair."""
    ip_path, idx_path = graph_dir / GRAPH_UPPER_INDPTR, graph_dir / GRAPH_UPPER_INDICES
    indptr = load_npy(ip_path, kind="iu", ndim=1)
    indices = load_npy(idx_path, kind="iu", ndim=1)
    check_csr(idx_path, indptr, indices, n, n, "graph adjacency", ip_path)
    rows = np.repeat(np.arange(n, dtype=np.int32 if n <= np.iinfo(np.int32).max else np.int64), np.diff(indptr))
    if (indices <= rows).any():
        raise IndexCorruptError(f"{idx_path}: graph adjacency holds an entry on or below the diagonal")
    if int(indptr[n_entities]) != len(indices):  # a passage row's entries lie right of it: passages
        raise IndexCorruptError(f"{idx_path}: graph adjacency links two passages")
    n_pairs = int((indices < n_entities).sum())
    w_path, k_path = graph_dir / GRAPH_PAIR_WEIGHTS, graph_dir / GRAPH_PAIR_KINDS
    weights = load_npy(w_path, kind="f", ndim=1)
    check_length(w_path, weights, n_pairs, "entity-pair edge weights")
    check_finite(w_path, weights, "entity-pair edge weights")
    if n_pairs and float(weights.min()) < 0:
        raise IndexCorruptError(f"{w_path}: edge weights must be ≥ 0 (found {float(weights.min()):g})")
    kinds = load_npy(k_path, kind="iu", ndim=1)
    check_length(k_path, kinds, n_pairs, "entity-pair edge kinds")
    if not np.isin(kinds, (EDGE_FACT, EDGE_SYNONYM)).all():
        raise IndexCorruptError(f"{k_path}: entity-pair edge kinds must be {EDGE_FACT} (fact) or {EDGE_SYNONYM} (synonym)")
    return indptr, indices, weights, kinds


def _load_full_graph(graph_dir: Path, n_entities: int, n: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Format 6 and before: both directions of every edge, a weight and kind per entry, specificity."""
    import scipy.sparse as sp

    indptr = load_npy(graph_dir / GRAPH_INDPTR, kind="iu", ndim=1)
    indices = load_npy(graph_dir / GRAPH_INDICES, kind="iu", ndim=1)
    check_csr(graph_dir / GRAPH_INDICES, indptr, indices, n, n, "graph adjacency", graph_dir / GRAPH_INDPTR)
    nnz = len(indices)
    weights = load_npy(graph_dir / GRAPH_WEIGHTS, kind="f", ndim=1)
    check_length(graph_dir / GRAPH_WEIGHTS, weights, nnz, "edge weights")
    check_finite(graph_dir / GRAPH_WEIGHTS, weights, "edge weights")
    if nnz and float(weights.min()) < 0:
        raise IndexCorruptError(f"{graph_dir / GRAPH_WEIGHTS}: edge weights must be ≥ 0 (found {float(weights.min()):g})")
    kinds = load_npy(graph_dir / GRAPH_KINDS, kind="iu", ndim=1)
    check_length(graph_dir / GRAPH_KINDS, kinds, nnz, "edge kinds")
    specificity = load_npy(graph_dir / GRAPH_SPECIFICITY, kind="f", ndim=1)
    check_length(graph_dir / GRAPH_SPECIFICITY, specificity, n_entities, "entity specificity")
    check_finite(graph_dir / GRAPH_SPECIFICITY, specificity, "entity specificity")
    adjacency = sp.csr_matrix((weights.astype(np.float64), indices, indptr), shape=(n, n))
    return adjacency, kinds, specificity.astype(np.float64)


# ---- embeddings and vector indexes (format v2) ----------------------------------------------------
def check_embeddings(path: Path, emb: Any, n_rows: int, dim: int | None, what: str) -> None:
    """An embeddings file as the snapshot reads it (`format.Embeddings`): one row per table row, the
    embedder's dimension, and for int8 storage per-row scales that are finite and ≥ 0 (`quantize`
    writes max|x| / 127; a NaN or infinite scale turns every score of its row into NaN). O(rows)."""
    rows, d = emb.shape
    if rows != n_rows:
        raise IndexCorruptError(f"{path}: holds {rows} rows of {what} embeddings, the metadata database {n_rows} rows")
    if dim is not None and d != dim:
        raise IndexCorruptError(f"{path}: {what} embeddings have dimension {d}, the index's embedder {dim}")
    scales = emb.scales
    if scales is not None and scales.size and not ((scales >= 0) & (scales < np.inf)).all():
        from .format import scale_path

        raise IndexCorruptError(f"{scale_path(path)}: int8 scales of the {what} embeddings must be finite and ≥ 0")


class FiniteRows:
    """Rows of a float16 / float32 embeddings file, checked finite as they are read. Such a file has no
    scales to check on open and reading all of it there would cost O(corpus); a query reads a few rows
    (posting lists, a first hop's facts), so the check costs what the read costs. int8 files need no
    wrapper: their codes are integers and their scales are checked on open (`check_embeddings`)."""

    ndim = 2

    def __init__(self, emb: Any, path: Path, what: str):
        self.emb, self.path, self.what = emb, path, what
        self.dtype, self.shape, self.scales = emb.dtype, emb.shape, None

    def __len__(self) -> int:
        return len(self.emb)

    def __getitem__(self, rows: Any) -> np.ndarray:
        out = self.emb[rows]
        check_finite(self.path, out, f"{self.what} embeddings")
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def check_all(self, block: int = 1 << 16) -> None:
        """Every row, a block at a time (before a flat index copies all of them into faiss)."""
        for a in range(0, len(self.emb), block):
            self[a:a + block]


def checked_rows(emb: Any, path: Path, what: str) -> Any:
    """`emb` itself when its values are already known finite (int8 with checked scales), else `FiniteRows`."""
    return emb if emb.scales is not None else FiniteRows(emb, path, what)


def check_vector_index(vdir: Path, index: Any, id_space: int, dim: int | None, what: str) -> None:
    """A flat or SPANN vector index as `snapshot.RowIdIndex` uses it: the embeddings' dimension, every
    stored id (live ids, and every SPANN posting-list entry this generation covers) in [0, id_space)
    — the rows of the embeddings file, or the vector-id map's length once a delete renumbered rows —,
    and SPANN's per-list offsets and LSH bucket offsets inside the posting file. O(entries): one
    vectorised min/max over the posting ids (a memory map), the per-list tables are per head.
    Reads the tables the index's own search uses (`_header`, `_lists`, `_eid`) instead of reading the
    files a second time: indexers/ has no public accessor for them, and changing indexers/ re-keys
    every cached eval index."""
    files = index._header.get("files", {})

    def named(role: str) -> Path:
        rec = files.get(role)
        return vdir / rec["name"] if isinstance(rec, dict) and "name" in rec else vdir / "header.json"

    if dim is not None and index.dim != dim:
        raise IndexCorruptError(f"{vdir / 'header.json'}: {what} vector index has dimension {index.dim}, "
                                f"the embeddings {dim}")
    check_range(named("id_runs" if "id_runs" in files else "ids"), index.ids, 0, id_space, f"{what} vector ids")
    lists = getattr(index, "_lists", None)
    if lists is None:  # a flat index: its ids are all it holds
        return
    post = index._header["postings"]
    check_range(vdir / str(post.get("ids", "header.json")), index._eid, 0, id_space, f"{what} posting-list ids")
    n = int(post["n_entries"])
    start, length = lists.start, lists.length
    if length.size and int(length.min()) < 0:
        raise IndexCorruptError(f"{named('list_len')}: {what} posting lists have negative lengths")
    if start.size and (int(start.min()) < 0 or bool((start > n - length).any())):  # no int64 wrap-around
        raise IndexCorruptError(f"{named('list_start')}: {what} posting lists run outside the posting file "
                                f"({n} entries; lengths in {named('list_len').name})")
    b = lists.buckets
    if index.params.lsh_bits and b.size and (int(b.min()) < 0 or bool((b > length[:, None]).any())
                                             or bool((np.diff(b, axis=1) < 0).any())):
        raise IndexCorruptError(f"{named('buckets')}: {what} LSH bucket offsets are not ascending inside their lists")


def check_minhash_bands(path: Path, n_entities: int) -> None:
    """graph/minhash_bands.npy, which only a write reads: uint32 band keys, one row per entity.
    Header only; every value is a valid key."""
    if not path.is_file():
        return
    shape, dtype, _, _ = npy_layout(path)
    if dtype != np.uint32 or len(shape) != 2 or shape[0] != n_entities:
        raise IndexCorruptError(f"{path}: MinHash band keys must be uint32, one row per entity "
                                f"({n_entities}); found {dtype} {shape}")


def check_minhash(path: Path, n_entities: int) -> None:
    """graph/minhash.npy, which only a write reads (synonymy of new entities): integer signatures, one
    row per entity. Header only; every integer value is a valid signature."""
    if not path.is_file():
        return
    shape, dtype, _, _ = npy_layout(path)
    if dtype.kind not in "iu" or len(shape) != 2 or shape[0] != n_entities:
        raise IndexCorruptError(f"{path}: MinHash signatures must be integers, one row per entity "
                                f"({n_entities}); found {dtype} {shape}")


def json_column(text: Any, db: Path, what: str) -> Any:
    """A JSON value stored in a text column (document/passage metadata), or IndexCorruptError."""
    import json

    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise IndexCorruptError(f"{db}: metadata of {what} is not valid JSON ({exc})") from exc


def passage_row(convert: Any, row: Any, db: Path) -> Any:
    """`convert(row)` for a passages row, turning damaged metadata into IndexCorruptError."""
    try:
        return convert(row)
    except (TypeError, ValueError, RecursionError) as exc:
        raise IndexCorruptError(f"{db}: passage row {row['idx']} is damaged ({exc})") from exc
