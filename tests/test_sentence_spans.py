"""Format 3: a triple's sentence is stored as a span of its passage text (`tables.sentence_span`);
format-2 indexes (the sentence text on every fact_passages row) open, export, delete and grow
with the same results, and their next write rewrites the table as spans."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from hippograph import HippoGraph
from hippograph.format import FORMAT_VERSION
from hippograph.tables import CorpusTables, sentence_span, stores_sentence_text, unpack_text

from .conftest import record_checksum

NEW_DOC = {"id": "new-doc", "title": "Orla Vance",
           "text": "Orla Vance founded Kessel Shipworks in Ostrel. Orla Vance studied in Drumlow."}


def test_sentence_span_is_the_first_occurrence_or_none():
    assert sentence_span("A b. C d. C d.", "C d.") == (5, 9)
    assert sentence_span("A b.", "") == (None, None)
    assert sentence_span("A b.", "not there") == (None, None)


def _meta(index: Path) -> Path:
    manifest = json.loads((index / "manifest.json").read_text())
    return index / manifest["generation"] / "meta.sqlite"


def _unpack_texts(conn: sqlite3.Connection) -> None:
    """Store every passage text as TEXT, as formats before 5 did (`tables.pack_text`), and the
    synonyms as those formats did (`_name_synonym_kinds`)."""
    rows = conn.execute("SELECT idx, text FROM passages").fetchall()
    with conn:
        conn.executemany("UPDATE passages SET text = ? WHERE idx = ?", [(unpack_text(t), i) for i, t in rows])
        conn.execute("PRAGMA user_version = 0")
    _name_synonym_kinds(conn)


def _name_synonym_kinds(conn: sqlite3.Connection) -> None:
    """Store the synonyms as formats before 6 did: a rowid table naming each row's kind."""
    conn.executescript(
        "BEGIN;"
        "CREATE TABLE v5 (a INTEGER NOT NULL, b INTEGER NOT NULL, score REAL NOT NULL, kind TEXT NOT NULL);"
        "INSERT INTO v5 SELECT a, b, score, CASE kind WHEN 0 THEN 'embedding' ELSE 'minhash' END FROM synonyms "
        "ORDER BY a, b;"
        "DROP TABLE synonyms; ALTER TABLE v5 RENAME TO synonyms;"
        "COMMIT;")


def _mark_format(index: Path, version: int) -> Path:
    """Record an older format version in a tampered copy's manifest (and meta.sqlite's checksum, as
    that format's writer did)."""
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["format_version"] = version
    (index / "manifest.json").write_text(json.dumps(manifest))
    record_checksum(index)
    return index


def _as_version_2(src: Path, dst: Path) -> Path:
    """A copy of an index as format 2 wrote it: the sentence text on every fact_passages row."""
    shutil.copytree(src, dst)
    conn = sqlite3.connect(_meta(dst))
    _unpack_texts(conn)
    conn.executescript(
        "BEGIN;"
        "CREATE TABLE v2 (fact_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, sentence TEXT NOT NULL);"
        "INSERT INTO v2 SELECT fp.fact_idx, fp.passage_idx, CASE WHEN fp.sentence_start IS NULL THEN '' ELSE "
        "substr(p.text, fp.sentence_start + 1, fp.sentence_end - fp.sentence_start) END "
        "FROM fact_passages fp JOIN passages p ON p.idx = fp.passage_idx ORDER BY fp.passage_idx, fp.seq;"
        "DROP TABLE fact_passages; ALTER TABLE v2 RENAME TO fact_passages;"
        "CREATE INDEX fact_passages_passage ON fact_passages(passage_idx);"
        "COMMIT; VACUUM;")
    conn.close()
    return _mark_format(dst, 2)


@pytest.fixture()
def pair(sample_index: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a copy of the sample index, the same index in format 2)."""
    new = tmp_path / "v3"
    shutil.copytree(sample_index, new)
    return new, _as_version_2(sample_index, tmp_path / "v2")


def test_spans_are_much_smaller_than_sentence_texts(pair):
    new, old = pair
    assert _meta(new).stat().st_size < _meta(old).stat().st_size
    with sqlite3.connect(_meta(new)) as conn:
        spans = conn.execute("SELECT count(*), count(sentence_start) FROM fact_passages").fetchone()
    assert spans[0] > 100 and spans[1] == spans[0]  # every rule-extracted triple names a sentence it came from


def test_version_2_reads_as_spans(pair):
    new, old = pair
    with sqlite3.connect(_meta(old)) as conn:
        assert stores_sentence_text(conn)
    assert CorpusTables.load(_meta(old)).fact_passages == CorpusTables.load(_meta(new)).fact_passages
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        assert b.manifest.format_version == 2
        assert b.triples() == a.triples() and len(a.triples()) > 100
        assert all(r["sentence_start"] is not None for r in a.triples())


def test_version_2_grows_and_deletes_like_version_3(pair):
    new, old = pair
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        doomed = a.triples(limit=1)[0]["doc_id"]
        for hg in (a, b):
            hg.delete(doomed)
        assert b.triples() == a.triples()
        with sqlite3.connect(_meta(old)) as conn:  # a delete writes a fresh database in the new layout
            assert not stores_sentence_text(conn)
    old2 = _as_version_2(new, new.parent / "v2b")
    with HippoGraph.open(new) as a, HippoGraph.open(old2) as b:
        for hg in (a, b):
            report = hg.add([NEW_DOC])
            assert report.added["documents"] == 1
        assert b.manifest.format_version == FORMAT_VERSION
        with sqlite3.connect(_meta(old2)) as conn:  # the add rewrote the copied table as spans
            assert not stores_sentence_text(conn)
        assert b.triples() == a.triples()
        assert any(r["doc_id"] == "new-doc" and r["sentence_start"] is not None for r in b.triples())
        assert b.dir.verify() == []
