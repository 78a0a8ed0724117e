"""Offline indexing: documents → passages → triples → graph + vectors + BM25, as one new generation.

The builder appends to `CorpusTables` (empty for a fresh build, loaded from the live
generation for `add`), extracts and embeds only what is new, computes synonymy new-vs-all,
and writes a complete generation directory that `IndexDir.commit` then switches live.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from .config import Config
from .embedders import Embedder
from .indexers.chunking import chunk_documents, split_sentences
from .indexers.graph_builder import (
    build_adjacency,
    embedding_synonyms,
    minhash_synonyms,
    specificity,
)
from .tables import CorpusTables, DocumentRow
from .text import normalize_entity
from .types import Document, Extraction, Passage

logger = logging.getLogger(__name__)

GRANULARITIES = ("passages", "sentences", "facts", "entities")


def passage_embedding_text(p: Passage) -> str:
    """What a passage is embedded as: its title then its text (HippoRAG embeds 'title\\ntext')."""
    if p.title and not p.text.startswith(p.title):
        return f"{p.title}\n{p.text}"
    return p.text


def document_hash(doc: Document) -> str:
    """Content hash of a document (title + text), used to detect changed documents."""
    return hashlib.sha256(f"{doc.title}\x1f{doc.text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class BuildReport:
    """What one build/add did: rows added and seconds per stage."""

    added: dict[str, int] = field(default_factory=dict)
    skipped_documents: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, stage: str) -> "_Stage":
        return _Stage(self.timings, stage)


class _Stage:
    def __init__(self, timings: dict[str, float], stage: str):
        self.timings, self.stage = timings, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.t0


class Builder:
    """Appends documents to corpus tables and embeddings, then writes a generation."""

    def __init__(
        self,
        config: Config,
        embedder: Embedder,
        tables: CorpusTables | None = None,
        embeddings: dict[str, np.ndarray] | None = None,
        *,
        extract: Callable[[Sequence[Passage]], list[Extraction]] | None = None,
        show_progress: bool = False,
    ):
        self.config = config
        self.embedder = embedder
        self.tables = tables or CorpusTables()
        self.embeddings = embeddings or {}
        self._extract = extract
        self.show_progress = show_progress
        self.report = BuildReport()
        self._timer = _Timer(self.report.timings)

    # ---- appending ---------------------------------------------------------------------
    def add_documents(self, docs: Sequence[Document]) -> BuildReport:
        """Chunk, extract, embed and link new documents (documents whose id exists are skipped)."""
        t = self.tables
        known_docs = {d.id for d in t.documents}
        fresh: list[Document] = []
        for doc in docs:
            if doc.id in known_docs:
                self.report.skipped_documents.append(doc.id)
                logger.warning("document %s (%s) is already in the index; skipped", doc.id, doc.source)
                continue
            known_docs.add(doc.id)
            fresh.append(doc)
        with self._timer("chunk"):
            passages = chunk_documents(fresh, self.config)
            known_passages = {p.id for p in t.passages}
            passages = [p for p in passages if p.id not in known_passages]
        for doc in fresh:
            t.documents.append(DocumentRow(doc.id, doc.title, doc.source, document_hash(doc), doc.metadata))
        if not passages:
            self.report.added.update(documents=len(fresh), passages=0)
            return self.report

        with self._timer("extract"):
            extractions = self._run_extraction(passages)

        n_ent0, n_fact0, n_pass0, n_sent0 = len(t.entities), len(t.facts), len(t.passages), len(t.sentences)
        with self._timer("tables"):
            self._append(passages, extractions)

        new = {
            "passages": (n_pass0, len(t.passages)),
            "sentences": (n_sent0, len(t.sentences)),
            "facts": (n_fact0, len(t.facts)),
            "entities": (n_ent0, len(t.entities)),
        }
        with self._timer("embed"):
            self._fit_embedder_if_needed()
            for gran in GRANULARITIES:
                lo, hi = new[gran]
                texts = self._unit_texts(gran, lo, hi)
                vecs = self._encode(texts, gran)
                old = self.embeddings.get(gran)
                self.embeddings[gran] = vecs if old is None or len(old) == 0 else np.vstack([old, vecs])

        with self._timer("synonymy"):
            self._link_synonyms(np.arange(n_ent0, len(t.entities)))

        self.report.added.update(
            documents=len(fresh),
            passages=len(t.passages) - n_pass0,
            sentences=len(t.sentences) - n_sent0,
            entities=len(t.entities) - n_ent0,
            facts=len(t.facts) - n_fact0,
        )
        return self.report

    def _run_extraction(self, passages: list[Passage]) -> list[Extraction]:
        if self._extract is None:
            from .indexers.extraction import TripleExtractor

            extractor = TripleExtractor(self.config)
            self._extract = lambda ps: extractor.extract(ps, show_progress=self.show_progress)
        result = self._extract(passages)
        if len(result) != len(passages):
            raise RuntimeError(f"extractor returned {len(result)} results for {len(passages)} passages")
        return result

    def _append(self, passages: list[Passage], extractions: list[Extraction]) -> None:
        t = self.tables
        entity_ids = {name: i for i, name in enumerate(t.entities)}
        fact_ids = {f: i for i, f in enumerate(t.facts)}

        def entity(name: str) -> int | None:
            norm = normalize_entity(name)
            if not norm:
                return None
            idx = entity_ids.get(norm)
            if idx is None:
                idx = entity_ids[norm] = len(t.entities)
                t.entities.append(norm)
            return idx

        for passage, ex in zip(passages, extractions):
            p_idx = len(t.passages)
            t.passages.append(passage)
            for start, end in split_sentences(passage.text):
                t.sentences.append((p_idx, start, end))
            mentioned: set[int] = set()
            names = list(ex.entities)
            if self.config.link_title and passage.title:
                names.append(passage.title)
            for name in names:
                e = entity(name)
                if e is not None:
                    mentioned.add(e)
            for triple in ex.triples:
                s, o = entity(triple.subject), entity(triple.object)
                pred = " ".join(triple.predicate.lower().split())
                if s is None or o is None or not pred or s == o:
                    continue
                mentioned.update((s, o))
                key = (s, pred, o)
                f = fact_ids.get(key)
                if f is None:
                    f = fact_ids[key] = len(t.facts)
                    t.facts.append(key)
                t.fact_passages.append((f, p_idx, triple.sentence))
            t.mentions.extend((e, p_idx) for e in sorted(mentioned))

    def _fit_embedder_if_needed(self) -> None:
        if getattr(self.embedder, "needs_fit", False):
            texts = [passage_embedding_text(p) for p in self.tables.passages]
            self.embedder.fit(texts)  # type: ignore[attr-defined]

    def _unit_texts(self, gran: str, lo: int, hi: int) -> list[str]:
        t = self.tables
        if gran == "passages":
            return [passage_embedding_text(p) for p in t.passages[lo:hi]]
        if gran == "sentences":
            return [t.passages[p].text[s:e] for p, s, e in t.sentences[lo:hi]]
        if gran == "facts":
            return [t.fact_text(i) for i in range(lo, hi)]
        return t.entities[lo:hi]

    def _encode(self, texts: list[str], gran: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        if self.show_progress:
            logger.info("embedding %d %s", len(texts), gran)
        vecs = self.embedder.encode(texts, batch_size=self.config.embedding_batch_size, show_progress=self.show_progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _link_synonyms(self, new_ids: np.ndarray) -> None:
        t, c = self.tables, self.config
        edges = embedding_synonyms(
            self.embeddings["entities"],
            t.entities,
            new_ids,
            threshold=c.synonymy_threshold,
            max_neighbors=c.synonymy_max_neighbors,
            min_chars=c.synonymy_min_chars,
        )
        existing = {(a, b) for a, b, _, _ in t.synonyms} | {(e.a, e.b) for e in edges}
        edges += minhash_synonyms(
            t.entities,
            new_ids,
            threshold=c.minhash_threshold,
            num_perm=c.minhash_num_perm,
            min_chars=c.synonymy_min_chars,
            existing=existing,
        )
        known = {(a, b) for a, b, _, _ in t.synonyms}
        t.synonyms.extend((e.a, e.b, e.score, e.kind) for e in edges if (e.a, e.b) not in known)

    # ---- writing -------------------------------------------------------------------------
    def write(self, gen: Path) -> dict[str, int]:
        """Write the whole index content into an (empty) generation directory; return counts."""
        t = self.tables
        with self._timer("write"):
            t.save(gen / "meta.sqlite")
            emb_dir = gen / "embeddings"
            emb_dir.mkdir()
            for gran in GRANULARITIES:
                vecs = self.embeddings.get(gran, np.zeros((0, self.embedder.dim), dtype=np.float32))
                np.save(emb_dir / f"{gran}.npy", vecs, allow_pickle=False)
            self.embedder.save(gen / "embedder")
        with self._timer("graph"):
            counts = self._write_graph(gen / "graph")
        with self._timer("vectors"):
            self._write_vectors(gen / "vectors")
        with self._timer("lexical"):
            self._write_lexical(gen / "lexical")
        counts.update(t.counts())
        return counts

    def _write_graph(self, out: Path) -> dict[str, int]:
        t = self.tables
        out.mkdir()
        facts = np.array([(s, o) for s, _, o in t.facts], dtype=np.int64).reshape(-1, 2)
        # fact edge weight = number of triples: one pair per (fact, passage) occurrence
        occurrences = np.array([f for f, _, _ in t.fact_passages], dtype=np.int64)
        fact_pairs = facts[occurrences] if len(occurrences) else facts[:0]
        mentions = np.array(t.mentions, dtype=np.int64).reshape(-1, 2)
        from .indexers.graph_builder import SynonymEdge

        synonyms = [SynonymEdge(a, b, s, k) for a, b, s, k in t.synonyms]
        adjacency, kind = build_adjacency(len(t.entities), len(t.passages), fact_pairs, mentions, synonyms)
        np.save(out / "indptr.npy", adjacency.indptr.astype(np.int64), allow_pickle=False)
        np.save(out / "indices.npy", adjacency.indices.astype(np.int32), allow_pickle=False)
        np.save(out / "weights.npy", adjacency.data.astype(np.float32), allow_pickle=False)
        np.save(out / "kinds.npy", kind.data.astype(np.int8), allow_pickle=False)
        np.save(out / "specificity.npy", specificity(mentions, len(t.entities)).astype(np.float32), allow_pickle=False)
        return {"nodes": adjacency.shape[0], "edges": int(adjacency.nnz // 2)}

    def _write_vectors(self, out: Path) -> None:
        from .indexers.spann import make_vector_index

        out.mkdir()
        for gran in GRANULARITIES:
            vecs = self.embeddings.get(gran)
            if vecs is None or len(vecs) == 0:
                continue
            make_vector_index(
                vecs,
                np.arange(len(vecs), dtype=np.int64),
                path=out / gran,
                metric="ip",
                min_spann=self.config.spann_min_vectors,
            )

    def _write_lexical(self, out: Path) -> None:
        from .retrievers.lexical import BM25Index

        out.mkdir()
        if self.tables.passages:
            BM25Index.build([passage_embedding_text(p) for p in self.tables.passages]).save(out / "passages")


def load_embeddings(gen: Path) -> dict[str, np.ndarray]:
    """Load the raw unit embeddings of a generation (the writer appends to them)."""
    out = {}
    for gran in GRANULARITIES:
        path = gen / "embeddings" / f"{gran}.npy"
        if path.is_file():
            out[gran] = np.load(path, allow_pickle=False)
    return out


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def adjacency_from_arrays(graph_dir: Path, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rebuild the CSR adjacency and its edge-kind array from a generation's graph/ folder."""
    indptr = np.load(graph_dir / "indptr.npy", allow_pickle=False)
    indices = np.load(graph_dir / "indices.npy", allow_pickle=False)
    weights = np.load(graph_dir / "weights.npy", allow_pickle=False).astype(np.float64)
    kinds = np.load(graph_dir / "kinds.npy", allow_pickle=False)
    return sp.csr_matrix((weights, indices, indptr), shape=(n, n)), kinds
