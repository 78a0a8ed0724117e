"""The public facade: build, open, grow and query a hippograph index.

    from hippograph import HippoGraph, Config
    hg = HippoGraph.build("docs/", "my-index")
    for hit in hg.retrieve("Where was the founder of X born?", top_k=5):
        print(hit.score, hit.title)
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from .builder import Builder, BuildReport, load_embeddings
from .config import Config
from .embedders import Embedder, load_embedder, make_embedder
from .errors import HippoGraphError, IndexCorruptError, SourceError
from .storage import IndexDir, Manifest
from .snapshot import IndexSnapshot
from .tables import CorpusTables
from .types import Document, Hit

logger = logging.getLogger(__name__)

Sources = Any  # str | Path | Iterable[str | Path | dict]


def _load(sources: Sources, config: Config) -> list[Document]:
    from .indexers.loaders import load_documents

    docs, report = load_documents(sources, config)
    for path, reason in report.skipped:
        logger.debug("skipped %s: %s", path, reason)
    return docs


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
            foreign = [p.name for p in root.iterdir() if not p.name.startswith((".lock", ".tmp-gen-", "gen-"))]
            if foreign:
                raise HippoGraphError(
                    f"{root}: directory is not empty and is not a hippograph index "
                    f"(contains {', '.join(sorted(foreign)[:3])}); choose an empty or new directory"
                )
        t0 = time.perf_counter()
        with idx.writer_lock():
            docs = _load(sources, config)
            if not docs:
                raise SourceError(f"no readable documents found in {sources!r}")
            embedder = make_embedder(config)
            builder = Builder(
                config, embedder, extract=_extract_fn(config, openie, show_progress), show_progress=show_progress
            )
            builder.add_documents(docs)
            cls._write_and_commit(idx, builder, Manifest(generation="", config=config.to_dict()), t0)
        return cls(index_dir)

    @classmethod
    def open(cls, index_dir: str | Path, **config_overrides: Any) -> "HippoGraph":
        """Open an existing index; keyword arguments override query-time config fields."""
        return cls(index_dir, config_overrides=config_overrides)

    @staticmethod
    def _write_and_commit(idx: IndexDir, builder: Builder, manifest: Manifest, t0: float) -> Manifest:
        gen = idx.new_generation()
        try:
            counts = builder.write(gen)
        except BaseException:
            shutil.rmtree(gen, ignore_errors=True)
            raise
        manifest.counts = counts
        manifest.embedder = builder.embedder.spec()
        timings = dict(builder.report.timings)
        timings["total"] = time.perf_counter() - t0
        manifest.timings = {k: round(v, 3) for k, v in timings.items()}
        return idx.commit(gen, manifest)

    def _load(self) -> None:
        manifest = self.dir.read_manifest()
        gen = self.dir.generation_path(manifest)
        base = Config.from_dict(manifest.config)
        self.config = base.replace(**self._overrides) if self._overrides else base
        self.manifest = manifest
        self.snapshot = IndexSnapshot(gen, manifest)
        self._retriever = None

    # ---- models (lazy) --------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            gen = self.dir.generation_path(self.manifest)
            try:
                self._embedder = load_embedder(self.manifest.embedder, gen / "embedder")
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
    def add(self, sources: Sources, *, show_progress: bool = False, openie: str | Path | None = None) -> BuildReport:
        """Append new documents (ids already present are skipped) without re-extracting old ones."""
        t0 = time.perf_counter()
        with self.dir.writer_lock():
            manifest = self.dir.read_manifest()
            gen = self.dir.generation_path(manifest)
            config = Config.from_dict(manifest.config)
            docs = _load(sources, config)
            tables = CorpusTables.load(gen / "meta.sqlite")
            embedder = load_embedder(manifest.embedder, gen / "embedder")
            builder = Builder(
                config, embedder, tables, load_embeddings(gen),
                extract=_extract_fn(config, openie, show_progress), show_progress=show_progress,
            )
            report = builder.add_documents(docs)
            if report.added.get("documents", 0):
                self._write_and_commit(self.dir, builder, manifest, t0)
        self.refresh()
        return report

    def refresh(self) -> None:
        """Re-read the manifest and switch to the newest committed generation."""
        old = self.snapshot
        self._embedder = None
        self._load()
        old.close()

    # ---- reading --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts, timings and identity of the index."""
        m = self.manifest
        return {
            "path": str(self.dir.root),
            "generation": m.generation,
            **m.counts,
            "embedder": m.embedder,
            "timings": m.timings,
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
        """Top passages for each query, computed as one batch (embeddings and PPR blocked)."""
        cfg = self.config.replace(**overrides) if overrides else self.config
        top_k = cfg.top_k if top_k is None else int(top_k)
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        mode = mode or cfg.mode
        clean = [self._clean_query(q, cfg) for q in queries]
        results = self.retriever.search(clean, cfg, mode)
        out: list[list[Hit]] = []
        for res in results:
            rows = res.ranking[:top_k]
            passages = self.snapshot.passages(rows)
            hits = []
            for row, p in zip(rows, passages):
                hits.append(
                    Hit(
                        passage_id=p.id, doc_id=p.doc_id, title=p.title, text=p.text, score=float(res.scores[row]),
                        source=p.source, span=tuple(p.span), metadata=p.metadata,
                        explanation=self.retriever.explain(res, int(row)) if explain else None,
                    )
                )
            out.append(hits)
        return out

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
