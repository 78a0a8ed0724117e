"""SPANN header version 7: the live ids stored as [start, stop) runs (``id_runs``) whenever that file is
smaller than the plain ``ids`` array; the index searches, grows and shrinks the same either way, the
plain file returns when the ids turn sparse, damaged runs are one-line errors, version 6 still opens."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hippograph.errors import IndexCorruptError
from hippograph.indexers import _diskio as dio
from hippograph.indexers import spann
from hippograph.indexers.spann import SpannIndex, VectorsById

from .test_spann import clustered

N = 1500
PARAMS = dict(list_cap=40, store_vectors=False, sketch_bits=0)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    """Vectors by id: id i is row i (ids past N are added later)."""
    return clustered(N + 1200, seed=21)


@pytest.fixture(scope="module")
def Q() -> np.ndarray:
    return clustered(60, seed=22)


def _header(path: Path) -> dict:
    return json.loads((path / dio.HEADER).read_text())


def _open(path: Path, X: np.ndarray) -> SpannIndex:
    return SpannIndex.open(path, vectors=VectorsById(X), verify=True)


def _stored_runs(path: Path) -> np.ndarray:
    """The runs file the header names (and the check that it is the only live-id file)."""
    files = _header(path)["files"]
    assert "ids" not in files and not list(path.glob("ids.*"))
    return np.load(path / files["id_runs"]["name"])


def _build_plain(X: np.ndarray, path: Path, monkeypatch) -> SpannIndex:
    with monkeypatch.context() as m:
        m.setattr(spann, "ID_RUNS", False)
        return SpannIndex.build(X[:N], path=path, **PARAMS)


def test_fresh_build_stores_one_run(X, Q, tmp_path, monkeypatch):
    """0..n-1 is one 16-byte run (version 7); the plain layout (version 6) searches identically."""
    a = SpannIndex.build(X[:N], path=tmp_path / "a", **PARAMS)
    assert _header(tmp_path / "a")["version"] == 7
    runs = _stored_runs(tmp_path / "a")
    assert runs.dtype == np.int64 and runs.tolist() == [[0, N]]
    b = _build_plain(X, tmp_path / "b", monkeypatch)
    hb = _header(tmp_path / "b")
    assert hb["version"] == 6 and "id_runs" not in hb["files"]
    assert np.load(tmp_path / "b" / hb["files"]["ids"]["name"]).dtype == np.int32
    ra, rb = _open(tmp_path / "a", X), _open(tmp_path / "b", X)
    assert np.array_equal(ra.ids, np.arange(N)) and np.array_equal(rb.ids, np.arange(N))
    for index in (a, rb):
        assert all(np.array_equal(s, t) for s, t in zip(ra.search(Q, 10), index.search(Q, 10)))


def test_indexes_that_store_vectors_keep_the_plain_file(X, tmp_path):
    """Like their int64 posting ids: the layout older releases read (version 1 here)."""
    index = SpannIndex.build(X[:N], path=tmp_path / "s", sketch_bits=0)
    h = _header(tmp_path / "s")
    assert h["version"] == 1 and "id_runs" not in h["files"] and "ids" in h["files"]
    index.remove(np.arange(100))
    assert "id_runs" not in _header(tmp_path / "s")["files"]
    assert np.array_equal(SpannIndex.open(tmp_path / "s").ids, np.arange(100, N))


def test_deletes_and_adds_keep_the_smaller_layout(X, Q, tmp_path):
    path = tmp_path / "i"
    SpannIndex.build(X[:N], path=path, **PARAMS)
    index = _open(path, X)  # reads added vectors through X
    index.remove(np.arange(500, 700))  # a hole: two runs
    assert _stored_runs(path).tolist() == [[0, 500], [700, N]]
    index.add(X[N + 50:N + 150], np.arange(N + 50, N + 150))  # a third run after a gap
    assert _stored_runs(path).tolist() == [[0, 500], [700, N], [N + 50, N + 150]]
    index.compact()  # the live ids do not change: the runs file stays
    live = np.concatenate([np.arange(500), np.arange(700, N), np.arange(N + 50, N + 150)])
    re = _open(path, X)
    assert np.array_equal(re.ids, live) and np.array_equal(index.ids, live)
    assert all(np.array_equal(s, t) for s, t in zip(re.search(Q, 10), index.search(Q, 10)))
    index.remove(live[::2])  # every other id: runs would be larger, the plain file returns
    h = _header(path)
    assert "id_runs" not in h["files"] and not list(path.glob("id_runs.*")) and h["version"] == 7
    assert np.array_equal(np.load(path / h["files"]["ids"]["name"]), live[1::2])
    index.add(X[N + 1000:N + 1200], np.arange(N + 1000, N + 1200))
    assert "ids" in _header(path)["files"]
    re = _open(path, X)
    assert np.array_equal(re.ids, np.concatenate([live[1::2], np.arange(N + 1000, N + 1200)]))
    assert all(np.array_equal(s, t) for s, t in zip(re.search(Q, 10), index.search(Q, 10)))


def test_version_6_index_opens_and_moves_to_runs_on_its_next_write(X, Q, tmp_path, monkeypatch):
    path = tmp_path / "v6"
    plain = _build_plain(X, path, monkeypatch)  # what version 6 wrote: ids.g1.npy, int32
    assert _header(path)["version"] == 6
    re = _open(path, X)
    assert np.array_equal(re.ids, np.arange(N))
    assert all(np.array_equal(s, t) for s, t in zip(re.search(Q, 10), plain.search(Q, 10)))
    re.remove([N - 1])
    assert _header(path)["version"] == 7 and _stored_runs(path).tolist() == [[0, N - 1]]
    assert np.array_equal(_open(path, X).ids, np.arange(N - 1))


def _rewrite_runs(path: Path, runs: np.ndarray) -> Path:
    """Replace the runs file with `runs`, its header record resealed (size and CRC match)."""
    h = _header(path)
    name = h["files"]["id_runs"]["name"]
    (path / name).unlink()
    h["files"]["id_runs"] = dio.write_npy(path, name, runs)
    (path / dio.HEADER).write_text(json.dumps(h))
    return path / name


@pytest.mark.parametrize("damage, match", [
    ([[0, 800], [700, N]], "ascending with gaps"),  # overlapping
    ([[0, 700], [700, N]], "ascending with gaps"),  # adjacent: one run written as two
    ([[700, N], [0, 500]], "ascending with gaps"),  # out of order
    ([[0, 0], [1, N + 1]], "non-empty"),  # an empty run
    ([[-5, 495], [700, N + 5]], "non-negative"),
    ([[0, 500], [700, N + 1]], f"hold {N - 199} ids, the header says {N - 200}"),
    (np.array([[0, 500, 1], [700, N, 1]]), r"expected k × 2 integers"),
    (np.array([[0.0, 500.0], [700.0, N]]), r"float64 .*expected k × 2 integers"),
    (np.array([0, 500, 700, N]), "2 dimensions|expected 2"),
])
def test_damaged_runs_are_refused_naming_the_file(X, tmp_path, damage, match):
    path = tmp_path / "i"
    SpannIndex.build(X[:N], path=path, **PARAMS).remove(np.arange(500, 700))
    fp = _rewrite_runs(path, np.asarray(damage) if not isinstance(damage, np.ndarray) else damage)
    with pytest.raises(IndexCorruptError, match=match) as err:
        _open(path, X)
    assert str(fp) in str(err.value) and "\n" not in str(err.value)


def test_a_header_naming_both_layouts_is_refused(X, tmp_path):
    path = tmp_path / "i"
    SpannIndex.build(X[:N], path=path, **PARAMS)
    h = _header(path)
    h["files"]["ids"] = dio.write_npy(path, "ids.g1.npy", np.arange(N, dtype=np.int32))
    (path / dio.HEADER).write_text(json.dumps(h))
    with pytest.raises(IndexCorruptError, match="header.json.*both an ids and an id_runs file"):
        _open(path, X)


def test_a_run_claiming_more_ids_than_posting_entries_is_refused_before_allocation(X, tmp_path):
    path = tmp_path / "i"
    SpannIndex.build(X[:N], path=path, **PARAMS)
    fp = _rewrite_runs(path, np.array([[0, 10**12]]))
    h = _header(path)
    h["n_vectors"] = 10**12  # the header agrees: only the posting file's size bounds the count
    (path / dio.HEADER).write_text(json.dumps(h))
    with pytest.raises(IndexCorruptError, match="more than the .* posting entries") as err:
        _open(path, X)
    assert str(fp) in str(err.value)
