"""The merge step: finished shards → one generation's tables and embeddings, plus synonymy.

Shards number their rows locally; the merge gives them global ids in shard order:
documents, passages and sentences are appended; entities and facts are interned (an
entity or fact already in the generation, or in an earlier shard, keeps its id), so the
result is row for row what one pass over all documents would give. A passage identical to
one already indexed (same title and text) is not stored again: its document is recorded
as a further owner.

Rows go straight into the generation's SQLite file (which may already hold a previous
generation's rows: an add appends to a copy). Lookups of names from that previous
generation are SQLite queries; only this write's new entities and facts are held in
dictionaries. A granularity's ``.npy`` is the previous generation's rows (copied file to file
by the kernel) followed by the shards' new rows (block by block from memory-mapped shard files).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice, repeat
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hippograph.config import Config
from hippograph.errors import HippoGraphError
from hippograph.format import GRANULARITIES, RowWriter, embedding_path, link_embeddings, load_array, open_embeddings
from hippograph.storage import connect_sqlite
from hippograph.tables import (FACT_PASSAGES_INSERT, OWNERS_SCHEMA, SYNONYM_KINDS, CorpusTables, numbered_fact_passages,
                               pack_text, upgrade_tables)

from .graph_builder import SynonymEdge, band_keys, lsh_pairs, minhash_signatures, stored_signatures, synonymy_eligible
from .synonymy import synonym_pairs
from .report import BuildReport, Progress
from .shards import TABLES

logger = logging.getLogger(__name__)

COUNT_TABLES = {
    "documents": "documents", "passages": "passages", "sentences": "sentences", "entities": "entities",
    "facts": "facts", "triples": "fact_passages", "mentions": "mentions", "synonyms": "synonyms",
    "passage_owners": "passage_owners",
}
"""Report/manifest count name → SQLite table."""
SIGNATURE_CHUNK = 65_536
"""Entity names read and MinHashed at a time (datasketch's 64-bit values: 64 MB per chunk)."""

INSERT_BLOCK = 65_536
"""Synonym rows turned into Python tuples and inserted at a time (TF-IDF links millions)."""


def table_counts(conn) -> dict[str, int]:
    """Row count of every table (the manifest's table counts)."""
    return {name: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for name, table in COUNT_TABLES.items()}


@dataclass
class _Selection:
    """Which local rows of one shard became new global rows, per granularity."""

    path: Path
    rows: dict[str, np.ndarray] = field(default_factory=dict)


class Merge:
    """Append shards to the tables in ``<gen>/meta.sqlite``; then `write_embeddings`, `link_synonyms`."""

    def __init__(self, gen: Path, config: Config, report: BuildReport, progress: Progress):
        self.gen = Path(gen)
        self.config = config
        self.report = report
        self.progress = progress
        self.conn = connect_sqlite(self.gen / "meta.sqlite")
        self.conn.executescript(OWNERS_SCHEMA)
        for what in upgrade_tables(self.conn):  # an older index: its tables in this format, once
            logger.info("%s: %s", self.gen / "meta.sqlite", what)
        self.conn.row_factory = None
        self.base = table_counts(self.conn)
        self.n = dict(self.base)
        self._entities: dict[str, int] = {}
        self._facts: dict[tuple[int, str, int], int] = {}
        self._passages: dict[str, tuple[int, str]] = {}
        self._owners: set[tuple[int, str]] = set()
        self.selections: list[_Selection] = []

    # ---- lookups: this merge's new rows in memory, the previous generation's in SQLite ----
    def _entity(self, name: str) -> int:
        idx = self._entities.get(name)
        if idx is None and self.base["entities"]:
            row = self.conn.execute("SELECT idx FROM entities WHERE name = ?", (name,)).fetchone()
            idx = None if row is None else int(row[0])
        return -1 if idx is None else idx

    def _fact(self, key: tuple[int, str, int]) -> int:
        idx = self._facts.get(key)
        if idx is None and self.base["facts"] and key[0] < self.base["entities"] and key[2] < self.base["entities"]:
            row = self.conn.execute(
                "SELECT idx FROM facts WHERE subject_idx = ? AND object_idx = ? AND predicate = ?",
                (key[0], key[2], key[1])).fetchone()
            idx = None if row is None else int(row[0])
        return -1 if idx is None else idx

    def _passage(self, pid: str) -> tuple[int, str] | None:
        hit = self._passages.get(pid)
        if hit is None and self.base["passages"]:
            row = self.conn.execute("SELECT idx, doc_id FROM passages WHERE id = ?", (pid,)).fetchone()
            hit = None if row is None else (int(row[0]), str(row[1]))
        return hit

    def _owned(self, row: int, doc: str) -> bool:
        if (row, doc) in self._owners:
            return True
        if row < self.base["passages"] and self.base["passage_owners"]:
            return self.conn.execute("SELECT 1 FROM passage_owners WHERE passage_idx = ? AND doc_id = ? LIMIT 1",
                                     (row, doc)).fetchone() is not None
        return False

    def known(self, gran: str, t: CorpusTables) -> np.ndarray:
        """Which of a shard's entities / facts (by name) this merge already holds (`shards.Known`)."""
        if gran == "entities":
            return np.fromiter((self._entity(n) >= 0 for n in t.entities), dtype=bool, count=len(t.entities))
        ids = [self._entity(n) for n in t.entities]
        return np.fromiter(
            (ids[s] >= 0 and ids[o] >= 0 and self._fact((ids[s], p, ids[o])) >= 0 for s, p, o in t.facts),
            dtype=bool, count=len(t.facts))

    # ---- shards ------------------------------------------------------------------------
    def add_shard(self, path: Path) -> None:
        """Give one finished shard's rows global ids and insert them."""
        t = CorpusTables.load(Path(path) / TABLES)
        sel = _Selection(Path(path))
        owners: list[tuple[int, str, str, int, int]] = []

        def own(row: int, first_doc: str, doc: str, source: str, a: int, b: int) -> None:
            if first_doc == doc or self._owned(row, doc):
                return
            self._owners.add((row, doc))
            owners.append((row, doc, source, a, b))

        # passages: new ones appended, repeats of indexed passages become further owners
        p_map = np.full(len(t.passages), -1, dtype=np.int64)
        kept = np.zeros(len(t.passages), dtype=bool)
        new_passages = []
        for i, p in enumerate(t.passages):
            hit = self._passage(p.id)
            if hit is not None:
                p_map[i] = hit[0]
                own(hit[0], hit[1], p.doc_id, p.source, p.span[0], p.span[1])
                continue
            row = self.n["passages"] + len(new_passages)
            self._passages[p.id] = (row, p.doc_id)
            p_map[i], kept[i] = row, True
            new_passages.append((row, p))
        for row, doc, source, a, b in t.passage_owners:
            first = self._passage(t.passages[row].id)
            own(int(p_map[row]), first[1] if first else "", doc, source, a, b)
        sel.rows["passages"] = np.flatnonzero(kept)

        # entities and facts: interned in the shard's (first-mention) order
        e_map = np.empty(len(t.entities), dtype=np.int64)
        new_entities: list[tuple[int, str]] = []
        new_entity_rows: list[int] = []
        for i, name in enumerate(t.entities):
            idx = self._entity(name)
            if idx < 0:
                idx = self._entities[name] = self.n["entities"] + len(new_entities)
                new_entities.append((idx, name))
                new_entity_rows.append(i)
            e_map[i] = idx
        sel.rows["entities"] = np.asarray(new_entity_rows, dtype=np.int64)
        f_map = np.empty(len(t.facts), dtype=np.int64)
        new_facts: list[tuple[int, int, str, int]] = []
        new_fact_rows: list[int] = []
        for i, (s, pred, o) in enumerate(t.facts):
            key = (int(e_map[s]), pred, int(e_map[o]))
            idx = self._fact(key)
            if idx < 0:
                idx = self._facts[key] = self.n["facts"] + len(new_facts)
                new_facts.append((idx, key[0], pred, key[2]))
                new_fact_rows.append(i)
            f_map[i] = idx
        sel.rows["facts"] = np.asarray(new_fact_rows, dtype=np.int64)
        for gran in ("entities", "facts"):  # rows the shard did not embed must already be indexed
            skipped = Path(path) / "embeddings" / f"{gran}.known.npy"
            if skipped.is_file() and np.intersect1d(load_array(skipped), sel.rows[gran]).size:
                raise HippoGraphError(
                    f"{path}: shard was made against another state of the index ({gran} it took as known are "
                    f"new here); remove {Path(path).parent} and run the write again")

        # rows that hang off the new passages
        sent_rows = [i for i, (p, _, _) in enumerate(t.sentences) if kept[p]]
        sel.rows["sentences"] = np.asarray(sent_rows, dtype=np.int64)
        s0 = self.n["sentences"]
        sentences = [(s0 + j, int(p_map[t.sentences[i][0]]), t.sentences[i][1], t.sentences[i][2])
                     for j, i in enumerate(sent_rows)]
        by_passage: dict[int, list[int]] = {}
        for e, p in t.mentions:
            if kept[p]:
                by_passage.setdefault(int(p_map[p]), []).append(int(e_map[e]))
        mentions = [(e, p) for p, es in by_passage.items() for e in sorted(es)]
        occurrences = [(int(f_map[f]), int(p_map[p]), a, b) for f, p, a, b in t.fact_passages if kept[p]]

        with self.conn:
            self.conn.executemany("INSERT INTO documents VALUES (?,?,?,?,?)", (
                (d.id, d.title, d.source, d.content_hash, _json(d.metadata)) for d in t.documents))
            self.conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?,?,?,?)", (
                (row, p.id, p.doc_id, p.title, pack_text(p.text), p.source, p.span[0], p.span[1], _json(p.metadata))
                for row, p in new_passages))
            self.conn.executemany("INSERT INTO sentences VALUES (?,?,?,?)", sentences)
            self.conn.executemany("INSERT INTO entities VALUES (?,?)", new_entities)
            self.conn.executemany("INSERT INTO mentions VALUES (?,?)", mentions)
            self.conn.executemany("INSERT INTO facts VALUES (?,?,?,?)", new_facts)
            self.conn.executemany(FACT_PASSAGES_INSERT, numbered_fact_passages(occurrences))
            self.conn.executemany("INSERT INTO passage_owners VALUES (?,?,?,?,?)", owners)
        added = {"documents": len(t.documents), "passages": len(new_passages), "sentences": len(sentences),
                 "entities": len(new_entities), "facts": len(new_facts), "triples": len(occurrences),
                 "mentions": len(mentions), "passage_owners": len(owners)}
        for k, v in added.items():
            self.n[k] += v
        self.selections.append(sel)
        self.progress.advance("merge", len(new_passages), unit="passage")

    # ---- embeddings ----------------------------------------------------------------------
    def write_embeddings(self, base: dict[str, Path | None], dim: int,
                         verify: Callable[[Path], None] | None = None) -> None:
        """``<gen>/embeddings/<gran>.npy`` = the base rows (a previous generation's file, or none)
        followed by every shard's new rows: old rows copied file to file (not through this process's
        memory), new ones block by block through memory maps. `verify` checks a base file before its
        rows are copied (it raises on damage)."""
        out_dir = self.gen / "embeddings"
        out_dir.mkdir(exist_ok=True)
        for gran in GRANULARITIES:
            src = base.get(gran)
            dst = embedding_path(self.gen, gran)
            n_new = sum(len(s.rows.get(gran, ())) for s in self.selections)
            old = open_embeddings(src) if src is not None and src.is_file() else None
            if n_new == 0 and old is not None:
                if src.resolve() != dst.resolve():
                    link_embeddings(src, dst)
                continue
            if old is not None and verify is not None:
                verify(src)
            n_old = 0 if old is None else len(old)
            writer = RowWriter(dst, n_old + n_new, dim, self.config.embedding_storage)
            try:
                if old is not None:
                    writer.append_stored(old)  # stored codes, copied file to file by the kernel
                for s in self.selections:
                    rows = s.rows.get(gran)
                    if rows is None or not len(rows):
                        continue
                    # shards store rows as the index does (codes copied); a shard of older code holds float32
                    writer.append_stored(open_embeddings(s.path / "embeddings" / f"{gran}.npy"), rows)
                writer.close()
            except BaseException:
                writer.abort()
                raise

    # ---- synonymy --------------------------------------------------------------------------
    def link_synonyms(self, base_bands: np.ndarray | None) -> np.ndarray | None:
        """Synonymy edges from this write's new entities to all entities (embedding kNN and
        MinHash LSH), inserted as rows; returns the MinHash band keys of every entity (or None).
        Entity names are streamed from the table, vectors read from the embeddings file: memory
        holds one bool and the band keys (56 bytes) per entity, the signatures of new entities and the
        edges as arrays (24 bytes each); an old entity's signature is recomputed from its name when a
        band key pairs it."""
        c = self.config
        e0, e1 = self.base["entities"], self.n["entities"]
        new_ids = np.arange(e0, e1, dtype=np.int64)
        bands = base_bands if base_bands is not None and len(base_bands) == e0 else None
        if not len(new_ids):
            return bands if c.minhash_threshold > 0 else None
        eligible = np.fromiter((synonymy_eligible(n, c.synonymy_min_chars) for n in self._names(0)), dtype=bool,
                               count=e1)
        ents = open_embeddings(embedding_path(self.gen, "entities"))  # as stored: a scratch build sees the same values
        syn_a, syn_b, syn_w = synonym_pairs(ents, None, new_ids, threshold=c.synonymy_threshold,  # exact, or cells
                                            max_neighbors=c.synonymy_max_neighbors, min_chars=c.synonymy_min_chars,
                                            eligible=eligible)
        minhash: list[SynonymEdge] = []
        self.progress.advance("synonymy", len(new_ids), unit="entity")
        if c.minhash_threshold > 0:
            have = 0 if bands is None else len(bands)
            fresh = np.empty((e1 - have, c.minhash_num_perm), dtype=np.uint8)  # signatures of rows have..e1
            names = self._names(have)
            for a in range(have, e1, SIGNATURE_CHUNK):
                part = list(islice(names, SIGNATURE_CHUNK))
                fresh[a - have:a - have + len(part)] = stored_signatures(
                    minhash_signatures(part, eligible[a:a + len(part)], c.minhash_num_perm))
            new_bands = band_keys(fresh, c.minhash_threshold)
            bands = new_bands if bands is None else np.concatenate([bands, new_bands])

            def signatures_of(ids: np.ndarray) -> np.ndarray:
                out = np.empty((len(ids), c.minhash_num_perm), dtype=np.uint8)
                old = ids < have
                out[~old] = fresh[ids[~old] - have]
                if old.any():  # the same signatures a scratch build computes: seeded, from the name
                    out[old] = stored_signatures(minhash_signatures(self._names_of(ids[old]), eligible[ids[old]],
                                                                    c.minhash_num_perm))
                return out

            # every embedding edge has a new endpoint, so none is already a synonym row
            minhash = lsh_pairs(bands, eligible, new_ids, threshold=c.minhash_threshold,
                                existing=np.stack([syn_a, syn_b], axis=1), num_perm=c.minhash_num_perm,
                                signatures_of=signatures_of)
        else:
            bands = None
        embedding = SYNONYM_KINDS.index("embedding")
        with self.conn:
            for s in range(0, len(syn_a), INSERT_BLOCK):  # Python tuples for one block at a time
                self.conn.executemany("INSERT INTO synonyms VALUES (?,?,?,?)", zip(
                    syn_a[s:s + INSERT_BLOCK].tolist(), syn_b[s:s + INSERT_BLOCK].tolist(),
                    syn_w[s:s + INSERT_BLOCK].tolist(), repeat(embedding)))
            self.conn.executemany("INSERT INTO synonyms VALUES (?,?,?,?)",
                                  ((e.a, e.b, e.score, SYNONYM_KINDS.index(e.kind)) for e in minhash))
        self.n["synonyms"] += len(syn_a) + len(minhash)
        return bands

    def _names_of(self, ids: np.ndarray) -> list[str]:
        """Entity names of rows `ids` (in that order), read from the table in chunks."""
        name: dict[int, str] = {}
        for a in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
            part = [int(i) for i in ids[a:a + 900]]
            q = f"SELECT idx, name FROM entities WHERE idx IN ({','.join('?' * len(part))})"
            name.update(self.conn.execute(q, part).fetchall())
        return [name[int(i)] for i in ids]

    def _names(self, start: int) -> Iterator[str]:
        """Entity names from row `start` on, in row order, streamed from the table."""
        cur = self.conn.execute("SELECT name FROM entities WHERE idx >= ? ORDER BY idx", (int(start),))
        while True:
            rows = cur.fetchmany(SIGNATURE_CHUNK)
            if not rows:
                return
            yield from (r[0] for r in rows)

    def added(self) -> dict[str, int]:
        return {k: self.n[k] - self.base[k] for k in ("documents", "passages", "sentences", "entities", "facts")}

    def close(self) -> None:
        from hippograph.storage import checkpoint_and_close

        checkpoint_and_close(self.conn)


def _json(value: object) -> str:
    import json

    return json.dumps(value, default=str)
