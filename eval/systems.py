"""Retrieval systems compared side by side: lexical and dense baselines, and hippograph.

Every baseline indexes the same passages hippograph indexes (the engine's own loader and
chunker), embeds them with the engine's embedder, and maps passage hits back to the
document ids given at ingest (deduplicated in rank order) before any metric is computed.
hippograph systems share one index per (corpus, index config); query-time ablations are
per-call config overrides on that index, only the OpenIE ablation builds a second one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .datasets import Benchmark, iter_sources, openie_path
from .metrics import dedupe

logger = logging.getLogger(__name__)

RRF_K = 60


class SystemUnavailable(RuntimeError):
    """A system cannot run here (a component is missing or not applicable); the run goes on."""


@dataclass
class IndexInfo:
    """What building (or opening a cached) index cost."""

    seconds: float
    """Wall clock of the build (the original build's, when `cached`)."""
    stages: dict[str, float] = field(default_factory=dict)
    size_bytes: int | None = None
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def dir_size(path: Path) -> int:
    """Bytes of all files under `path`."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def _index_sources() -> list[Path]:
    from . import REPO_ROOT

    core = ("format.py", "tables.py", "storage.py", "text.py", "embedders.py", "types.py", "api.py")
    return [REPO_ROOT / "indexers", *(REPO_ROOT / "hippograph" / name for name in core)]


def source_hash(*paths: Path) -> str:
    """Hash of the source files that shape an index, so cached indexes are rebuilt when they change
    (query-side modules — retrievers/, config docs, CLI, server — do not invalidate the cache)."""
    h = hashlib.sha256()
    for d in paths:
        files = sorted(Path(d).rglob("*.py")) if Path(d).is_dir() else [Path(d)]
        for p in files:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _cache_rows(config: Any) -> int | None:
    """Vectors in the engine's embedding cache (None when the run does not use one)."""
    if not getattr(config, "embedding_cache_dir", None) or config.embedder == "tfidf":
        return None
    from hippograph.embedding_cache import CACHE_FILE, EmbeddingCache

    if not (Path(config.embedding_cache_dir) / CACHE_FILE).exists():
        return 0
    cache = EmbeddingCache(config.embedding_cache_dir, "", 1)
    try:
        return len(cache)
    finally:
        cache.close()


def _import(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ImportError, AttributeError) as exc:
        raise SystemUnavailable(f"{what} is not available yet ({type(exc).__name__}: {exc})") from exc


def embedding_precision(config: Any) -> str | None:
    """The compute precision the sentence-transformers embedder resolves to on this machine (None for TF-IDF)."""
    if getattr(config, "embedder", None) not in ("sentence-transformers", "auto"):
        return None
    try:
        from hippograph.embedders import resolve_precision
    except ImportError:
        return None
    return resolve_precision(getattr(config, "embedding_precision", "auto"))


# --------------------------------------------------------------------------- context
class RunContext:
    """Shared state of one eval run: engine config, caches, passages and embeddings per benchmark."""

    def __init__(self, config: Any, cache_dir: Path, rebuild: bool = False) -> None:
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.rebuild = rebuild
        self._passages: dict[str, PassageSet] = {}
        self._embedder: Any = None
        self._hg: dict[str, tuple[Any, IndexInfo]] = {}
        self._hg_failed: dict[str, BaseException] = {}
        # hashed once: the engine's modules are imported once per run, so editing the sources
        # mid-run must not make later systems rebuild an index the running code already built
        self.source_hash = source_hash(*_index_sources())

    # ---- engine components ----
    def embedder_for(self, ps: "PassageSet") -> Any:
        """The engine's embedder (one per run; fitted on the corpus when the backend needs it)."""
        make_embedder = _import("hippograph.embedders.make_embedder",
                                lambda: __import__("hippograph.embedders", fromlist=["x"]).make_embedder)
        if self._embedder is None or getattr(self._embedder, "_eval_fitted_on", None) not in (None, ps.key):
            emb = make_embedder(self.config)
            if hasattr(emb, "fit"):  # corpus-fitted backends (TF-IDF/LSA)
                emb.fit(ps.texts)
                emb._eval_fitted_on = ps.key
            self._embedder = emb
        return self._embedder

    def embedder_id(self) -> dict[str, Any]:
        c = self.config
        ident = {"embedder": c.embedder, "model": c.embedding_model, "tfidf_dim": c.tfidf_dim}
        precision = embedding_precision(c)
        if precision not in (None, "float32"):  # float32 keys stay as they were
            ident["precision"] = precision
        return ident

    def passages(self, bench: Benchmark) -> "PassageSet":
        """Passages of the benchmark, chunked by the engine (once per run)."""
        key = f"{bench.name}-{bench.corpus_hash()}"
        if key not in self._passages:
            self._passages[key] = PassageSet.build(bench, self.config, key)
        return self._passages[key]

    def embeddings(self, ps: "PassageSet") -> tuple[np.ndarray, float, bool]:
        """Passage embeddings (float32, normalised), seconds it took, whether from cache.

        Cached on disk for deterministic model backends; corpus-fitted backends
        (TF-IDF) are recomputed (cheap) so the query side stays consistent.
        """
        if ps.vectors is not None:
            return ps.vectors, ps.embed_seconds, ps.embed_cached
        emb = self.embedder_for(ps)
        cacheable = not hasattr(emb, "fit")
        key = _hash(self.embedder_id(), ps.texts)
        npy = self.cache_dir / "embeddings" / f"{key}.npy"
        meta = npy.with_suffix(".json")
        if cacheable and npy.exists() and meta.exists() and not self.rebuild:
            vecs = np.load(npy, allow_pickle=False)
            secs = json.loads(meta.read_text())["seconds"]
            cached = True
        else:
            t0 = time.perf_counter()
            vecs = np.ascontiguousarray(emb.encode(ps.texts), dtype=np.float32)
            secs = time.perf_counter() - t0
            cached = False
            if cacheable:
                npy.parent.mkdir(parents=True, exist_ok=True)
                np.save(npy, vecs, allow_pickle=False)
                meta.write_text(json.dumps({"seconds": secs, "n": len(ps.texts), **self.embedder_id()}))
        ps.vectors, ps.embed_seconds, ps.embed_cached = vecs, secs, cached
        return vecs, secs, cached

    def warm_up(self, ps: "PassageSet") -> float:
        """Load the embedding model now (seconds taken), so query timings never include it."""
        t0 = time.perf_counter()
        self.encode_queries(ps, ["warm up"])
        return time.perf_counter() - t0

    def encode_queries(self, ps: "PassageSet", questions: Sequence[str]) -> np.ndarray:
        """Query vectors, always computed by the model: the run's embedding cache serves passages
        only, so query latencies include the real query-embedding cost."""
        emb = self.embedder_for(ps)
        cache = getattr(emb, "cache", None)
        if cache is not None:
            emb.cache = None
        try:
            return np.ascontiguousarray(emb.encode(list(questions)), dtype=np.float32)
        finally:
            if cache is not None:
                emb.cache = cache

    def finish(self, bench: Benchmark) -> None:
        """Drop this benchmark's passages, vectors and open indexes (keeps memory flat across datasets)."""
        self._passages.pop(f"{bench.name}-{bench.corpus_hash()}", None)
        for key in [k for k in self._hg if k.startswith(f"{bench.name}:")]:
            hg, _ = self._hg.pop(key)
            if hasattr(hg, "close"):
                hg.close()
        if self._embedder is not None and hasattr(self._embedder, "fit"):
            self._embedder = None

    # ---- hippograph indexes ----
    def hippograph(self, bench: Benchmark, openie: Path | None = None) -> tuple[Any, IndexInfo]:
        """Open the cached hippograph index of this corpus + config, building it if needed."""
        api = _import("hippograph.api (HippoGraph)", lambda: __import__("hippograph.api", fromlist=["x"]).HippoGraph)
        from . import REPO_ROOT

        variant = "openie" if openie else "spacy"
        # knobs that change speed, not the index, stay out of the key
        # (and so do query-time fields: ablations and tuning reuse one index)
        index_cfg = {k: v for k, v in self.config.index_time_dict().items()
                     if k not in ("n_process", "embedding_batch_size", "spacy_batch_size", "embedding_cache_dir")}
        key = _hash(index_cfg, bench.corpus_hash(), str(openie) if openie else None,
                    self.source_hash)
        mem_key = f"{bench.name}:{variant}:{key}"
        if mem_key in self._hg:  # a second system on the same index: report it as shared
            hg, info = self._hg[mem_key]
            return hg, IndexInfo(info.seconds, dict(info.stages), info.size_bytes, True, {**info.extra, "shared": True})
        if mem_key in self._hg_failed:  # one failed build is not retried by every system sharing it
            raise self._hg_failed[mem_key]
        try:
            return self._open_or_build(api, bench, openie, mem_key, variant, key)
        except Exception as exc:
            self._hg_failed[mem_key] = exc
            raise

    def _open_or_build(self, api: Any, bench: Benchmark, openie: Path | None, mem_key: str, variant: str,
                       key: str) -> tuple[Any, IndexInfo]:
        index_dir = self.cache_dir / "hippograph" / f"{bench.name}-{variant}-{key}"
        marker = index_dir.parent / f"{index_dir.name}.build.json"
        if index_dir.exists() and marker.exists() and not self.rebuild:
            try:
                hg = api.open(index_dir)
                info = json.loads(marker.read_text())
                result = (hg, IndexInfo(seconds=info["seconds"], stages=info.get("stages", {}),
                                        size_bytes=dir_size(index_dir), cached=True, extra=info.get("extra", {})))
                self._hg[mem_key] = result
                return result
            except Exception as exc:  # a stale or broken cache is rebuilt, never trusted
                logger.warning("cached index %s unusable (%s); rebuilding", index_dir, exc)
        if index_dir.exists():
            shutil.rmtree(index_dir)
        marker.unlink(missing_ok=True)
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        cache_rows = _cache_rows(self.config)
        t0 = time.perf_counter()
        hg = api.build(list(iter_sources(bench)), index_dir, config=self.config,
                       openie=str(openie) if openie else None, show_progress=False, overwrite=True)
        secs = time.perf_counter() - t0
        stats = hg.stats() if hasattr(hg, "stats") else {}
        stages = {k: float(v) for k, v in (stats.get("timings") or {}).items() if isinstance(v, (int, float))}
        extra = {k: v for k, v in stats.items() if isinstance(v, (int, float, str)) and k != "timings"}
        if cache_rows is not None:  # vectors the build had to compute; 0 = all served from the cache
            extra["embedding_cache_new_vectors"] = _cache_rows(self.config) - cache_rows
        marker.write_text(json.dumps({"seconds": secs, "stages": stages, "extra": extra}, indent=2))
        result = (hg, IndexInfo(seconds=secs, stages=stages, size_bytes=dir_size(index_dir), cached=False, extra=extra))
        self._hg[mem_key] = result
        return result


@dataclass
class PassageSet:
    """The engine's passages of one benchmark, their texts for scoring and their doc ids."""

    key: str
    texts: list[str]
    doc_ids: list[str]
    n_docs: int
    chunk_seconds: float
    vectors: np.ndarray | None = None
    embed_seconds: float = 0.0
    embed_cached: bool = False

    @classmethod
    def build(cls, bench: Benchmark, config: Any, key: str) -> "PassageSet":
        iter_documents = _import("hippograph.indexers.loaders.iter_documents",
                                 lambda: __import__("hippograph.indexers.loaders", fromlist=["x"]).iter_documents)
        chunk_documents = _import("hippograph.indexers.chunking.chunk_documents",
                                  lambda: __import__("hippograph.indexers.chunking", fromlist=["x"]).chunk_documents)
        t0 = time.perf_counter()
        docs = list(iter_documents(list(iter_sources(bench)), config))
        passages = list(chunk_documents(docs, config))
        secs = time.perf_counter() - t0
        known = {r["id"] for r in bench.corpus}
        stray = {p.doc_id for p in passages} - known
        if stray:
            raise RuntimeError(f"{bench.name}: chunker produced passages of unknown documents, e.g. {sorted(stray)[:3]}")
        try:  # score exactly what the engine embeds
            from hippograph.text import passage_embedding_text
        except ImportError:
            passage_embedding_text = passage_text
        text_of = lambda p: passage_embedding_text(p.title, p.text)  # noqa: E731
        return cls(key=key, texts=[text_of(p) for p in passages],
                   doc_ids=[p.doc_id for p in passages], n_docs=len(docs), chunk_seconds=secs)

    def depth(self, k: int) -> int:
        """Passages to fetch so that (almost always) k distinct documents remain."""
        extra = len(self.texts) - self.n_docs
        return min(len(self.texts), k + min(extra, 10 * k))

    def to_docs(self, rows: Sequence[Sequence[int]], k: int) -> list[list[str]]:
        return [dedupe(self.doc_ids[i] for i in row if i >= 0)[:k] for row in rows]


def passage_text(title: str, text: str) -> str:
    """What baselines score: the title line plus the passage (HippoRAG embeds 'title\\ntext')."""
    if title and not text.startswith(title):
        return f"{title}\n{text}"
    return text


# --------------------------------------------------------------------------- systems
class System(ABC):
    """One retrieval system. `index` once per benchmark, then `search` returns doc ids."""

    name: str = ""
    family: str = "baseline"  # "baseline" | "hippograph" | "ablation"
    description: str = ""

    def applicable(self, bench: Benchmark, ctx: RunContext) -> str | None:
        """None if the system can run on this benchmark, else why not."""
        return None

    @abstractmethod
    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo: ...

    @abstractmethod
    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Distinct doc ids per question, best first (batched: the system's fastest path)."""

    def search_one(self, question: str, k: int) -> list[str]:
        """One question at a time (for latency)."""
        return self.search([question], k)[0]

    def close(self) -> None:
        """Release per-benchmark state."""


class RankBM25(System):
    name, description = "rank_bm25", "rank-bm25 BM25Okapi (reference implementation, Python loop)"

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        from rank_bm25 import BM25Okapi

        tokenize = _import("hippograph.retrievers.lexical.tokenize",
                           lambda: __import__("hippograph.retrievers.lexical", fromlist=["x"]).tokenize)
        self.ps = ctx.passages(bench)
        self.tokenize = tokenize
        t0 = time.perf_counter()
        self.bm25 = BM25Okapi(tokenize(self.ps.texts))
        return IndexInfo(seconds=time.perf_counter() - t0, stages={"chunk": self.ps.chunk_seconds})

    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        depth = self.ps.depth(k)
        rows = []
        for toks in self.tokenize(list(questions)):
            s = self.bm25.get_scores(toks)
            top = np.argsort(-s, kind="stable")[:depth]
            rows.append(top)
        return self.ps.to_docs(rows, k)


class BM25s(System):
    name, description = "bm25s", "BM25 via bm25s (the engine's lexical index)"

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        BM25Index = _import("hippograph.retrievers.lexical.BM25Index",
                            lambda: __import__("hippograph.retrievers.lexical", fromlist=["x"]).BM25Index)
        self.ps = ctx.passages(bench)
        t0 = time.perf_counter()
        self.bm25 = BM25Index.build(self.ps.texts)
        secs = time.perf_counter() - t0
        size = None
        if hasattr(self.bm25, "save"):
            d = ctx.cache_dir / "tmp_bm25s"
            shutil.rmtree(d, ignore_errors=True)
            self.bm25.save(d)
            size = dir_size(d)
            shutil.rmtree(d, ignore_errors=True)
        return IndexInfo(seconds=secs, stages={"chunk": self.ps.chunk_seconds}, size_bytes=size)

    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        _, idx = self.bm25.search(list(questions), self.ps.depth(k))
        return self.ps.to_docs(idx, k)


class DenseFlat(System):
    name, description = "dense_flat", "dense embeddings, exact inner-product search (faiss IndexFlatIP)"

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        import faiss

        self.ctx, self.ps = ctx, ctx.passages(bench)
        vecs, esecs, cached = ctx.embeddings(self.ps)
        warm = ctx.warm_up(self.ps)
        t0 = time.perf_counter()
        self.index_ = faiss.IndexFlatIP(vecs.shape[1])
        self.index_.add(vecs)
        secs = time.perf_counter() - t0
        return IndexInfo(seconds=esecs + secs, stages={"chunk": self.ps.chunk_seconds, "embed": esecs, "faiss": secs,
                                                       "model_load": warm},
                         size_bytes=int(vecs.nbytes), cached=cached)

    def _search_vecs(self, q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index_.search(q, depth)

    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        q = self.ctx.encode_queries(self.ps, questions)
        _, idx = self._search_vecs(q, self.ps.depth(k))
        return self.ps.to_docs(idx, k)


class DenseSpann(DenseFlat):
    name, description = "dense_spann", "dense embeddings through the engine's SPANN posting lists"

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        SpannIndex = _import("hippograph.indexers.spann.SpannIndex",
                             lambda: __import__("hippograph.indexers.spann", fromlist=["x"]).SpannIndex)
        self.ctx, self.ps = ctx, ctx.passages(bench)
        vecs, esecs, cached = ctx.embeddings(self.ps)
        ctx.warm_up(self.ps)
        path = ctx.cache_dir / "spann" / self.ps.key
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.spann = SpannIndex.build(vecs, np.arange(len(vecs), dtype=np.int64), path=path, metric="ip")
        secs = time.perf_counter() - t0
        return IndexInfo(seconds=esecs + secs, stages={"chunk": self.ps.chunk_seconds, "embed": esecs, "spann": secs},
                         size_bytes=dir_size(path) if path.exists() else None, cached=cached)

    def _search_vecs(self, q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.spann.search(q, depth)
        return np.asarray(scores), np.asarray(ids)

    def close(self) -> None:
        if hasattr(self, "spann") and hasattr(self.spann, "close"):
            self.spann.close()


class HybridRRF(System):
    name, description = "hybrid_rrf", f"dense (exact) + BM25 (bm25s), reciprocal rank fusion k={RRF_K}"

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        self.dense, self.lex = DenseFlat(), BM25s()
        a, b = self.dense.index(bench, ctx), self.lex.index(bench, ctx)
        self.ps = self.dense.ps
        return IndexInfo(seconds=a.seconds + b.seconds, stages={**a.stages, "bm25": b.seconds},
                         size_bytes=(a.size_bytes or 0) + (b.size_bytes or 0), cached=a.cached)

    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        depth = max(self.ps.depth(k), min(len(self.ps.texts), 100))
        q = self.dense.ctx.encode_queries(self.ps, questions)
        _, didx = self.dense._search_vecs(q, depth)
        _, lidx = self.lex.bm25.search(list(questions), depth)
        rows = []
        for drow, lrow in zip(didx, lidx):
            score: dict[int, float] = {}
            for ranking in (drow, lrow):
                for r, i in enumerate(int(x) for x in ranking if x >= 0):
                    score[i] = score.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
            rows.append(sorted(score, key=lambda i: (-score[i], i)))
        return self.ps.to_docs(rows, k)


class HippoGraphSystem(System):
    """hippograph through its public API, in one mode with per-call config overrides."""

    def __init__(self, name: str, description: str, mode: str = "hybrid", overrides: dict[str, Any] | None = None,
                 openie: bool = False, family: str = "hippograph") -> None:
        self.name, self.description, self.mode = name, description, mode
        self.overrides, self.openie, self.family = dict(overrides or {}), openie, family

    def applicable(self, bench: Benchmark, ctx: RunContext) -> str | None:
        if self.openie and openie_path(bench) is None:
            return f"no HippoRAG OpenIE file for {bench.name}"
        return None

    def index(self, bench: Benchmark, ctx: RunContext) -> IndexInfo:
        self.hg, info = ctx.hippograph(bench, openie_path(bench) if self.openie else None)
        n_pass = info.extra.get("passages")
        self.n_extra = max(0, int(n_pass) - len(bench.corpus)) if isinstance(n_pass, (int, float)) else None
        t0 = time.perf_counter()  # lazy models (spaCy, embedder) load here, not inside the timed queries
        self.hg.retrieve(bench.queries[0].question if bench.queries else "warm up", top_k=1, mode=self.mode,
                         **self.overrides)
        return replace(info, stages={**info.stages, "warm_up": time.perf_counter() - t0})

    def _k(self, k: int) -> int:
        """Passages to ask for so that k distinct documents remain after dedupe."""
        return 3 * k if self.n_extra is None else k + min(self.n_extra, 10 * k)

    def search(self, questions: Sequence[str], k: int) -> list[list[str]]:
        hits = self.hg.retrieve_many(list(questions), top_k=self._k(k), mode=self.mode, **self.overrides)
        return [dedupe(h.doc_id for h in row)[:k] for row in hits]

    def search_one(self, question: str, k: int) -> list[str]:
        hits = self.hg.retrieve(question, top_k=self._k(k), mode=self.mode, **self.overrides)
        return dedupe(h.doc_id for h in hits)[:k]


def all_systems() -> list[System]:
    """Every system, in report order."""
    return [
        RankBM25(), BM25s(), DenseFlat(), DenseSpann(), HybridRRF(),
        HippoGraphSystem("hippograph", "hippograph defaults (mode hybrid: PPR + routed dense/BM25, then the second-hop bridge step)"),
        HippoGraphSystem("hg_ppr", "hippograph, PPR ranking only (mode ppr)", mode="ppr"),
        HippoGraphSystem("hg_no_ppr", "ablation: no PPR (routed dense+BM25 fusion)", overrides={"use_ppr": False},
                         family="ablation"),
        HippoGraphSystem("hg_no_router", "ablation: entropy router off (fixed equal weights)",
                         overrides={"router": False}, family="ablation"),
        HippoGraphSystem("hg_no_synonymy", "ablation: no synonymy edges in PPR", overrides={"use_synonymy": False},
                         family="ablation"),
        HippoGraphSystem("hg_no_priors", "ablation: no dense passage priors in the PPR reset vector",
                         overrides={"use_passage_priors": False}, family="ablation"),
        HippoGraphSystem("hg_no_bridge", "ablation: no second-hop bridge step", overrides={"bridge_weight": 0.0},
                         family="ablation"),
        HippoGraphSystem("hg_openie", "ablation: HippoRAG GPT-3.5 OpenIE triples instead of spaCy", openie=True,
                         family="ablation"),
    ]


SYSTEM_GROUPS = {
    "baselines": ["rank_bm25", "bm25s", "dense_flat", "dense_spann", "hybrid_rrf"],
    "hippograph": ["hippograph", "hg_ppr"],
    "ablations": ["hg_no_ppr", "hg_no_router", "hg_no_synonymy", "hg_no_priors", "hg_no_bridge", "hg_openie"],
}


def select_systems(spec: str | None) -> list[System]:
    """Systems named in a comma list (names or groups: baselines, hippograph, ablations, all)."""
    systems = all_systems()
    if not spec or spec == "all":
        return systems
    wanted: list[str] = []
    for part in (s.strip() for s in spec.split(",") if s.strip()):
        wanted.extend(SYSTEM_GROUPS.get(part, [part]))
    by_name = {s.name: s for s in systems}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; known: {', '.join(by_name)} "
                         f"and groups {', '.join(SYSTEM_GROUPS)}")
    return [s for s in systems if s.name in set(wanted)]
