"""A read-only, consistent view of one index generation, shaped for fast retrieval.

Everything the retriever touches per query is an array in memory (graph CSR, unit→passage
maps, entity names, specificity) or a memory-mapped vector index; passage texts are read
from SQLite only for the hits returned.

Every file is opened when the snapshot is created (SQLite connection, graph arrays,
vector indexes, BM25), never lazily: a writer may garbage-collect this generation's
directory after committing newer ones, and open files (and memory maps) stay readable
after their names are removed, so a reader keeps a consistent view until `refresh`.
"""
from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from . import validate
from .format import (GRANULARITIES, GRAPH_DIR, LEXICAL_DIR, LEXICAL_PASSAGES, META_DB, MINHASH_BANDS_FILE,
                     MINHASH_FILE, VECTORS_DIR,
                     EDGE_SYNONYM, embedding_path, open_embeddings, vid_map_path)
from .errors import IndexCorruptError
from .storage import Manifest, connect_sqlite
from .tables import row_to_passage, unpack_text
from .text import title_entity_names
from .types import Passage

logger = logging.getLogger(__name__)


class IndexSnapshot:
    """Arrays and lookups of one generation. Cheap to hold; safe to share between threads."""

    def __init__(self, gen: Path, manifest: Manifest):
        self.path = gen
        self.manifest = manifest
        try:
            with validate.reading_db(gen / META_DB):
                self.conn = connect_sqlite(gen / META_DB, readonly=True)
                self.conn.execute("SELECT count(*) FROM documents").fetchone()  # opens the file now
                self._load_tables()
            self._load_graph()
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"{gen}: damaged index arrays ({exc})") from exc
        validate.check_minhash(gen / GRAPH_DIR / MINHASH_FILE, self.n_entities)
        validate.check_minhash_bands(gen / GRAPH_DIR / MINHASH_BANDS_FILE, self.n_entities)
        dim = manifest.embedder.get("dim") if isinstance(manifest.embedder.get("dim"), int) else None
        self._embeddings = {gran: self._open_embeddings(gran, dim) for gran in GRANULARITIES}
        self._vector_indexes: dict[str, Any] = {gran: self._open_vector_index(gran, dim) for gran in GRANULARITIES}
        self._bm25 = self._open_bm25()
        self._passage_vectors = self._embeddings["passages"]
        self.fact_vectors = self._embeddings["facts"]
        """Fact embeddings (memory-mapped, row = fact), or None: the second hop scores a first hop's
        facts against the query with them (`retrievers/hops.py`)."""

    def _load_tables(self) -> None:
        c = self.conn.cursor()
        c.row_factory = None  # plain tuples for the bulk reads
        rows = c.execute("SELECT id, doc_id, title FROM passages ORDER BY idx").fetchall()
        self.passage_ids = [r[0] for r in rows]
        self.passage_doc_ids = [r[1] for r in rows]
        self.passage_titles = [r[2] for r in rows]
        self.passage_index = {pid: i for i, pid in enumerate(self.passage_ids)}
        self.n_passages = len(rows)
        self.entities = [r[0] for r in c.execute("SELECT name FROM entities ORDER BY idx")]
        self.entity_index = {name: i for i, name in enumerate(self.entities)}
        self.n_entities = len(self.entities)
        sent = np.array(c.execute("SELECT passage_idx FROM sentences ORDER BY idx").fetchall(), dtype=np.int64)
        self.sentence_passage = sent.reshape(-1)
        facts = c.execute("SELECT subject_idx, predicate, object_idx FROM facts ORDER BY idx").fetchall()
        self.fact_subject = np.array([f[0] for f in facts], dtype=np.int64)
        self.fact_predicate = [f[1] for f in facts]
        self.fact_object = np.array([f[2] for f in facts], dtype=np.int64)
        self.n_facts = len(facts)
        fp = np.array(c.execute("SELECT DISTINCT fact_idx, passage_idx FROM fact_passages").fetchall(), dtype=np.int64)
        fp = fp.reshape(-1, 2)
        gen_db = self.path / META_DB
        validate.check_table_rows(gen_db, self, fp, self.manifest.counts)
        self.fact_passages = sp.csr_matrix(
            (np.ones(len(fp)), (fp[:, 0], fp[:, 1])), shape=(self.n_facts, self.n_passages)
        )
        m = np.array(c.execute("SELECT entity_idx, passage_idx FROM mentions").fetchall(), dtype=np.int64).reshape(-1, 2)
        validate.check_pairs(gen_db, m, self.n_entities, self.n_passages, "mentions")
        self.entity_passages = sp.csr_matrix(
            (np.ones(len(m)), (m[:, 0], m[:, 1])), shape=(self.n_entities, self.n_passages)
        )
        self.sentence_passages = sp.csr_matrix(
            (np.ones(len(self.sentence_passage)), (np.arange(len(self.sentence_passage)), self.sentence_passage)),
            shape=(len(self.sentence_passage), self.n_passages),
        )

    def _load_graph(self) -> None:
        self.adjacency, self.edge_kinds, self.specificity = validate.load_graph(
            self.path / GRAPH_DIR, self.n_entities, self.n_passages, self.manifest.counts)

    @cached_property
    def passage_entities(self) -> sp.csr_matrix:
        """passage × entity mention matrix (the transpose of `entity_passages`), for row access by passage."""
        return self.entity_passages.T.tocsr()

    @cached_property
    def passage_facts(self) -> sp.csr_matrix:
        """passage × fact matrix (the transpose of `fact_passages`), for the facts of one passage."""
        return self.fact_passages.T.tocsr()

    @cached_property
    def entity_passage_counts(self) -> np.ndarray:
        """|P_e|: how many passages mention each entity."""
        return np.diff(self.entity_passages.indptr).astype(np.int64)

    @cached_property
    def title_entities(self) -> sp.csr_matrix:
        """passage × entity: the entities a passage's title names (`text.title_entity_names`), i.e. what
        the passage is about in wiki-style corpora. Built on first use (≈5 µs per distinct title)."""
        rows, cols = [], []
        ids_of_title: dict[str | None, list[int]] = {}  # chunks of one document share a title
        for p, title in enumerate(self.passage_titles):
            ids = ids_of_title.get(title)
            if ids is None:
                found = (self.entity_index.get(name) for name in title_entity_names(title))
                ids = ids_of_title[title] = [e for e in found if e is not None]
            rows.extend([p] * len(ids))
            cols.extend(ids)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(self.n_passages, self.n_entities))

    @cached_property
    def entity_idf(self) -> np.ndarray:
        """Per-entity rarity in [0, 1): log((N+1)/(|P_e|+1)) / log(N+1) over the N passages."""
        n = self.n_passages
        if n == 0:
            return np.zeros(self.n_entities)
        return np.log((n + 1) / (self.entity_passage_counts + 1.0)) / np.log(n + 1)

    # ---- graph variants --------------------------------------------------------------
    def graph(self, *, synonymy: bool = True) -> sp.csr_matrix:
        """The PPR adjacency, optionally without synonymy edges (ablation)."""
        if synonymy:
            return self.adjacency
        return self._without_synonymy(EDGE_SYNONYM)

    @cached_property
    def _no_syn_cache(self) -> dict[int, sp.csr_matrix]:
        return {}

    def _without_synonymy(self, code: int) -> sp.csr_matrix:
        if code not in self._no_syn_cache:
            a = self.adjacency.copy()
            a.data = np.where(self.edge_kinds == code, 0.0, a.data)
            a.eliminate_zeros()
            self._no_syn_cache[code] = a
        return self._no_syn_cache[code]

    # ---- vectors ---------------------------------------------------------------------------
    def vector_index(self, gran: str) -> Any | None:
        """The vector index of a granularity (FlatIndex, SpannIndex, or a `RowIdIndex` over one
        whose ids are not row numbers); None when the granularity has no units."""
        if gran not in GRANULARITIES:
            raise ValueError(f"unknown granularity {gran!r}")
        return self._vector_indexes[gran]

    def _open_embeddings(self, gran: str, dim: int | None) -> Any | None:
        """A granularity's embeddings (memory-mapped, row = table row, float32 on access), checked
        against the tables and the embedder (`validate.check_embeddings`); float16 / float32 files are
        read through `validate.FiniteRows`. None when the generation has none."""
        path = embedding_path(self.path, gran)
        if not path.is_file():
            return None
        emb = open_embeddings(path)
        validate.check_embeddings(path, emb, self._unit_count(gran), dim, gran)
        return validate.checked_rows(emb, path, gran)

    def _open_vector_index(self, gran: str, dim: int | None) -> Any | None:
        path = self.path / VECTORS_DIR / gran
        if not path.exists():
            return None
        from .indexers.spann import FlatIndex, VectorsById, open_vector_index  # the factory's two index kinds

        n_rows = self._unit_count(gran)
        vmap = vid_map_path(self.path, gran)
        vid2row = None
        if vmap.is_file():
            vid2row = validate.load_npy(vmap, kind="i", ndim=1).astype(np.int64)
            validate.check_range(vmap, vid2row, -1, n_rows, "vector id map")
        # a SPANN index whose posting lists hold ids reads vectors from this generation's embeddings
        emb = self._embeddings[gran]
        vectors = VectorsById.from_map(emb, vid2row) if emb is not None else None
        index = open_vector_index(path, vectors=vectors)
        validate.check_vector_index(path, index, n_rows if vid2row is None else len(vid2row),
                                    dim if emb is None else emb.shape[1], gran)
        source = embedding_path(self.path, gran) if emb is not None else path
        verify = emb if isinstance(emb, validate.FiniteRows) and isinstance(index, FlatIndex) else None
        return RowIdIndex(index, vid2row, n_rows, source=source, verify=verify)  # rows outside the tables never leave a search

    def _unit_count(self, gran: str) -> int:
        return {"passages": self.n_passages, "sentences": len(self.sentence_passage), "facts": self.n_facts,
                "entities": self.n_entities}[gran]

    # ---- documents view ----------------------------------------------------------------------
    @cached_property
    def document_view(self) -> tuple[np.ndarray, sp.csr_matrix] | None:
        """(unit vectors of documents that span ≥ 2 passages — the normalised mean of their
        passage embeddings —, document × passage membership matrix), or None when every
        document is a single passage. Computed on first use from the passage embeddings."""
        if self._passage_vectors is None:
            return None
        docs: dict[str, list[int]] = {}
        for row, doc in enumerate(self.passage_doc_ids):
            docs.setdefault(doc, []).append(row)
        multi = [rows for rows in docs.values() if len(rows) > 1]
        if not multi:
            return None
        cols = np.concatenate([np.asarray(r, dtype=np.int64) for r in multi])
        rows = np.repeat(np.arange(len(multi)), [len(r) for r in multi])
        members = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(multi), self.n_passages))
        sums = members @ np.asarray(self._passage_vectors, dtype=np.float32)  # FiniteRows checks float files
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        vecs = np.ascontiguousarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)
        return vecs, members

    def _open_bm25(self) -> Any | None:
        path = self.path / LEXICAL_DIR / LEXICAL_PASSAGES
        if not path.exists():
            return None
        from .retrievers.lexical import BM25Index

        index = BM25Index.load(path)
        validate.check_count(path, index.num_docs, self.n_passages, "BM25 num_docs")
        return index

    @property
    def bm25(self) -> Any | None:
        return self._bm25

    # ---- rows -------------------------------------------------------------------------------
    def passages(self, idxs: Sequence[int]) -> list[Passage]:
        """Full passage records for the given row positions, in the given order."""
        if not len(idxs):
            return []
        ids = [int(i) for i in idxs]
        q = f"SELECT * FROM passages WHERE idx IN ({','.join('?' * len(ids))})"
        with validate.reading_db(self.path / META_DB):
            rows = {r["idx"]: validate.passage_row(row_to_passage, r, self.path / META_DB)
                    for r in self.conn.execute(q, ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise IndexCorruptError(f"{self.path / 'meta.sqlite'}: passage rows {missing[:5]} are missing")
        return [rows[i] for i in ids]

    def sentence_text(self, idx: int) -> str:
        with validate.reading_db(self.path / META_DB):
            r = self.conn.execute(
                "SELECT p.text, s.start, s.end FROM sentences s JOIN passages p ON p.idx = s.passage_idx WHERE s.idx = ?",
                (int(idx),),
            ).fetchone()
            return unpack_text(r[0])[r[1] : r[2]] if r else ""

    def fact_text(self, idx: int) -> str:
        return f"{self.entities[self.fact_subject[idx]]} {self.fact_predicate[idx]} {self.entities[self.fact_object[idx]]}"

    def documents(self) -> list[dict[str, Any]]:
        return _documents(self.conn, self.path / META_DB)

    def close(self) -> None:
        self.conn.close()


class RowIdIndex:
    """A vector index searched as table rows: every id it returns is a row in 0..n_rows-1 or -1.

    After a delete, a SPANN index keeps its vectors' ids (removed ones are tombstoned)
    while the tables are renumbered; `vid2row` maps each id to its current row (-1 =
    deleted) so callers always get row numbers, like from a freshly built index. Without a
    map ids are rows; either way an id outside the tables (a damaged posting file) becomes -1
    instead of reaching array indexing. A score that is not finite (damaged vectors) raises
    IndexCorruptError naming `source`; `verify` (a flat index over float16 / float32
    embeddings, `validate.FiniteRows`) is checked whole before the first search copies it into faiss.
    """

    def __init__(self, index: Any, vid2row: np.ndarray | None, n_rows: int | None = None, *,
                 source: Path | None = None, verify: Any = None):
        self.index = index
        self.vid2row = vid2row
        self.n_rows = len(vid2row) if n_rows is None and vid2row is not None else n_rows
        self.source = source
        self.verify = verify

    def search(self, queries: Any, k: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.verify is not None:
            self.verify.check_all()
            self.verify = None
        scores, ids = self.index.search(queries, k, **kw)
        if not np.isfinite(scores[ids >= 0]).all():
            raise IndexCorruptError(f"{self.source}: a vector search scored NaN or infinity (damaged vectors)")
        if self.vid2row is None:
            return scores, np.where((ids >= 0) & (ids < self.n_rows), ids, -1)
        ok = (ids >= 0) & (ids < len(self.vid2row))
        rows = np.where(ok, self.vid2row[np.where(ok, ids, 0)], -1)
        return scores, rows

    def __len__(self) -> int:
        return len(self.index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    def __repr__(self) -> str:
        return f"RowIdIndex({self.index!r}, rows={self.n_rows})"


def _documents(conn: Any, db: Path) -> list[dict[str, Any]]:
    with validate.reading_db(db):
        rows = conn.execute("SELECT * FROM documents ORDER BY rowid").fetchall()
    return [
        {"id": r["id"], "title": r["title"], "source": r["source"], "content_hash": r["content_hash"],
         "metadata": validate.json_column(r["metadata"], db, f"document {r['id']!r}")}
        for r in rows
    ]


def read_documents(gen: Path) -> list[dict[str, Any]]:
    """A generation's documents (id, title, source, content hash, metadata) read from its tables
    alone, without opening the rest of the snapshot (what a write needs to plan)."""
    db = Path(gen) / META_DB
    with validate.reading_db(db):
        conn = connect_sqlite(db, readonly=True)
    try:
        return _documents(conn, db)
    finally:
        conn.close()
