"""A write verifies the base generation's meta.sqlite against the manifest checksum while it copies
it (`storage.copy_verified`): damage in rows the write never reads is refused in one line naming
the file, instead of being carried into a new generation under a fresh checksum."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from hippograph import HippoGraph
from hippograph.cli import main as cli
from hippograph.errors import IndexCorruptError
from hippograph.storage import IndexDir, copy_verified, sha256_file

from .conftest import record_checksum
from .test_sentence_spans import NEW_DOC, _meta

CHANGES = {
    "add": lambda hg: hg.add([NEW_DOC]),
    "update": lambda hg: hg.update([NEW_DOC]),
    "sync": lambda hg: hg.sync([NEW_DOC], delete_missing=False),
    "delete": lambda hg: hg.delete(hg.documents()[0]["id"]),
}


@pytest.fixture()
def index(sample_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(sample_index, copy)
    return copy


def _flip_stored_text(index: Path) -> None:
    """Flip one byte inside the longest stored passage text, in the file itself: rows an add never
    reads (it reads the new passages' texts only)."""
    db = _meta(index)
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT text FROM passages ORDER BY length(text) DESC LIMIT 1").fetchone()
    conn.close()
    stored = text if isinstance(text, bytes) else text.encode("utf-8")
    data = bytearray(db.read_bytes())
    window = stored[:48]
    assert data.count(window) == 1
    at = data.find(window) + 24
    data[at] ^= 0x01
    db.write_bytes(bytes(data))


def _state(index: Path) -> tuple[bytes, list[str]]:
    """The manifest's bytes and the index directory's entries (the lock's holder pid aside)."""
    return (index / "manifest.json").read_bytes(), sorted(p.name for p in index.iterdir())


def _assert_untouched(index: Path, before: tuple[bytes, list[str]]) -> None:
    """Same manifest, same live generation, no new generation, temp dir or shard dir, lock free."""
    assert _state(index) == before
    with IndexDir(index).writer_lock():
        pass


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_write_on_a_damaged_meta_sqlite_is_refused_in_one_line(index: Path, change: str):
    _flip_stored_text(index)
    before = _state(index)
    with HippoGraph.open(index) as hg:
        with pytest.raises(IndexCorruptError) as err:
            CHANGES[change](hg)
    message = str(err.value)
    assert "\n" not in message and "meta.sqlite: checksum mismatch (expected" in message
    assert message.startswith(str(_meta(index))) and "would carry the damage into a new generation" in message
    _assert_untouched(index, before)
    assert IndexDir(index).verify() == [message.split(";")[0]]  # `check` names the same file and problem


def test_the_write_itself_never_reads_the_damaged_bytes(index: Path):
    """The control: with the damage's checksum recorded, the add succeeds and carries the damage
    into the new generation, so only the checksum can stop it."""
    _flip_stored_text(index)
    record_checksum(index)  # as a buggy tool would
    with HippoGraph.open(index) as hg:
        generation = hg.manifest.generation
        assert hg.add([NEW_DOC]).added["documents"] == 1
        assert hg.manifest.generation != generation and hg.dir.verify() == []


def test_the_cli_exits_non_zero_with_one_line(index: Path, tmp_path: Path, capsys):
    _flip_stored_text(index)
    before = _state(index)
    src = tmp_path / "src"
    src.mkdir()
    (src / "Orla_Vance.txt").write_text(NEW_DOC["text"], encoding="utf-8")
    capsys.readouterr()
    assert cli(["index", str(src), "--index", str(index), "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hippograph: error: ") and f"{_meta(index)}: checksum mismatch" in err
    _assert_untouched(index, before)


def test_a_same_size_edit_with_the_old_mtime_is_caught(index: Path):
    """A valid SQLite edit that keeps the file's size and modification time still fails the check."""
    db = _meta(index)
    stat = db.stat()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE passages SET text = randomblob(length(text)) "
                     "WHERE rowid = (SELECT max(rowid) FROM passages WHERE typeof(text) = 'blob')")
    conn.close()
    os.utime(db, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert db.stat().st_size == stat.st_size and db.stat().st_mtime_ns == stat.st_mtime_ns
    before = _state(index)
    with HippoGraph.open(index) as hg, pytest.raises(IndexCorruptError, match="meta.sqlite: checksum mismatch"):
        hg.add([NEW_DOC])
    _assert_untouched(index, before)


def test_a_manifest_without_meta_sqlite_checksum_is_refused(index: Path):
    manifest = json.loads((index / "manifest.json").read_text())
    del manifest["checksums"]["meta.sqlite"]
    (index / "manifest.json").write_text(json.dumps(manifest))
    before = _state(index)
    with HippoGraph.open(index) as hg, pytest.raises(IndexCorruptError, match="meta.sqlite: not listed in the manifest"):
        hg.add([NEW_DOC])
    _assert_untouched(index, before)


def test_a_healthy_index_still_writes(index: Path):
    with HippoGraph.open(index) as hg:
        generation = hg.manifest.generation
        assert hg.add([NEW_DOC]).added["documents"] == 1
        assert hg.manifest.generation != generation and hg.dir.verify() == []


def test_copy_verified_removes_the_copy_on_a_mismatch(tmp_path: Path):
    src, dst = tmp_path / "meta.sqlite", tmp_path / "copy.sqlite"
    src.write_bytes(b"x" * (3 << 20))
    copy_verified(src, dst, sha256_file(src))
    assert dst.read_bytes() == src.read_bytes()
    dst.unlink()
    with pytest.raises(IndexCorruptError, match=r"meta.sqlite: checksum mismatch \(expected 000000000000…, found"):
        copy_verified(src, dst, "0" * 64)
    assert not dst.exists()


def test_a_damaged_index_is_refused_over_http(index: Path, monkeypatch):
    """POST /documents on a damaged index: an error status with one line naming meta.sqlite, not a 500."""
    from fastapi.testclient import TestClient

    from hippograph.server import SETTINGS_ENV, _app_from_env

    _flip_stored_text(index)
    before = _state(index)
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"index_dir": str(index), "allow_writes": True, "warm_up": False}))
    with TestClient(_app_from_env()) as client:
        res = client.post("/documents", json={"documents": [NEW_DOC]})
    assert 400 <= res.status_code != 500
    detail = res.json()["detail"]
    assert "\n" not in detail and "meta.sqlite: checksum mismatch" in detail
    _assert_untouched(index, before)


