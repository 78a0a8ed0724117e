"""Sentence-aware chunking of `Document`s into `Passage`s.

Why sentence-aware: a passage that stops mid-sentence cuts a fact in half, and both the
triple extractor and the embedder see broken text. So passages are packed from whole
sentences up to `Config.chunk_words` words, consecutive passages share whole trailing
sentences (`chunk_overlap_words`), and only a single sentence longer than the budget is
split on word boundaries. A document at or under the budget stays one passage, so
benchmark passages (≈80 words) are never cut.

Every passage's `span` indexes `Document.text` exactly: ``doc.text[a:b] == passage.text``.

`split_sentences` is a fast regex splitter (no spaCy) shared with the retriever, which
uses it for sentence-level units.
"""
from __future__ import annotations

import itertools
import logging
import re
from typing import Iterable

from hippograph.config import Config
from hippograph.errors import ConfigError
from hippograph.types import Document, Passage, content_hash

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- sentences

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n\s*")
# The look-behinds make a match start only at the beginning of a punctuation / blank run:
# without them a long run ("....." or 1 MB of spaces) is rescanned from every position (quadratic).
_CANDIDATE = re.compile(r"(?<![.!?\u2026])(\.\.\.|[.!?\u2026]+)([\"'\u201d\u2019)\]]*)(\s+)")
_WORD = re.compile(r"\S+")
_LINE_BREAK = re.compile(r"(?<![ \t])[ \t]*\n[ \t]*(?=\S)")
_LIST_MARKER = re.compile(r"(?:[-*\u2022+\u2013]|\d{1,3}[.)])\s")

# Abbreviations after which a period never ends a sentence (compared lower-case, without the final '.').
NO_BREAK_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof st mt ft gen col capt lt sgt maj cmdr adm gov sen rep rev hon pres
    fr sr br messrs mme mlle
    no nos vol vols fig figs eq eqs ref refs sec ch art pp p para
    vs v cf viz approx ca est dept univ assn
    jan feb mar apr jun jul aug sep sept oct nov dec
    e.g i.e a.m p.m et al
    """.split()
)
_DOTTED_ACRONYM = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")
_OPENERS = "\"'\u201c\u2018([{"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, in order, stripped of outer whitespace.

    Splits on blank lines (paragraphs) and on sentence-final punctuation followed by
    whitespace and a word that does not start lower-case, except after abbreviations
    ("Mr.", "Dr.", "e.g.", "U.S."), single-letter initials ("J. R. R. Tolkien") or inside
    numbers ("3.14" has no space). Inside a paragraph a line break also ends a sentence
    when the next line starts a list item or the line is a short heading-like line.
    The spans cover every non-whitespace character of `text` exactly once.
    """
    cuts: list[int] = []
    pos = 0
    for para in _PARAGRAPH_BREAK.finditer(text):
        _sentence_cuts(text, pos, para.start(), cuts)
        cuts.append(para.start())
        pos = para.end()
    _sentence_cuts(text, pos, len(text), cuts)
    cuts.append(len(text))

    spans: list[tuple[int, int]] = []
    start = 0
    for cut in cuts:
        span = _strip_span(text, start, cut)
        if span is not None:
            spans.append(span)
        start = cut
    return spans


def _sentence_cuts(text: str, start: int, end: int, cuts: list[int]) -> None:
    """Append cut positions (end of a sentence) inside the paragraph text[start:end]."""
    found: list[int] = []
    for m in _CANDIDATE.finditer(text, start, end):
        nxt = m.end()
        if nxt >= end:
            continue  # paragraph end cuts anyway
        if _ends_sentence(text, start, m, nxt):
            found.append(m.end(2))
    for m in _LINE_BREAK.finditer(text, start, end):
        if m.end() >= end:
            continue
        line_start = text.rfind("\n", start, m.start()) + 1
        line_start = max(line_start, start)
        line = text[line_start : m.start()]
        following = text[m.end() : min(end, m.end() + 8)]
        if not line.strip():
            continue
        if _LIST_MARKER.match(following) or (
            len(line.split()) <= 6
            and line.rstrip()[-1] not in ",;:-\u2013\u2014(&/"
            and (following[:1].isupper() or following[:1].isdigit())
        ):
            found.append(m.start())
    cuts.extend(sorted(set(found)))


def _ends_sentence(text: str, para_start: int, m: re.Match[str], nxt: int) -> bool:
    following = text[nxt : nxt + 4].lstrip(_OPENERS)
    first = following[:1]
    if first.islower():
        return False
    punct = m.group(1)
    if punct != ".":
        return True  # '!', '?', '...' followed by a non-lower-case word
    # the token that carries the period, e.g. "Dr." or "U.S." or "(e.g."
    tok_start = m.start(1)
    while tok_start > para_start and not text[tok_start - 1].isspace():
        tok_start -= 1
    word = text[tok_start : m.start(1)].lstrip(_OPENERS)
    if not word:
        return True
    if word.lower() in NO_BREAK_ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():
        return False  # an initial: "J. Smith"
    if _DOTTED_ACRONYM.fullmatch(word):
        return False  # "U.S.", "e.g.", "Ph.D" — under-splitting is safer than breaking names
    return True


