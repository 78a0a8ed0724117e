"""Index directory: manifest validation, atomic generations, writer lock, checksums."""
import json
import multiprocessing as mp

import pytest

from hippograph.errors import IndexCorruptError, IndexLockedError, IndexNotFoundError
from hippograph.storage import FORMAT_VERSION, IndexDir, Manifest


def _commit(idx: IndexDir, payload: str) -> Manifest:
    gen = idx.new_generation()
    (gen / "data.txt").write_text(payload)
    return idx.commit(gen, Manifest(generation="", config={}))


def test_missing_and_foreign_directories(tmp_path):
    with pytest.raises(IndexNotFoundError, match="no such index directory"):
        IndexDir(tmp_path / "nope").read_manifest()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    with pytest.raises(IndexNotFoundError, match="not a hippograph index"):
        IndexDir(tmp_path / "foreign").read_manifest()
    (tmp_path / "foreign" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(IndexCorruptError, match="not a hippograph manifest"):
        IndexDir(tmp_path / "foreign").read_manifest()


def test_corrupt_and_newer_manifest(tmp_path):
    idx = IndexDir(tmp_path)
    _commit(idx, "x")
    data = json.loads(idx.manifest_path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    idx.manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match="newer than this hippograph"):
        idx.read_manifest()
    idx.manifest_path.write_text("{ not json")
    with pytest.raises(IndexCorruptError, match="unreadable manifest"):
        idx.read_manifest()


def test_interrupted_build_is_reported_incomplete(tmp_path):
    idx = IndexDir(tmp_path)
    gen = idx.new_generation()
    (gen / "meta.sqlite").write_bytes(b"partial")
    with pytest.raises(IndexCorruptError, match="incomplete index"):
        idx.read_manifest()


def test_commit_switches_generation_and_collects_garbage(tmp_path):
    idx = IndexDir(tmp_path)
    m1 = _commit(idx, "one")
    m2 = _commit(idx, "two")
    m3 = _commit(idx, "three")
    assert idx.read_manifest().generation == m3.generation
    assert (tmp_path / m3.generation / "data.txt").read_text() == "three"
    # the previous generation is kept for readers that still use it; older ones are removed
    assert (tmp_path / m2.generation).is_dir()
    assert not (tmp_path / m1.generation).exists()
    # an abandoned temp generation is removed by the next commit
    stale = idx.new_generation()
    _commit(idx, "four")
    assert not stale.exists()


def test_verify_reports_damage(tmp_path):
    idx = IndexDir(tmp_path)
    m = _commit(idx, "payload")
    assert idx.verify() == []
    (tmp_path / m.generation / "data.txt").write_text("tampered")
    (tmp_path / m.generation / "extra.bin").write_bytes(b"?")
    problems = idx.verify()
    assert any("checksum mismatch" in p and "data.txt" in p for p in problems)
    assert any("not listed" in p and "extra.bin" in p for p in problems)


def _hold_lock(path, ready, release):
    with IndexDir(path).writer_lock():
        ready.set()
        release.wait(10)


def test_second_writer_gets_clear_error(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(IndexLockedError, match="another process"):
            with IndexDir(tmp_path).writer_lock():
                pass
    finally:
        release.set()
        proc.join(10)
    with IndexDir(tmp_path).writer_lock():  # free again
        pass
