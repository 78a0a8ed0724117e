"""The write path, stage by stage: one `IndexWriter` fills one new generation directory.

    documents (a lazy stream) ─► shards of ≤ `shard_passages` passages, each chunked,
    extracted, embedded and written to ``<index>/.build/<name>/shard-NNNNN/`` as it finishes
    ─► merge (tables appended / interned into ``meta.sqlite``, embeddings copied through
    memory maps) ─► synonymy (new entities vs all) ─► graph ─► vectors ─► BM25

A fresh build starts from an empty generation; an add, update or sync starts from a copy
of the live generation's ``meta.sqlite`` and appends, so it touches the new rows (plus a
block copy of each embedding file that grew). Deleting documents renumbers rows inside
SQLite (`indexers.delete`); no table is ever loaded into Python objects.

Finished shards survive a crash: the next write with the same config and starting point
skips every shard whose inputs are unchanged (`shards.ShardDir`), so a killed build
resumes; the shard directory is removed once the generation is committed.

The TF-IDF embedder is fitted once, on the first build's passages (which it needs in
memory); later adds reuse that fit, so an incrementally grown TF-IDF index is not
identical to a from-scratch build of the same documents (sentence-transformers has no fit).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from hippograph.config import Config
from hippograph.embedders import Embedder
from hippograph.format import (EMBEDDER_DIR, GRANULARITIES, GRAPH_DIR, GRAPH_FILES, LEXICAL_DIR, META_DB,
                               MINHASH_BANDS_FILE, MINHASH_FILE, VECTORS_DIR, RowWriter, clone_tree, embedding_path,
                               link_embeddings, load_array, open_embeddings, scale_path, write_embeddings_file)
from hippograph import threads
from hippograph.storage import (SEGMENTS, checkpoint_and_close, checksum_problem, connect_sqlite, copy_verified,
                                verify_base_file)
from hippograph.tables import CorpusTables, RowMaps
from hippograph.text import passage_embedding_text
from hippograph.types import Document

from . import generation, shard_worker, shards
from .chunking import chunk_document
from .delete import delete_documents
from .graph_builder import band_count, band_keys, stored_signatures
from .merge import Merge, table_counts
from .report import BuildReport, Progress
from .shard_worker import ShardWorker, ShardWorkerError
from .vectors import VectorIndexes

logger = logging.getLogger(__name__)

BUILD_DIR = ".build"
"""Under the index root: unfinished writes' shards (one sub-directory per kind of write)."""


GRAPH_ROW_COUNTS = {"entities": "entities", "passages": "passages", "mentions": "mentions",
                    "triples": "fact_passages", "synonyms": "synonyms"}
"""The row counts a write checks before updating the base graph in place (`generation.shrink_graph`, `grow_graph`)."""


