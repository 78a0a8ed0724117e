"""Writing the derived parts of a generation from its tables: graph, BM25, counts.

The tables (``meta.sqlite``) and embeddings are final when these run. A build derives everything
from them in linear passes over integer columns read from SQLite in blocks (never as Python row
objects); a write grows the base generation's graph from its new rows (`grow_graph`) after taking out
what its deletes removed (`shrink_graph`), and BM25 is updated from the new passages' texts (`write_lexical`).
"""
from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from hippograph.errors import IndexCorruptError
from hippograph.format import GRAPH_UPPER_INDICES, GRAPH_UPPER_INDPTR, LEXICAL_PASSAGES, MINHASH_BANDS_FILE, upper_graph
from hippograph.tables import RowMaps, unpack_text
from hippograph.text import passage_embedding_text
from hippograph.validate import load_upper_arrays, reading_db

from .graph_builder import build_adjacency_arrays, grown_upper_graph, shrunk_upper_graph

logger = logging.getLogger(__name__)

class LexicalWriter(Protocol):
    """Writes the BM25 index of passage texts into a directory (given by the caller: the index
    structure lives with the retrievers, which the write path does not import)."""

    def build(self, texts: Sequence[str], out: Path) -> None:
        """The index of `texts` (passage order) into `out`."""

    def update(self, base: Path, origin: np.ndarray, texts: Sequence[str], out: Path) -> bool:
        """The base generation's index (directory `base`) changed into `out`: passage j is base
        passage `origin[j]`, or where that is -1 the next of `texts`. False when `base` cannot be
        updated (written by an older version, damaged): the caller then builds from every text."""

BLOCK = 1 << 16


def read_columns(conn: sqlite3.Connection, sql: str, dtypes: Sequence[type], params: Sequence[Any] = ()) -> list[np.ndarray]:
    """The columns of a query's result as numpy arrays, fetched a block at a time."""
    cur = conn.execute(sql, params)
    parts: list[list[np.ndarray]] = [[] for _ in dtypes]
    while True:
        rows = cur.fetchmany(BLOCK)
        if not rows:
            break
        for j, dt in enumerate(dtypes):
            parts[j].append(np.fromiter((r[j] for r in rows), dtype=dt, count=len(rows)))
    return [np.concatenate(p) if p else np.zeros(0, dtype=dt) for p, dt in zip(parts, dtypes)]


