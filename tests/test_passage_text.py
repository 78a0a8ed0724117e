"""Format 5: a passage text is stored zlib-compressed where that is smaller (`tables.pack_text`);
format-4 indexes (every text a TEXT value) read the same, their next write compresses them once,
and a damaged compressed text is one line naming meta.sqlite (a write refuses it by checksum first)."""
from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest

from hippograph import HippoGraph
from hippograph.cli import main as cli
from hippograph.errors import IndexCorruptError
from hippograph.format import FORMAT_VERSION
from hippograph.tables import MAX_PASSAGE_TEXT_BYTES, PACKED_TEXT_USER_VERSION, CorpusTables, pack_text, unpack_text

from .conftest import record_checksum
from .test_sentence_spans import NEW_DOC, _mark_format, _meta, _unpack_texts

QUESTION = "Who founded Kessel Shipworks?"


def _as_version_4(src: Path, dst: Path) -> Path:
    """A copy of an index as format 4 wrote it: every passage text stored as TEXT."""
    shutil.copytree(src, dst)
    conn = sqlite3.connect(_meta(dst))
    _unpack_texts(conn)
    conn.execute("VACUUM")
    conn.close()
    return _mark_format(dst, 4)


def _storage(index: Path) -> tuple[dict[str, int], int]:
    """(count of passage rows by SQLite type of their text, PRAGMA user_version) of an index."""
    with sqlite3.connect(_meta(index)) as conn:
        kinds = dict(conn.execute("SELECT typeof(text), count(*) FROM passages GROUP BY 1").fetchall())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return kinds, version


def _hits(hg: HippoGraph) -> list[dict]:
    return [h.to_dict() for h in hg.retrieve(QUESTION, top_k=5, explain=True)]


def test_pack_round_trips_and_keeps_texts_it_cannot_shrink():
    for text in ["", "a", "Short.", "naïve café — ünïcode ✓ " * 40, "x" * 100_000, "line\n" * 500]:
        assert unpack_text(pack_text(text)) == text
    assert pack_text("Short.") == "Short."
    long_text = "The kernel documentation describes the scheduler. " * 20
    packed = pack_text(long_text)
    assert isinstance(packed, bytes) and len(packed) < len(long_text) // 4
    assert pack_text(packed) is packed  # a stored value passes through (delete copies rows with it)


@pytest.mark.parametrize("damage, match", [
    (lambda good: good[:-6], "truncated"),
    (lambda good: good + b"junk", "padded"),
    (lambda good: b"not zlib at all", "damaged"),
    (lambda good: zlib.compress(b"\0" * (MAX_PASSAGE_TEXT_BYTES + 1)), "longer than 64 MiB"),
    (lambda good: zlib.compress(b"\xff\xfe\xfd" * 10), "utf-8"),
    (lambda good: 42, "int, not text"),
])
def test_damaged_stored_text_is_a_value_error(damage, match):
    good = pack_text("The kernel documentation describes the scheduler. " * 20)
    with pytest.raises(ValueError, match=match):
        unpack_text(damage(good))


def test_index_stores_packed_texts_and_reads_them_like_format_4(sample_index: Path, tmp_path: Path):
    old = _as_version_4(sample_index, tmp_path / "v4")
    kinds, version = _storage(sample_index)
    assert kinds.get("blob", 0) > 10 and version >= PACKED_TEXT_USER_VERSION
    assert _storage(old) == ({"text": sum(kinds.values())}, 0)
    assert _meta(sample_index).stat().st_size < _meta(old).stat().st_size
    assert CorpusTables.load(_meta(old)).passages == CorpusTables.load(_meta(sample_index)).passages
    with HippoGraph.open(sample_index) as a, HippoGraph.open(old) as b:
        assert b.manifest.format_version == 4 and a.manifest.format_version == FORMAT_VERSION >= 5
        hits = _hits(a)
        assert hits == _hits(b) and len(hits) == 5 and all(h["text"] for h in hits)
        assert a.snapshot.sentence_text(0) == b.snapshot.sentence_text(0) != ""


def test_version_4_grows_and_deletes_like_version_5(sample_index: Path, tmp_path: Path):
    new = tmp_path / "v5"
    shutil.copytree(sample_index, new)
    old = _as_version_4(sample_index, tmp_path / "v4")
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        for hg in (a, b):
            assert hg.add([NEW_DOC]).added["documents"] == 1
        assert b.manifest.format_version == FORMAT_VERSION
        assert _storage(old) == _storage(new)  # the add compressed the copied texts
        assert CorpusTables.load(_meta(old)).passages == CorpusTables.load(_meta(new)).passages
        assert _hits(a) == _hits(b)
        doomed = a.triples(limit=1)[0]["doc_id"]
    old2 = _as_version_4(new, tmp_path / "v4b")
    with HippoGraph.open(new) as a, HippoGraph.open(old2) as b:
        for hg in (a, b):
            hg.delete(doomed)
        assert _storage(old2) == _storage(new)  # a delete writes the texts it copies compressed
        assert CorpusTables.load(_meta(old2)).passages == CorpusTables.load(_meta(new)).passages
        assert _hits(a) == _hits(b)
        assert b.dir.verify() == []


def test_damaged_compressed_text_is_one_line_naming_meta_sqlite(sample_index: Path, tmp_path: Path, capsys):
    index = tmp_path / "idx"
    shutil.copytree(sample_index, index)
    generation = json.loads((index / "manifest.json").read_text())["generation"]
    with sqlite3.connect(_meta(index)) as conn:  # every compressed text loses its last bytes
        conn.execute("UPDATE passages SET text = substr(text, 1, length(text) - 4) WHERE typeof(text) = 'blob'")
    conn.close()
    with HippoGraph.open(index) as hg:
        with pytest.raises(IndexCorruptError, match=r"meta.sqlite: passage row \d+ is damaged \(compressed passage"):
            hg.retrieve(QUESTION)
        # a write checks the base's meta.sqlite against the manifest before copying it: refused, nothing committed
        with pytest.raises(IndexCorruptError, match=r"meta.sqlite: checksum mismatch \(expected [0-9a-f]+…, found"):
            hg.add([NEW_DOC])
        assert json.loads((index / "manifest.json").read_text())["generation"] == generation
    record_checksum(index)  # the damage's checksum recorded (a buggy tool): only the rows can tell now
    with HippoGraph.open(index) as hg:
        # an add reads the new passages' texts only (BM25 is updated, not rebuilt): it does not meet the damage,
        # and the damaged rows it carries over are still reported by the next query, in one line
        assert hg.add([NEW_DOC]).to_dict()["derived"]["bm25"] == "updated"
        assert json.loads((index / "manifest.json").read_text())["generation"] != generation
        with pytest.raises(IndexCorruptError, match=r"meta.sqlite: passage row \d+ is damaged \(compressed passage"):
            hg.retrieve(QUESTION)
    capsys.readouterr()
    assert cli(["query", str(index), QUESTION]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta.sqlite" in err and "Traceback" not in err