def _flip_embedding_byte(index: Path, name: str) -> Path:
    """Flip one byte in the middle of a live embedding file's rows (`name`: e.g. entities.npy)."""
    gen = index / json.loads((index / "manifest.json").read_text())["generation"]
    path = gen / "embeddings" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 7] ^= 0x10
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("change", ["add", "delete"])
@pytest.mark.parametrize("name", ["entities.npy", "sentences.scale.npy"])
def test_a_write_that_would_carry_a_damaged_embedding_file_is_refused(index: Path, change: str, name: str):
    """An add copies the base rows of every grown embedding file (in the kernel) and a delete rewrites
    them row by row; both then checksum the new file afresh, so the base file is checked first."""
    path = _flip_embedding_byte(index, name)
    before = _state(index)
    with HippoGraph.open(index) as hg:
        with pytest.raises(IndexCorruptError) as err:
            CHANGES[change](hg)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: checksum mismatch (expected")
    if change == "add":  # the add's shards were built before the grow: kept for the next attempt to reuse
        shutil.rmtree(index / ".build")
    _assert_untouched(index, before)


def test_healthy_embedding_files_are_checked_once_and_pass(index: Path):
    with HippoGraph.open(index) as hg:
        report = hg.update([NEW_DOC])  # a delete and an add in one write: each base file verified once
    assert report.to_dict()["added"]["passages"] >= 1
    assert IndexDir(index).verify() == []


def _restamp_array(gen: Path, rel: str, change) -> None:  # noqa: ANN001
    """Rewrite a .npy of the live generation with `change(array)` applied: valid, same shape, wrong values."""
    import numpy as np

    path = gen / rel
    array = np.load(path)
    np.save(path, change(array.copy()), allow_pickle=False)


def test_derived_files_that_do_not_match_are_derived_again(index: Path, caplog):
    """Graph, BM25 and MinHash keys a write would update in place from the base are checked first; a file
    that no longer matches (here valid arrays with other values, which no structural check sees) is one
    warning and is derived again from the verified tables: the new generation equals a scratch build's."""
    import numpy as np

    from hippograph.format import GRAPH_FILES
    from hippograph.indexers.generation import write_graph

    gen = index / json.loads((index / "manifest.json").read_text())["generation"]
    _restamp_array(gen, "graph/pair_weights.npy", lambda w: w + np.float32(1))
    _restamp_array(gen, "lexical/passages/bm25_data.npy", lambda d: d * np.float32(1.5))
    _restamp_array(gen, "graph/minhash_bands.npy", lambda k: k ^ np.uint32(1))
    with caplog.at_level("WARNING"), HippoGraph.open(index) as hg:
        report = hg.add([NEW_DOC]).to_dict()
        new_gen = hg.dir.generation_path(hg.manifest)
    assert report["derived"] == {"graph": "built", "bm25": "built"}
    for rel in ("graph/pair_weights.npy", "lexical/passages/bm25_data.npy", "graph/minhash_bands.npy"):
        assert f"{gen / rel}: checksum mismatch" in caplog.text
    with sqlite3.connect(new_gen / "meta.sqlite") as conn:
        n_e, n_p = (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("entities", "passages"))
        write_graph(conn, index / "scratch", n_e, n_p, None)
    for name in GRAPH_FILES:
        assert np.array_equal(np.load(new_gen / "graph" / name), np.load(index / "scratch" / name)), name
    assert IndexDir(index).verify() == []


def test_a_spann_index_whose_files_do_not_match_is_rebuilt(tmp_path: Path, caplog):
    """An update rewrites a SPANN index's header, heads and list table from what it read. SPANN checks its
    arrays' crc32 against the header, not the header itself: a header edited into other valid values
    (here the distance floor) is caught by the manifest check, and that granularity is rebuilt."""
    from hippograph import Config

    from .conftest import DATA

    hg = HippoGraph.build(DATA / "corpus", tmp_path / "idx", Config(embedder="tfidf", spann_min_vectors=64))
    header_path = hg.dir.generation_path(hg.manifest) / "vectors" / "entities" / "header.json"
    header = json.loads(header_path.read_text())
    assert header["format"] == "hippograph-spann", "entities should be a SPANN index at spann_min_vectors=64"
    header["dist_floor"] = header["dist_floor"] * 2 + 0.125
    header_path.write_text(json.dumps(header))
    with caplog.at_level("WARNING"):
        report = hg.add([NEW_DOC]).to_dict()
    assert f"{header_path}: checksum mismatch" in caplog.text
    assert any(c.startswith("entities: rebuilt (the previous index's files do not match") for c in report["compacted"])
    new_header = json.loads((hg.dir.generation_path(hg.manifest) / "vectors" / "entities" / "header.json").read_text())
    assert new_header["dist_floor"] != header["dist_floor"]
    assert IndexDir(hg.dir.root).verify() == []
    hg.close()
