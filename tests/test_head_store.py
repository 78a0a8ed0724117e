"""SPANN head indexes stored as arrays (`indexers/head_store.py`, SPANN header versions 4 to 6): heads
as the ids of their rows (version 6) or as int8 vectors when the vectors are int8 rows, the HNSW graph
as arrays (version 5: packed links); reopened indexes search and grow exactly like faiss's own file;
damaged graphs and head ids are one-line errors; version-3, 4 and 5 files still open."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from hippograph.errors import IndexCorruptError
from hippograph.format import dequantize, quantize
from hippograph.indexers import _diskio as dio
from hippograph.indexers.head_store import exact_codes, head_refs, write_heads
from hippograph.indexers.spann import SpannIndex, VectorsById

from .test_spann import clustered

PARAMS = dict(head_index="hnsw", head_ratio=0.2, hnsw_m=8, list_cap=40, store_vectors=False)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """int8-stored embeddings as the engine reads them: code × scale."""
    return dequantize(*quantize(clustered(3000, seed=3), "int8"))


def _build(x: np.ndarray, path: Path, n: int = 2000) -> SpannIndex:
    return SpannIndex.build(x[:n], path=path, **PARAMS)


def _open(path: Path, x: np.ndarray) -> SpannIndex:
    return SpannIndex.open(path, vectors=VectorsById(x))


def _graph(index: SpannIndex) -> list[np.ndarray]:
    h = index._head_index.hnsw
    return [faiss.vector_to_array(a) for a in (h.neighbors, h.offsets, h.levels)] + [
        index._head_index.reconstruct_n(0, index._head_index.ntotal)]


def test_exact_codes_pick_the_smallest_exact_form(rows):
    codes, scales = exact_codes(rows[:50])
    assert codes.dtype == np.int8 and np.array_equal(dequantize(codes, scales), rows[:50])
    half = clustered(50, seed=8).astype(np.float16).astype(np.float32)
    assert exact_codes(half)[0].dtype == np.float16
    raw = clustered(50, seed=9)
    assert exact_codes(raw)[0].dtype == np.float32 and exact_codes(raw)[1] is None


def _as_version_5(path: Path, x: np.ndarray) -> None:
    """Rewrite a version-6 index's heads as version 5 wrote them: every head's vector, no ids."""
    header = json.loads((path / dio.HEADER).read_text())
    index = _open(path, x)
    for role in ("head_ids", "head_vectors", "head_scales"):
        if role in header["files"]:
            (path / header["files"].pop(role)["name"]).unlink()
    files, _ = write_heads(path, header["generation"], index._head_index)
    header["files"].update({r: f for r, f in files.items() if r.startswith("head_")})
    header["version"] = 5
    (path / dio.HEADER).write_text(json.dumps(header))


def _as_version_4(path: Path, x: np.ndarray) -> None:
    """Rewrite a version-6 index's heads as version 4 wrote them: vectors, every slot, and the offsets."""
    _as_version_5(path, x)
    header = json.loads((path / dio.HEADER).read_text())
    index = _open(path, x)  # kept alive while its graph's arrays are read
    h = index._head_index.hnsw
    for role in ("hnsw_links", "hnsw_degrees"):
        (path / header["files"].pop(role)["name"]).unlink()
    for role, arr in (("hnsw_neighbors", faiss.vector_to_array(h.neighbors).astype(np.int32)),
                      ("hnsw_offsets", faiss.vector_to_array(h.offsets).astype(np.int64))):
        header["files"][role] = dio.write_npy(path, f"{role}.g{header['generation']}.npy", arr)
    header["version"] = 4
    (path / dio.HEADER).write_text(json.dumps(header))


def test_heads_stored_as_ids_reopen_identical(rows, tmp_path):
    """Version 6: every head is a live row of the index, so each is stored as its id (4 bytes)
    and read back through the index's vectors; the reopened index is the same index."""
    built = _build(rows, tmp_path / "i")
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    assert header["version"] == 7 and header["heads"]["kind"] == "hnsw"  # 7: its ids 0..n-1 as one run
    head_ids = np.load(tmp_path / "i" / header["files"]["head_ids"]["name"])
    assert head_ids.dtype == np.int32 and head_ids.size == built._head_index.ntotal and (head_ids >= 0).all()
    assert np.array_equal(rows[head_ids], built.head_vectors())  # the ids are the heads' rows
    assert np.load(tmp_path / "i" / header["files"]["head_vectors"]["name"]).shape == (0, rows.shape[1])
    re = _open(tmp_path / "i", rows)
    assert all(np.array_equal(a, b) for a, b in zip(_graph(built), _graph(re)))
    q = clustered(100, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(built.search(q, 10), re.search(q, 10)))


