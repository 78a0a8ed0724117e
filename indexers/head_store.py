"""A SPANN head index on disk as checked arrays instead of faiss's own file.

SPANN heads are real vectors of the index. When the index reads its vectors from elsewhere
(ids-only posting lists: the generation's embeddings), a head whose id is live and whose row
reads back bit for bit is stored as that id alone (``head_ids``, SPANN header version 6: 4
bytes instead of 388); the others — heads whose vector was removed, or that do not match their
row — keep their vector: rows of int8 embeddings exactly as ``code × scale`` (388 bytes at 384
dimensions instead of 1,536), other vectors as float16 when that is exact, else float32. An HNSW head index also stores its graph: node
levels, entry point, and each node's links per level packed without faiss's unused (-1)
slots (SPANN header version 5: 70 % of the slots at M = 48 are unused; version 4 stored
every slot and their offsets, which the levels already give). Unpacked, faiss takes the
graph back as it was: the reopened index searches and grows exactly like the one written
(tests/test_head_store.py). Reading checks every array first — shapes, dtypes, degrees
that fit their levels, links that point at nodes of a high enough level — so a damaged or
crafted file is one IndexCorruptError, never a read outside the arrays inside faiss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from hippograph.errors import IndexCorruptError
from hippograph.format import dequantize, quantize

from . import _diskio as dio

HEAD_ROLES = ("head_ids", "head_vectors", "head_scales", "hnsw_links", "hnsw_degrees", "hnsw_neighbors", "hnsw_offsets",
              "hnsw_levels")
"""Header file roles of a stored head index (ids from version 6, when some heads are stored as
ids; scales only for int8 vectors; the graph only for HNSW: packed links + degrees from version 5,
every slot + offsets in version 4)."""
REF_BLOCK = 65_536
"""Heads compared with (or read from) their rows at a time when storing them as ids."""
HNSW_GRAPH_ROLES = (("hnsw_links", "hnsw_degrees", "hnsw_levels"), ("hnsw_neighbors", "hnsw_offsets", "hnsw_levels"))
"""The file roles an HNSW head graph needs: version 5's, or version 4's."""


def exact_codes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The smallest stored form that reads back bit for bit: int8 codes + per-row scales,
    float16, or the float32 rows themselves."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    for storage in ("int8", "float16") if x.size else ():  # no rows: no scales file either
        codes, scales = quantize(x, storage)
        if np.array_equal(dequantize(codes, scales), x):
            return codes, scales
    return x, None


def head_refs(vectors: np.ndarray, head_ids: np.ndarray, fetch: Any) -> np.ndarray:
    """The id to store for each head: its ``head_ids`` entry (-1 = none) where ``fetch`` (ids →
    float32 rows) reads that id back as exactly the head's vector, else -1 (store the vector)."""
    refs = np.full(vectors.shape[0], -1, np.int64)
    cand = np.flatnonzero(head_ids >= 0)
    for a in range(0, cand.size, REF_BLOCK):
        c = cand[a:a + REF_BLOCK]
        same = (np.asarray(fetch(head_ids[c]), np.float32) == vectors[c]).all(axis=1)
        refs[c[same]] = head_ids[c[same]]
    return refs


