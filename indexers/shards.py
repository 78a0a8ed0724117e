"""Shards: documents → passages → extraction → embeddings, written to disk a bounded batch at a time.

A shard is a directory holding the tables of its documents with shard-local row ids
(``tables.sqlite``, the schema of `CorpusTables`), the embeddings of its units
(``embeddings/<gran>.npy``, stored as `Config.embedding_storage` says, like the index's; version-1
shards hold float32, and the merge reads both) and, written last and atomically, ``done.json`` with the
shard's key. `build_shard` is a plain function of (documents, config) → shard directory,
so a distributed engine (Ray Data ``map_batches``) can run it per batch; the merge step
(`indexers.merge`) interns entities and facts across shards.

A shard's key hashes its inputs (document ids and content) and the index-time config, so
a finished shard whose key still matches is never redone: a killed build resumes
(`ShardDir.reuse`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from hippograph.config import EXECUTION_FIELDS, Config
from hippograph.embedders import Embedder, TfidfEmbedder, load_embedder
from hippograph.format import GRANULARITIES, Embeddings, open_embeddings, save_array, write_embeddings_file, write_json_atomic
from hippograph.tables import CorpusTables, DocumentRow, document_hash, sentence_span
from hippograph.text import normalize_entity, passage_embedding_text
from hippograph.types import Document, Extraction, Passage

from .chunking import chunk_document, split_sentences
from .embedding import encode_passages_with_sentences, encode_units, late_sentences
from .report import Progress

logger = logging.getLogger(__name__)

SHARD_PREFIX = "shard-"
TABLES = "tables.sqlite"
DONE = "done.json"
SHARD_FORMAT = "hippograph-shard"
SHARD_VERSION = 2
"""2: embeddings in the index's storage (int8 + scales by default); 1: float32."""

NON_CONTENT_FIELDS = frozenset({"n_process", "spacy_batch_size", "embedding_batch_size", "embedding_cache_dir",
                                *EXECUTION_FIELDS})
"""Index-time fields that change how fast a shard is made, not what it holds (excluded from keys)."""

Extract = Callable[[Sequence[Passage]], "list[Extraction]"]


class KnownQuery(NamedTuple):
    """The part of a shard's tables a `Known` reads: what a worker process sends its writer."""

    entities: list[str]
    facts: list[tuple[int, str, int]]


Known = Callable[[str, "CorpusTables | KnownQuery"], np.ndarray]
"""(granularity, shard tables) → bool mask of the shard's entities / facts that the index being
written already holds: their vectors exist, so the shard does not embed them again."""


