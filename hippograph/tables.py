"""The relational content of an index (documents, passages, entities, facts…) and its SQLite form.

`CorpusTables` is the single in-memory representation the builder appends to; it is
saved to / loaded from ``meta.sqlite`` of a generation. Integer positions in these lists
are the row ids used by every array on disk (embeddings, graph nodes, vector ids).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .storage import checkpoint_and_close, connect_sqlite
from .types import Document, Passage

SYNONYMS_TABLE = ("CREATE TABLE synonyms (a INTEGER NOT NULL, b INTEGER NOT NULL, score REAL NOT NULL, "
                  "kind INTEGER NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID")
"""Format 6: one b-tree keyed by the entity pair, `kind` as its position in `SYNONYM_KINDS` (format 5
and before: a rowid table naming the kind; kernel docs 749 → 483 bytes per passage)."""

FACTS_KEY_INDEX = "CREATE INDEX facts_key ON facts(subject_idx, object_idx)"
"""Format 6: the merge finds a fact by its entity pair, then its predicate among the pair's few
facts (format 5 and before also indexed the predicate text: kernel docs 372 → 226 bytes per passage)."""

FACT_PASSAGES_TABLE = ("CREATE TABLE fact_passages (fact_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, "
                       "sentence_start INTEGER, sentence_end INTEGER, seq INTEGER NOT NULL, "
                       "PRIMARY KEY (passage_idx, seq)) WITHOUT ROWID")
"""Format 7: one b-tree keyed by (passage, the triple's position among the passage's rows), in place
of a rowid table plus an index on passage_idx (a passage may state a triple twice, so the key needs
the position; kernel docs 551 → 333 bytes per passage). Rows are read in key order."""

FACT_PASSAGES_INSERT = ("INSERT INTO fact_passages (fact_idx, passage_idx, sentence_start, sentence_end, seq) "
                        "VALUES (?,?,?,?,?)")

SYNONYM_KINDS = ("embedding", "minhash")
"""Where a synonym edge came from, by its stored code: embedding kNN, MinHash LSH over name shingles."""

TABLES_USER_VERSION = 7
"""meta.sqlite's ``PRAGMA user_version`` when every table is in this code's layout (`upgrade_tables`)."""

SCHEMA = f"""
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL,
    content_hash TEXT NOT NULL, metadata TEXT NOT NULL
);
CREATE TABLE passages (
    idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, title TEXT NOT NULL,
    text TEXT NOT NULL, source TEXT NOT NULL, span_start INTEGER NOT NULL, span_end INTEGER NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX passages_doc ON passages(doc_id);
CREATE TABLE sentences (idx INTEGER PRIMARY KEY, passage_idx INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE TABLE entities (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE mentions (entity_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, PRIMARY KEY (entity_idx, passage_idx))
    WITHOUT ROWID;
CREATE TABLE facts (idx INTEGER PRIMARY KEY, subject_idx INTEGER NOT NULL, predicate TEXT NOT NULL, object_idx INTEGER NOT NULL);
{FACTS_KEY_INDEX};
{FACT_PASSAGES_TABLE};
{SYNONYMS_TABLE};
PRAGMA user_version = {TABLES_USER_VERSION};
"""

# Documents that contain an identical passage (same title + text) after the first one: the
# passage is stored once (its row names the first owner), these rows name the others, so
# deleting the first owner hands the passage over instead of losing it. Created separately
# with IF NOT EXISTS: indexes written before it existed gain it on their next write.
OWNERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS passage_owners (
    passage_idx INTEGER NOT NULL, doc_id TEXT NOT NULL, source TEXT NOT NULL,
    span_start INTEGER NOT NULL, span_end INTEGER NOT NULL
);
"""


# A triple's sentence is stored as its character span in the passage text (NULL, NULL when the
# extractor gave none or one the passage does not contain). Format 2 stored the sentence text
# on every row: half of meta.sqlite on the kernel docs. Those tables are still read (the span
# is computed in SQL, as `sentence_span` computes it) and rewritten by the next write.
_LEGACY_START = "CASE WHEN fp.sentence = '' OR instr(p.text, fp.sentence) = 0 THEN NULL ELSE instr(p.text, fp.sentence) - 1 END"
_LEGACY_ROWS = (f"SELECT fp.rowid AS row_order, fp.fact_idx AS fact_idx, fp.passage_idx AS passage_idx, "
                f"{_LEGACY_START} AS sentence_start, ({_LEGACY_START}) + length(fp.sentence) AS sentence_end "
                "FROM {schema}.{table} fp LEFT JOIN {schema}.passages p ON p.idx = fp.passage_idx")
_ROWS = ("SELECT rowid AS row_order, fact_idx, passage_idx, sentence_start, sentence_end "
         "FROM {schema}.{table}")
_KEYED_ROWS = ("SELECT seq AS row_order, fact_idx, passage_idx, sentence_start, sentence_end "
               "FROM {schema}.{table}")


def sentence_span(text: str, sentence: str) -> tuple[int | None, int | None]:
    """The character span of a triple's sentence in its passage text (first occurrence), or
    (None, None) when there is no sentence or the text does not contain it."""
    at = text.find(sentence) if sentence else -1
    return (at, at + len(sentence)) if at >= 0 else (None, None)


def stores_sentence_text(conn: sqlite3.Connection, schema: str = "main") -> bool:
    """Does this database's fact_passages hold sentence texts (format 2 and before)?"""
    return any(r[1] == "sentence" for r in conn.execute(f"PRAGMA {schema}.table_info(fact_passages)"))


def fact_passage_rows(conn: sqlite3.Connection, schema: str = "main") -> str:
    """A SELECT of (row_order, fact_idx, passage_idx, sentence_start, sentence_end) over
    fact_passages, for any table layout; rows are in order by (passage_idx, row_order)."""
    if stores_sentence_text(conn, schema):
        rows = _LEGACY_ROWS
    else:
        rows = _ROWS if has_rowid(conn, "fact_passages", schema) else _KEYED_ROWS
    return rows.format(schema=schema, table="fact_passages")


def numbered_fact_passages(rows: Iterable[tuple]) -> Iterator[tuple]:
    """(fact_idx, passage_idx, sentence_start, sentence_end, seq) for rows in the order they are
    stored: seq counts a passage's rows from 0. Rows are only ever added for new passages, so a
    passage's rows arrive in one insert (a repeat would break the key: IntegrityError)."""
    seen: dict[int, int] = {}
    for f, p, a, b in rows:
        seq = seen.get(p, 0)
        seen[p] = seq + 1
        yield f, p, a, b, seq


def upgrade_fact_passages(conn: sqlite3.Connection) -> bool:
    """Rewrite a format-2 fact_passages table (a sentence text per row) as spans, once, in the
    copy a write is making, straight into format 7's `FACT_PASSAGES_TABLE`; True if it did
    (`upgrade_tables` then VACUUMs)."""
    if not stores_sentence_text(conn):
        return False
    conn.commit()
    conn.executescript(
        "BEGIN;"
        "DROP INDEX IF EXISTS fact_passages_passage;"
        "ALTER TABLE fact_passages RENAME TO fact_passages_v2;"
        f"{FACT_PASSAGES_TABLE};"
        "INSERT INTO fact_passages SELECT fact_idx, passage_idx, sentence_start, sentence_end, "
        "ROW_NUMBER() OVER (PARTITION BY passage_idx ORDER BY row_order) - 1 FROM ("
        + _LEGACY_ROWS.format(schema="main", table="fact_passages_v2")
        + ") ORDER BY passage_idx, row_order;"
        "DROP TABLE fact_passages_v2;"
        "COMMIT;"
    )
    return True


def has_rowid(conn: sqlite3.Connection, table: str, schema: str = "main") -> bool:
    """Is `table` a rowid table (not WITHOUT ROWID) in this database?"""
    row = conn.execute(f"SELECT sql FROM {schema}.sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    return row is not None and "WITHOUT ROWID" not in " ".join(str(row[0]).upper().split())


def mentions_have_rowid(conn: sqlite3.Connection) -> bool:
    """Is this database's mentions table a rowid table with a separate key index (format 3 and
    before)? Format 4 stores it WITHOUT ROWID: one b-tree keyed (entity, passage), half the bytes."""
    return has_rowid(conn, "mentions")


def upgrade_mentions(conn: sqlite3.Connection) -> bool:
    """Rewrite a format-3 mentions table WITHOUT ROWID, once, in the copy a write is making;
    True if it did (`upgrade_tables` then VACUUMs)."""
    if not mentions_have_rowid(conn):
        return False
    conn.commit()
    conn.executescript(
        "BEGIN;"
        "ALTER TABLE mentions RENAME TO mentions_v3;"
        "CREATE TABLE mentions (entity_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, "
        "PRIMARY KEY (entity_idx, passage_idx)) WITHOUT ROWID;"
        "INSERT INTO mentions SELECT entity_idx, passage_idx FROM mentions_v3 ORDER BY entity_idx, passage_idx;"
        "DROP TABLE mentions_v3;"
        "COMMIT;"
    )
    return True


def synonym_kind_sql(column: str) -> str:
    """SQL giving the stored code (`SYNONYM_KINDS`) of a synonym row's kind, named (format 5 and
    before) or already a code."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(SYNONYM_KINDS))
    return f"CASE {column} {cases} ELSE {column} END"


def synonym_kind_name(value: Any) -> str:
    """The kind of a stored synonym row, from its code (format 6) or its name (before)."""
    if isinstance(value, str) and value in SYNONYM_KINDS:
        return value
    if isinstance(value, int) and 0 <= value < len(SYNONYM_KINDS):
        return SYNONYM_KINDS[value]
    raise ValueError(f"unknown synonym kind {value!r}")


def upgrade_synonyms(conn: sqlite3.Connection) -> bool:
    """Rewrite a format-5 synonyms table (rowid, kind named) as format 6's `SYNONYMS_TABLE`, once,
    in the copy a write is making; True if it did (`upgrade_tables` then VACUUMs). Pairs are
    unique by construction; a crafted repeat keeps its first row."""
    if not has_rowid(conn, "synonyms"):
        return False
    conn.commit()
    conn.executescript(
        "BEGIN;"
        "ALTER TABLE synonyms RENAME TO synonyms_v5;"
        f"{SYNONYMS_TABLE};"
        f"INSERT OR IGNORE INTO synonyms SELECT a, b, score, {synonym_kind_sql('kind')} FROM synonyms_v5 "
        "ORDER BY a, b, rowid;"
        "DROP TABLE synonyms_v5;"
        "COMMIT;"
    )
    return True


# ---------------------------------------------------------------------------- passage text

PACKED_TEXT_USER_VERSION = 5
"""meta.sqlite's ``PRAGMA user_version`` once every passage text is stored by `pack_text` (format 5):
set by `SCHEMA`, so only an older file is scanned by `upgrade_passage_text`, once."""

MAX_PASSAGE_TEXT_BYTES = 1 << 26
"""Largest passage text a stored row may decompress to (64 MiB): a crafted row cannot make a
reader allocate more."""


def pack_text(text: str | bytes) -> str | bytes:
    """A passage text as format 5 stores it: zlib-compressed UTF-8 (a BLOB) when that is smaller,
    else the text itself (a stored BLOB passes through). Technical prose halves (kernel docs:
    1,262 → 612 bytes per passage)."""
    if isinstance(text, bytes):
        return text
    raw = text.encode("utf-8")
    packed = zlib.compress(raw)
    return packed if len(packed) < len(raw) else text


def unpack_text(value: Any) -> str:
    """The passage text of a stored value, TEXT (any format) or a compressed BLOB (format 5).
    A damaged or oversized BLOB raises ValueError (readers turn it into IndexCorruptError)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes):
        raise ValueError(f"passage text is {type(value).__name__}, not text")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(value, MAX_PASSAGE_TEXT_BYTES)
    except zlib.error as exc:
        raise ValueError(f"compressed passage text is damaged ({exc})") from None
    if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise ValueError("compressed passage text is truncated, padded or longer than 64 MiB")
    return raw.decode("utf-8")


def upgrade_passage_text(conn: sqlite3.Connection, batch: int = 4096) -> bool:
    """Compress the passage texts of an index written before format 5, once, in the copy a write
    is making; True if it did (`upgrade_tables` then VACUUMs)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= PACKED_TEXT_USER_VERSION:
        return False
    changed, last = False, -1
    conn.commit()
    with conn:
        while chunk := conn.execute("SELECT idx, text FROM passages WHERE idx > ? AND typeof(text) = 'text' "
                                    "ORDER BY idx LIMIT ?", (last, batch)).fetchall():
            last = chunk[-1][0]
            packed = [(v, i) for i, t in chunk if not isinstance(v := pack_text(t), str)]
            conn.executemany("UPDATE passages SET text = ? WHERE idx = ?", packed)
            changed = changed or bool(packed)
        conn.execute(f"PRAGMA user_version = {PACKED_TEXT_USER_VERSION}")
    return changed


def upgrade_facts_key(conn: sqlite3.Connection) -> bool:
    """Rebuild a facts_key index that holds predicates (format 5 and before) as `FACTS_KEY_INDEX`,
    once, in the copy a write is making; True if it did (`upgrade_tables` then VACUUMs)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND name='facts_key'").fetchone()
    if row is not None and "predicate" not in str(row[0]):
        return False
    conn.commit()
    conn.executescript(f"BEGIN; DROP INDEX IF EXISTS facts_key; {FACTS_KEY_INDEX}; COMMIT;")
    return True


def upgrade_fact_passages_key(conn: sqlite3.Connection) -> bool:
    """Rewrite a rowid fact_passages table with its passage index (format 6 and before, spans already
    stored) as format 7's `FACT_PASSAGES_TABLE`, once, in the copy a write is making; True if it did."""
    if not has_rowid(conn, "fact_passages") or stores_sentence_text(conn):
        return False
    conn.commit()
    conn.executescript(
        "BEGIN;"
        "DROP INDEX IF EXISTS fact_passages_passage;"
        "ALTER TABLE fact_passages RENAME TO fact_passages_v6;"
        f"{FACT_PASSAGES_TABLE};"
        "INSERT INTO fact_passages SELECT fact_idx, passage_idx, sentence_start, sentence_end, "
        "ROW_NUMBER() OVER (PARTITION BY passage_idx ORDER BY rowid) - 1 FROM fact_passages_v6 "
        "ORDER BY passage_idx, rowid;"
        "DROP TABLE fact_passages_v6;"
        "COMMIT;"
    )
    return True


TABLE_UPGRADES = (
    (upgrade_fact_passages, "fact_passages rewritten with sentence spans (format 3, keyed as format 7)"),
    (upgrade_mentions, "mentions rewritten WITHOUT ROWID (format 4)"),
    (upgrade_passage_text, "passage texts compressed (format 5)"),
    (upgrade_synonyms, "synonyms rewritten WITHOUT ROWID with coded kinds (format 6)"),
    (upgrade_facts_key, "facts_key index rebuilt without predicates (format 6)"),
    (upgrade_fact_passages_key, "fact_passages rewritten WITHOUT ROWID keyed by passage (format 7)"),
)


def upgrade_tables(conn: sqlite3.Connection) -> list[str]:
    """Bring the tables of an older meta.sqlite (the copy a write is making) to this code's layout,
    oldest step first, then one VACUUM returns the freed pages; what was done, for the log."""
    done = [what for upgrade, what in TABLE_UPGRADES if upgrade(conn)]
    if conn.execute("PRAGMA user_version").fetchone()[0] < TABLES_USER_VERSION:
        conn.execute(f"PRAGMA user_version = {TABLES_USER_VERSION}")
    if done:
        conn.execute("VACUUM")
    return done


def document_hash(doc: Document) -> str:
    """Content hash of a document (title + text), stored to detect changed documents."""
    return hashlib.sha256(f"{doc.title}\x1f{doc.text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class DocumentRow:
    """A document as recorded in the index (content itself lives in its passages)."""

    id: str
    title: str
    source: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RowMaps:
    """Which rows survive a deletion: ``keep[table]`` lists the kept old row numbers in order.

    New row ``i`` of a table is old row ``keep[table][i]``; tables are ``documents``,
    ``passages``, ``sentences``, ``facts``, ``entities`` (the last four are the embedding
    granularities, so ``embeddings[g][keep[g]]`` renumbers an embedding matrix).
    """

    keep: dict[str, np.ndarray]
    old_counts: dict[str, int]
    removed_fact_pairs: np.ndarray | None = None
    """(subject, object) of every triple the deleted passages stated, in old entity numbers: the fact
    edge weight the graph loses (None where not recorded)."""

    def old_to_new(self, table: str) -> np.ndarray:
        """Array of length old-count: the new row of every old row, -1 where deleted."""
        out = np.full(self.old_counts[table], -1, dtype=np.int64)
        out[self.keep[table]] = np.arange(len(self.keep[table]), dtype=np.int64)
        return out

    def removed(self, table: str) -> int:
        return self.old_counts[table] - len(self.keep[table])


@dataclass
class CorpusTables:
    """All rows of an index; list positions are the ids used by arrays and graph nodes."""

    documents: list[DocumentRow] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    sentences: list[tuple[int, int, int]] = field(default_factory=list)  # passage_idx, start, end
    entities: list[str] = field(default_factory=list)
    mentions: list[tuple[int, int]] = field(default_factory=list)  # entity_idx, passage_idx
    facts: list[tuple[int, str, int]] = field(default_factory=list)  # subject_idx, predicate, object_idx
    fact_passages: list[tuple[int, int, int | None, int | None]] = field(default_factory=list)
    """fact_idx, passage_idx, sentence start, end (characters of the passage text; see `sentence_span`)."""
    synonyms: list[tuple[int, int, float, str]] = field(default_factory=list)  # a, b, score, kind
    passage_owners: list[tuple[int, str, str, int, int]] = field(default_factory=list)
    """Further documents holding an identical passage: passage_idx, doc_id, source, span start, end."""

    def fact_text(self, fact_idx: int) -> str:
        s, p, o = self.facts[fact_idx]
        return f"{self.entities[s]} {p} {self.entities[o]}"

    def counts(self) -> dict[str, int]:
        return {
            "documents": len(self.documents),
            "passages": len(self.passages),
            "sentences": len(self.sentences),
            "entities": len(self.entities),
            "facts": len(self.facts),
            "triples": len(self.fact_passages),
            "mentions": len(self.mentions),
            "synonyms": len(self.synonyms),
            "passage_owners": len(self.passage_owners),
        }

    # ---- deletion ---------------------------------------------------------------------------
    def without_documents(self, doc_ids: Iterable[str]) -> tuple["CorpusTables", RowMaps]:
        """A copy without the given documents and everything only they contributed.

        Removes their passages, sentences, mentions and fact occurrences; facts left with no
        occurrence; entities that no remaining passage mentions and no remaining fact uses;
        synonymy edges touching a removed entity. Rows are renumbered in their old order
        (one linear pass per table); the returned `RowMaps` says which old rows were kept.
        """
        drop = set(doc_ids)
        n_p, n_e, n_f = len(self.passages), len(self.entities), len(self.facts)
        doc_keep = [i for i, d in enumerate(self.documents) if d.id not in drop]
        # a shared passage whose first owner goes is handed to its next remaining owner
        owners = [row for row in self.passage_owners if row[1] not in drop]
        heirs: dict[int, tuple[int, str, str, int, int]] = {}
        for row in owners:
            if self.passages[row[0]].doc_id in drop:
                heirs.setdefault(row[0], row)
        p_keep = [i for i, p in enumerate(self.passages) if p.doc_id not in drop or i in heirs]
        p_map = [-1] * n_p
        for new, old in enumerate(p_keep):
            p_map[old] = new
        doc_meta = {self.documents[i].id: self.documents[i].metadata for i in doc_keep}
        passages = []
        for i in p_keep:
            p = self.passages[i]
            if i in heirs:
                _, doc_id, source, a, b = heirs[i]
                p = replace(p, doc_id=doc_id, source=source, span=(a, b), metadata=dict(doc_meta.get(doc_id, {})))
            passages.append(p)
        promoted = {id(row) for row in heirs.values()}
        owners = [(p_map[row[0]], *row[1:]) for row in owners if id(row) not in promoted]

        s_keep = [i for i, (p, _, _) in enumerate(self.sentences) if p_map[p] >= 0]
        mentions = [(e, p_map[p]) for e, p in self.mentions if p_map[p] >= 0]
        occurrences = [(f, p_map[p], a, b) for f, p, a, b in self.fact_passages if p_map[p] >= 0]

        f_used = [False] * n_f
        for f, *_ in occurrences:
            f_used[f] = True
        f_keep = [i for i in range(n_f) if f_used[i]]
        e_used = [False] * n_e
        for e, _ in mentions:
            e_used[e] = True
        for i in f_keep:
            s, _, o = self.facts[i]
            e_used[s] = e_used[o] = True
        e_keep = [i for i in range(n_e) if e_used[i]]
        e_map = [-1] * n_e
        for new, old in enumerate(e_keep):
            e_map[old] = new
        f_map = [-1] * n_f
        for new, old in enumerate(f_keep):
            f_map[old] = new

        out = CorpusTables(
            documents=[self.documents[i] for i in doc_keep],
            passages=passages,
            sentences=[(p_map[p], a, b) for p, a, b in (self.sentences[i] for i in s_keep)],
            entities=[self.entities[i] for i in e_keep],
            mentions=[(e_map[e], p) for e, p in mentions],
            facts=[(e_map[s], pred, e_map[o]) for s, pred, o in (self.facts[i] for i in f_keep)],
            fact_passages=[(f_map[f], p, a, b) for f, p, a, b in occurrences],
            synonyms=[
                (e_map[a], e_map[b], score, kind)
                for a, b, score, kind in self.synonyms
                if e_map[a] >= 0 and e_map[b] >= 0
            ],
            passage_owners=owners,
        )
        maps = RowMaps(
            keep={
                "documents": np.asarray(doc_keep, dtype=np.int64),
                "passages": np.asarray(p_keep, dtype=np.int64),
                "sentences": np.asarray(s_keep, dtype=np.int64),
                "facts": np.asarray(f_keep, dtype=np.int64),
                "entities": np.asarray(e_keep, dtype=np.int64),
            },
            old_counts={
                "documents": len(self.documents), "passages": n_p, "sentences": len(self.sentences),
                "facts": n_f, "entities": n_e,
            },
        )
        return out, maps

    # ---- SQLite ---------------------------------------------------------------------------
    def save(self, path: Path, *, since: dict[str, int] | None = None) -> None:
        """Write every table into a fresh SQLite file (WAL during the write, folded at the end).

        With `since` (the `counts()` of the tables an existing file at `path` already holds,
        e.g. a copy of the previous generation's database), only rows appended after those
        counts are inserted: the cheap path for an add that renumbered nothing.
        """
        conn = connect_sqlite(path)
        c = since or {}
        try:
            if since is None:
                conn.executescript(SCHEMA)
            conn.executescript(OWNERS_SCHEMA)
            conn.executemany(
                "INSERT INTO documents VALUES (?,?,?,?,?)",
                (
                    (d.id, d.title, d.source, d.content_hash, json.dumps(d.metadata, default=str))
                    for d in self.documents[c.get("documents", 0):]
                ),
            )
            p0 = c.get("passages", 0)
            conn.executemany(
                "INSERT INTO passages VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    (i, p.id, p.doc_id, p.title, pack_text(p.text), p.source, p.span[0], p.span[1], json.dumps(p.metadata, default=str))
                    for i, p in enumerate(self.passages[p0:], p0)
                ),
            )
            s0 = c.get("sentences", 0)
            conn.executemany("INSERT INTO sentences VALUES (?,?,?,?)", ((i, *s) for i, s in enumerate(self.sentences[s0:], s0)))
            e0 = c.get("entities", 0)
            conn.executemany("INSERT INTO entities VALUES (?,?)", enumerate(self.entities[e0:], e0))
            conn.executemany("INSERT INTO mentions VALUES (?,?)", self.mentions[c.get("mentions", 0):])
            f0 = c.get("facts", 0)
            conn.executemany("INSERT INTO facts VALUES (?,?,?,?)", ((i, *f) for i, f in enumerate(self.facts[f0:], f0)))
            conn.executemany(FACT_PASSAGES_INSERT, numbered_fact_passages(self.fact_passages[c.get("triples", 0):]))
            conn.executemany("INSERT INTO synonyms VALUES (?,?,?,?)",
                             ((a, b, w, SYNONYM_KINDS.index(kind)) for a, b, w, kind in self.synonyms[c.get("synonyms", 0):]))
            conn.executemany("INSERT INTO passage_owners VALUES (?,?,?,?,?)",
                             self.passage_owners[c.get("passage_owners", 0):])
        finally:
            checkpoint_and_close(conn)

    @classmethod
    def load(cls, path: Path) -> "CorpusTables":
        """Read every table back (used by the writer when it appends to an index)."""
        conn = connect_sqlite(path, readonly=True)
        try:
            t = cls()
            t.documents = [
                DocumentRow(r["id"], r["title"], r["source"], r["content_hash"], json.loads(r["metadata"]))
                for r in conn.execute("SELECT * FROM documents ORDER BY rowid")
            ]
            t.passages = [row_to_passage(r) for r in conn.execute("SELECT * FROM passages ORDER BY idx")]
            conn.row_factory = None  # plain tuples: several times faster for the big tables
            t.sentences = conn.execute("SELECT passage_idx, start, end FROM sentences ORDER BY idx").fetchall()
            t.entities = [r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx")]
            t.mentions = conn.execute(  # the order the merge inserts them in, in either table layout
                "SELECT entity_idx, passage_idx FROM mentions ORDER BY passage_idx, entity_idx").fetchall()
            t.facts = conn.execute("SELECT subject_idx, predicate, object_idx FROM facts ORDER BY idx").fetchall()
            t.fact_passages = conn.execute(
                "SELECT fact_idx, passage_idx, sentence_start, sentence_end FROM (%s) ORDER BY passage_idx, row_order"
                % fact_passage_rows(conn)).fetchall()
            t.synonyms = [(a, b, w, synonym_kind_name(kind))  # pair order: format 6's key, either layout
                          for a, b, w, kind in conn.execute("SELECT a, b, score, kind FROM synonyms ORDER BY a, b")]
            has_owners = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='passage_owners'").fetchone()
            if has_owners:  # absent in indexes written before shared passages were tracked
                t.passage_owners = conn.execute(
                    "SELECT passage_idx, doc_id, source, span_start, span_end FROM passage_owners ORDER BY rowid"
                ).fetchall()
            return t
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: a damaged text or synonym kind
            from .errors import IndexCorruptError

            raise IndexCorruptError(f"{path}: damaged metadata database ({exc})") from exc
        finally:
            conn.close()


def row_to_passage(row: sqlite3.Row) -> Passage:
    return Passage(
        id=row["id"],
        doc_id=row["doc_id"],
        title=row["title"],
        text=unpack_text(row["text"]),
        source=row["source"],
        span=(row["span_start"], row["span_end"]),
        metadata=json.loads(row["metadata"]),
    )
