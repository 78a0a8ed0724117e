"""Hostile input: loaders, chunker and query path must give a clear error or a skip with a
warning, never crash, hang or corrupt the index; the index directory holds no pickles.

Property tests use hypothesis: 60 examples each by default (40 for queries); set
HG_FUZZ_EXAMPLES for a longer run. "Never hangs" is checked by
running inputs that used to be quadratic (a 32 KB Markdown line took 22 s before the fix)
at several hundred KB and asserting they finish within a generous wall-clock bound.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hippograph import Config, HippoGraph
from hippograph.errors import IndexCorruptError
from hippograph.indexers.chunking import chunk_document, chunk_spans, split_sentences
from hippograph.indexers.loaders import html_to_text, load_documents, markdown_to_text
from hippograph.types import Document

SUFFIXES = [".txt", ".md", ".html", ".json", ".jsonl", ".pdf", ".bin"]
EXAMPLES = int(os.environ.get("HG_FUZZ_EXAMPLES", "60"))  # raise for a longer fuzzing run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WEIRD = "\u200b\u200c\u200d\u2060\ufeff\u202e\u202d\u2066\u2069\u061c\u05d0\u0627\U0001f600\x00\x07\x1b"


def _bounded(seconds: float, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    took = time.perf_counter() - t0
    assert took < seconds, f"{getattr(fn, '__name__', fn)} took {took:.1f}s"
    return out


# ---- loaders -------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_never_crash_the_loader(tmp_path_factory, data, suffix):
    folder = tmp_path_factory.mktemp("bytes")
    (folder / f"f{suffix}").write_bytes(data)
    docs, report = load_documents(folder, Config())
    for d in docs:
        assert isinstance(d.text, str) and d.text.strip() and "\x00" not in d.text
    for where, reason in report.skipped:
        assert where and reason  # every skip names the file and a reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(alphabet=st.characters(), max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["text", "title", "id", "source", "meta", "x"]), kids, max_size=5),
    max_leaves=25,
)


@FUZZ
@given(records=st.lists(json_values, max_size=6), jsonl=st.booleans())
def test_random_json_records_never_crash_the_loader(tmp_path_factory, records, jsonl):
    folder = tmp_path_factory.mktemp("json")
    if jsonl:
        (folder / "r.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    else:
        (folder / "r.json").write_text(json.dumps(records), encoding="utf-8")
    docs, _ = load_documents(folder, Config())
    for d in docs:
        assert d.source.startswith(str(folder)), "a record's source is its file, never a field of the record"
        json.dumps(d.metadata, default=str)  # storable


@FUZZ
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list(WEIRD)), max_size=600),
       budget=st.integers(1, 40), overlap=st.integers(0, 10))
def test_chunker_handles_any_unicode(text, budget, overlap):
    spans = chunk_spans(text, budget, overlap)
    for a, b in spans:
        assert 0 <= a < b <= len(text) and text[a:b].strip()
    for a, b in split_sentences(text):
        assert text[a:b].strip()
    passages = chunk_document(Document("d", "t", text, "s"), Config(chunk_words=budget, chunk_overlap_words=overlap,
                                                                   max_passages_per_document=3))
    assert len(passages) <= 3


def test_deeply_nested_json_is_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "deep.jsonl").write_text('{"text": "fine record"}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    meta = "[" * 900 + "]" * 900  # parses, but too deep to store safely: dropped with a warning
    (tmp_path / "meta.jsonl").write_text('{"id": "m", "text": "Deep metadata here.", "meta": ' + meta + "}\n")
    (tmp_path / "bigint.json").write_text('[{"text": "x", "n": ' + "9" * 5000 + "}]")
    with caplog.at_level(logging.WARNING):
        docs, report = load_documents(tmp_path, Config())
    assert sorted(d.text for d in docs) == ["Deep metadata here.", "fine record"]
    assert next(d for d in docs if d.id == "m").metadata == {}
    reasons = " | ".join(f"{w}: {r}" for w, r in report.skipped)
    assert "deep.json: JSON nested too deeply" in reasons
    assert "deep.jsonl (line 2): JSON nested too deeply" in reasons
    assert "metadata field(s) meta dropped" in reasons
    assert "bigint.json: unreadable JSON value" in reasons
    # and such a document can be indexed (its metadata is JSON-encoded into SQLite)
    hg = HippoGraph.build(tmp_path, tmp_path.parent / "idx-deep", Config(embedder="tfidf"))
    assert hg.stats()["documents"] == 2 and hg.dir.verify() == []


def test_nul_bytes_invalid_utf8_zero_width_and_rtl(tmp_path):
    (tmp_path / "nul_late.txt").write_bytes(b"Readable start. " * 1000 + b"\x00 then binary")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 Orvik is an island near Kesselby.".encode("latin-1"))
    weird = "Orv\u200bik is an island.\u202e Its name \u2066means\u2069 \u05d0\u05d1 \u0627\u0644 harbour. \ufeffZero\u200dwidth."
    (tmp_path / "weird.md").write_text(f"# Orv\u200bik\u202e\n\n{weird}\n", encoding="utf-8")
    docs = [{"id": "nul-in-json", "title": "T\x00itle", "text": "Text with a \x00 NUL and \x07 bell."}]
    (tmp_path / "recs.json").write_text(json.dumps(docs), encoding="utf-8")
    loaded, report = load_documents(tmp_path, Config())
    by_id = {d.id: d for d in loaded}
    assert "nul_late.txt" not in by_id
    assert any("nul_late.txt" in w and "NUL byte at offset 16000" in r for w, r in report.skipped)
    assert "Café" in by_id["latin1.txt"].text
    assert by_id["nul-in-json"].text == "Text with a  NUL and  bell." and by_id["nul-in-json"].title == "Title"
    assert "\u202e" in by_id["weird.md"].text  # kept verbatim: it is text, not markup
    hg = HippoGraph.build(tmp_path, tmp_path.parent / "idx-weird", Config(embedder="tfidf"))
    assert hg.stats()["documents"] == 3
    for q in ["Orv\u200bik", "\u202e\u2066\u2069", "\u200b\u200c\u200d", "\u05d0\u05d1 \u0627\u0644 harbour", "Café"]:
        hits = hg.retrieve(q, top_k=3)
        assert len(hits) <= 3
    assert hg.dir.verify() == []


def test_huge_single_line_files_are_bounded(tmp_path, caplog):
    line = ("lorem ipsum dolor sit amet " * 40_000).encode()  # ≈1 MB
    big = tmp_path / "big" / "huge.txt"
    big.parent.mkdir()
    with open(big, "wb") as fh:
        for _ in range(100):  # 100 MB, one line
            fh.write(line)
    with caplog.at_level(logging.WARNING):
        docs, report = _bounded(30, load_documents, big.parent, Config(max_file_bytes=50 * 2**20))
    assert docs == [] and "over max_file_bytes" in report.skipped[0][1] and "huge.txt" in caplog.text
    big.unlink()

    # 20 MB in one line (kept at 20 MB so the test stays fast): loaded, then bounded by
    # max_passages_per_document; chunking only reads as much of the text as it keeps
    mid = tmp_path / "mid" / "long.txt"
    mid.parent.mkdir()
    with open(mid, "wb") as fh:
        for part in range(20):  # distinct words, so the passages are not deduplicated
            fh.write(" ".join(f"w{part}x{i}" for i in range(110_000)).encode() + b" ")
    cfg = Config(embedder="tfidf", max_passages_per_document=8)
    docs, _ = load_documents(mid.parent, cfg)
    assert len(docs) == 1 and len(docs[0].text) > 20_000_000
    passages = _bounded(20, chunk_document, docs[0], cfg)
    assert len(passages) == 8 and all(len(p.text.split()) <= cfg.chunk_words for p in passages)
    hg = _bounded(240, HippoGraph.build, mid.parent, tmp_path / "idx", cfg)
    assert hg.stats()["passages"] == 8 and hg.dir.verify() == []


@pytest.mark.parametrize("name, fn, text", [
    ("markdown **", markdown_to_text, "**a " * 100_000),
    ("markdown ~~", markdown_to_text, "~~a " * 100_000),
    ("markdown links", markdown_to_text, "[a](" * 100_000),
    ("markdown images", markdown_to_text, "![a](" * 100_000),
    ("markdown autolinks", markdown_to_text, "<a" * 100_000),
    ("markdown comments", markdown_to_text, "<!--" * 100_000),
    ("html unclosed tags", html_to_text, "<a " * 100_000),
    ("html nested", html_to_text, "<div>" * 50_000),
    ("html comments", html_to_text, "<!-- >" * 100_000),
    ("sentences: dots", split_sentences, "." * 300_000),
    ("sentences: blanks", split_sentences, "a" + " " * 300_000 + "b"),
])
def test_pathological_markup_is_linear(name, fn, text):
    _bounded(15, fn, text)  # before the fixes: hours (quadratic regexes / tree edits)


def test_symlink_loops_and_escapes_are_skipped(tmp_path):
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    (root / "a" / "doc.txt").write_text("Orvik is an island.")
    os.symlink(root, root / "a" / "loop")  # directory cycle
    os.symlink(root / "x1", root / "x2")
    os.symlink(root / "x2", root / "x1")  # symlink loop
    os.symlink("/etc", root / "outside")  # points outside the source folder
    (root / "dangling").symlink_to(tmp_path / "missing.txt")
    docs, report = _bounded(10, load_documents, root, Config())
    assert [d.id for d in docs] == ["a/doc.txt"]
    reasons = {Path(w).name: r for w, r in report.skipped}
    assert "looping" in reasons["x1"] and "looping" in reasons["x2"] and "outside" in reasons["outside"]


def test_path_traversal_in_record_fields_never_touches_other_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    hostile = [
        {"id": "../../victim.txt", "title": "../../../etc/passwd", "text": "Kessel Shipworks built ships.",
         "source": str(victim)},
        {"id": "/etc/passwd", "title": "x", "text": "Orvik is an island.", "source": "../../../../victim.txt"},
    ]
    (src / "recs.json").write_text(json.dumps(hostile), encoding="utf-8")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    idx = tmp_path / "idx"
    hg = HippoGraph.build(src, idx, Config(embedder="tfidf"))
    docs = {d["id"]: d for d in hg.documents()}
    assert set(docs) == {"../../victim.txt", "/etc/passwd"}
    for d in docs.values():
        assert d["source"].startswith(str(src / "recs.json") + "#")  # the field is metadata, not a path
    assert docs["/etc/passwd"]["metadata"]["source"] == "../../../../victim.txt"
    # sync from the same folder: the hostile `source` values are never opened, written or deleted
    (src / "recs.json").write_text(json.dumps(hostile[:1]), encoding="utf-8")
    report = hg.sync([src])
    assert report.deleted_documents == ["/etc/passwd"]
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and idx not in p.parents}
    assert victim.read_text() == "do not touch"
    assert {p: t for p, t in before.items() if p != src / "recs.json"} == {
        p: t for p, t in after.items() if p != src / "recs.json"}
    assert all(idx in p.parents or p.parent == idx for p in idx.rglob("*"))


# ---- query path -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_index(tmp_path_factory):
    from .conftest import DATA

    return HippoGraph.build(DATA / "corpus" / "people", tmp_path_factory.mktemp("fz") / "idx", Config(embedder="tfidf"))


@settings(max_examples=max(10, EXAMPLES * 2 // 3), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list(WEIRD)), max_size=200),
       mode=st.sampled_from(["hybrid", "ppr", "dense", "bm25"]))
def test_any_query_string_gets_hits_or_a_clear_error(fuzz_index, q, mode):
    try:
        hits = fuzz_index.retrieve(q, top_k=3, mode=mode)
    except ValueError as exc:
        assert "empty" in str(exc)
        assert not q.replace("\x00", " ").strip()
        return
    assert len(hits) <= 3
    assert all(np.isfinite(h.score) for h in hits)


def test_one_megabyte_query_is_truncated(fuzz_index, caplog):
    q = ("Who taught astronomy at the University of Drumlow? " * 20_000)[:1_000_000]
    with caplog.at_level(logging.WARNING):
        hits = _bounded(60, fuzz_index.retrieve, q)
    assert hits and "truncated to max_query_chars" in caplog.text


# ---- the index directory is data, not code ----------------------------------------------------------

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def test_index_holds_no_pickles_and_refuses_them(sample_index, tmp_path):
    import shutil

    files = [p for p in Path(sample_index).rglob("*") if p.is_file()]
    assert files
    for p in files:
        head = p.read_bytes()[:2]
        assert head not in PICKLE_MAGIC, f"{p} looks like a pickle"
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)  # raises for object (pickled) arrays
            assert arr.dtype != object
    # a planted pickled array is refused with a clear error instead of being unpickled
    copy = tmp_path / "copy"
    shutil.copytree(sample_index, copy)
    gen = copy / json.loads((copy / "manifest.json").read_text())["generation"]
    np.save(gen / "graph" / "pair_weights.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(IndexCorruptError, match="pair_weights.npy|graph"):
        HippoGraph.open(copy)
    # the source never asks numpy, torch or pickle to unpickle anything
    root = Path(__file__).resolve().parents[1]
    for folder in ("hippograph", "indexers", "retrievers"):
        for src in (root / folder).rglob("*.py"):
            text = src.read_text(encoding="utf-8")
            for bad in ("allow_pickle=True", "import pickle", "pickle.load", "torch.load(", "joblib.load"):
                assert bad not in text, f"{src}: {bad}"