def test_heads_of_removed_vectors_keep_their_vector(rows, tmp_path):
    """A removed vector's row leaves the generation's embeddings: the heads taken from removed
    vectors are rewritten as vectors by `remove`, the index reopens identical through vectors
    that no longer hold those rows, and later adds and compaction keep it so."""
    index = _build(rows, tmp_path / "i")
    heads_before = index.head_vectors()
    gone = np.asarray(index._head_ids[:7].tolist() + list(range(0, 2000, 50)))
    index.remove(gone)
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    refs = np.load(tmp_path / "i" / header["files"]["head_ids"]["name"]).astype(np.int64)
    stored = np.load(tmp_path / "i" / header["files"]["head_vectors"]["name"])
    assert (refs[:7] == -1).all() and not np.isin(refs, gone).any() and stored.shape[0] == int((refs == -1).sum()) >= 7
    vid2row = np.arange(rows.shape[0])
    vid2row[gone] = -1  # what the next generation's map says: the removed rows are gone (read as zeros)
    without = VectorsById.from_map(rows, vid2row)
    re = SpannIndex.open(tmp_path / "i", vectors=without)
    assert np.array_equal(re.head_vectors(), heads_before)
    q = clustered(100, seed=12)
    assert all(np.array_equal(a, b) for a, b in zip(index.search(q, 10), re.search(q, 10)))
    for step in ("add", "compact"):
        re.add(rows[2000:], np.arange(2000, 3000)) if step == "add" else re.compact()
        again = SpannIndex.open(tmp_path / "i", vectors=without)
        assert np.array_equal(again.head_vectors(), re.head_vectors())
        assert all(np.array_equal(a, b) for a, b in zip(again.search(q, 10), re.search(q, 10)))


def test_only_heads_that_read_back_exactly_become_ids(rows):
    """`head_refs`: an id whose row differs from the head (or is unknown, -1) keeps the vector."""
    heads = rows[[3, 5, 8, 13]]
    other = rows.copy()
    other[5, 0] += 1e-3  # the row of id 5 is no longer the head taken from it
    refs = head_refs(heads, np.array([3, 5, 8, -1]), VectorsById(other))
    assert refs.tolist() == [3, -1, 8, -1]


def test_hnsw_heads_stored_as_int8_arrays_reopen_identical(rows, tmp_path):
    """Version 5: heads stored as int8 vectors (what version 6 keeps for heads without a row)."""
    x = rows
    built = _build(x, tmp_path / "i")
    _as_version_5(tmp_path / "i", x)
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    assert header["version"] == 5 and header["heads"]["kind"] == "hnsw" and "heads" not in header["files"]
    assert {"hnsw_links", "hnsw_degrees", "hnsw_levels"} <= set(header["files"])
    assert not {"hnsw_neighbors", "hnsw_offsets"} & set(header["files"])
    assert np.load(tmp_path / "i" / header["files"]["head_vectors"]["name"]).dtype == np.int8
    assert not list((tmp_path / "i").glob("*.faiss"))
    re = _open(tmp_path / "i", x)
    assert all(np.array_equal(a, b) for a, b in zip(_graph(built), _graph(re)))
    q = clustered(100, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(built.search(q, 10), re.search(q, 10)))
    # the arrays take a fraction of faiss's file of the same head index
    faiss.write_index(built._head_index, str(tmp_path / "heads.faiss"))
    stored = sum(r["bytes"] for role, r in header["files"].items() if role.startswith(("head_v", "head_s", "hnsw")))
    assert stored < 0.5 * (tmp_path / "heads.faiss").stat().st_size
    # packed links: the unused (-1) slots faiss keeps are not stored
    neighbors = faiss.vector_to_array(built._head_index.hnsw.neighbors)
    links = np.load(tmp_path / "i" / header["files"]["hnsw_links"]["name"])
    assert links.size == int((neighbors != -1).sum()) < neighbors.size


