"""The public facade: build, open, grow and query a hippograph index.

    from hippograph import HippoGraph, Config
    hg = HippoGraph.build("docs/", "my-index")
    for hit in hg.retrieve("Where was the founder of X born?", top_k=5):
        print(hit.score, hit.title)
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .config import EXECUTION_FIELDS, Config
from .embedders import Embedder, load_embedder, make_embedder
from .errors import HippoGraphError, IndexCorruptError, IndexNotFoundError, IndexWriteError, SourceError
from .format import FORMAT_VERSION
from .indexers.pipeline import BUILD_DIR, IndexWriter
from .indexers.plan import DocKey, path_sources, plan_sync, replayable
from .indexers.report import BuildReport
from .storage import IndexDir, Manifest
from .snapshot import IndexSnapshot, read_documents
from .types import Document, Hit

logger = logging.getLogger(__name__)

Sources = Any  # str | Path | Iterable[str | Path | dict]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Code points that cannot be encoded as UTF-8 (half of a UTF-16 pair); a query's become U+FFFD."""

OPEN_RETRIES = 3
"""Times `open`/`refresh` re-read the manifest when a writer removed the generation it named meanwhile."""


def _stream(sources: Sources, config: Config, report: Any = None) -> Iterable[Document]:
    """Documents of `sources`, read lazily (a generator over files and records)."""
    from .indexers.loaders import LoadReport, iter_documents

    return iter_documents(sources, config, report=report if report is not None else LoadReport())


class _BM25Writer:
    """The write path's lexical stage (`indexers.generation.LexicalWriter`): BM25 over passage texts,
    built or updated from the base generation's (the index type is the retrievers')."""

    def build(self, texts: Sequence[str], out: Path) -> None:
        from .retrievers.lexical import BM25Index

        BM25Index.build(texts).save(out)

    def update(self, base: Path, origin: Any, texts: Sequence[str], out: Path) -> bool:
        from .retrievers.lexical import BM25Index, tokenize

        try:
            old = BM25Index.load(base, mmap=True)
        except (IndexNotFoundError, IndexCorruptError) as exc:
            logger.warning("%s; BM25 is built again from every passage", exc)
            return False
        new = old.updated(origin, tokenize(texts))
        if new is None:
            logger.info("%s: no document lengths stored (an older index) or scores that do not invert exactly; "
                        "BM25 is built again from every passage", base)
            return False
        new.save(out)
        return True


_bm25_writer = _BM25Writer()


def write_error(exc: BaseException, default_path: Path) -> IndexWriteError:
    """One line for a failed write: the path (the OS's, else the file being written) and the cause."""
    path = getattr(exc, "filename", None) or default_path
    cause = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return IndexWriteError(f"{path}: {cause}; nothing was committed, the index is unchanged")


