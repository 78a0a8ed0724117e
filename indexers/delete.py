"""Deleting documents inside SQLite: the same result as `CorpusTables.without_documents`, without
loading any table into Python.

Row ids are dense positions shared with the embedding files and graph nodes, so a delete
renumbers every later row. The renumbering is done by SQLite: map tables (old row → new
row, numbered with ``ROW_NUMBER()`` in the old order) for passages, sentences, facts and
entities, then one ``INSERT … SELECT`` per table into a fresh database. Python only sees
the kept row numbers as arrays (`RowMaps`), which slice the embedding files.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from hippograph.storage import checkpoint_and_close, connect_sqlite
from hippograph.tables import OWNERS_SCHEMA, SCHEMA, RowMaps, fact_passage_rows, pack_text, synonym_kind_sql

from .generation import read_columns

MAPS = """
-- a shared passage whose first owner goes is handed to its first remaining further owner
CREATE TEMP TABLE heirs AS
    SELECT o.passage_idx AS passage_idx, o.doc_id AS doc_id, o.source AS source,
           o.span_start AS span_start, o.span_end AS span_end, min(o.rowid) AS owner_rowid
    FROM old.passage_owners o JOIN old.passages p ON p.idx = o.passage_idx
    WHERE p.doc_id IN (SELECT id FROM doomed) AND o.doc_id NOT IN (SELECT id FROM doomed)
    GROUP BY o.passage_idx;
CREATE TEMP TABLE pmap AS
    SELECT idx AS old, ROW_NUMBER() OVER (ORDER BY idx) - 1 AS new FROM old.passages
    WHERE doc_id NOT IN (SELECT id FROM doomed) OR idx IN (SELECT passage_idx FROM heirs);
CREATE UNIQUE INDEX temp.pmap_old ON pmap(old, new);
-- what goes: the deleted passages, then the facts and entities only they state or mention (candidates
-- from their rows, less those a kept row still holds): small sets, so the maps below are one scan each
CREATE TEMP TABLE gone_p AS
    SELECT idx FROM old.passages WHERE idx NOT IN (SELECT old FROM pmap);
CREATE TEMP TABLE candidate_f AS
    SELECT DISTINCT fact_idx AS idx FROM old.fact_passages WHERE passage_idx IN (SELECT idx FROM gone_p);
CREATE TEMP TABLE gone_f AS
    SELECT idx FROM candidate_f
    EXCEPT SELECT fact_idx FROM old.fact_passages
    WHERE fact_idx IN (SELECT idx FROM candidate_f) AND passage_idx NOT IN (SELECT idx FROM gone_p);
CREATE TEMP TABLE candidate_e AS
    SELECT entity_idx AS idx FROM old.mentions WHERE passage_idx IN (SELECT idx FROM gone_p)
    UNION SELECT subject_idx FROM old.facts WHERE idx IN (SELECT idx FROM gone_f)
    UNION SELECT object_idx FROM old.facts WHERE idx IN (SELECT idx FROM gone_f);
CREATE TEMP TABLE gone_e AS
    SELECT idx FROM candidate_e
    EXCEPT SELECT entity_idx FROM old.mentions
    WHERE entity_idx IN (SELECT idx FROM candidate_e) AND passage_idx NOT IN (SELECT idx FROM gone_p)
    EXCEPT SELECT subject_idx FROM old.facts
    WHERE subject_idx IN (SELECT idx FROM candidate_e) AND idx NOT IN (SELECT idx FROM gone_f)
    EXCEPT SELECT object_idx FROM old.facts
    WHERE object_idx IN (SELECT idx FROM candidate_e) AND idx NOT IN (SELECT idx FROM gone_f);
CREATE TEMP TABLE smap AS
    SELECT idx AS old, ROW_NUMBER() OVER (ORDER BY idx) - 1 AS new FROM old.sentences
    WHERE passage_idx NOT IN (SELECT idx FROM gone_p);