def test_version_4_graphs_still_open_identical(rows, tmp_path):
    built = _build(rows, tmp_path / "i")
    _as_version_4(tmp_path / "i", rows)
    re = _open(tmp_path / "i", rows)
    assert all(np.array_equal(a, b) for a, b in zip(_graph(built), _graph(re)))
    q = clustered(50, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(built.search(q, 10), re.search(q, 10)))
    re.add(rows[2000:], np.arange(2000, 3000))  # heads change: written as version 6 (7: ids as runs)
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    assert header["version"] == 7 and "hnsw_links" in header["files"] and "hnsw_neighbors" not in header["files"]
    assert "head_ids" in header["files"]
    assert not list((tmp_path / "i").glob("hnsw_neighbors*")) and not list((tmp_path / "i").glob("hnsw_offsets*"))
    assert all(np.array_equal(a, b) for a, b in zip(_graph(re), _graph(_open(tmp_path / "i", rows))))


def test_grows_like_faiss_own_file(rows, tmp_path):
    """A version-3 copy (faiss's head file) and the version-4 index, both reopened, take the same
    add (splits add HNSW heads) to the same index; the v3 copy is written as version 4 after it."""
    x = rows
    _build(x, tmp_path / "v4")
    shutil.copytree(tmp_path / "v4", tmp_path / "v3")
    v3 = tmp_path / "v3"
    header = json.loads((v3 / dio.HEADER).read_text())
    faiss.write_index(_open(v3, x)._head_index, str(v3 / "heads.g1.faiss"))
    for role in ("head_ids", "head_vectors", "head_scales", "hnsw_links", "hnsw_degrees", "hnsw_levels"):
        if role in header["files"]:
            (v3 / header["files"].pop(role)["name"]).unlink()
    header["files"]["heads"] = dio.file_record(v3 / "heads.g1.faiss")
    header["version"] = 3
    del header["heads"]
    (v3 / dio.HEADER).write_text(json.dumps(header))
    a, b = _open(tmp_path / "v4", x), _open(v3, x)
    q = clustered(100, seed=5)
    assert all(np.array_equal(s, t) for s, t in zip(a.search(q, 10), b.search(q, 10)))
    for index in (a, b):
        index.add(x[2000:], np.arange(2000, 3000))
    assert (~a.list_table()["alive"]).any(), "the add split lists"
    a, b = _open(tmp_path / "v4", x), _open(v3, x)
    assert json.loads((v3 / dio.HEADER).read_text())["version"] == 7 and not list(v3.glob("*.faiss"))
    assert all(np.array_equal(s, t) for s, t in zip(_graph(a), _graph(b)))
    assert all(np.array_equal(s, t) for s, t in zip(a.search(q, 10), b.search(q, 10)))


def _damage(path: Path, role: str, fn) -> None:
    header = json.loads((path / dio.HEADER).read_text())
    name = header["files"][role]["name"]
    np.save(path / name, fn(np.load(path / name)), allow_pickle=False)
    header["files"][role] = dio.file_record(path / name)  # a consistent record: only the content is wrong
    (path / dio.HEADER).write_text(json.dumps(header))


def _with(a: np.ndarray, i, value) -> np.ndarray:
    a = a.copy()
    a[i] = value
    return a


@pytest.mark.parametrize("version,role,fn,message", [
    (5, "hnsw_links", lambda a: _with(a, 0, 10 ** 6), "neighbour links point outside"),
    (5, "hnsw_links", lambda a: a[:-1], "link degrees do not match"),
    (5, "hnsw_degrees", lambda a: _with(a, 0, a[0] + 1), "link degrees do not match"),
    (5, "hnsw_degrees", lambda a: _with(a, 0, 255), "link degrees do not match"),
    (5, "hnsw_degrees", lambda a: a.astype(np.int64), "hnsw_degrees array has dtype"),
    (5, "hnsw_levels", lambda a: _with(a, np.argmin(a), 40), "levels"),
    (4, "hnsw_neighbors", lambda a: _with(a, 0, 10 ** 6), "neighbour links point outside"),
    (4, "hnsw_neighbors", lambda a: a[:-1], "offsets do not match"),
    (4, "hnsw_levels", lambda a: _with(a, np.argmin(a), 40), "levels"),
    (4, "hnsw_offsets", lambda a: _with(a, 1, a[1] + 1), "offsets do not match"),
    (5, "head_vectors", lambda a: a[:, :-1], "head vectors"),
    (5, "head_scales", lambda a: a[:-1], "head scales"),
    (6, "head_ids", lambda a: _with(a, 0, 10 ** 6), "head ids that are not live vectors"),
    (6, "head_ids", lambda a: _with(a, 0, -2), "head ids that are not live vectors"),
    (6, "head_ids", lambda a: _with(a, 0, -1), "head vectors"),  # one more stored vector than the file has
    (6, "head_ids", lambda a: a[:-1], "head ids are"),
    (6, "head_ids", lambda a: a.astype(np.float32), "head_ids"),
])
def test_damaged_head_arrays_are_one_line_errors(rows, tmp_path, version, role, fn, message):
    _build(rows, tmp_path / "i")
    if version == 4:
        _as_version_4(tmp_path / "i", rows)
    elif version == 5:
        _as_version_5(tmp_path / "i", rows)
    _damage(tmp_path / "i", role, fn)
    with pytest.raises(IndexCorruptError, match=message) as err:
        _open(tmp_path / "i", rows)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("block", [7, 65_536])