def write_graph(conn: sqlite3.Connection, out: Path, n_entities: int, n_passages: int,
                minhash_bands: np.ndarray | None) -> dict[str, int]:
    """The graph (fact, mention and synonymy edges; stored once, `format.upper_graph`) and MinHash
    band keys into ``<gen>/graph/``; returns node and edge counts."""
    adjacency, kind = build_adjacency_arrays(n_entities, n_passages, *_edge_rows(conn))
    files = upper_graph(adjacency.indptr, adjacency.indices, adjacency.data, kind.data, n_entities)
    _save_graph(out, files, minhash_bands, n_entities)
    return {"nodes": int(adjacency.shape[0]), "edges": int(adjacency.nnz // 2)}


def base_graph(graph_dir: Path, n_entities: int, n_passages: int) -> tuple[np.ndarray, ...] | None:
    """The base generation's format-7 graph arrays (upper indptr, indices, pair weights, pair kinds), checked;
    None when it has none (an older format) or they are damaged (one warning): the graph is then built."""
    if not (graph_dir / GRAPH_UPPER_INDPTR).is_file():
        return None
    try:
        return load_upper_arrays(graph_dir, n_entities, n_entities + n_passages)
    except IndexCorruptError as exc:
        logger.warning("%s; the graph is built again from every row", exc)
        return None


def grow_graph(conn: sqlite3.Connection, out: Path, old: tuple[np.ndarray, ...], base: dict[str, int],
               counts: dict[str, int], minhash_bands: np.ndarray | None) -> dict[str, int] | None:
    """The graph after rows were only appended to tables whose graph is `old` (`base_graph`, or a delete's
    `shrink_graph`) and whose counts were `base`, from the appended rows alone (`graph_builder.grown_upper_graph`):
    reads the new triples, mentions and synonyms, not every row. None when rows other than appended ones
    changed, or `old` is not their graph: `write_graph` then."""
    e0, p0, e1, p1 = base["entities"], base["passages"], counts["entities"], counts["passages"]
    if e1 < e0 or p1 < p0:
        return None
    unchanged = (("mentions", "SELECT count(*) FROM mentions WHERE passage_idx < ?", p0),
                 ("triples", "SELECT count(*) FROM fact_passages WHERE passage_idx < ?", p0),
                 ("synonyms", "SELECT count(*) FROM synonyms WHERE b < ?", e0))
    if any(int(conn.execute(sql, (bound,)).fetchone()[0]) != base[name] for name, sql, bound in unchanged):
        return None  # the base's own rows are not all still there as they were

    def old_synonym_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.nan_to_num(synonym_scores(conn, a, b), nan=0.0)

    files = grown_upper_graph(old, e0, e1, p1, *_edge_rows(conn, p0, e0), old_synonym_score)
    if files is None:
        logger.warning("%s: the graph cannot be grown (rows out of order, or an edge weight that is not its "
                       "triple count plus synonym score); it is built again from every row", out)
        return None
    _save_graph(out, files, minhash_bands, e1)
    return {"nodes": e1 + p1, "edges": len(files[GRAPH_UPPER_INDICES])}


def shrink_graph(conn: sqlite3.Connection, old: tuple[np.ndarray, ...], maps: RowMaps) -> tuple[np.ndarray, ...] | None:
    """The graph arrays of the tables a delete left (`conn`, renumbered as `maps` says), from the graph of the
    tables before it (`old`) and the triples the deleted passages stated (`maps.removed_fact_pairs`), without
    reading the remaining rows (`graph_builder.shrunk_upper_graph`). None when `old` does not fit: built then."""
    if maps.removed_fact_pairs is None:
        return None
    shrunk = shrunk_upper_graph(old, maps.old_counts["entities"], maps.old_to_new("entities"),
                                maps.old_to_new("passages"), maps.removed_fact_pairs,
                                lambda a, b: synonym_scores(conn, a, b))
    if shrunk is None:
        logger.warning("the graph cannot be updated for the delete (an edge weight that is not its triple count "
                       "plus synonym score, or a deleted triple without its edge); it is built again from every row")
    return shrunk


def synonym_scores(conn: sqlite3.Connection, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The synonyms table's score of each entity pair (a[i], b[i]) (a < b), NaN where the pair has none."""
    found = (conn.execute("SELECT score FROM synonyms WHERE a = ? AND b = ?", (int(x), int(y))).fetchone()
             for x, y in zip(a.tolist(), b.tolist()))
    return np.fromiter((np.nan if r is None else r[0] for r in found), dtype=np.float64, count=len(a))


def _edge_rows(conn: sqlite3.Connection, first_passage: int = 0, first_entity: int = 0) -> tuple[np.ndarray, ...]:
    """The graph's rows as arrays, for `build_adjacency_arrays`: (subject, object) per triple of the passages
    from `first_passage` on (a fact edge weighs its number of triples), (entity, passage) mentions of those
    passages, and the synonyms (a, b, score) whose b is at least `first_entity`."""
    subj, obj = read_columns(conn, "SELECT f.subject_idx, f.object_idx FROM fact_passages fp JOIN facts f "
                                   "ON f.idx = fp.fact_idx WHERE fp.passage_idx >= ?", (np.int64, np.int64),
                             (first_passage,))
    m_e, m_p = read_columns(conn, "SELECT entity_idx, passage_idx FROM mentions WHERE passage_idx >= ?",
                            (np.int64, np.int64), (first_passage,))
    syn_a, syn_b, syn_w = read_columns(conn, "SELECT a, b, score FROM synonyms WHERE b >= ? ORDER BY a, b",
                                       (np.int64, np.int64, np.float64), (first_entity,))
    mentions = np.stack([m_e, m_p], axis=1) if len(m_e) else np.zeros((0, 2), dtype=np.int64)
    return np.stack([subj, obj], axis=1), mentions, syn_a, syn_b, syn_w


def _save_graph(out: Path, files: dict[str, np.ndarray], minhash_bands: np.ndarray | None, n_entities: int) -> None:
    """The graph files and (when they cover every entity) the MinHash band keys into `out`."""
    out.mkdir()
    for name, array in files.items():
        np.save(out / name, array, allow_pickle=False)
    if minhash_bands is not None and len(minhash_bands) == n_entities:
        np.save(out / MINHASH_BANDS_FILE, minhash_bands, allow_pickle=False)


def write_lexical(conn: sqlite3.Connection, out: Path, lexical: LexicalWriter | None, rows_from: Path,
                  base: Path | None = None, origin: np.ndarray | None = None) -> str:
    """BM25 over every passage's embedding text, into ``<gen>/lexical/passages``: an update of the
    base generation's index (``<base>/lexical``) reading only the new passages' texts when `origin`
    (the base passage of every passage, -1 for new ones) is given, else built from all of them.
    `rows_from` is the database the rows were copied from (the live generation's), named when a
    stored text is damaged. Returns "updated", "built" or "" (no lexical writer or no passages)."""
    out.mkdir()
    if lexical is None:
        return ""
    if base is not None and origin is not None and (base / LEXICAL_PASSAGES).is_dir() and len(origin):
        fresh = np.flatnonzero(origin < 0)
        texts = _passage_texts(conn, rows_from, fresh)
        if lexical.update(base / LEXICAL_PASSAGES, origin, texts, out / LEXICAL_PASSAGES):
            return "updated"
        shutil.rmtree(out / LEXICAL_PASSAGES, ignore_errors=True)
    texts = _passage_texts(conn, rows_from)
    if not texts:
        return ""
    lexical.build(texts, out / LEXICAL_PASSAGES)
    return "built"


def _passage_texts(conn: sqlite3.Connection, rows_from: Path, rows: np.ndarray | None = None) -> list[str]:
    """Embedding texts of the passages `rows` (ascending; None: all), in row order."""
    if rows is not None and not len(rows):
        return []
    where = "" if rows is None else f" WHERE idx >= {int(rows[0])}"
    cur = conn.execute(f"SELECT idx, title, text FROM passages{where} ORDER BY idx")
    wanted = None if rows is None else set(rows.tolist())
    try:
        with reading_db(rows_from):  # a damaged stored text is one line naming the file
            texts = [passage_embedding_text(title, unpack_text(text)) for idx, title, text in cur
                     if wanted is None or idx in wanted]
    finally:
        cur.close()  # a read stopped by damage must not leave the table locked for the close
    if rows is not None and len(texts) != len(rows):
        raise RuntimeError(f"{rows_from}: {len(rows)} new passages expected, {len(texts)} found")
    return texts