CREATE TEMP TABLE fmap AS
    SELECT idx AS old, ROW_NUMBER() OVER (ORDER BY idx) - 1 AS new FROM old.facts WHERE idx NOT IN (SELECT idx FROM gone_f);
CREATE UNIQUE INDEX temp.fmap_old ON fmap(old, new);
CREATE TEMP TABLE emap AS
    SELECT idx AS old, ROW_NUMBER() OVER (ORDER BY idx) - 1 AS new FROM old.entities WHERE idx NOT IN (SELECT idx FROM gone_e);
CREATE UNIQUE INDEX temp.emap_old ON emap(old, new);
"""

COPY = """
INSERT INTO main.documents SELECT * FROM old.documents WHERE id NOT IN (SELECT id FROM doomed) ORDER BY rowid;
INSERT INTO main.passages
    SELECT pmap.new, p.id, coalesce(h.doc_id, p.doc_id), p.title, pack_text(p.text), coalesce(h.source, p.source),
           coalesce(h.span_start, p.span_start), coalesce(h.span_end, p.span_end),
           CASE WHEN h.doc_id IS NULL THEN p.metadata
                ELSE coalesce((SELECT d.metadata FROM old.documents d WHERE d.id = h.doc_id), '{}') END
    FROM old.passages p JOIN pmap ON pmap.old = p.idx LEFT JOIN heirs h ON h.passage_idx = p.idx
    ORDER BY p.idx;
INSERT INTO main.sentences
    SELECT smap.new, pmap.new, s.start, s.end FROM old.sentences s
    JOIN smap ON smap.old = s.idx JOIN pmap ON pmap.old = s.passage_idx ORDER BY s.idx;
INSERT INTO main.entities SELECT emap.new, e.name FROM old.entities e JOIN emap ON emap.old = e.idx ORDER BY e.idx;
INSERT INTO main.mentions
    SELECT emap.new, pmap.new FROM old.mentions m
    JOIN pmap ON pmap.old = m.passage_idx JOIN emap ON emap.old = m.entity_idx ORDER BY m.entity_idx, m.passage_idx;
INSERT INTO main.facts
    SELECT fmap.new, es.new, f.predicate, eo.new FROM old.facts f JOIN fmap ON fmap.old = f.idx
    JOIN emap es ON es.old = f.subject_idx JOIN emap eo ON eo.old = f.object_idx ORDER BY f.idx;
INSERT INTO main.fact_passages (fact_idx, passage_idx, sentence_start, sentence_end, seq)
    SELECT fmap.new, pmap.new, fp.sentence_start, fp.sentence_end,
           ROW_NUMBER() OVER (PARTITION BY fp.passage_idx ORDER BY fp.row_order) - 1 FROM ({fact_passages}) fp
    JOIN pmap ON pmap.old = fp.passage_idx JOIN fmap ON fmap.old = fp.fact_idx ORDER BY fp.passage_idx, fp.row_order;
INSERT OR IGNORE INTO main.synonyms
    SELECT ea.new, eb.new, s.score, {synonym_kind} FROM old.synonyms s
    JOIN emap ea ON ea.old = s.a JOIN emap eb ON eb.old = s.b ORDER BY s.a, s.b;
INSERT INTO main.passage_owners
    SELECT pmap.new, o.doc_id, o.source, o.span_start, o.span_end FROM old.passage_owners o
    JOIN pmap ON pmap.old = o.passage_idx
    WHERE o.doc_id NOT IN (SELECT id FROM doomed) AND o.rowid NOT IN (SELECT owner_rowid FROM heirs)
    ORDER BY o.rowid;