def write_heads(dirpath: Path, gen: int, index: Any, head_ids: np.ndarray | None = None,
                fetch: Any = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write a flat or HNSW faiss head index as arrays; return (file records by role, the
    header's ``heads`` record: kind, entry point, top level). With ``head_ids`` (each slot's
    live vector id, -1 = none) and ``fetch`` (ids → rows), heads that are those rows are
    stored as their ids (`head_refs`)."""
    n = int(index.ntotal)
    vectors = index.reconstruct_n(0, n) if n else np.zeros((0, index.d), np.float32)
    refs = head_refs(vectors, head_ids, fetch) if head_ids is not None and fetch is not None else None
    files = {}
    if refs is not None and (refs >= 0).any():
        fits = refs.max() <= np.iinfo(np.int32).max
        files["head_ids"] = dio.write_npy(dirpath, f"head_ids.g{gen}.npy", refs.astype(np.int32 if fits else np.int64))
        vectors = vectors[refs < 0]
    codes, scales = exact_codes(vectors)
    files["head_vectors"] = dio.write_npy(dirpath, f"head_vectors.g{gen}.npy", codes)
    if scales is not None:
        files["head_scales"] = dio.write_npy(dirpath, f"head_scales.g{gen}.npy", scales)
    meta: dict[str, Any] = {"kind": "flat"}
    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        neighbors = np.asarray(faiss.vector_to_array(h.neighbors), dtype=np.int32)
        levels = np.asarray(faiss.vector_to_array(h.levels), dtype=np.int32)
        cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
        packed = pack_links(neighbors, levels, cum)
        if packed is not None:
            files["hnsw_links"] = dio.write_npy(dirpath, f"hnsw_links.g{gen}.npy", packed[0])
            files["hnsw_degrees"] = dio.write_npy(dirpath, f"hnsw_degrees.g{gen}.npy", packed[1])
        else:  # links after an unused slot (faiss never leaves any): every slot, as version 4 did
            files["hnsw_neighbors"] = dio.write_npy(dirpath, f"hnsw_neighbors.g{gen}.npy", neighbors)
            files["hnsw_offsets"] = dio.write_npy(dirpath, f"hnsw_offsets.g{gen}.npy",
                                                  faiss.vector_to_array(h.offsets).astype(np.int64))
        files["hnsw_levels"] = dio.write_npy(dirpath, f"hnsw_levels.g{gen}.npy", levels)
        meta = {"kind": "hnsw", "entry_point": int(h.entry_point), "max_level": int(h.max_level)}
    return files, meta


def head_version(files: dict[str, Any]) -> int:
    """SPANN header version stored head arrays need: 6 for heads stored as ids, 5 for packed
    HNSW links, else 4."""
    return 6 if "head_ids" in files else 5 if "hnsw_links" in files else 4


def _runs(levels: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets (n + 1), first slot of each (node, level) run, slots of each run): node i owns
    slots offsets[i] … offsets[i + 1], levels[i] runs of them, run l holding cum[l + 1] - cum[l]."""
    lv = levels.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(cum[lv])]).astype(np.int64)
    run_level = _run_levels(lv)
    run_start = np.repeat(offsets[:-1], lv) + cum[run_level]
    return offsets, run_start, cum[run_level + 1] - cum[run_level]


def _run_levels(lv: np.ndarray) -> np.ndarray:
    """The level of each (node, level) run of nodes with `lv` levels each, node by node: 0, 1, …, lv[i] − 1."""
    return np.arange(int(lv.sum())) - np.repeat(np.cumsum(lv) - lv, lv)


