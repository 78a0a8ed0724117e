"""`Config.sentence_min_words`: sentences of fewer words get no sentence unit (row and vector) but
stay in their passage; a build, an add and a scratch build store the same rows."""
from __future__ import annotations

import sqlite3

import pytest

from hippograph import Config, HippoGraph
from hippograph.errors import ConfigError
from hippograph.tables import unpack_text

DOCS = [
    {"id": "guide", "title": "Scheduler guide",
     "text": "Overview\n\nThe scheduler runs tasks on every core of the machine.\n\nMitigations\n\n"
             "Boot interrupts are disabled by the firmware. See also:\n\nhttps://example.org/sched"},
    {"id": "notes", "title": "Release notes",
     "text": "Boot Interrupts\n\nThe kernel masks boot interrupts early. Thanks!"},
    {"id": "more", "title": "Kessel Shipworks",
     "text": "History\n\nKessel Shipworks was founded by Orla Vance in Ostrel. It builds ferries."},
]


def _sentences(hg: HippoGraph) -> list[tuple[str, str]]:
    """(passage id, sentence text) of every sentence row, in row order."""
    with sqlite3.connect(hg.dir.generation_path(hg.manifest) / "meta.sqlite") as conn:
        rows = conn.execute("SELECT p.id, p.text, s.start, s.end FROM sentences s "
                            "JOIN passages p ON p.idx = s.passage_idx ORDER BY s.idx").fetchall()
    conn.close()
    return [(pid, unpack_text(text)[start:end]) for pid, text, start, end in rows]


def test_short_sentences_get_no_unit_and_updates_store_what_a_scratch_build_does(tmp_path):
    every = HippoGraph.build(DOCS, tmp_path / "every", Config(embedder="tfidf"))
    config = Config(embedder="tfidf", sentence_min_words=3)
    scratch = HippoGraph.build(DOCS, tmp_path / "scratch", config)
    all_rows, kept = _sentences(every), _sentences(scratch)
    short = [s for s in all_rows if len(s[1].split()) < 3]
    assert {s for _, s in short} >= {"Overview", "Mitigations", "Boot Interrupts", "Thanks!", "History"}
    assert kept == [s for s in all_rows if len(s[1].split()) >= 3]
    assert scratch.stats()["sentences"] == len(kept) == every.stats()["sentences"] - len(short)
    assert scratch.stats()["passages"] == every.stats()["passages"]  # the text stays whole
    grown = HippoGraph.build(DOCS[:1], tmp_path / "grown", config)
    grown.add(DOCS[1:])
    assert _sentences(grown) == kept
    assert grown.config.sentence_min_words == 3  # stored with the index: later adds keep it
    hits = [h.passage_id for h in scratch.retrieve("Who founded Kessel Shipworks?", top_k=3)]
    assert hits and hits == [h.passage_id for h in grown.retrieve("Who founded Kessel Shipworks?", top_k=3)]
    for hg in (every, scratch, grown):
        hg.close()


def test_sentence_min_words_must_be_positive():
    with pytest.raises(ConfigError, match="sentence_min_words"):
        Config(sentence_min_words=0)