def _strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


# ---------------------------------------------------------------------------- chunking


def chunk_spans(
    text: str, chunk_words: int, overlap_words: int, max_chunks: int | None = None
) -> list[tuple[int, int]]:
    """Character spans of the chunks of `text` (see module doc); no passage objects.

    `max_chunks` stops early: only the start of a huge text is split (memory and time stay
    proportional to what is kept, not to the file), and at most that many spans return.
    """
    if chunk_words < 1:
        raise ConfigError(f"chunk_words must be at least 1, got {chunk_words}")
    if overlap_words < 0:
        raise ConfigError(f"chunk_overlap_words must be at least 0, got {overlap_words}")
    head = list(itertools.islice(_WORD.finditer(text), chunk_words + 1))
    if not head:
        return []
    if len(head) <= chunk_words:
        return [(head[0].start(), head[-1].end())]
    overlap_words = min(overlap_words, chunk_words - 1)
    if max_chunks is not None:
        # each chunk advances by ≥ 1 word and usually by chunk_words − overlap: cut the text
        # after enough words for max_chunks chunks (plus one chunk of slack)
        text = _prefix_words(text, (max_chunks + 1) * chunk_words)

    # Units: sentences, with over-long sentences cut into word pieces of the budget
    # (counted while scanning, so one gigantic "sentence" never becomes a giant list).
    units: list[tuple[int, int, int]] = []  # (start, end, n_words)
    for s, e in split_sentences(text):
        pieces: list[tuple[int, int, int]] = []
        n = 0
        p_start = p_end = s
        for m in _WORD.finditer(text, s, e):
            if n == 0:
                p_start = m.start()
            n += 1
            p_end = m.end()
            if n == chunk_words:
                pieces.append((p_start, p_end, n))
                n = 0
        if n:
            pieces.append((p_start, p_end, n))
        if len(pieces) == 1:
            units.append((s, e, pieces[0][2]))
        else:
            units.extend(pieces)

    spans: list[tuple[int, int]] = []
    i = 0
    n = len(units)
    while i < n:
        j = i
        total = 0
        while j < n and (j == i or total + units[j][2] <= chunk_words):
            total += units[j][2]
            j += 1
        spans.append((units[i][0], units[j - 1][1]))
        if j >= n or (max_chunks is not None and len(spans) > max_chunks):
            break
        # Overlap: the longest run of whole trailing sentences within the overlap budget
        # that still leaves room for the next new sentence (so every chunk makes progress).
        k = j
        carried = 0
        while k - 1 > i and carried + units[k - 1][2] <= overlap_words and carried + units[k - 1][2] + units[j][2] <= chunk_words:
            k -= 1
            carried += units[k][2]
        i = k
    return spans


def _prefix_words(text: str, n_words: int) -> str:
    """`text` up to the end of its `n_words`-th word (the whole text when it is shorter)."""
    last = None
    for last in itertools.islice(_WORD.finditer(text), n_words - 1, n_words):
        pass
    return text if last is None else text[: last.end()]


def chunk_document(doc: Document, config: Config | None = None) -> list[Passage]:
    """Split one document into passages (one passage when it fits in `chunk_words`).

    Returns every chunk, in order, so the spans cover every word of the document; a
    repeated chunk (same title + text) repeats its id here — `chunk_documents` drops it.
    """
    config = config or Config()
    limit = config.max_passages_per_document
    spans = chunk_spans(doc.text, config.chunk_words, config.chunk_overlap_words, max_chunks=limit)
    if not spans:
        logger.debug("document %s has no text; no passages", doc.id)
        return []
    if len(spans) > limit:
        logger.warning(
            "document %s (%s): more than %d passages, truncated to max_passages_per_document=%d",
            doc.id, doc.source, limit, limit,
        )
        spans = spans[:limit]
    passages: list[Passage] = []
    for a, b in spans:
        text = doc.text[a:b]
        passages.append(
            Passage(
                id=content_hash(doc.title, text),
                doc_id=doc.id,
                title=doc.title,
                text=text,
                source=doc.source,
                span=(a, b),
                metadata=dict(doc.metadata),
            )
        )
    return passages


def chunk_documents(docs: Iterable[Document], config: Config | None = None) -> list[Passage]:
    """Chunk many documents; identical passages (same title + text → same id) are kept once, first wins."""
    config = config or Config()
    out: list[Passage] = []
    seen: set[str] = set()
    duplicates = 0
    for doc in docs:
        for passage in chunk_document(doc, config):
            if passage.id in seen:
                duplicates += 1
                continue
            seen.add(passage.id)
            out.append(passage)
    if duplicates:
        logger.info("%d duplicate passages dropped (identical title and text)", duplicates)
    return out