def config_key(config: Config, embedder_spec: dict) -> str:
    """Hash of everything that decides a shard's content: index-time config and the embedder."""
    fields = {k: v for k, v in config.index_time_dict().items() if k not in NON_CONTENT_FIELDS}
    blob = json.dumps({"config": fields, "embedder": embedder_spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def shard_key(documents: Sequence[Document], cfg_key: str) -> str:
    """Hash of a shard's inputs: the config key and each document's id, source, content and metadata."""
    h = hashlib.sha256(cfg_key.encode())
    for d in documents:
        meta = json.dumps(d.metadata, sort_keys=True, default=str)
        h.update(f"\x1e{d.id}\x1f{d.source}\x1f{document_hash(d)}\x1f{meta}".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:24]


@dataclass
class ShardSpec:
    """One shard of a write: its number in stream order, its key, its directory and its documents."""

    index: int
    key: str
    path: Path
    documents: list[Document]


# ---- grouping a document stream into shards ------------------------------------------------
def group_documents(documents: Iterable[Document], config: Config) -> Iterator[list[Document]]:
    """Consecutive documents in groups of about `config.shard_passages` passages (a document is
    never split; chunking is cheap, so it is done here only to count)."""
    limit = max(1, int(config.shard_passages))
    group: list[Document] = []
    n = 0
    for doc in documents:
        group.append(doc)
        n += len(chunk_document(doc, config))
        if n >= limit:
            yield group
            group, n = [], 0
    if group:
        yield group


# ---- one shard -----------------------------------------------------------------------------
def shard_tables(documents: Sequence[Document], extractions_of: Extract, config: Config,
                 progress: Progress | None = None) -> CorpusTables:
    """The tables of `documents` with shard-local row ids: chunk (identical passages stored once,
    further owners recorded), extract, and intern entities and facts in order of first mention."""
    t = CorpusTables()
    with _stage(progress, "chunk"):
        passages: list[Passage] = []
        row_of: dict[str, int] = {}
        repeats: list[tuple[int, Passage]] = []
        for doc in documents:
            t.documents.append(DocumentRow(doc.id, doc.title, doc.source, document_hash(doc), doc.metadata))
            for p in chunk_document(doc, config):
                if p.id in row_of:
                    repeats.append((row_of[p.id], p))
                else:
                    row_of[p.id] = len(passages)
                    passages.append(p)
    with _stage(progress, "extract"):
        extractions = extractions_of(passages) if passages else []
        if len(extractions) != len(passages):
            raise RuntimeError(f"extractor returned {len(extractions)} results for {len(passages)} passages")
        if progress is not None:
            progress.advance("extract", len(passages), unit="passage")
    _append(t, passages, extractions, config)
    seen: set[tuple[int, str]] = set()
    for row, p in repeats:
        if t.passages[row].doc_id == p.doc_id or (row, p.doc_id) in seen:
            continue  # a document repeating its own chunk
        seen.add((row, p.doc_id))
        t.passage_owners.append((row, p.doc_id, p.source, p.span[0], p.span[1]))
    return t


def _append(t: CorpusTables, passages: Sequence[Passage], extractions: Sequence[Extraction], config: Config) -> None:
    """Add passages with their sentences, entities, facts and mentions.

    An entity row is created only when a passage mentions it (a named entity / noun chunk,
    the title, or an endpoint of a kept triple), so every entity has a mention and deleting
    documents can drop exactly the entities no remaining passage mentions.
    """
    entity_ids: dict[str, int] = {}
    fact_ids: dict[tuple[int, str, int], int] = {}

    def entity(norm: str) -> int:
        idx = entity_ids.get(norm)
        if idx is None:
            idx = entity_ids[norm] = len(t.entities)
            t.entities.append(norm)
        return idx

    for passage, ex in zip(passages, extractions):
        p_idx = len(t.passages)
        t.passages.append(passage)
        t.sentences.extend((p_idx, start, end) for start, end in split_sentences(passage.text)
                           if _has_words(passage.text, start, end, config.sentence_min_words))
        mentioned: set[int] = set()
        names = list(ex.entities)
        if config.link_title and passage.title:
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
            t.fact_passages.append((f, p_idx, *sentence_span(passage.text, triple.sentence)))
        t.mentions.extend((e, p_idx) for e in sorted(mentioned))


def _has_words(text: str, start: int, end: int, n: int) -> bool:
    """Does ``text[start:end]`` hold at least `n` whitespace-separated words?"""
    return n <= 1 or len(text[start:end].split(None, n - 1)) >= n


def unit_texts(t: CorpusTables, gran: str) -> list[str]:
    """What each row of a granularity is embedded as."""
    if gran == "passages":
        return [passage_embedding_text(p.title, p.text) for p in t.passages]
    if gran == "sentences":
        return [t.passages[p].text[s:e] for p, s, e in t.sentences]
    if gran == "facts":
        return [t.fact_text(i) for i in range(len(t.facts))]
    return list(t.entities)


def sentence_spans_in(t: CorpusTables, passage_texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Each passage's sentences as character spans of the text it is embedded as (`unit_texts`:
    the title may come first), in the order of the sentence rows."""
    spans: list[list[tuple[int, int]]] = [[] for _ in passage_texts]
    last = 0
    for p, s, e in t.sentences:
        if p < last:
            raise ValueError("sentence rows are not in passage order")
        last = p
        shift = len(passage_texts[p]) - len(t.passages[p].text)  # the text ends the embedded text
        spans[p].append((s + shift, e + shift))
    return spans


def build_shard(
    documents: Sequence[Document],
    config: Config,
    out_dir: str | Path,
    *,
    embedder: Embedder,
    extract: Extract | None = None,
    key: str = "",
    progress: Progress | None = None,
    known: Known | None = None,
) -> Path:
    """Chunk, extract and embed `documents` into the shard directory `out_dir` (replaced if present).

    `extract` maps passages to extractions (default: spaCy `TripleExtractor` of `config`);
    `embedder` must be ready to encode (fitted, for TF-IDF). With `known`, entities and facts
    the index already holds are not embedded (their rows stay zero and are listed in
    ``embeddings/<gran>.known.npy``; the merge never takes them). ``done.json`` is written
    last, atomically: a directory without it is an unfinished shard.
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t = shard_tables(documents, extract or default_extractor(config, progress), config, progress)
    (out / "embeddings").mkdir()
    late = late_sentences(config, embedder)
    late_sentence_rows: np.ndarray | None = None  # made by the passages' pass when `late`
    for gran in GRANULARITIES:
        skip = known(gran, t) if known is not None and gran in ("entities", "facts") else None
        with _stage(progress, f"embed {gran}"):
            if gran == "passages" and late:
                texts = unit_texts(t, gran)
                vecs, late_sentence_rows = encode_passages_with_sentences(
                    embedder, texts, sentence_spans_in(t, texts), batch_size=config.embedding_batch_size,
                    progress=progress)
            elif gran == "sentences" and late_sentence_rows is not None:
                vecs = late_sentence_rows
            else:
                texts = unit_texts(t, gran)
                todo = texts if skip is None else [x for x, k in zip(texts, skip) if not k]
                vecs = encode_units(embedder, todo, batch_size=config.embedding_batch_size, progress=progress,
                                    stage=f"embed {gran}")
        if skip is not None and skip.any():
            full = np.zeros((len(texts), embedder.dim), dtype=np.float32)
            full[~skip] = vecs
            vecs = full
            save_array(out / "embeddings" / f"{gran}.known.npy", np.flatnonzero(skip))
        # stored as the index stores them (int8 + scales by default): the merge copies the codes, so the
        # index holds the same bytes as when it quantised float32 shard rows itself, and `.build/`
        # takes a quarter of the disk
        write_embeddings_file(out / "embeddings" / f"{gran}.npy", vecs, config.embedding_storage)
    t.save(out / TABLES)
    counts = t.counts()
    write_json_atomic(out / DONE, {"format": SHARD_FORMAT, "version": SHARD_VERSION, "key": key, "counts": counts,
                                   "dim": int(embedder.dim)})
    return out


SHIPPED_EMBEDDER = "embedder"
"""Under a write's shard directory: a fitted embedder (TF-IDF) saved for the processes that build
its shards elsewhere (Ray actors, the local worker process) to load."""


def ship_fitted_embedder(embedder: Embedder, build_dir: Path) -> str | None:
    """Save a fitted embedder where other shard-building processes can load it (its path); None
    for an embedder they make from settings instead (sentence-transformers)."""
    if embedder.spec().get("backend") != TfidfEmbedder.backend:
        return None
    path = Path(build_dir) / SHIPPED_EMBEDDER
    embedder.save(path)
    return str(path)


def load_shipped_embedder(spec: dict, path: str | Path, config: Config) -> Embedder:
    """The embedder `ship_fitted_embedder` saved, with this write's batch size and precision."""
    return load_embedder(spec, Path(path), batch_size=config.embedding_batch_size,
                         precision=config.embedding_precision)


_EXTRACTORS: dict[str, object] = {}


def default_extractor(config: Config, progress: Progress | None = None) -> Extract:
    """spaCy extraction for `config`, the model loaded once per process (and per model name)."""
    from .extraction import TripleExtractor

    key = json.dumps([config.spacy_model, config.n_process, config.spacy_batch_size, config.link_title])
    extractor = _EXTRACTORS.get(key)
    if extractor is None:
        extractor = _EXTRACTORS[key] = TripleExtractor(config)
    return lambda ps: extractor.extract(ps)  # type: ignore[attr-defined]


def _stage(progress: Progress | None, name: str):
    from contextlib import nullcontext

    return progress.stage(name) if progress is not None else nullcontext()


# ---- reading a finished shard ----------------------------------------------------------------
@dataclass
class Shard:
    """A finished shard: its tables (shard-local ids) and memory-mapped embeddings."""

    path: Path
    tables: CorpusTables
    embeddings: dict[str, Embeddings]


def read_done(path: Path) -> dict:
    """The ``done.json`` of a shard directory ({} when it is missing or unreadable)."""
    try:
        info = json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def shard_done(path: Path, key: str) -> bool:
    """Is `path` a finished shard made from these inputs (same key)?"""
    info = read_done(path)
    return info.get("format") == SHARD_FORMAT and info.get("key") == key


def read_shard(path: Path) -> Shard:
    path = Path(path)
    tables = CorpusTables.load(path / TABLES)
    emb = {g: open_embeddings(path / "embeddings" / f"{g}.npy") for g in GRANULARITIES}
    return Shard(path, tables, emb)


# ---- the shard directory of one write ---------------------------------------------------------
class ShardDir:
    """``<index>/.build/<name>/``: the shards of one build or update, kept until it commits.

    ``state.json`` records the config key and the generation the write started from; a
    directory left by a run with other settings is discarded with a message (its shards
    would not fit), one with the same settings is resumed shard by shard.
    """

    STATE = "state.json"

    def __init__(self, path: Path, cfg_key: str, base: str):
        self.path = Path(path)
        self.cfg_key = cfg_key
        self.base = base
        self.resumed = False

    def open(self) -> "ShardDir":
        state = self.path / self.STATE
        if self.path.exists():
            try:
                old = json.loads(state.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if old == {"config": self.cfg_key, "base": self.base}:
                self.resumed = any(self.path.glob(f"{SHARD_PREFIX}*/{DONE}"))
                if self.resumed:
                    logger.info("%s: resuming an interrupted write from its finished shards", self.path)
                return self
            logger.warning(
                "%s: an interrupted write with a different configuration or starting point was found; "
                "starting over", self.path)
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        write_json_atomic(state, {"config": self.cfg_key, "base": self.base})
        return self

    def shard_path(self, k: int) -> Path:
        return self.path / f"{SHARD_PREFIX}{k:05d}"

    def prune(self, n_shards: int) -> None:
        """Remove shard directories numbered `n_shards` or higher (left by a longer earlier run)."""
        for p in self.path.glob(f"{SHARD_PREFIX}*"):
            suffix = p.name[len(SHARD_PREFIX):]
            if suffix.isdigit() and int(suffix) >= n_shards:
                shutil.rmtree(p, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