class IndexWriter:
    """One write transaction into the empty generation directory `gen`.

    `base` is the live generation the write starts from (None for a fresh build),
    `base_checksums` its manifest's checksums (its meta.sqlite is verified while it is copied:
    damage must not be carried into the new generation) and `lifecycle` its manifest
    bookkeeping. Call `rename_documents`, `remove_documents`, `add_documents` as needed, then
    `finish` to write graph, vectors and BM25.
    """

    def __init__(
        self,
        root: Path,
        gen: Path,
        config: Config,
        embedder: Embedder,
        *,
        base: Path | None = None,
        base_checksums: dict[str, str] | None = None,
        lifecycle: dict[str, Any] | None = None,
        extract: shards.Extract | None = None,
        show_progress: bool = False,
        lexical: generation.LexicalWriter | None = None,
        shard_dir: str = "build",
    ):
        self.root = Path(root)
        self.gen = Path(gen)
        self.config = config
        threads.set_limit(config.threads, config.adaptive_threads)  # thread policy (hippograph/threads.py)
        self.embedder = embedder
        self.base = Path(base) if base is not None else None
        self.extract = extract
        self.lexical = lexical
        self.report = BuildReport()
        self.progress = Progress(self.report, show=show_progress)
        self._shard_dir_name = shard_dir
        self._shard_dir: shards.ShardDir | None = None
        self._merge: Merge | None = None
        self._emb_src: dict[str, Path] = {}
        self._base_checksums = dict(base_checksums or {})
        self._minhash_bands: np.ndarray | None = None
        self._passage_origin: np.ndarray | None = None  # base passage of every passage (-1: new), for BM25
        # the graph's row counts at the last point where its arrays are known, while rows were only added since
        self._base_counts: dict[str, int] | None = None
        self._graph_arrays: tuple[np.ndarray, ...] | None = None  # the graph at that point after a delete, else the base's
        db = self.gen / META_DB
        base_rows: dict[str, int] = {}
        if self.base is None:
            CorpusTables().save(db)
        else:
            copy_verified(self.base / META_DB, db, self._base_checksums.get(META_DB))
            for gran in GRANULARITIES:
                src = embedding_path(self.base, gran)
                if src.is_file():
                    self._emb_src[gran] = src
            base_rows = self._rows()
            self._passage_origin = np.arange(base_rows["passages"], dtype=np.int64)
            conn = self._reader()
            try:
                # the write updates the base graph from these (generation.shrink_graph, grow_graph)
                self._base_counts = {name: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                                     for name, table in GRAPH_ROW_COUNTS.items()}
            finally:
                conn.close()
            self._load_minhash_bands(self.base / GRAPH_DIR, base_rows["entities"])  # checked: _base_files_ok
        self.vectors = VectorIndexes(config, self.report, self.base, (lifecycle or {}).get("vectors"), base_rows,
                                     base_files_ok=self._base_files_ok)

    # ---- state ------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        """A read-only connection to the generation's tables while they are being written."""
        conn = sqlite3.connect(f"file:{self.gen / META_DB}?mode=ro", uri=True)
        conn.row_factory = None
        return conn

    def _rows(self) -> dict[str, int]:
        conn = self._reader()
        try:
            return {g: int(conn.execute(f"SELECT count(*) FROM {g}").fetchone()[0]) for g in GRANULARITIES}
        finally:
            conn.close()

    def _load_minhash_bands(self, graph: Path, n_entities: int) -> None:
        """The base's band keys; from an index that stored signatures (before the keys), keys made
        from them once. Absent or of another shape: the merge hashes every name again."""
        c = self.config
        if c.minhash_threshold <= 0:
            return
        if (graph / MINHASH_BANDS_FILE).is_file():
            if not self._base_files_ok([graph / MINHASH_BANDS_FILE], "the band keys are hashed again from every name"):
                return
            keys = load_array(graph / MINHASH_BANDS_FILE)
            if keys.ndim == 2 and len(keys) == n_entities and keys.dtype == np.uint32 \
                    and keys.shape[1] == band_count(c.minhash_threshold, c.minhash_num_perm):
                self._minhash_bands = keys
        elif (graph / MINHASH_FILE).is_file():
            if not self._base_files_ok([graph / MINHASH_FILE], "the band keys are hashed again from every name"):
                return
            sig = load_array(graph / MINHASH_FILE)
            if sig.ndim == 2 and sig.shape == (n_entities, c.minhash_num_perm):
                # a version-1 index stored all 32 bits
                self._minhash_bands = band_keys(stored_signatures(sig), c.minhash_threshold)

    def _verify_base_file(self, path: Path) -> None:
        """Before a base generation's file is grown or rewritten into this one (embedding files: copied in
        the kernel or row by row, then checksummed afresh), check it against the base manifest, so damage
        is refused in one line instead of being carried on. Files of this generation pass: after a delete
        or a merge the writer's sources are its own files, so each base file is checked once."""
        if self.base is None or not path.is_relative_to(self.base):
            return
        for part in (path, scale_path(path)):  # int8 rows carry their per-row scales in a second file
            if part == path or part.is_file():
                verify_base_file(part, self._base_checksums.get(str(part.relative_to(self.base))))

    def _base_files_ok(self, paths: list[Path], otherwise: str) -> bool:
        """Whether the base generation's derived files `paths` (graph, BM25, MinHash keys, SPANN files) match
        the manifest; where one does not, one warning ending in `otherwise`: the write derives it again from
        the (verified) tables rather than carry the damage or refuse."""
        assert self.base is not None
        for path in paths:
            expected = self._base_checksums.get(str(path.relative_to(self.base)))
            if expected is not None and expected.startswith(SEGMENTS):
                continue  # append-only: the new generation keeps these bytes' segment checksums
            problem = checksum_problem(path, expected)
            if problem is not None:
                logger.warning("%s; %s", problem, otherwise)
                return False
        return True

    def _base_graph(self, counts: dict[str, int]) -> tuple[np.ndarray, ...] | None:
        """The base generation's graph arrays (`generation.base_graph`) when its files match the manifest."""
        assert self.base is not None
        graph = self.base / GRAPH_DIR
        if (graph / GRAPH_FILES[0]).is_file() and not self._base_files_ok(
                [graph / name for name in GRAPH_FILES], "the graph is built again from every row"):
            return None
        return generation.base_graph(graph, counts["entities"], counts["passages"])

    def indexed_documents(self) -> list[tuple[str, str, str]]:
        """(id, content hash, source) of every document the generation holds (one column query)."""
        conn = self._reader()
        try:
            return [(r[0], r[1], r[2]) for r in conn.execute("SELECT id, content_hash, source FROM documents ORDER BY rowid")]
        finally:
            conn.close()

    # ---- relabel / delete ----------------------------------------------------------------
    def rename_documents(self, renames: dict[str, Document]) -> None:
        """Give indexed documents a new id (and source, metadata) without re-indexing them: row
        positions do not change, so this is three UPDATEs."""
        if not renames:
            return
        self._close_merge()
        conn = connect_sqlite(self.gen / META_DB)
        try:
            for old, new in renames.items():
                conn.execute("UPDATE documents SET id = ?, title = ?, source = ?, metadata = ? WHERE id = ?",
                             (new.id, new.title, new.source, json.dumps(new.metadata, default=str), old))
                conn.execute("UPDATE passages SET doc_id = ?, source = ? WHERE doc_id = ?", (new.id, new.source, old))
                conn.execute("UPDATE passage_owners SET doc_id = ?, source = ? WHERE doc_id = ?",
                             (new.id, new.source, old))
        finally:
            checkpoint_and_close(conn)
        self.report.renamed_documents.extend((old, new.id) for old, new in renames.items())

    def remove_documents(self, doc_ids: Iterable[str]) -> None:
        """Delete documents and everything only they contributed; renumber rows and embeddings.

        Ids not in the index are recorded in `report.missing_documents`. Rows after the first
        removed one are renumbered inside SQLite (`indexers.delete`); each embedding file is
        copied without the removed rows through a memory map.
        """
        self._close_merge()
        with self.progress.stage("delete"):
            db = self.gen / META_DB
            ids = list(dict.fromkeys(str(i) for i in doc_ids))
            conn = self._reader()
            try:
                known = {i for i in ids if conn.execute("SELECT 1 FROM documents WHERE id = ?", (i,)).fetchone()}
            finally:
                conn.close()
            self.report.missing_documents.extend(i for i in ids if i not in known)
            doomed = [i for i in ids if i in known]
            if not doomed:
                return
            fresh = db.with_name(f".{db.name}.new")
            fresh.unlink(missing_ok=True)
            maps, before, after = delete_documents(db, fresh, doomed)
            os.replace(fresh, db)
            self._shrink_graph(maps, before, after)
            (self.gen / "embeddings").mkdir(exist_ok=True)
            for gran in GRANULARITIES:
                src = self._emb_src.get(gran)
                if src is None:
                    continue
                self._verify_base_file(src)
                old = open_embeddings(src)
                if len(old) != maps.old_counts[gran]:
                    from hippograph.errors import IndexCorruptError

                    raise IndexCorruptError(f"{src}: {len(old)} rows, metadata has {maps.old_counts[gran]} {gran}")
                keep = maps.keep[gran]
                dst = embedding_path(self.gen, gran)
                writer = RowWriter(dst, len(keep), self.embedder.dim, self.config.embedding_storage)
                writer.append_stored(old, keep)
                writer.close()
                self._emb_src[gran] = dst
            self.vectors.renumber(maps)
            if self._passage_origin is not None:
                self._passage_origin = _grown(self._passage_origin, maps.old_counts["passages"])[maps.keep["passages"]]
            if self._minhash_bands is not None and len(self._minhash_bands) == maps.old_counts["entities"]:
                self._minhash_bands = self._minhash_bands[maps.keep["entities"]]
            self.report.deleted_documents.extend(doomed)
            for k in ("documents", "passages", "sentences", "entities", "facts", "synonyms"):
                self.report.count("deleted", k, before[k] - after[k])

    def _shrink_graph(self, maps: RowMaps, before: dict[str, int], after: dict[str, int]) -> None:
        """Take the delete out of the tracked graph (`generation.shrink_graph`); where it cannot be (rows were
        added before the delete in this write, an older or damaged base graph), the graph is built at the end."""
        counts = self._base_counts
        old, self._base_counts, self._graph_arrays = self._graph_arrays, None, None
        if counts is None or any(before[table] != counts[name] for name, table in GRAPH_ROW_COUNTS.items()):
            return
        if old is None and self.base is not None:
            old = self._base_graph(counts)
        if old is None:
            return
        conn = self._reader()
        try:
            self._graph_arrays = generation.shrink_graph(conn, old, maps)
        finally:
            conn.close()
        if self._graph_arrays is not None:
            self._base_counts = {name: after[table] for name, table in GRAPH_ROW_COUNTS.items()}

    # ---- add -------------------------------------------------------------------------------
    def add_documents(self, documents: Iterable[Document]) -> None:
        """Stream documents through shards into this generation (ids already indexed are skipped)."""
        docs: Iterable[Document] = self._fresh(documents)
        if getattr(self.embedder, "needs_fit", False):
            docs = self._fit_embedder(list(docs))
        if self._merge is None:
            self._merge = Merge(self.gen, self.config, self.report, self.progress)
        if self._shard_dir is None:
            cfg_key = shards.config_key(self.config, self.embedder.spec())
            base = self.base.name if self.base is not None else ""
            self._shard_dir = shards.ShardDir(self.root / BUILD_DIR / self._shard_dir_name, cfg_key, base).open()
        sd = self._shard_dir
        k = len(self._merge.selections)
        specs = (shards.ShardSpec(i, shards.shard_key(group, sd.cfg_key), sd.shard_path(i), group)
                 for i, group in enumerate(shards.group_documents(docs, self.config), k))
        for spec, built in self._finished_shards(specs):
            self.report.shards["built" if built else "reused"] = self.report.shards.get("built" if built else "reused", 0) + 1
            with self.progress.stage("merge"):
                self._merge.add_shard(spec.path)
            self.report.added_documents.extend(d.id for d in spec.documents)
            k += 1
        sd.prune(k)

    def _finished_shards(self, specs: Iterator[shards.ShardSpec]) -> Iterator[tuple[shards.ShardSpec, bool]]:
        """(spec, built now?) in stream order, each shard finished on disk: reused when its key
        matches, else built here (`executor='local'`) or on Ray actors (`executor='ray'`)."""
        if self.config.executor == "ray":
            from .ray_executor import build_shards

            assert self._shard_dir is not None
            yield from build_shards(specs, self.config, self.embedder, self._shard_dir.path, extract=self.extract,
                                    show_progress=self.progress.show)
            return
        if self.config.executor != "local":
            from hippograph.errors import ConfigError

            raise ConfigError(f"executor={self.config.executor!r}: choose 'local' or 'ray'")
        assert self._merge is not None and self._shard_dir is not None
        with contextlib.ExitStack() as stack:
            worker: ShardWorker | None = None
            use_worker = shard_worker.wanted(self.config, self.embedder, self.extract)
            for spec in specs:
                if shards.shard_done(spec.path, spec.key):
                    yield spec, False
                    continue
                if use_worker and worker is None:
                    worker = stack.enter_context(ShardWorker(self.config, self.embedder, self._shard_dir.path,
                                                             self.progress, fresh_build=self.base is None,
                                                             first_documents=len(spec.documents)))
                if worker is not None:  # extract + embed in the worker process (indexers/shard_worker.py)
                    try:
                        worker.build(spec, self._merge.known)
                    except ShardWorkerError:
                        if self.config.shard_process != "auto" or worker.replied:
                            raise
                        # it never got going (an interpreter that cannot run it): 'auto' builds here
                        logger.warning("the shard worker process could not start (exit code %s); building the "
                                       "shards in this process instead", worker.returncode)
                        worker, use_worker = None, False
                if worker is None:
                    shards.build_shard(spec.documents, self.config, spec.path, embedder=self.embedder,
                                       extract=self.extract, key=spec.key, progress=self.progress,
                                       known=self._merge.known)
                yield spec, True

    def _fresh(self, documents: Iterable[Document]) -> Iterator[Document]:
        """Documents whose id the generation does not hold yet (the others are reported as skipped)."""
        conn = self._reader()
        known_any = conn.execute("SELECT 1 FROM documents LIMIT 1").fetchone() is not None
        seen: set[str] = set()
        try:
            for doc in documents:
                dup = doc.id in seen or (known_any and conn.execute(
                    "SELECT 1 FROM documents WHERE id = ?", (doc.id,)).fetchone() is not None)
                if dup:
                    self.report.skipped_documents.append(doc.id)
                    logger.warning("document %s (%s) is already in the index; skipped", doc.id, doc.source)
                    continue
                seen.add(doc.id)
                yield doc
        finally:
            conn.close()

    def _fit_embedder(self, docs: list[Document]) -> list[Document]:
        """Fit an embedder that needs it (TF-IDF) on the distinct passages of `docs`."""
        with self.progress.stage("fit embedder"):
            texts: dict[str, str] = {}
            for doc in docs:
                for p in chunk_document(doc, self.config):
                    texts.setdefault(p.id, passage_embedding_text(p.title, p.text))
            if texts:
                self.embedder.fit(list(texts.values()))  # type: ignore[attr-defined]
        return docs

    def _close_merge(self) -> None:
        if self._merge is not None:
            self._finish_merge()

    def _finish_merge(self) -> None:
        """Embeddings and synonymy for everything merged so far; then the tables are final."""
        m = self._merge
        assert m is not None
        self._merge = None
        try:
            with self.progress.stage("merge"):
                m.write_embeddings(dict(self._emb_src), self.embedder.dim, verify=self._verify_base_file)
            for gran in GRANULARITIES:
                if embedding_path(self.gen, gran).is_file():
                    self._emb_src[gran] = embedding_path(self.gen, gran)
            with self.progress.stage("synonymy"):
                self._minhash_bands = m.link_synonyms(self._minhash_bands)
            for k, v in m.added().items():
                self.report.count("added", k, v)
        finally:
            m.close()

    # ---- the derived parts --------------------------------------------------------------------
    def finish(self) -> dict[str, int]:
        """Write embeddings not yet in the generation, the embedder, graph, vectors and BM25;
        return the manifest counts."""
        if self._merge is not None:
            self._finish_merge()
        gen = self.gen
        (gen / "embeddings").mkdir(exist_ok=True)
        for gran in GRANULARITIES:
            dst = embedding_path(gen, gran)
            if dst.is_file():
                continue
            src = self._emb_src.get(gran)
            if src is not None:
                link_embeddings(src, dst)
            else:
                write_embeddings_file(dst, np.zeros((0, self.embedder.dim), dtype=np.float32), self.config.embedding_storage)
        if self.base is not None and (self.base / EMBEDDER_DIR).is_dir():
            clone_tree(self.base / EMBEDDER_DIR, gen / EMBEDDER_DIR)
        else:
            self.embedder.save(gen / EMBEDDER_DIR)
        conn = connect_sqlite(gen / META_DB)
        conn.row_factory = None
        try:
            counts = table_counts(conn)
            with self.progress.stage("graph"):
                bands = self._minhash_bands if self.config.minhash_threshold > 0 else None
                grown, old = None, self._graph_arrays
                if self.base is not None and self._base_counts is not None:  # O(change): deletes taken out, adds grown
                    if old is None:
                        old = self._base_graph(self._base_counts)
                    if old is not None:
                        grown = generation.grow_graph(conn, gen / GRAPH_DIR, old, self._base_counts, counts, bands)
                self.report.derived["graph"] = ("built" if grown is None else
                                                "updated" if self._graph_arrays is not None else "grown")
                counts.update(grown if grown is not None else
                              generation.write_graph(conn, gen / GRAPH_DIR, counts["entities"], counts["passages"], bands))
                self.progress.advance("graph", counts["nodes"], unit="node")
            with self.progress.stage("vectors"):
                self.vectors.write(gen / VECTORS_DIR, gen)
                self.progress.advance("vectors", sum(counts[g] for g in GRANULARITIES), unit="vector")
            with self.progress.stage("BM25"):
                # an update reads and tokenizes the new passages only (retrievers/lexical.py, `updated`)
                origin = None if self._passage_origin is None else _grown(self._passage_origin, counts["passages"])
                base_lexical = None if self.base is None else self.base / LEXICAL_DIR
                if base_lexical is not None and not self._base_files_ok(
                        sorted(f for f in base_lexical.rglob("*") if f.is_file()), "BM25 is built from every passage"):
                    base_lexical = None
                how = generation.write_lexical(conn, gen / LEXICAL_DIR, self.lexical, (self.base or gen) / META_DB,
                                               base_lexical, origin)
                if how:
                    self.report.derived["bm25"] = how
                self.progress.advance("BM25", counts["passages"] if how != "updated" else int((origin < 0).sum()),
                                      unit="passage")
            with self.progress.stage("compact"):
                # inserts into b-trees keyed by name or pair (entities' names, synonyms, mentions) split pages
                # and leave them part-empty: one VACUUM packs the file (kernel docs: 1.7 s, 2 MB after a small add)
                conn.execute("VACUUM")
        finally:
            checkpoint_and_close(conn)  # one self-contained file, journal mode DELETE
            self.progress.close()
        return counts

    def lifecycle(self) -> dict[str, Any]:
        return self.vectors.lifecycle()

    @property
    def append_only(self) -> dict[str, int]:
        return self.vectors.append_only

    def cleanup(self) -> None:
        """Drop this write's shards (after its generation was committed or abandoned on purpose)."""
        if self._shard_dir is not None:
            self._shard_dir.remove()
        build = self.root / BUILD_DIR
        if build.is_dir() and not any(build.iterdir()):
            build.rmdir()


def _grown(origin: np.ndarray, n: int) -> np.ndarray:
    """`origin` extended to `n` rows: rows past its end were added by this write (-1)."""
    if n < len(origin):
        raise RuntimeError(f"passages shrank from {len(origin)} to {n} outside a delete")
    return np.concatenate([origin, np.full(n - len(origin), -1, dtype=np.int64)])