def test_a_link_to_a_node_without_that_level_is_refused(rows, tmp_path, monkeypatch, block):
    """Within the arrays but above the target's levels: faiss would read another node's slots.
    Checked a block of nodes at a time (`GRAPH_BLOCK`): small blocks give the same verdicts."""
    from hippograph.indexers import head_store

    monkeypatch.setattr(head_store, "GRAPH_BLOCK", block)
    _build(rows, tmp_path / "i")
    _as_version_4(tmp_path / "i", rows)  # every slot stored: the damage below is one slot
    _open(tmp_path / "i", rows)  # intact: opens
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    levels = np.load(tmp_path / "i" / header["files"]["hnsw_levels"]["name"])
    offsets = np.load(tmp_path / "i" / header["files"]["hnsw_offsets"]["name"])
    top_node = int(header["heads"]["entry_point"])
    low_node = int(np.flatnonzero(levels == 1)[0])
    shape = faiss.IndexHNSWFlat(8, 8)  # kept alive while its vector is read
    cum = faiss.vector_to_array(shape.hnsw.cum_nneighbor_per_level)
    slot = int(offsets[top_node] + cum[1])  # the entry point's first level-1 link
    _damage(tmp_path / "i", "hnsw_neighbors", lambda a: _with(a, slot, low_node))
    with pytest.raises(IndexCorruptError, match="neighbour links point outside the graph or its levels"):
        _open(tmp_path / "i", rows)


def test_flat_heads_and_float_vectors(tmp_path):
    """A flat head index of raw float32 vectors: heads stored as ids (version 6) or as float32
    (version 5), reopened identical either way."""
    x = clustered(1500, seed=6)
    built = SpannIndex.build(x, path=tmp_path / "f", head_index="flat", store_vectors=False)
    q = clustered(50, seed=7)
    for version in (6, 5):
        if version == 5:
            _as_version_5(tmp_path / "f", x)
        header = json.loads((tmp_path / "f" / dio.HEADER).read_text())
        assert header["heads"] == {"kind": "flat"} and "head_scales" not in header["files"]
        assert ("head_ids" in header["files"]) == (version == 6)
        stored = np.load(tmp_path / "f" / header["files"]["head_vectors"]["name"])
        assert stored.dtype == np.float32 and stored.shape[0] == (0 if version == 6 else built.n_heads)
        re = SpannIndex.open(tmp_path / "f", vectors=VectorsById(x))
        assert all(np.array_equal(a, b) for a, b in zip(built.search(q, 10), re.search(q, 10)))


def test_a_packed_link_to_a_node_without_that_level_is_refused(rows, tmp_path):
    """The same damage in version 5's packed links: the entry point's first level-1 link."""
    _build(rows, tmp_path / "i")
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    levels = np.load(tmp_path / "i" / header["files"]["hnsw_levels"]["name"])
    degrees = np.load(tmp_path / "i" / header["files"]["hnsw_degrees"]["name"]).astype(np.int64)
    top_node = int(header["heads"]["entry_point"])
    low_node = int(np.flatnonzero(levels == 1)[0])
    run = int(levels[:top_node].sum()) + 1  # runs are node by node, level by level
    assert degrees[run] > 0
    _damage(tmp_path / "i", "hnsw_links", lambda a: _with(a, int(degrees[:run].sum()), low_node))
    with pytest.raises(IndexCorruptError, match="neighbour links point outside the graph or its levels"):
        _open(tmp_path / "i", rows)


def test_a_header_naming_half_a_graph_is_refused(rows, tmp_path):
    _build(rows, tmp_path / "i")
    header = json.loads((tmp_path / "i" / dio.HEADER).read_text())
    del header["files"]["hnsw_degrees"]
    (tmp_path / "i" / dio.HEADER).write_text(json.dumps(header))
    with pytest.raises(IndexCorruptError, match="heads record") as err:
        _open(tmp_path / "i", rows)
    assert "\n" not in str(err.value)