def pack_links(neighbors: np.ndarray, levels: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(links, degrees): each (node, level) run's used slots, in order, and how many there are;
    None when some run has a link after an unused (-1) slot, which packing would lose."""
    _, run_start, run_slots = _runs(levels, cum)
    used = neighbors != -1
    run_of_slot = np.repeat(np.arange(run_start.size), run_slots)
    degrees = np.bincount(run_of_slot[used], minlength=run_start.size)
    if used.size != run_slots.sum() or not np.all(
            np.flatnonzero(used) - run_start[run_of_slot[used]] < degrees[run_of_slot[used]]):
        return None
    dtype = np.uint8 if run_slots.size == 0 or run_slots.max() <= 255 else np.int32
    return neighbors[used], degrees.astype(dtype)


def unpack_links(path: Path, links: np.ndarray, degrees: np.ndarray, levels: np.ndarray,
                 cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(neighbors with -1 in unused slots, offsets): faiss's arrays from `pack_links`' output,
    after checking the degrees fit the levels (levels themselves are checked by `check_graph`)."""
    n = levels.size
    if n and (levels.min() < 1 or levels.max() >= cum.size):
        raise IndexCorruptError(f"{path}: damaged HNSW head graph (node levels outside 1..{cum.size - 1})")
    offsets, run_start, run_slots = _runs(levels, cum)
    deg = degrees.astype(np.int64)
    if deg.shape != run_start.shape or (deg.size and (deg.min() < 0 or (deg > run_slots).any())) \
            or int(deg.sum()) != links.size:
        raise IndexCorruptError(f"{path}: damaged HNSW head graph (link degrees do not match the node levels "
                                f"or the {links.size} links)")
    neighbors = np.full(int(offsets[-1]), -1, dtype=np.int32)
    first = np.cumsum(deg) - deg
    neighbors[np.repeat(run_start, deg) + np.arange(links.size) - np.repeat(first, deg)] = links
    return neighbors, offsets


def read_head_ids(path: Path, n: int, live: np.ndarray) -> np.ndarray:
    """The stored head ids (-1 = vector stored), checked: one per head, each -1 or a live id of
    the index (`live`, sorted), so every id read through the vectors is one the index holds."""
    refs = dio.load_npy(path, "head_ids", ndim=1)
    if refs.dtype not in (np.int32, np.int64) or refs.shape != (n,):
        raise IndexCorruptError(f"{path}: head ids are {refs.dtype} {refs.shape}, expected {n} integers")
    refs = refs.astype(np.int64)
    ref = refs[refs >= 0]
    pos = np.searchsorted(live, ref)
    if (refs < -1).any() or (pos >= live.size).any() or not np.array_equal(live[np.minimum(pos, live.size - 1)], ref):
        raise IndexCorruptError(f"{path}: head ids that are not live vectors of the index")
    return refs


def read_heads(paths: dict[str, Path], meta: Any, empty: Any, dim: int, n: int, refs: np.ndarray | None = None,
               fetch: Any = None) -> Any:
    """Fill `empty` (a new flat or HNSW faiss index of the recorded kind) from the stored
    arrays in `paths` (by role), after checking them against `n` heads of `dim`; heads stored
    as ids (`refs` ≥ 0, from `read_head_ids`) are read through `fetch` (ids → float32 rows)."""
    vec_path = paths["head_vectors"]
    stored = np.ones(n, bool) if refs is None else refs < 0
    n_stored = int(stored.sum())
    codes = dio.load_npy(vec_path, "head_vectors", ndim=2)
    if codes.dtype not in (np.int8, np.float16, np.float32) or codes.shape != (n_stored, dim):
        raise IndexCorruptError(f"{vec_path}: head vectors are {codes.dtype} {codes.shape}, expected {n_stored} × {dim}")
    scales = None
    if codes.dtype == np.int8:
        if "head_scales" not in paths:
            raise IndexCorruptError(f"{vec_path}: int8 head vectors without a head_scales file")
        scales = dio.load_npy(paths["head_scales"], "head_scales", dtype=np.float32, ndim=1)
        if scales.shape != (n_stored,):
            raise IndexCorruptError(f"{paths['head_scales']}: {scales.size} head scales, expected {n_stored}")
    if refs is None:
        vectors = np.ascontiguousarray(dequantize(codes, scales), dtype=np.float32)
    else:
        vectors = np.empty((n, dim), np.float32)
        vectors[stored] = dequantize(codes, scales)
        by_id = np.flatnonzero(~stored)
        for a in range(0, by_id.size, REF_BLOCK):
            b = by_id[a:a + REF_BLOCK]
            vectors[b] = fetch(refs[b])
    if not isinstance(empty, faiss.IndexHNSW):
        empty.add(vectors)
        return empty
    h = empty.hnsw
    cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
    levels = dio.load_npy(paths["hnsw_levels"], "hnsw_levels", dtype=np.int32, ndim=1)
    if "hnsw_links" in paths:
        graph_path = paths["hnsw_links"]
        links = dio.load_npy(graph_path, "hnsw_links", dtype=np.int32, ndim=1)
        degrees = dio.load_npy(paths["hnsw_degrees"], "hnsw_degrees", ndim=1)
        if degrees.dtype not in (np.uint8, np.int32):
            raise IndexCorruptError(f"{paths['hnsw_degrees']}: hnsw_degrees array has dtype {degrees.dtype}")
        neighbors, offsets = unpack_links(graph_path, links, degrees, levels, cum)
    else:  # version 4: every slot and the offsets
        graph_path = paths["hnsw_neighbors"]
        neighbors = dio.load_npy(graph_path, "hnsw_neighbors", dtype=np.int32, ndim=1)
        offsets = dio.load_npy(paths["hnsw_offsets"], "hnsw_offsets", dtype=np.int64, ndim=1)
    entry, top = meta.get("entry_point"), meta.get("max_level")
    check_graph(graph_path, neighbors, offsets, levels, entry, top, cum)
    empty.storage.add(vectors)
    faiss.copy_array_to_vector(neighbors, h.neighbors)
    faiss.copy_array_to_vector(offsets.astype(np.uint64), h.offsets)
    faiss.copy_array_to_vector(levels, h.levels)
    h.entry_point, h.max_level = int(entry), int(top)
    empty.ntotal = n
    return empty


GRAPH_BLOCK = 65_536
"""Nodes whose links are checked at a time: the check's temporaries stay near 50 MB at M = 48,
however many heads the index has."""


def check_graph(path: Path, neighbors: np.ndarray, offsets: np.ndarray, levels: np.ndarray, entry: Any, top: Any,
                cum: np.ndarray) -> None:
    """An HNSW graph faiss can walk without leaving its arrays: node i has levels[i] ≥ 1
    levels whose neighbour slots are offsets[i] + cum[l] … cum[l+1]; a link at level l is
    -1 or a node that has level l; the entry point is a node of the top level."""
    n = levels.size
    bad = None
    if offsets.shape != (n + 1,):
        bad = f"{offsets.size} offsets for {n} nodes"
    elif n and (levels.min() < 1 or levels.max() >= cum.size):
        bad = f"node levels outside 1..{cum.size - 1}"
    elif offsets[0] != 0 or not np.array_equal(np.diff(offsets), cum[levels] if n else np.zeros(0, np.int64)) \
            or offsets[-1] != neighbors.size:
        bad = "neighbour offsets do not match the node levels"
    elif not isinstance(entry, int) or not isinstance(top, int) or isinstance(entry, bool) or isinstance(top, bool):
        bad = f"entry point {entry!r} / top level {top!r} are not integers"
    elif n == 0 and (entry != -1 or top != -1):
        bad = "an empty graph with an entry point"
    elif n and not (0 <= entry < n and top == int(levels.max()) - 1 and levels[entry] - 1 == top):
        bad = f"entry point {entry} is not a node of the top level {top}"
    for a in range(0, n if bad is None else 0, GRAPH_BLOCK):
        bad = _bad_links(neighbors, offsets, levels, cum, a, min(n, a + GRAPH_BLOCK))
        if bad is not None:
            break
    if bad is not None:
        raise IndexCorruptError(f"{path}: damaged HNSW head graph ({bad})")


def _bad_links(neighbors: np.ndarray, offsets: np.ndarray, levels: np.ndarray, cum: np.ndarray, a: int,
               b: int) -> str | None:
    """The problem with the links of nodes a..b-1 (offsets already checked), or None. Node i
    contributes levels[i] runs of slots, run l holding cum[l+1] - cum[l] slots of level l."""
    n = levels.size
    run_level = _run_levels(levels[a:b].astype(np.int64))
    slot_level = np.repeat(run_level, (cum[1:] - cum[:-1])[run_level])
    link = neighbors[offsets[a]:offsets[b]].astype(np.int64)
    inside = (link >= 0) & (link < n)
    ok = (link == -1) | inside
    ok[inside] &= levels[link[inside]] > slot_level[inside]
    if ok.all():
        return None
    return f"{int((~ok).sum())} neighbour links point outside the graph or its levels"