"""

REMOVED_FACT_PAIRS = """
SELECT f.subject_idx, f.object_idx FROM old.fact_passages fp JOIN old.facts f ON f.idx = fp.fact_idx
WHERE fp.passage_idx IN (SELECT idx FROM gone_p)
"""

GONE_SENTENCES = "SELECT idx FROM old.sentences WHERE passage_idx IN (SELECT idx FROM gone_p)"

TABLES = ("documents", "passages", "sentences", "entities", "facts", "fact_passages", "mentions", "synonyms",
          "passage_owners")


def _counts(conn: sqlite3.Connection, schema: str) -> dict[str, int]:
    return {t: int(conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]) for t in TABLES}


def _kept_rows(conn: sqlite3.Connection, table: str, count: int, gone_sql: str, map_table: str) -> np.ndarray:
    """The kept old rows of `table` in order: every row but the few `gone_sql` lists, where the old rows
    are numbered 0..count-1 as a writer leaves them; else (a crafted table) as its map lists them."""
    lo, hi = conn.execute(f"SELECT min(idx), max(idx) FROM old.{table}").fetchone()
    if count and (lo, hi) == (0, count - 1):
        gone = read_columns(conn, gone_sql, (np.int64,))[0]
        return np.delete(np.arange(count, dtype=np.int64), gone)
    return read_columns(conn, f"SELECT old FROM {map_table} ORDER BY new", (np.int64,))[0]


def delete_documents(src: Path, dst: Path, doc_ids: Sequence[str]) -> tuple[RowMaps, dict[str, int], dict[str, int]]:
    """Write into the new database `dst` the tables of `src` without `doc_ids` and everything only
    they contributed; return the row maps (with the deleted passages' triples) and the table counts
    before and after."""
    conn = connect_sqlite(dst)
    conn.row_factory = None
    try:
        conn.executescript(SCHEMA)
        conn.executescript(OWNERS_SCHEMA)
        conn.create_function("pack_text", 1, pack_text, deterministic=True)  # older texts are written packed
        conn.execute("ATTACH DATABASE ? AS old", (str(src),))
        has_owners = conn.execute(
            "SELECT 1 FROM old.sqlite_master WHERE type='table' AND name='passage_owners'").fetchone()
        if not has_owners:  # an index written before shared passages were tracked
            conn.execute("CREATE TABLE old.passage_owners (passage_idx INTEGER NOT NULL, doc_id TEXT NOT NULL, "
                         "source TEXT NOT NULL, span_start INTEGER NOT NULL, span_end INTEGER NOT NULL)")
        conn.execute("CREATE TEMP TABLE doomed (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", ((str(i),) for i in doc_ids))
        conn.executescript(MAPS)
        before = _counts(conn, "old")
        conn.executescript("BEGIN;" + COPY.replace("{fact_passages}", fact_passage_rows(conn, "old"))
                           .replace("{synonym_kind}", synonym_kind_sql("s.kind")) + "COMMIT;")
        after = _counts(conn, "main")
        keep = {name: _kept_rows(conn, name, before[name], gone, table)
                for name, gone, table in (("passages", "SELECT idx FROM gone_p", "pmap"),
                                          ("sentences", GONE_SENTENCES, "smap"),
                                          ("facts", "SELECT idx FROM gone_f", "fmap"),
                                          ("entities", "SELECT idx FROM gone_e", "emap"))}
        doc_keep = read_columns(conn, "SELECT rn - 1 FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY rowid) AS rn "
                                      "FROM old.documents) WHERE id NOT IN (SELECT id FROM doomed) ORDER BY rn",
                                (np.int64,))[0]
        keep["documents"] = doc_keep
        removed = np.stack(read_columns(conn, REMOVED_FACT_PAIRS, (np.int64, np.int64)), axis=1)
        old_counts = {"documents": before["documents"], "passages": before["passages"],
                      "sentences": before["sentences"], "facts": before["facts"], "entities": before["entities"]}
        conn.execute("DETACH DATABASE old")
    finally:
        checkpoint_and_close(conn)
    return RowMaps(keep=keep, old_counts=old_counts, removed_fact_pairs=removed), before, after
