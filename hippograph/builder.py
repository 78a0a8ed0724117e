"""Offline indexing: documents → passages → triples → graph + vectors + BM25, as one new generation.

The builder appends to `CorpusTables` (empty for a fresh build, loaded from the live
generation for `add`), extracts and embeds only what is new, computes synonymy new-vs-all,
and writes a complete generation directory that `IndexDir.commit` then switches live.

Lifecycle (add / delete / update) without rebuilding:

* `remove_documents` drops documents with `CorpusTables.without_documents` and slices the
  embedding matrices with the same row maps (rows are renumbered, old order kept).
* `write` re-derives the graph, specificity and BM25 from the tables (linear, cheap), but
  reuses the previous generation where it can: the SQLite file is copied and only new rows
  are inserted when nothing was renumbered; unchanged embedding matrices and the embedder
  files are hard-linked; and a SPANN vector index is cloned with hard links and updated with
  `remove` (tombstones) + `add`. `SpannIndex.add` appends to the posting files in place, past
  the bytes any committed generation uses, so the manifest checksums those files per
  appended segment (`IndexDir.commit(append_only=...)`) and old generations stay intact.
  Vector ids of a SPANN index therefore stop being row numbers after a delete: the
  generation stores ``vectors/<gran>.vid2row.npy`` and the snapshot translates. Flat
  indexes (small granularities) are simply rewritten.
* Automatic maintenance per SPANN index: `compact` when tombstones exceed `COMPACT_FRACTION`
  or dead posting space exceeds `COMPACT_DEAD_FRACTION`; a full rebuild (re-clustering) when
  the index grew by more than `REBUILD_GROWTH` since it was built, or crosses the flat/SPANN
  size boundary.
* MinHash signatures of entity names are kept in ``graph/minhash.npy`` so surface-form
  synonymy for new entities costs O(new), not a re-hash of every entity.

Synonymy is new-vs-all: pairs between old entities are never recomputed. Without the
`synonymy_max_neighbors` cap this gives exactly the all-pairs result of a scratch build; when
an entity reaches the cap, which neighbours it keeps can depend on insertion order.

The TF-IDF embedder is fitted once, on the first build's corpus; later adds reuse that fit,
so an incrementally grown TF-IDF index is not identical to a from-scratch build of the same
documents (the sentence-transformers embedder has no fit, so there it is).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from .config import Config
from .embedders import Embedder
from .errors import HippoGraphError
from .indexers.chunking import chunk_document, split_sentences
from .indexers.graph_builder import (
    SynonymEdge,
    build_adjacency_arrays,
    lsh_synonyms,
    minhash_signatures,
    specificity,
    synonymy_eligible,
)
from .indexers.synonymy import synonym_edges
from .tables import CorpusTables, DocumentRow, RowMaps
from . import threads
from .text import normalize_entity
from .types import Document, Extraction, Passage

logger = logging.getLogger(__name__)

GRANULARITIES = ("passages", "sentences", "facts", "entities")

COMPACT_FRACTION = 0.2
"""Compact a SPANN index when tombstoned (deleted) vectors exceed this share of its vectors."""
COMPACT_DEAD_FRACTION = 0.5
"""Compact a SPANN index when this share of its posting file is dead space. `SpannIndex.add`
rewrites every list it touches at the end of the file, so a 1 % add leaves ≈20 % dead space;
at 0.5 a steady stream of small adds compacts about every third add."""
REBUILD_GROWTH = 0.5
"""Rebuild (re-cluster) a SPANN index once vectors added since its build exceed this share of its build size."""
VID_MAP = "{gran}.vid2row.npy"
"""Per-generation map vector id → row (-1 = deleted), present only when ids are not row numbers."""
MINHASH_FILE = "minhash.npy"


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
    """What one build / add / update / delete / sync did: rows added and removed, documents
    by outcome, vector-index maintenance, and seconds per stage."""

    added: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    skipped_documents: list[str] = field(default_factory=list)
    added_documents: list[str] = field(default_factory=list)
    updated_documents: list[str] = field(default_factory=list)
    deleted_documents: list[str] = field(default_factory=list)
    unchanged_documents: int = 0
    missing_documents: list[str] = field(default_factory=list)
    """Ids asked to be deleted that the index did not hold."""
    renamed_documents: list[tuple[str, str]] = field(default_factory=list)
    """(old id, new id): same source file and content under a new id; relabelled, not re-indexed."""
    compacted: list[str] = field(default_factory=list)
    """Maintenance done on the vector indexes, e.g. ``"sentences: compacted"``."""
    generation: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added_documents or self.updated_documents or self.deleted_documents or self.compacted
                    or self.renamed_documents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": dict(self.added), "deleted": dict(self.deleted),
            "added_documents": list(self.added_documents), "updated_documents": list(self.updated_documents),
            "deleted_documents": list(self.deleted_documents), "unchanged_documents": self.unchanged_documents,
            "skipped_documents": list(self.skipped_documents), "missing_documents": list(self.missing_documents),
            "renamed_documents": [list(pair) for pair in self.renamed_documents],
            "compacted": list(self.compacted), "generation": self.generation,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


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
    """Appends documents to (and removes documents from) corpus tables and embeddings, then writes a generation.

    `base` is the generation the tables were loaded from (see `from_generation`); `write`
    reuses its files where nothing changed. `vector_state` is the manifest's per-granularity
    vector-index bookkeeping (kind, build size, next vector id, tombstones).
    """

    def __init__(
        self,
        config: Config,
        embedder: Embedder,
        tables: CorpusTables | None = None,
        embeddings: dict[str, np.ndarray] | None = None,
        *,
        extract: Callable[[Sequence[Passage]], list[Extraction]] | None = None,
        show_progress: bool = False,
        base: Path | None = None,
        vector_state: dict[str, dict[str, Any]] | None = None,
    ):
        self.config = config
        threads.set_limit(config.threads, config.adaptive_threads)  # h13b: thread policy (hippograph/threads.py)
        self.embedder = embedder
        self.tables = tables or CorpusTables()
        self.embeddings = embeddings or {}
        self._extract = extract
        self.show_progress = show_progress
        self.report = BuildReport()
        self._timer = _Timer(self.report.timings)
        self.base = Path(base) if base is not None else None
        self.vector_state: dict[str, dict[str, Any]] = {g: dict(v) for g, v in (vector_state or {}).items()}
        self.maintenance: str | None = None
        """None, "compact" (compact every SPANN index with garbage) or "rebuild" (rebuild all vector indexes)."""
        self._base_counts = self.tables.counts() if self.base is not None else None
        self._renumbered = False
        self._relabelled = False  # rows rewritten in place (renamed documents): no append-only SQLite copy
        self._row_vids: dict[str, np.ndarray] = {}  # SPANN granularities: row → vector id (-1 = not indexed yet)
        self._removed_vids: dict[str, list[np.ndarray]] = {g: [] for g in GRANULARITIES}
        self._minhash: np.ndarray | None = None  # MinHash signatures, one row per entity
        self.append_only: dict[str, int] = {}
        """Files of the written generation that later ones may extend in place → bytes used here."""
        if self.base is not None:
            self._load_base_state()

    @classmethod
    def from_generation(
        cls, gen: Path, lifecycle: dict[str, Any], config: Config, embedder: Embedder, **kw: Any
    ) -> "Builder":
        """A builder holding a committed generation's tables and embeddings, ready to add/remove."""
        tables = CorpusTables.load(gen / "meta.sqlite")
        embeddings = load_embeddings(gen)
        for gran, rows in (("passages", len(tables.passages)), ("sentences", len(tables.sentences)),
                           ("facts", len(tables.facts)), ("entities", len(tables.entities))):
            have = len(embeddings.get(gran, ()))
            if have != rows:
                from .errors import IndexCorruptError

                raise IndexCorruptError(f"{gen / 'embeddings' / (gran + '.npy')}: {have} rows, metadata has {rows} {gran}")
        return cls(config, embedder, tables, embeddings, base=gen, vector_state=(lifecycle or {}).get("vectors"), **kw)

    def _load_base_state(self) -> None:
        base = self.base
        assert base is not None
        for gran in GRANULARITIES:
            vdir = base / "vectors" / gran
            n = len(self.embeddings.get(gran, ()))
            if not (vdir / "header.json").is_file():
                self.vector_state.pop(gran, None)
                continue
            st = self.vector_state.get(gran)
            if st is None:  # index written before lifecycle bookkeeping: ids are row numbers
                try:
                    fmt = json.loads((vdir / "header.json").read_text(encoding="utf-8")).get("format")
                except (OSError, ValueError):
                    continue
                st = {"kind": "spann" if fmt == "hippograph-spann" else "flat", "built": n, "next_vid": n, "tombstones": 0}
                self.vector_state[gran] = st
            if st.get("kind") != "spann":
                continue
            vm = base / "vectors" / VID_MAP.format(gran=gran)
            if vm.is_file():
                vid2row = load_array(vm)
                row2vid = np.full(n, -1, dtype=np.int64)
                ok = np.flatnonzero(vid2row >= 0)
                rows = vid2row[ok]
                if len(vid2row) != st.get("next_vid") or len(ok) != n or (len(rows) and (rows.max() >= n)):
                    logger.warning("%s: vector id map does not match the tables; the %s index will be rebuilt", vm, gran)
                    self.vector_state.pop(gran, None)
                    continue
                row2vid[rows] = ok
            elif st.get("next_vid") != n:
                logger.warning("%s: vector id map missing; the %s index will be rebuilt", vm, gran)
                self.vector_state.pop(gran, None)
                continue
            else:
                row2vid = np.arange(n, dtype=np.int64)
            self._row_vids[gran] = row2vid
        mh = base / "graph" / MINHASH_FILE
        if self.config.minhash_threshold > 0 and mh.is_file():
            sig = load_array(mh)
            if sig.ndim == 2 and sig.shape == (len(self.tables.entities), self.config.minhash_num_perm):
                self._minhash = sig

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
            passages, shared = self._new_passages(fresh)
        for doc in fresh:
            t.documents.append(DocumentRow(doc.id, doc.title, doc.source, document_hash(doc), doc.metadata))
        self.report.added_documents.extend(d.id for d in fresh)
        n_pass_before = len(t.passages)
        if not passages:
            self._record_owners(shared, n_pass_before)
            self.report.added.update(documents=len(fresh), passages=0)
            return self.report

        with self._timer("extract"):
            extractions = self._run_extraction(passages)

        n_ent0, n_fact0, n_pass0, n_sent0 = len(t.entities), len(t.facts), len(t.passages), len(t.sentences)
        with self._timer("tables"):
            self._append(passages, extractions)
            self._record_owners(shared, n_pass_before)

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

        added = {
            "documents": len(fresh),
            "passages": len(t.passages) - n_pass0,
            "sentences": len(t.sentences) - n_sent0,
            "entities": len(t.entities) - n_ent0,
            "facts": len(t.facts) - n_fact0,
        }
        for k, v in added.items():
            self.report.added[k] = self.report.added.get(k, 0) + v
        return self.report

    def _new_passages(self, docs: Sequence[Document]) -> tuple[list[Passage], list[tuple[int, Passage]]]:
        """Chunks of `docs` not yet in the index, and the repeats: (passage row, repeat) pairs
        where the row is an existing row (≥ 0) or -1-k for the k-th new passage."""
        row_of = {p.id: i for i, p in enumerate(self.tables.passages)}
        new: list[Passage] = []
        new_pos: dict[str, int] = {}
        shared: list[tuple[int, Passage]] = []
        for doc in docs:
            for p in chunk_document(doc, self.config):
                if p.id in row_of:
                    shared.append((row_of[p.id], p))
                elif p.id in new_pos:
                    shared.append((-1 - new_pos[p.id], p))
                else:
                    new_pos[p.id] = len(new)
                    new.append(p)
        if shared:
            logger.info("%d passages identical to indexed ones (same title and text): stored once, owners recorded",
                        len(shared))
        return new, shared

    def _record_owners(self, shared: list[tuple[int, Passage]], first_new_row: int) -> None:
        """Record the further owners of shared passages (once per passage and document)."""
        t = self.tables
        seen = {(row, doc) for row, doc, *_ in t.passage_owners}
        for row, p in shared:
            row = row if row >= 0 else first_new_row + (-1 - row)
            if t.passages[row].doc_id == p.doc_id or (row, p.doc_id) in seen:
                continue  # a document repeating its own chunk
            seen.add((row, p.doc_id))
            t.passage_owners.append((row, p.doc_id, p.source, p.span[0], p.span[1]))

    # ---- removing ------------------------------------------------------------------------
    def remove_documents(self, doc_ids: Sequence[str]) -> RowMaps:
        """Delete documents and everything only they contributed; renumber rows and embeddings.

        Ids not in the index are recorded in `report.missing_documents`. Vector ids of
        removed rows are queued for `SpannIndex.remove` at `write` time.
        """
        with self._timer("delete"):
            known = {d.id for d in self.tables.documents}
            ids = list(dict.fromkeys(str(i) for i in doc_ids))
            self.report.missing_documents.extend(i for i in ids if i not in known)
            before = self.tables.counts()
            self.tables, maps = self.tables.without_documents([i for i in ids if i in known])
            after = self.tables.counts()
            for gran in GRANULARITIES:
                emb = self.embeddings.get(gran)
                if emb is not None and len(emb) == maps.old_counts[gran]:
                    self.embeddings[gran] = emb[maps.keep[gran]]
            for gran, row2vid in list(self._row_vids.items()):
                full = np.full(maps.old_counts[gran], -1, dtype=np.int64)
                full[: len(row2vid)] = row2vid
                kept = np.zeros(len(full), dtype=bool)
                kept[maps.keep[gran]] = True
                gone = full[~kept]
                gone = gone[gone >= 0]
                if gone.size:
                    self._removed_vids[gran].append(gone)
                self._row_vids[gran] = full[maps.keep[gran]]
            if self._minhash is not None and len(self._minhash) == maps.old_counts["entities"]:
                self._minhash = self._minhash[maps.keep["entities"]]
            if any(after[k] < before[k] for k in before):
                self._renumbered = True
            removed_docs = set(ids) & known
            self.report.deleted_documents.extend(i for i in ids if i in removed_docs)
            for k in ("documents", "passages", "sentences", "entities", "facts", "synonyms"):
                self.report.deleted[k] = self.report.deleted.get(k, 0) + before[k] - after[k]
        return maps

    def rename_documents(self, renames: dict[str, Document]) -> None:
        """Give indexed documents a new id (and source, metadata) without re-indexing them.

        For a document whose content is unchanged but whose id changed, e.g. because its
        folder was indexed from a different root. Row positions do not change.
        """
        if not renames:
            return
        t = self.tables
        for i, d in enumerate(t.documents):
            new = renames.get(d.id)
            if new is not None:
                t.documents[i] = DocumentRow(new.id, new.title, new.source, d.content_hash, new.metadata)
        for i, p in enumerate(t.passages):
            new = renames.get(p.doc_id)
            if new is not None:
                t.passages[i] = dataclasses.replace(p, doc_id=new.id, source=new.source)
        t.passage_owners = [
            (row, renames[doc].id, renames[doc].source, a, b) if doc in renames else (row, doc, src, a, b)
            for row, doc, src, a, b in t.passage_owners
        ]
        self._relabelled = True
        self.report.renamed_documents.extend((old, new.id) for old, new in renames.items())

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
        """Add passages with their sentences, entities, facts and mentions.

        An entity row is created only when a passage mentions it (a named entity / noun
        chunk, the title, or an endpoint of a kept triple), so every entity has a mention
        and deleting documents can drop exactly the entities no remaining passage mentions.
        """
        t = self.tables
        entity_ids = {name: i for i, name in enumerate(t.entities)}
        fact_ids = {f: i for i, f in enumerate(t.facts)}

        def entity(norm: str) -> int:
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
                norm = normalize_entity(name)
                if norm:
                    mentioned.add(entity(norm))
            for triple in ex.triples:
                s_norm, o_norm = normalize_entity(triple.subject), normalize_entity(triple.object)
                pred = " ".join(triple.predicate.lower().split())
                if not s_norm or not o_norm or not pred or s_norm == o_norm:
                    continue
                s, o = entity(s_norm), entity(o_norm)
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
        unique = list(dict.fromkeys(texts))  # overlapping chunks repeat sentences; embed each text once
        vecs = self.embedder.encode(unique, batch_size=self.config.embedding_batch_size, show_progress=self.show_progress)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if len(unique) == len(texts):
            return vecs
        pos = {t: i for i, t in enumerate(unique)}
        return vecs[[pos[t] for t in texts]]

    def _link_synonyms(self, new_ids: np.ndarray) -> None:
        t, c = self.tables, self.config
        edges = synonym_edges(  # h13b: exact below a size, IVF above (indexers/synonymy.py)
            self.embeddings["entities"],
            t.entities,
            new_ids,
            threshold=c.synonymy_threshold,
            max_neighbors=c.synonymy_max_neighbors,
            min_chars=c.synonymy_min_chars,
        )
        # every edge found here has a new endpoint, so none is already in t.synonyms
        existing = {(e.a, e.b) for e in edges}
        edges += self._minhash_edges(new_ids, existing)
        t.synonyms.extend((e.a, e.b, e.score, e.kind) for e in edges)

    def _minhash_edges(self, new_ids: np.ndarray, existing: set[tuple[int, int]]) -> list[SynonymEdge]:
        """Surface-form synonymy, new-vs-all, with the signatures of old entities reused.

        Same result as `graph_builder.minhash_synonyms`, but O(new entities) hashing: the
        signatures of entities already indexed are kept in `graph/minhash.npy`.
        """
        c = self.config
        if c.minhash_threshold <= 0 or len(new_ids) == 0:
            return []
        names = self.tables.entities
        eligible = np.fromiter((synonymy_eligible(n, c.synonymy_min_chars) for n in names), dtype=bool, count=len(names))
        have = 0 if self._minhash is None else len(self._minhash)
        if have < len(names):
            fresh = minhash_signatures(names[have:], eligible[have:], c.minhash_num_perm)
            self._minhash = fresh if self._minhash is None or have == 0 else np.vstack([self._minhash, fresh])
        return lsh_synonyms(self._minhash, eligible, np.asarray(new_ids, dtype=np.int64),
                            threshold=c.minhash_threshold, existing=existing)

    # ---- writing -------------------------------------------------------------------------
    def write(self, gen: Path) -> dict[str, int]:
        """Write the whole index content into an (empty) generation directory; return counts."""
        t = self.tables
        with self._timer("write"):
            self._write_tables(gen / "meta.sqlite")
            emb_dir = gen / "embeddings"
            emb_dir.mkdir()
            for gran in GRANULARITIES:
                vecs = self.embeddings.get(gran, np.zeros((0, self.embedder.dim), dtype=np.float32))
                src = self.base / "embeddings" / f"{gran}.npy" if self.base is not None else None
                if src is not None and not self._renumbered and self._base_counts is not None \
                        and len(vecs) == self._base_counts[gran] and src.is_file():
                    _link_or_copy(src, emb_dir / f"{gran}.npy")
                else:
                    np.save(emb_dir / f"{gran}.npy", vecs, allow_pickle=False)
            if self.base is not None and (self.base / "embedder").is_dir():
                _clone_tree(self.base / "embedder", gen / "embedder")
            else:
                self.embedder.save(gen / "embedder")
        with self._timer("graph"):
            counts = self._write_graph(gen / "graph")
        with self._timer("vectors"):
            self._write_vectors(gen / "vectors")
        with self._timer("lexical"):
            self._write_lexical(gen / "lexical")
        counts.update(t.counts())
        return counts

    def lifecycle(self) -> dict[str, Any]:
        """Bookkeeping for the manifest (read back by `from_generation`)."""
        return {"vectors": {g: dict(v) for g, v in self.vector_state.items()}}

    def _write_tables(self, path: Path) -> None:
        src = self.base / "meta.sqlite" if self.base is not None else None
        if src is not None and src.is_file() and not (self._renumbered or self._relabelled) \
                and self._base_counts is not None:
            shutil.copyfile(src, path)
            self.tables.save(path, since=self._base_counts)
        else:
            self.tables.save(path)

    def _write_graph(self, out: Path) -> dict[str, int]:
        t = self.tables
        out.mkdir()
        facts = np.array([(s, o) for s, _, o in t.facts], dtype=np.int64).reshape(-1, 2)
        # fact edge weight = number of triples: one pair per (fact, passage) occurrence
        occurrences = np.array([f for f, _, _ in t.fact_passages], dtype=np.int64)
        fact_pairs = facts[occurrences] if len(occurrences) else facts[:0]
        mentions = np.array(t.mentions, dtype=np.int64).reshape(-1, 2)
        n_syn = len(t.synonyms)
        syn_a = np.fromiter((x[0] for x in t.synonyms), dtype=np.int64, count=n_syn)
        syn_b = np.fromiter((x[1] for x in t.synonyms), dtype=np.int64, count=n_syn)
        syn_w = np.fromiter((x[2] for x in t.synonyms), dtype=np.float64, count=n_syn)
        adjacency, kind = build_adjacency_arrays(
            len(t.entities), len(t.passages), fact_pairs, mentions, syn_a, syn_b, syn_w
        )
        np.save(out / "indptr.npy", adjacency.indptr.astype(np.int64), allow_pickle=False)
        np.save(out / "indices.npy", adjacency.indices.astype(np.int32), allow_pickle=False)
        np.save(out / "weights.npy", adjacency.data.astype(np.float32), allow_pickle=False)
        np.save(out / "kinds.npy", kind.data.astype(np.int8), allow_pickle=False)
        np.save(out / "specificity.npy", specificity(mentions, len(t.entities)).astype(np.float32), allow_pickle=False)
        if self._minhash is not None and len(self._minhash) == len(t.entities) and self.config.minhash_threshold > 0:
            np.save(out / MINHASH_FILE, self._minhash, allow_pickle=False)
        return {"nodes": adjacency.shape[0], "edges": int(adjacency.nnz // 2)}

    def _write_vectors(self, out: Path) -> None:
        from .indexers.spann import SpannIndex, make_vector_index

        out.mkdir()
        for gran in GRANULARITIES:
            vecs = self.embeddings.get(gran)
            n = 0 if vecs is None else len(vecs)
            if n == 0:
                self.vector_state.pop(gran, None)
                self._row_vids.pop(gran, None)
                continue
            plan, why = self._vector_plan(gran, n)
            if plan == "update":
                try:
                    self._update_spann(gran, vecs, out / gran)
                except (KeyError, ValueError, OSError, HippoGraphError) as exc:
                    # the previous index does not match its bookkeeping: rebuild from the embeddings
                    logger.warning("%s vector index could not be updated (%s); rebuilding it", gran, exc)
                    shutil.rmtree(out / gran, ignore_errors=True)
                    plan, why = "rebuild", f"update failed: {exc}"
            if plan != "update":
                index = make_vector_index(
                    vecs, np.arange(n, dtype=np.int64), path=out / gran, metric="ip",
                    min_spann=self.config.spann_min_vectors,
                    # the engine scores whole probed lists; per-entry sketches only pay off when a
                    # search reads posting lists from disk with sketch_frac, so engine indexes skip them
                    sketch_bits=0, replica_count=self.config.spann_replica,
                    shared_vectors=f"../../embeddings/{gran}.npy",  # h13b: flat reads the embeddings file (no copy)
                )
                kind = "spann" if isinstance(index, SpannIndex) else "flat"
                self.vector_state[gran] = {"kind": kind, "built": n, "next_vid": n, "tombstones": 0}
                if kind == "spann":
                    self._row_vids[gran] = np.arange(n, dtype=np.int64)
                else:
                    self._row_vids.pop(gran, None)
                self._removed_vids[gran] = []
                if why:
                    self.report.compacted.append(f"{gran}: rebuilt ({why})")
            self._record_append_only(out / gran)
            row2vid = self._row_vids.get(gran)
            st = self.vector_state[gran]
            if row2vid is not None and not (st["next_vid"] == n and np.array_equal(row2vid, np.arange(n))):
                vid2row = np.full(st["next_vid"], -1, dtype=np.int64)
                vid2row[row2vid] = np.arange(n, dtype=np.int64)
                np.save(out / VID_MAP.format(gran=gran), vid2row, allow_pickle=False)

    def _record_append_only(self, vdir: Path) -> None:
        """Note a SPANN index's posting files (and the bytes this generation uses) as append-only."""
        try:
            header = json.loads((vdir / "header.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        from .indexers.spann import FORMAT as SPANN_FORMAT, posting_files

        if header.get("format") != SPANN_FORMAT:
            return
        for name, used in posting_files(header).items():
            self.append_only[f"vectors/{vdir.name}/{name}"] = used

    def _vector_plan(self, gran: str, n: int) -> tuple[str, str]:
        """("update" | "rebuild", reason shown in the report when a rebuild is maintenance)."""
        st = self.vector_state.get(gran)
        row2vid = self._row_vids.get(gran)
        spann_min = self.config.spann_min_vectors
        if self.maintenance == "rebuild":
            return "rebuild", "requested" if st else ""
        if self.base is None or st is None or not (self.base / "vectors" / gran / "header.json").is_file():
            return "rebuild", ""
        if st.get("kind") != "spann":
            return "rebuild", f"flat index reached {n} vectors, now SPANN" if n >= spann_min else ""
        if row2vid is None:
            return "rebuild", "no vector id map"
        if n < spann_min // 2:
            return "rebuild", f"shrank to {n} vectors, now flat"
        n_new = max(0, n - len(row2vid))
        grown = int(st["next_vid"]) + n_new - int(st["built"])
        if grown > REBUILD_GROWTH * int(st["built"]):
            return "rebuild", f"{grown} vectors added since it was built from {st['built']}"
        return "update", ""

    def _update_spann(self, gran: str, vecs: np.ndarray, dst: Path) -> None:
        """Clone the previous generation's SPANN index and apply removals and additions to it."""
        from .indexers.spann import SpannIndex

        assert self.base is not None
        src = self.base / "vectors" / gran
        n = len(vecs)
        row2vid = np.full(n, -1, dtype=np.int64)
        old = self._row_vids[gran]
        row2vid[: len(old)] = old
        new_rows = np.flatnonzero(row2vid < 0)
        removed = np.concatenate(self._removed_vids[gran]) if self._removed_vids[gran] else np.zeros(0, np.int64)
        header = json.loads((src / "header.json").read_text(encoding="utf-8"))
        post = header.get("postings", {})
        # everything hard-linked: SpannIndex.add appends to the posting files in place, past
        # the end every committed generation uses (they are append-only in the manifest)
        _clone_tree(src, dst)
        index = SpannIndex.open(dst)
        st = self.vector_state[gran]
        if removed.size:
            index.remove(removed)
            st["tombstones"] = int(st.get("tombstones", 0)) + int(removed.size)
        if new_rows.size:
            vids = int(st["next_vid"]) + np.arange(new_rows.size, dtype=np.int64)
            index.add(vecs[new_rows], vids)
            row2vid[new_rows] = vids
            st["next_vid"] = int(st["next_vid"]) + int(new_rows.size)
        self._row_vids[gran] = row2vid
        self._removed_vids[gran] = []
        tomb = int(st.get("tombstones", 0)) / max(1, len(index) + int(st.get("tombstones", 0)))
        dead = spann_dead_fraction(index)
        forced = self.maintenance == "compact" and (tomb > 0 or dead > 0)
        if forced or tomb > COMPACT_FRACTION or dead > COMPACT_DEAD_FRACTION:
            index.compact()
            st["tombstones"] = 0
            self.report.compacted.append(
                f"{gran}: compacted ({100 * tomb:.0f} % tombstones, {100 * dead:.0f} % dead posting space)"
            )

    def _write_lexical(self, out: Path) -> None:
        from .retrievers.lexical import BM25Index

        out.mkdir()
        if self.tables.passages:
            BM25Index.build([passage_embedding_text(p) for p in self.tables.passages]).save(out / "passages")


def spann_dead_fraction(index: Any) -> float:
    """Share of a SPANN posting file no live list points at (left behind by `add`'s list rewrites)."""
    try:
        header = json.loads((Path(index.path) / "header.json").read_text(encoding="utf-8"))
        n_entries = int(header["postings"]["n_entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    table = index.list_table()
    live = int(table["length"][table["alive"]].sum())
    return max(0.0, 1.0 - live / n_entries) if n_entries else 0.0


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link an immutable file into a new generation (copy where links are unsupported)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _clone_tree(src: Path, dst: Path, copy: set[str] | frozenset[str] = frozenset()) -> None:
    """Recreate `src` at `dst` with hard links; files named in `copy` are real copies (they will
    be modified in place). Hidden leftovers (temp files) are not carried over."""
    dst.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            _clone_tree(p, dst / p.name, copy)
        elif p.name in copy:
            shutil.copyfile(p, dst / p.name)
        else:
            _link_or_copy(p, dst / p.name)


def load_embeddings(gen: Path) -> dict[str, np.ndarray]:
    """Load the raw unit embeddings of a generation (the writer appends to them)."""
    out = {}
    for gran in GRANULARITIES:
        path = gen / "embeddings" / f"{gran}.npy"
        if path.is_file():
            out[gran] = load_array(path)
    return out


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def load_array(path: Path) -> np.ndarray:
    """np.load without pickle; a missing, garbled or pickled file raises IndexCorruptError naming it."""
    from .errors import IndexCorruptError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexCorruptError(f"{path}: unreadable array ({exc})") from exc


def adjacency_from_arrays(graph_dir: Path, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rebuild the CSR adjacency and its edge-kind array from a generation's graph/ folder."""
    indptr = load_array(graph_dir / "indptr.npy")
    indices = load_array(graph_dir / "indices.npy")
    weights = load_array(graph_dir / "weights.npy").astype(np.float64)
    kinds = load_array(graph_dir / "kinds.npy")
    return sp.csr_matrix((weights, indices, indptr), shape=(n, n)), kinds