@contextmanager
def _fresh_generation(idx: IndexDir) -> Iterator[Path]:
    """A new generation directory for one write; removed again if the write fails, and an OSError
    or SQLite error (creating it or writing it) ends in one `IndexWriteError` line."""
    try:
        gen = idx.new_generation()
    except OSError as exc:
        raise write_error(exc, idx.root) from exc
    try:
        yield gen
    except BaseException as exc:
        shutil.rmtree(gen, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise write_error(exc, gen) from exc
        raise


def _index_config(manifest: Manifest, path: Path, overrides: dict[str, Any]) -> Config:
    """The config an index was built with, validated (IndexCorruptError naming the option and its
    default). A spaCy model the manifest names by path is not loaded (models come from installed
    packages or from a path the caller passes, never from a path stored in an index): the
    default model is used instead, with a warning."""
    config = Config.from_manifest(manifest.config, path)
    if "spacy_model" not in overrides and not _package_name(config.spacy_model):
        default = Config().spacy_model
        logger.warning("%s: index names spaCy model %r, which is not a package name; using %r "
                       "(pass spacy_model= to open it with a model of your choice)", path, config.spacy_model, default)
        config = config.replace(spacy_model=default)
    return config


def _package_name(name: str) -> bool:
    """A Python package name (what an installed spaCy model is), as opposed to a path."""
    return name.replace("-", "_").isidentifier()


def _extract_fn(config: Config, openie: str | Path | None, show_progress: bool):
    if openie is None:
        return None
    from .indexers.extraction import load_openie

    return lambda passages: load_openie(openie, passages)


class HippoGraph:
    """An open index: query it with `retrieve`, grow it with `add`."""

    def __init__(self, index_dir: str | Path, *, config_overrides: dict[str, Any] | None = None,
                 load_snapshot: bool = True):
        self.dir = IndexDir(index_dir)
        self._overrides = dict(config_overrides or {})
        self._embedder: Embedder | None = None
        self._mention_extractor = None
        self._snapshot: IndexSnapshot | None = None
        if load_snapshot:
            self._load()
        else:  # writing only (the CLI's add / sync): the read view is opened on first use, if ever
            self._use_manifest(self.dir.read_manifest())

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        sources: Sources,
        index_dir: str | Path,
        config: Config | None = None,
        *,
        openie: str | Path | None = None,
        show_progress: bool = False,
        overwrite: bool = False,
        executor: str | None = None,
        load_snapshot: bool = True,
    ) -> "HippoGraph":
        """Index `sources` into a new index at `index_dir` (an existing index needs overwrite=True).

        `openie`: path of a HippoRAG OpenIE JSON whose triples replace spaCy extraction.
        `executor`: 'local' or 'ray' (overrides `config.executor`; the index is the same).
        `load_snapshot=False` returns the index without opening its read view (the CLI, which only
        reports the build); it opens on first use.
        """
        config = config or Config()
        if executor is not None:
            config = config.replace(executor=executor)
        idx = IndexDir(index_dir)
        root = Path(index_dir)
        if idx.exists() and not overwrite:
            raise HippoGraphError(f"{root}: an index already exists here; use add() or overwrite=True")
        if root.exists() and not root.is_dir():
            raise HippoGraphError(f"{root}: exists and is not a directory")
        if root.is_dir() and not idx.exists() and not overwrite:
            foreign = [p.name for p in root.iterdir() if not p.name.startswith((".lock", ".tmp-gen-", "gen-", BUILD_DIR))]
            if foreign:
                raise HippoGraphError(
                    f"{root}: directory is not empty and is not a hippograph index "
                    f"(contains {', '.join(sorted(foreign)[:3])}); choose an empty or new directory"
                )
        t0 = time.perf_counter()
        with idx.writer_lock():
            embedder = make_embedder(config)
            with _fresh_generation(idx) as gen:
                writer = IndexWriter(idx.root, gen, config, embedder, extract=_extract_fn(config, openie, show_progress),
                                     show_progress=show_progress, lexical=_bm25_writer, shard_dir="build")
                writer.add_documents(_stream(sources, config))
                if not writer.report.added_documents:
                    raise SourceError(f"no readable documents found in {sources!r}")
                cls._write_and_commit(idx, writer, Manifest(generation="", config=config.to_manifest()), t0)
            writer.cleanup()
        return cls(index_dir, load_snapshot=load_snapshot)

    @classmethod
    def open(cls, index_dir: str | Path, **config_overrides: Any) -> "HippoGraph":
        """Open an existing index; keyword arguments override query-time config fields."""
        return cls(index_dir, config_overrides=config_overrides)

    @staticmethod
    def _write_and_commit(
        idx: IndexDir, writer: IndexWriter, manifest: Manifest, t0: float, *, previous: Manifest | None = None
    ) -> Manifest:
        """Finish the writer's generation (graph, vectors, BM25) and commit it. `previous` is the
        generation the write started from: files hard-linked from it keep their checksums."""
        counts = writer.finish()
        manifest.counts = counts
        manifest.embedder = writer.embedder.spec()
        manifest.lifecycle = writer.lifecycle()
        manifest.format_version = FORMAT_VERSION  # the generation is written in this code's format
        timings = dict(writer.report.timings)
        timings["total"] = time.perf_counter() - t0
        writer.report.timings["total"] = timings["total"]
        manifest.timings = {k: round(v, 3) for k, v in timings.items()}
        committed = idx.commit(writer.gen, manifest, previous=previous, append_only=writer.append_only)
        writer.report.generation = committed.generation
        return committed

    def _load(self) -> None:
        """Open the live generation: snapshot and (when its files are in the index) the embedder.

        Everything inside the generation directory is opened here, so a writer removing the
        directory later cannot break this reader. If a writer removed the generation between
        our manifest read and the open (two commits in a row), the manifest is read again.
        """
        previous_embedder = self._embedder
        for attempt in range(OPEN_RETRIES):
            manifest = self.dir.read_manifest()
            gen = self.dir.generation_path(manifest)
            try:
                snapshot = IndexSnapshot(gen, manifest)
                embedder = self._open_embedder(manifest, gen, previous_embedder)
                break
            except (IndexCorruptError, OSError):
                try:
                    moved = self.dir.read_manifest().generation != manifest.generation
                except HippoGraphError:
                    moved = False
                if not moved or attempt == OPEN_RETRIES - 1:
                    raise
                logger.info("%s: generation %s was replaced while opening; retrying", self.dir.root, manifest.generation)
        self._use_manifest(manifest)
        self._snapshot = snapshot
        self._embedder = embedder

    def _use_manifest(self, manifest: Manifest) -> None:
        """Take the manifest's config (with this object's overrides) and drop the retriever built on the old one."""
        base = _index_config(manifest, self.dir.manifest_path, self._overrides)
        self.config = base.replace(**self._overrides) if self._overrides else base
        self.manifest = manifest
        self._retriever = None

    @property
    def snapshot(self) -> IndexSnapshot:
        """The live generation's read view (tables, graph, vector indexes, BM25): opened with the
        index, or on first use by an object opened for writing only."""
        if self._snapshot is None:
            self._load()
        assert self._snapshot is not None
        return self._snapshot

    @staticmethod
    def _open_embedder(manifest: Manifest, gen: Path, previous: Embedder | None) -> Embedder | None:
        """Load the embedder now if its files live in the generation (TF-IDF); a model-backed
        embedder is reused across refreshes when the spec is unchanged, else loaded lazily."""
        spec = manifest.embedder or {}
        if spec.get("backend") != "tfidf":
            if previous is not None and getattr(previous, "backend", None) == spec.get("backend"):
                try:
                    if previous.spec() == spec:
                        return previous
                except Exception:  # noqa: BLE001 - a stale embedder is simply not reused
                    return None
            return None
        try:
            return load_embedder(spec, gen / "embedder")
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"{gen / 'embedder'}: cannot load the index's embedder ({exc})") from exc

    def _documents(self) -> list[dict[str, Any]]:
        """The live generation's documents: from the open snapshot, else read from its tables alone."""
        if self._snapshot is not None:
            return self._snapshot.documents()
        return read_documents(self.dir.generation_path(self.manifest))

    # ---- models (lazy) --------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            gen = self.dir.generation_path(self.manifest)
            try:
                self._embedder = load_embedder(self.manifest.embedder, gen / "embedder",
                                               precision=self.config.embedding_precision,
                                               model_path=self._overrides.get("embedding_model"))
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(f"{gen / 'embedder'}: cannot load the index's embedder ({exc})") from exc
        return self._embedder

    def _mentions(self, text: str) -> list[str]:
        if self._mention_extractor is None:
            from .indexers.extraction import TripleExtractor

            self._mention_extractor = TripleExtractor(self.config)
        return self._mention_extractor.extract_query(text)

    def _embed_query_texts(self, texts: Sequence[str]) -> Any:
        """A query's texts (queries, unmatched mentions) → rows: in one model pass where the embedder can."""
        few = getattr(self.embedder, "encode_few", None)
        return few(list(texts)) if few is not None else self.embedder.encode(list(texts))

    @property
    def retriever(self):
        if self._retriever is None:
            from .retrievers.engine import Retriever

            self._retriever = Retriever(self.snapshot, self._embed_query_texts, self._mentions, self.config)
        return self._retriever

    # ---- writing ---------------------------------------------------------------------------
    # Every write is one transaction: under the writer lock, start an IndexWriter from the live
    # generation, apply the change, finish and commit the new generation, switch the manifest.
    def _transaction(
        self,
        change: Callable[[IndexWriter, Config], None],
        *,
        t0: float,
        show_progress: bool = False,
        openie: str | Path | None = None,
        maintenance: str | None = None,
    ) -> BuildReport:
        with self.dir.writer_lock():
            manifest = self.dir.read_manifest()
            gen = self.dir.generation_path(manifest)
            config = _index_config(manifest, self.dir.manifest_path, self._overrides).replace(
                **{k: getattr(self.config, k) for k in EXECUTION_FIELDS})  # where this write runs: as opened
            embedder = self._reusable_embedder(manifest) or load_embedder(
                manifest.embedder, gen / "embedder", precision=config.embedding_precision,
                model_path=self._overrides.get("embedding_model"))
            with _fresh_generation(self.dir) as tmp:
                writer = IndexWriter(
                    self.dir.root, tmp, config, embedder, base=gen, base_checksums=manifest.checksums,
                    lifecycle=manifest.lifecycle, extract=_extract_fn(config, openie, show_progress),
                    show_progress=show_progress, lexical=_bm25_writer, shard_dir="update",
                )
                writer.vectors.maintenance = maintenance
                change(writer, config)
                report = writer.report
                report.generation = manifest.generation
                if report.changed or report.added.get("documents", 0) or maintenance:
                    new = Manifest.from_dict(manifest.to_dict(), self.dir.manifest_path)
                    self._write_and_commit(self.dir, writer, new, t0, previous=manifest)
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
            writer.cleanup()
        if getattr(writer.embedder, "backend", None) != "tfidf":
            self._embedder = writer.embedder  # keep a loaded model for queries and the next write
        self.refresh()
        return report

    def _reusable_embedder(self, manifest: Manifest) -> Embedder | None:
        """This object's already loaded model-backed embedder, if the index still uses the same one
        (loading a sentence-transformers model costs seconds; TF-IDF is read from the generation)."""
        current = self._embedder
        spec = manifest.embedder or {}
        if current is None or spec.get("backend") == "tfidf" or getattr(current, "backend", None) != spec.get("backend"):
            return None
        try:
            return current if current.spec() == spec else None
        except Exception:  # noqa: BLE001 - a stale embedder is simply not reused
            return None

    def _ensure_current(self) -> None:
        """Refresh if another writer committed since this object last loaded the manifest."""
        try:
            if self.dir.read_manifest().generation != self.manifest.generation:
                self.refresh()
        except HippoGraphError:
            pass

    def add(self, sources: Sources, *, show_progress: bool = False, openie: str | Path | None = None) -> BuildReport:
        """Append new documents (ids already present are skipped) without re-extracting old ones."""
        t0 = time.perf_counter()

        def change(writer: IndexWriter, config: Config) -> None:
            writer.add_documents(_stream(sources, config))

        return self._transaction(change, t0=t0, show_progress=show_progress, openie=openie)

    def update(self, sources: Sources, *, show_progress: bool = False, openie: str | Path | None = None) -> BuildReport:
        """Upsert: re-index documents whose content hash changed (matched by document id), add
        documents the index does not hold, leave unchanged ones alone. One transaction."""
        return self.sync(sources, delete_missing=False, show_progress=show_progress, openie=openie)

    def delete(self, doc_ids: str | Iterable[str]) -> BuildReport:
        """Remove documents by id with everything only they contributed (passages, sentences,
        mentions, facts, entities, synonymy edges, vectors, BM25 entries). Unknown ids are
        reported in `missing_documents` and logged; nothing is written if nothing matched."""
        ids = [doc_ids] if isinstance(doc_ids, str) else [str(i) for i in doc_ids]
        t0 = time.perf_counter()

        def change(writer: IndexWriter, config: Config) -> None:
            writer.remove_documents(ids)

        report = self._transaction(change, t0=t0)
        if report.missing_documents:
            logger.warning("%d document id(s) not in the index: %s", len(report.missing_documents),
                           ", ".join(report.missing_documents[:5]))
        return report

    def sync(
        self,
        sources: Sources,
        *,
        delete_missing: bool = True,
        show_progress: bool = False,
        openie: str | Path | None = None,
        load_config: Config | None = None,
    ) -> BuildReport:
        """Make the index match `sources`: add new documents, re-index changed ones and (with
        `delete_missing`) delete indexed documents whose source file lies under one of the
        given folders/files but that were not loaded this time. Documents of files that could
        not be read this time (skipped with a warning) are kept. One transaction; nothing is
        written when nothing changed.

        `load_config` overrides the index's loader settings (include/exclude globs, limits).
        """
        t0 = time.perf_counter()
        from .indexers.loaders import LoadReport

        sources = replayable(sources)
        load_config = load_config or self.config
        load_report = LoadReport()
        keys = [DocKey.of(d) for d in _stream(sources, load_config, load_report)]  # texts are not kept
        roots = path_sources(sources) if delete_missing else []
        unreadable = [os.path.abspath(w) for w, _ in load_report.skipped if os.path.lexists(w)]

        self._ensure_current()
        current = [(d["id"], d["content_hash"], d["source"]) for d in self._documents()]
        if plan_sync(keys, current, roots=roots, unreadable=unreadable).empty:
            report = BuildReport(unchanged_documents=len(keys), generation=self.manifest.generation)
            report.timings["total"] = time.perf_counter() - t0
            return report
        plan_of: dict[str, Any] = {}

        def change(writer: IndexWriter, config: Config) -> None:
            # planned again under the writer lock, against the generation actually being changed
            plan = plan_sync(keys, writer.indexed_documents(), roots=roots, unreadable=unreadable)
            plan_of["plan"] = plan
            writer.rename_documents({old: k.as_document() for old, k in plan.renames.items()})
            if plan.changed or plan.doomed:
                writer.remove_documents(plan.changed + plan.doomed)
            wanted = plan.to_index()
            if wanted:
                writer.add_documents(d for d in _stream(sources, load_config) if d.id in wanted)

        report = self._transaction(change, t0=t0, show_progress=show_progress, openie=openie)
        plan = plan_of["plan"]
        updated = set(plan.changed)
        report.updated_documents = [i for i in plan.changed if i in set(report.added_documents)]
        report.added_documents = [i for i in report.added_documents if i not in updated]
        report.deleted_documents = [i for i in report.deleted_documents if i not in updated]
        report.unchanged_documents = plan.unchanged
        return report

    def compact(self, *, rebuild_vectors: bool = False, keep_previous: bool = False) -> BuildReport:
        """Reclaim space: compact SPANN vector indexes that hold tombstones or dead posting
        space (or rebuild every vector index with `rebuild_vectors`), then remove abandoned
        temporary generations and every generation but the live one (`keep_previous` keeps the
        one before it too). Readers that already opened an older generation keep working (their
        files stay open); one that is just opening it retries on the new manifest."""
        from .indexers.vectors import spann_dead_fraction

        t0 = time.perf_counter()
        self._ensure_current()
        needed = []
        for gran, st in (self.manifest.lifecycle.get("vectors") or {}).items():
            index = self.snapshot.vector_index(gran)
            if st.get("kind") == "spann" and index is not None:
                if st.get("tombstones", 0) or spann_dead_fraction(getattr(index, "index", index)) > 0:
                    needed.append(gran)
        if needed or rebuild_vectors:
            report = self._transaction(lambda b, c: None, t0=t0, maintenance="rebuild" if rebuild_vectors else "compact")
        else:
            report = BuildReport(generation=self.manifest.generation)
        with self.dir.writer_lock():
            live = self.dir.read_manifest().generation
            removed = self.dir.collect_garbage(keep=live, keep_previous=keep_previous)
        report.compacted += [f"removed {p.name}" for p in removed]
        report.timings["total"] = time.perf_counter() - t0
        return report

    def refresh(self) -> None:
        """Re-read the manifest and switch to the newest committed generation."""
        if self._snapshot is None:  # opened for writing only: nothing to reopen now
            self._use_manifest(self.dir.read_manifest())
            if getattr(self._embedder, "backend", None) == "tfidf":
                self._embedder = None  # its fit lives in the generation: load the new one on use
            return
        old, old_embedder = self._snapshot, self._embedder
        self._embedder = None
        try:
            self._load()
        except BaseException:
            self._embedder = old_embedder  # still serving the old snapshot: keep its embedder
            raise
        old.close()

    # ---- reading --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts, per-stage timings of the last write (seconds), the embedder (and `embedder_warning`
        when 'auto' fell back to TF-IDF), vector-index state (kind, tombstones) and identity of the index."""
        from .embedders import embedder_fallback

        m = self.manifest
        return {
            "path": str(self.dir.root),
            "generation": m.generation,
            **m.counts,
            "embedder": m.embedder,
            "embedder_warning": embedder_fallback((m.config or {}).get("embedder"), m.embedder),
            "timings": m.timings,
            "vectors": (m.lifecycle or {}).get("vectors", {}),
            "created": m.created,
            "updated": m.updated,
            "format_version": m.format_version,
        }

    def documents(self) -> list[dict[str, Any]]:
        """Documents in the index: id, title, source, content hash, metadata."""
        return self._documents()

    def triples(self, limit: int | None = None) -> list[dict[str, Any]]:
        """(subject, predicate, object) statements with their provenance (passage id and title,
        document id, sentence span in the document): the rows of `export_triples`, first `limit`."""
        from .exports import iter_triples

        return list(itertools.islice(iter_triples(self.snapshot), limit))

    def export_triples(self, path: str | Path) -> int:
        """Stream every triple with its provenance to `path` (.jsonl, .csv or .parquet by suffix;
        Parquet needs pyarrow). Returns the number of rows written."""
        from .exports import write_triples

        return write_triples(self.snapshot, path)

    def to_networkx(self):
        """The knowledge graph as a `networkx.MultiDiGraph`: typed entity and passage nodes, one
        `fact` edge per fact (subject → object, with predicate, fact id and passages), `mention`
        and `synonym` edges; the same ids and attributes as `export_graphml` (see hippograph/exports.py)."""
        from .exports import to_networkx

        return to_networkx(self.snapshot)

    def retrieve(
        self,
        query: str,
        top_k: int | None = None,
        *,
        mode: str | None = None,
        explain: bool = False,
        filters: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> list[Hit]:
        """Top passages for one query. `mode`: hybrid (default), ppr, dense, bm25. `filters`: a metadata
        filter (docs/filters.md), e.g. ``{"year": {"$gte": 2020}, "source": {"$glob": "papers/*"}}``;
        the top_k are the best passages that match it."""
        return self.retrieve_many([query], top_k, mode=mode, explain=explain, filters=filters, **overrides)[0]

    def retrieve_many(
        self,
        queries: Sequence[str],
        top_k: int | None = None,
        *,
        mode: str | None = None,
        explain: bool = False,
        filters: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> list[list[Hit]]:
        """Top passages for each query, computed in blocks of `query_batch_size` queries
        (embeddings and PPR blocked; one block's score vectors in memory at a time). `filters`
        (one metadata filter for every query) restricts retrieval as in `retrieve`; a malformed
        filter raises FilterError (a ConfigError and ValueError) naming the bad part."""
        cfg = self.config.replace(**overrides) if overrides else self.config
        top_k = cfg.top_k if top_k is None else int(top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        if cfg.query_batch_size < 1:
            raise ValueError(f"query_batch_size must be ≥ 1, got {cfg.query_batch_size}")
        mode = mode or cfg.mode
        clean = [self._clean_query(q, cfg) for q in queries]
        flt = None if filters is None else self.retriever.passage_filter(filters)
        out: list[list[Hit]] = []
        for b0 in range(0, len(clean), cfg.query_batch_size):
            results = self.retriever.search(clean[b0:b0 + cfg.query_batch_size], cfg, mode, flt, depth=top_k)
            out.extend(self._hits(res, top_k, explain) for res in results)
        return out

    def _hits(self, res: Any, top_k: int, explain: bool) -> list[Hit]:
        """Hit records of one query's top passages (with explanations when asked)."""
        rows = res.ranking[:top_k]
        passages = self.snapshot.passages(rows)
        hits = []
        for row, p in zip(rows, passages):
            hits.append(
                Hit(
                    passage_id=p.id, doc_id=p.doc_id, title=p.title, text=p.text, score=res.scores.at(row),
                    source=p.source, span=tuple(p.span), metadata=p.metadata,
                    explanation=self.retriever.explain(res, int(row)) if explain else None,
                )
            )
        return hits

    @staticmethod
    def _clean_query(query: str, cfg: Config) -> str:
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        q = _LONE_SURROGATE.sub("\ufffd", query.replace("\x00", " ")).strip()  # not encodable: spaCy, SQLite
        if not q:
            raise ValueError("query is empty")
        if len(q) > cfg.max_query_chars:
            logger.warning("query of %d chars truncated to max_query_chars=%d", len(q), cfg.max_query_chars)
            q = q[: cfg.max_query_chars]
        return q

    def export_graphml(self, path: str | Path) -> Path:
        """Write the knowledge graph as GraphML (streamed): the nodes and edges of `to_networkx`,
        with the predicate as each fact edge's label (shown by Gephi)."""
        from .exports import write_graphml

        return write_graphml(self.snapshot, path)

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()

    def __enter__(self) -> "HippoGraph":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.manifest.counts
        return f"HippoGraph({str(self.dir.root)!r}, passages={c.get('passages')}, entities={c.get('entities')})"
