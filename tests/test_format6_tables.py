"""Format 6: ``synonyms`` is a WITHOUT ROWID table keyed by the entity pair, its kind stored as a
code (`tables.SYNONYMS_TABLE`), and ``facts_key`` indexes entity pairs without predicates;
format-5 indexes (a rowid table naming kinds, predicates in the index) read, grow and shrink with
the same results, and their next write rewrites both once (`tables.upgrade_tables`)."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from hippograph import HippoGraph
from hippograph.errors import IndexCorruptError
from hippograph.format import FORMAT_VERSION
from hippograph.tables import (FACTS_KEY_INDEX, SYNONYM_KINDS, TABLES_USER_VERSION, CorpusTables, has_rowid,
                               synonym_kind_name, upgrade_tables)

from .test_sentence_spans import NEW_DOC, _mark_format, _meta, _name_synonym_kinds

QUESTION = "Who founded Kessel Shipworks?"
FORMAT_5_FACTS_KEY = "CREATE INDEX facts_key ON facts(subject_idx, object_idx, predicate)"
CURRENT = (False, TABLES_USER_VERSION, {"integer"}, FACTS_KEY_INDEX)


def _as_version_5(src: Path, dst: Path) -> Path:
    """A copy of an index as format 5 wrote it: synonyms in a rowid table, kinds by name."""
    shutil.copytree(src, dst)
    conn = sqlite3.connect(_meta(dst))
    _name_synonym_kinds(conn)
    conn.executescript("DROP INDEX facts_key; CREATE INDEX facts_key ON facts(subject_idx, object_idx, predicate);")
    conn.execute("PRAGMA user_version = 5")
    conn.execute("VACUUM")
    conn.close()
    return _mark_format(dst, 5)


def _synonyms(index: Path) -> list[tuple]:
    """Every synonym row (a, b, score, kind name), whatever the table's layout."""
    with sqlite3.connect(_meta(index)) as conn:
        rows = conn.execute("SELECT a, b, score, kind FROM synonyms ORDER BY a, b").fetchall()
    conn.close()
    return [(a, b, w, synonym_kind_name(kind)) for a, b, w, kind in rows]


def _layout(index: Path) -> tuple[bool, int, set[str], str]:
    """(synonyms has a rowid, PRAGMA user_version, SQLite types of the stored kinds, facts_key's SQL)."""
    with sqlite3.connect(_meta(index)) as conn:
        out = (has_rowid(conn, "synonyms"), conn.execute("PRAGMA user_version").fetchone()[0],
               {t for (t,) in conn.execute("SELECT DISTINCT typeof(kind) FROM synonyms")},
               conn.execute("SELECT sql FROM sqlite_master WHERE name = 'facts_key'").fetchone()[0])
    conn.close()
    return out


def _hits(hg: HippoGraph) -> list[dict]:
    return [h.to_dict() for h in hg.retrieve(QUESTION, top_k=5, explain=True)]


def test_version_5_synonyms_read_grow_shrink_and_upgrade_once(sample_index: Path, tmp_path: Path) -> None:
    new = tmp_path / "v6"
    shutil.copytree(sample_index, new)
    old = _as_version_5(sample_index, tmp_path / "v5")
    assert _layout(new) == CURRENT
    assert _layout(old) == (True, 5, {"text"}, FORMAT_5_FACTS_KEY)
    rows = _synonyms(new)
    assert len(rows) > 10 and {r[3] for r in rows} <= set(SYNONYM_KINDS) and rows == _synonyms(old)
    assert CorpusTables.load(_meta(old)).synonyms == CorpusTables.load(_meta(new)).synonyms == rows
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        assert b.manifest.format_version == 5 and a.manifest.format_version == FORMAT_VERSION >= 6
        assert _hits(a) == _hits(b)
        for hg in (a, b):
            assert hg.add([NEW_DOC]).added["documents"] == 1
        assert b.manifest.format_version == FORMAT_VERSION
        assert _layout(old) == _layout(new) == CURRENT  # the add rewrote it
        assert _synonyms(old) == _synonyms(new) and len(_synonyms(new)) >= len(rows)
        assert CorpusTables.load(_meta(old)).synonyms == CorpusTables.load(_meta(new)).synonyms
        assert _hits(a) == _hits(b)
        assert b.dir.verify() == []
        doomed = a.triples(limit=1)[0]["doc_id"]
    old2 = _as_version_5(new, tmp_path / "v5b")
    with HippoGraph.open(new) as a, HippoGraph.open(old2) as b:
        for hg in (a, b):
            hg.delete(doomed)
        assert _layout(old2) == _layout(new)  # a delete writes the rows it copies in format 6
        assert _synonyms(old2) == _synonyms(new)
        assert _hits(a) == _hits(b)
        assert b.dir.verify() == []
    with sqlite3.connect(_meta(new)) as conn:  # a current file: nothing to do, no VACUUM
        assert upgrade_tables(conn) == []
    conn.close()


def test_an_older_file_is_upgraded_in_one_pass(sample_index: Path, tmp_path: Path) -> None:
    old = _as_version_5(sample_index, tmp_path / "v5")
    meta = _meta(old)
    with sqlite3.connect(meta) as conn:
        assert upgrade_tables(conn) == ["synonyms rewritten WITHOUT ROWID with coded kinds (format 6)",
                                        "facts_key index rebuilt without predicates (format 6)"]
        assert upgrade_tables(conn) == []
    conn.close()
    assert _layout(old) == CURRENT
    assert _synonyms(old) == _synonyms(sample_index)


def test_unknown_stored_kind_is_one_line_naming_meta_sqlite(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(sample_index, index)
    with sqlite3.connect(_meta(index)) as conn:
        conn.execute("UPDATE synonyms SET kind = 7 WHERE (a, b) IN (SELECT a, b FROM synonyms LIMIT 1)")
    conn.close()
    with pytest.raises(IndexCorruptError, match=r"meta.sqlite: damaged metadata database \(unknown synonym kind 7\)"):
        CorpusTables.load(_meta(index))
