"""The relational content of an index (documents, passages, entities, facts…) and its SQLite form.

`CorpusTables` is the single in-memory representation the builder appends to; it is
saved to / loaded from ``meta.sqlite`` of a generation. Integer positions in these lists
are the row ids used by every array on disk (embeddings, graph nodes, vector ids).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .storage import checkpoint_and_close, connect_sqlite
from .types import Passage

SCHEMA = """
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
CREATE TABLE mentions (entity_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, PRIMARY KEY (entity_idx, passage_idx));
CREATE TABLE facts (idx INTEGER PRIMARY KEY, subject_idx INTEGER NOT NULL, predicate TEXT NOT NULL, object_idx INTEGER NOT NULL);
CREATE TABLE fact_passages (fact_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, sentence TEXT NOT NULL);
CREATE INDEX fact_passages_passage ON fact_passages(passage_idx);
CREATE TABLE synonyms (a INTEGER NOT NULL, b INTEGER NOT NULL, score REAL NOT NULL, kind TEXT NOT NULL);
"""


@dataclass
class DocumentRow:
    """A document as recorded in the index (content itself lives in its passages)."""

    id: str
    title: str
    source: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class CorpusTables:
    """All rows of an index; list positions are the ids used by arrays and graph nodes."""

    documents: list[DocumentRow] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    sentences: list[tuple[int, int, int]] = field(default_factory=list)  # passage_idx, start, end
    entities: list[str] = field(default_factory=list)
    mentions: list[tuple[int, int]] = field(default_factory=list)  # entity_idx, passage_idx
    facts: list[tuple[int, str, int]] = field(default_factory=list)  # subject_idx, predicate, object_idx
    fact_passages: list[tuple[int, int, str]] = field(default_factory=list)  # fact_idx, passage_idx, sentence
    synonyms: list[tuple[int, int, float, str]] = field(default_factory=list)  # a, b, score, kind

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
        }

    # ---- SQLite ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write every table into a fresh SQLite file (WAL during the write, folded at the end)."""
        conn = connect_sqlite(path)
        try:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT INTO documents VALUES (?,?,?,?,?)",
                ((d.id, d.title, d.source, d.content_hash, json.dumps(d.metadata, default=str)) for d in self.documents),
            )
            conn.executemany(
                "INSERT INTO passages VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    (i, p.id, p.doc_id, p.title, p.text, p.source, p.span[0], p.span[1], json.dumps(p.metadata, default=str))
                    for i, p in enumerate(self.passages)
                ),
            )
            conn.executemany("INSERT INTO sentences VALUES (?,?,?,?)", ((i, *s) for i, s in enumerate(self.sentences)))
            conn.executemany("INSERT INTO entities VALUES (?,?)", enumerate(self.entities))
            conn.executemany("INSERT INTO mentions VALUES (?,?)", self.mentions)
            conn.executemany("INSERT INTO facts VALUES (?,?,?,?)", ((i, *f) for i, f in enumerate(self.facts)))
            conn.executemany("INSERT INTO fact_passages VALUES (?,?,?)", self.fact_passages)
            conn.executemany("INSERT INTO synonyms VALUES (?,?,?,?)", self.synonyms)
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
            t.sentences = [tuple(r) for r in conn.execute("SELECT passage_idx, start, end FROM sentences ORDER BY idx")]
            t.entities = [r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx")]
            t.mentions = [tuple(r) for r in conn.execute("SELECT entity_idx, passage_idx FROM mentions ORDER BY rowid")]
            t.facts = [tuple(r) for r in conn.execute("SELECT subject_idx, predicate, object_idx FROM facts ORDER BY idx")]
            t.fact_passages = [tuple(r) for r in conn.execute("SELECT * FROM fact_passages ORDER BY rowid")]
            t.synonyms = [tuple(r) for r in conn.execute("SELECT a, b, score, kind FROM synonyms ORDER BY rowid")]
            return t
        except sqlite3.DatabaseError as exc:
            from .errors import IndexCorruptError

            raise IndexCorruptError(f"{path}: damaged metadata database ({exc})") from exc
        finally:
            conn.close()


def row_to_passage(row: sqlite3.Row) -> Passage:
    return Passage(
        id=row["id"],
        doc_id=row["doc_id"],
        title=row["title"],
        text=row["text"],
        source=row["source"],
        span=(row["span_start"], row["span_end"]),
        metadata=json.loads(row["metadata"]),
    )
