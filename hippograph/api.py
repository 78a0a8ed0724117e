"""The public facade: build, open, grow and query a hippograph index.

    from hippograph import HippoGraph, Config
    hg = HippoGraph.build("docs/", "my-index")
    for hit in hg.retrieve("Where was the founder of X born?", top_k=5):
        print(hit.score, hit.title)
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .config import Config
from .embedders import Embedder, load_embedder, make_embedder
from .errors import HippoGraphError, IndexCorruptError, SourceError
from .indexers.pipeline import BUILD_DIR, IndexWriter
from .indexers.plan import DocKey, path_sources, plan_sync, replayable
from .indexers.report import BuildReport
from .storage import IndexDir, Manifest
from .snapshot import IndexSnapshot
from .types import Document, Hit

logger = logging.getLogger(__name__)

Sources = Any  # str | Path | Iterable[str | Path | dict]

OPEN_RETRIES = 3
"""Times `open`/`refresh` re-read the manifest when a writer removed the generation it named meanwhile."""


def _stream(sources: Sources, config: Config, report: Any = None) -> Iterable[Document]:
    """Documents of `sources`, read lazily (a generator over files and records)."""
    from .indexers.loaders import LoadReport, iter_documents

    return iter_documents(sources, config, report=report if report is not None else LoadReport())


def _bm25_writer(texts: Sequence[str], out: Path) -> None:
    """The write path's lexical stage: BM25 over passage texts (the index type is the retrievers')."""
    from .retrievers.lexical import BM25Index

    BM25Index.build(texts).save(out)


def _extract_fn(config: Config, openie: str | Path | None, show_progress: bool):
    if openie is None:
        return None
    from .indexers.extraction import load_openie

    return lambda passages: load_openie(openie, passages)


class HippoGraph:
    """An open index: query it with `retrieve`, grow it with `add`."""

    def __init__(self, index_dir: str | Path, *, config_overrides: dict[str, Any] | None = None):
        self.dir = IndexDir(index_dir)
        self._overrides = dict(config_overrides or {})
        self._embedder: Embedder | None = None
        self._mention_extractor = None
        self._load()

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
    ) -> "HippoGraph":
        """Index `sources` into a new index at `index_dir` (an existing index needs overwrite=True).

        `openie`: path of a HippoRAG OpenIE JSON whose triples replace spaCy extraction.
        """
        config = config or Config()
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
            gen = idx.new_generation()
            writer = IndexWriter(idx.root, gen, config, embedder, extract=_extract_fn(config, openie, show_progress),
                                 show_progress=show_progress, lexical=_bm25_writer, shard_dir="build")
            try:
                writer.add_documents(_stream(sources, config))
                if not writer.report.added_documents:
                    raise SourceError(f"no readable documents found in {sources!r}")
                cls._write_and_commit(idx, writer, Manifest(generation="", config=config.to_manifest()), t0)
            except BaseException:
                shutil.rmtree(gen, ignore_errors=True)
                raise
            writer.cleanup()
        return cls(index_dir)

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
        base = Config.from_dict(manifest.config)
        self.config = base.replace(**self._overrides) if self._overrides else base
        self.manifest = manifest
        self.snapshot = snapshot
        self._embedder = embedder
        self._retriever = None

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

    # ---- models (lazy) --------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            gen = self.dir.generation_path(self.manifest)
            try:
                self._embedder = load_embedder(self.manifest.embedder, gen / "embedder",
                                               precision=self.config.embedding_precision)
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(f"{gen / 'embedder'}: cannot load the index's embedder ({exc})") from exc
        return self._embedder

    def _mentions(self, text: str) -> list[str]:
        if self._mention_extractor is None:
            from .indexers.extraction import TripleExtractor

            self._mention_extractor = TripleExtractor(self.config)
        return self._mention_extractor.extract_query(text)

    @property
    def retriever(self):
        if self._retriever is None:
            from .retrievers.engine import Retriever

            self._retriever = Retriever(
                self.snapshot, lambda texts: self.embedder.encode(list(texts)), self._mentions, self.config
            )
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
            config = Config.from_dict(manifest.config)
            embedder = self._reusable_embedder(manifest) or load_embedder(
                manifest.embedder, gen / "embedder", precision=config.embedding_precision)
            tmp = self.dir.new_generation()
            try:
                writer = IndexWriter(
                    self.dir.root, tmp, config, embedder, base=gen, lifecycle=manifest.lifecycle,
                    extract=_extract_fn(config, openie, show_progress), show_progress=show_progress,
                    lexical=_bm25_writer, shard_dir="update",
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
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
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
        current = [(d["id"], d["content_hash"], d["source"]) for d in self.snapshot.documents()]
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
        old = self.snapshot
        self._embedder = None
        self._load()
        old.close()

    # ---- reading --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts, timings of the last write, vector-index state (kind, tombstones) and identity of the index."""
        m = self.manifest
        return {
            "path": str(self.dir.root),
            "generation": m.generation,
            **m.counts,
            "embedder": m.embedder,
            "timings": m.timings,
            "vectors": (m.lifecycle or {}).get("vectors", {}),
            "created": m.created,
            "updated": m.updated,
            "format_version": m.format_version,
        }

    def documents(self) -> list[dict[str, Any]]:
        """Documents in the index: id, title, source, content hash, metadata."""
        return self.snapshot.documents()

    def triples(self, limit: int | None = None) -> list[dict[str, str]]:
        """(subject, predicate, object, passage title) rows, for inspection."""
        q = (
            "SELECT es.name s, f.predicate p, eo.name o, p.title t FROM fact_passages fp "
            "JOIN facts f ON f.idx = fp.fact_idx JOIN entities es ON es.idx = f.subject_idx "
            "JOIN entities eo ON eo.idx = f.object_idx JOIN passages p ON p.idx = fp.passage_idx"
        )
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        return [dict(subject=r[0], predicate=r[1], object=r[2], passage=r[3]) for r in self.snapshot.conn.execute(q)]

    def retrieve(
        self, query: str, top_k: int | None = None, *, mode: str | None = None, explain: bool = False, **overrides: Any
    ) -> list[Hit]:
        """Top passages for one query. `mode`: hybrid (default), ppr, dense, bm25."""
        return self.retrieve_many([query], top_k, mode=mode, explain=explain, **overrides)[0]

    def retrieve_many(
        self,
        queries: Sequence[str],
        top_k: int | None = None,
        *,
        mode: str | None = None,
        explain: bool = False,
        **overrides: Any,
    ) -> list[list[Hit]]:
        """Top passages for each query, computed in blocks of `query_batch_size` queries
        (embeddings and PPR blocked; one block's score vectors in memory at a time)."""
        cfg = self.config.replace(**overrides) if overrides else self.config
        top_k = cfg.top_k if top_k is None else int(top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        if cfg.query_batch_size < 1:
            raise ValueError(f"query_batch_size must be ≥ 1, got {cfg.query_batch_size}")
        mode = mode or cfg.mode
        clean = [self._clean_query(q, cfg) for q in queries]
        out: list[list[Hit]] = []
        for b0 in range(0, len(clean), cfg.query_batch_size):
            results = self.retriever.search(clean[b0:b0 + cfg.query_batch_size], cfg, mode, depth=top_k)
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
        q = query.replace("\x00", " ").strip()
        if not q:
            raise ValueError("query is empty")
        if len(q) > cfg.max_query_chars:
            logger.warning("query of %d chars truncated to max_query_chars=%d", len(q), cfg.max_query_chars)
            q = q[: cfg.max_query_chars]
        return q

    def export_graphml(self, path: str | Path) -> Path:
        """Write the knowledge graph (entity + passage nodes, typed weighted edges) as GraphML."""
        import igraph as ig

        from .indexers.graph_builder import EDGE_KIND_NAMES

        snap = self.snapshot
        a = snap.adjacency.tocoo()
        kinds = snap.edge_kinds
        keep = a.row < a.col
        g = ig.Graph(n=a.shape[0], edges=list(zip(a.row[keep].tolist(), a.col[keep].tolist())), directed=False)
        g.es["weight"] = a.data[keep].tolist()
        g.es["kind"] = [EDGE_KIND_NAMES[int(k)] for k in kinds[keep]]  # tocoo keeps CSR entry order
        g.vs["kind"] = ["entity"] * snap.n_entities + ["passage"] * snap.n_passages
        g.vs["label"] = snap.entities + snap.passage_titles
        g.vs["passage_id"] = [""] * snap.n_entities + snap.passage_ids
        spec = snap.specificity.tolist()
        g.vs["specificity"] = spec + [0.0] * snap.n_passages
        path = Path(path)
        g.write_graphml(str(path))
        return path

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> "HippoGraph":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.manifest.counts
        return f"HippoGraph({str(self.dir.root)!r}, passages={c.get('passages')}, entities={c.get('entities')})"
