"""Format 4: ``mentions`` is a WITHOUT ROWID table (one b-tree keyed by entity and passage instead
of a rowid table plus its key index); format-3 indexes open and grow with the same results, and
their next write rewrites the table (`tables.upgrade_mentions`)."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from hippograph import HippoGraph
from hippograph.format import FORMAT_VERSION
from hippograph.tables import CorpusTables, mentions_have_rowid

from .test_sentence_spans import NEW_DOC, _mark_format, _meta, _unpack_texts


def _as_version_3(src: Path, dst: Path) -> Path:
    """A copy of an index as format 3 wrote it: mentions as a rowid table with a primary-key index."""
    shutil.copytree(src, dst)
    conn = sqlite3.connect(_meta(dst))
    _unpack_texts(conn)
    conn.executescript(
        "BEGIN;"
        "CREATE TABLE v3 (entity_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, "
        "PRIMARY KEY (entity_idx, passage_idx));"
        "INSERT INTO v3 SELECT entity_idx, passage_idx FROM mentions ORDER BY passage_idx, entity_idx;"
        "DROP TABLE mentions; ALTER TABLE v3 RENAME TO mentions;"
        "COMMIT; VACUUM;")
    conn.close()
    return _mark_format(dst, 3)


def _mentions(index: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(_meta(index)) as conn:
        return conn.execute("SELECT entity_idx, passage_idx FROM mentions ORDER BY 1, 2").fetchall()


def test_version_3_mentions_read_grow_and_upgrade(sample_index: Path, tmp_path: Path) -> None:
    new = tmp_path / "v4"
    shutil.copytree(sample_index, new)
    old = _as_version_3(sample_index, tmp_path / "v3")
    with sqlite3.connect(_meta(new)) as a, sqlite3.connect(_meta(old)) as b:
        assert not mentions_have_rowid(a) and mentions_have_rowid(b)
    assert len(_mentions(new)) > 50 and _mentions(new) == _mentions(old)
    assert CorpusTables.load(_meta(old)).mentions == CorpusTables.load(_meta(new)).mentions
    question = "Who founded Kessel Shipworks?"
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        assert b.manifest.format_version == 3
        assert [h.passage_id for h in a.retrieve(question, top_k=5)] == [h.passage_id for h in b.retrieve(question, top_k=5)]
        for hg in (a, b):
            assert hg.add([NEW_DOC]).added["documents"] == 1
        assert b.manifest.format_version == FORMAT_VERSION >= 4
        with sqlite3.connect(_meta(old)) as conn:  # the add rewrote the copied table WITHOUT ROWID
            assert not mentions_have_rowid(conn)
        assert _mentions(old) == _mentions(new) and len(_mentions(new)) > len(_mentions(sample_index))
        assert CorpusTables.load(_meta(old)).mentions == CorpusTables.load(_meta(new)).mentions
        assert [h.passage_id for h in a.retrieve(question, top_k=5)] == [h.passage_id for h in b.retrieve(question, top_k=5)]
        assert b.dir.verify() == []
        doomed = a.triples(limit=1)[0]["doc_id"]
        for hg in (a, b):
            hg.delete(doomed)
        assert _mentions(old) == _mentions(new)
