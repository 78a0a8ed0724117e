"""Chunking: sentence splitting, span fidelity (property-tested), overlap, ids, dedupe."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hippograph.config import Config
from hippograph.errors import ConfigError
from hippograph.indexers.chunking import chunk_document, chunk_documents, split_sentences
from hippograph.types import Document, content_hash

WORD = re.compile(r"\S+")
MUSIQUE_CORPUS = Path("/work/shared/datasets/musique_train100/musique_train_corpus.json")


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def n_words(text: str) -> int:
    return len(WORD.findall(text))


def make_doc(text: str, title: str = "T", **meta) -> Document:
    return Document(id="d", title=title, text=text, source="mem", metadata=dict(meta))


# ---------------------------------------------------------------------------- sentences


def test_split_sentences_handles_abbreviations_decimals_initials() -> None:
    text = (
        "Mr. Smith paid $3.50 in the U.S. on Jan. 5. "
        "Dr. J. R. R. Tolkien wrote books, e.g. The Hobbit. "
        "Was it good? Yes! It was 4.5 stars... Then it ended. "
        "It used approx. five samples."
    )
    assert sentences(text) == [
        "Mr. Smith paid $3.50 in the U.S. on Jan. 5.",
        "Dr. J. R. R. Tolkien wrote books, e.g. The Hobbit.",
        "Was it good?",
        "Yes!",
        "It was 4.5 stars...",
        "Then it ended.",
        "It used approx. five samples.",
    ]


def test_split_sentences_paragraphs_quotes_and_headings() -> None:
    text = 'Heading\nHe said "Stop." Then left\nwithout a word.\n\n  New paragraph without period\n\nLast one.'
    assert sentences(text) == [
        "Heading",
        'He said "Stop."',
        "Then left\nwithout a word.",
        "New paragraph without period",
        "Last one.",
    ]
    assert split_sentences("") == [] and split_sentences(" \n\t ") == []


# ---------------------------------------------------------------------------- chunking


def test_short_document_stays_one_whole_passage() -> None:
    text = "  " + " ".join(f"w{i}." if i % 10 == 9 else f"w{i}" for i in range(80)) + "\n\n"
    (p,) = chunk_document(make_doc(text, lang="en"))
    assert p.text == text.strip()
    assert text[p.span[0]:p.span[1]] == p.text
    assert (p.doc_id, p.title, p.source, p.metadata) == ("d", "T", "mem", {"lang": "en"})
    assert p.id == content_hash("T", p.text)


def long_text(n_sentences: int = 30, words_per: int = 9) -> str:
    return " ".join(
        " ".join([f"S{s}"] + [f"word{s}x{w}" for w in range(words_per - 1)]) + "." for s in range(n_sentences)
    )


def test_long_document_packs_whole_sentences_with_overlap() -> None:
    text = long_text()  # 30 sentences × 9 words
    doc = make_doc(text)
    cfg = Config(chunk_words=50, chunk_overlap_words=20)
    passages = chunk_document(doc, cfg)
    assert len(passages) > 1
    sents = set(sentences(text))
    for p in passages:
        assert n_words(p.text) <= 50
        assert text[p.span[0]:p.span[1]] == p.text
        assert all(s in sents for s in sentences(p.text))  # whole sentences only
    for prev, nxt in zip(passages, passages[1:]):
        shared = prev.span[1] - nxt.span[0]
        assert shared > 0, "consecutive passages must overlap"
        overlap = text[nxt.span[0]:prev.span[1]]
        assert n_words(overlap) <= 20
        assert all(s in sents for s in sentences(overlap))  # overlap = whole trailing sentences
        assert n_words(overlap) >= 18  # two 9-word sentences fit in 20 words
    assert passages[-1].span[1] == len(text)


def test_no_overlap_when_disabled() -> None:
    text = long_text()
    passages = chunk_document(make_doc(text), Config(chunk_words=50, chunk_overlap_words=0))
    for prev, nxt in zip(passages, passages[1:]):
        assert nxt.span[0] > prev.span[1]
    assert " ".join(p.text for p in passages) == text


def test_overlong_sentence_split_on_word_boundaries() -> None:
    text = " ".join(f"tok{i}" for i in range(25)) + ". Short end."
    passages = chunk_document(make_doc(text), Config(chunk_words=10, chunk_overlap_words=3))
    # 25-word sentence → pieces of 10, 10, 5; the 5-word tail packs with the next sentence
    assert [n_words(p.text) for p in passages] == [10, 10, 7]
    assert passages[0].text == " ".join(f"tok{i}" for i in range(10))
    assert passages[2].text == " ".join(f"tok{i}" for i in range(20, 25)) + ". Short end."
    assert all(text[p.span[0]:p.span[1]] == p.text for p in passages)


def test_ids_are_deterministic_and_content_based() -> None:
    doc = make_doc(long_text(), title="Title")
    cfg = Config(chunk_words=40, chunk_overlap_words=10)
    a = chunk_document(doc, cfg)
    b = chunk_document(Document(**{**doc.__dict__, "id": "other"}), cfg)
    assert [p.id for p in a] == [p.id for p in b]
    assert all(p.id == content_hash("Title", p.text) for p in a)
    assert len({p.id for p in a}) == len(a)


def test_duplicate_passages_stored_once_first_wins() -> None:
    d1 = Document(id="one", title="Same", text="Identical text.", source="s1")
    d2 = Document(id="two", title="Same", text="Identical text.", source="s2")
    d3 = Document(id="three", title="Other", text="Identical text.", source="s3")
    passages = chunk_documents([d1, d2, d3])
    assert [p.doc_id for p in passages] == ["one", "three"]  # different title → different id


def test_max_passages_per_document_truncates_with_warning(caplog) -> None:
    cfg = Config(chunk_words=20, chunk_overlap_words=0, max_passages_per_document=3)
    with caplog.at_level(logging.WARNING, logger="hippograph.indexers.chunking"):
        passages = chunk_document(make_doc(long_text()), cfg)
    assert len(passages) == 3
    assert "truncated" in caplog.text and "max_passages_per_document=3" in caplog.text


def test_metadata_is_copied_and_bad_budget_rejected() -> None:
    doc = make_doc("Hello world.", k=1)
    (p,) = chunk_document(doc)
    p.metadata["k"] = 2
    assert doc.metadata == {"k": 1}
    assert chunk_document(make_doc("   ")) == []
    with pytest.raises(ConfigError, match="chunk_words"):
        chunk_document(doc, Config(chunk_words=0))


def test_real_musique_passages_under_budget_stay_whole() -> None:
    if not MUSIQUE_CORPUS.is_file():
        pytest.skip(f"benchmark data not present at {MUSIQUE_CORPUS}")
    raw = json.loads(MUSIQUE_CORPUS.read_text(encoding="utf-8"))[:400]
    docs = [Document(id=str(i), title=r["title"], text=r["text"], source="m") for i, r in enumerate(raw)]
    cfg = Config()
    for doc in docs:
        passages = chunk_document(doc, cfg)
        if n_words(doc.text) <= cfg.chunk_words:
            assert [p.text for p in passages] == [doc.text.strip()]
        else:
            assert len(passages) >= 2


# ---------------------------------------------------------------------------- properties

TOKENS = st.sampled_from(
    ["the", "Cat", "sat.", "Mr.", "Dr.", "U.S.", "e.g.", "3.14", "end!", "why?", "J.", '"Quote."', "(a)", "x" * 30, "…", "é"]
)
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\t", " \n \n "])


@st.composite
def texts(draw) -> str:
    words = draw(st.lists(TOKENS, min_size=0, max_size=120))
    seps = draw(st.lists(SEPARATORS, min_size=len(words) + 1, max_size=len(words) + 1))
    return seps[0] + "".join(w + s for w, s in zip(words, seps[1:]))


@settings(max_examples=300, deadline=None)
@given(text=texts() | st.text(max_size=400))
def test_sentence_spans_partition_the_words(text: str) -> None:
    spans = split_sentences(text)
    covered = 0
    prev_end = 0
    for a, b in spans:
        assert prev_end <= a < b
        assert text[a:b] == text[a:b].strip()
        prev_end = b
        covered += n_words(text[a:b])
    assert covered == n_words(text)


@settings(max_examples=300, deadline=None)
@given(
    text=texts() | st.text(max_size=400),
    budget=st.integers(min_value=1, max_value=40),
    overlap=st.integers(min_value=0, max_value=20),
)
def test_chunk_spans_map_back_and_cover_every_word(text: str, budget: int, overlap: int) -> None:
    doc = make_doc(text)
    passages = chunk_document(doc, Config(chunk_words=budget, chunk_overlap_words=overlap))
    words = [m.span() for m in WORD.finditer(text)]
    if not words:
        assert passages == []
        return
    starts = [p.span[0] for p in passages]
    ends = [p.span[1] for p in passages]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert ends == sorted(ends)
    for p in passages:
        a, b = p.span
        assert text[a:b] == p.text == p.text.strip() and p.text
        assert n_words(p.text) <= budget
    for ws, we in words:
        assert any(a <= ws and we <= b for a, b in (p.span for p in passages)), (ws, we)
