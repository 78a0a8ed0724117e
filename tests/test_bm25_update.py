"""BM25 updated by a write from the new passages alone: equal bit for bit to a build over the new
corpus, and built from every text again when the base index cannot be updated."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.errors import IndexCorruptError
from hippograph.retrievers import lexical
from hippograph.retrievers.lexical import DOCLEN_FILE, BM25Index, tokenize

TEXTS = [
    "Alpha Corp was founded by Jane Doe in Paris. Alpha Corp makes glass lenses.",
    "Beta Labs was founded by Jane Doe in Berlin; Beta Labs builds telescopes and telescopes.",
    "Gamma Works repairs ships in Lisbon. Ships, ships, ships: Gamma repairs ships.",
    "The the of and",  # no indexable token after stop words
    "Delta Foods sells bread in Paris and Lyon, bread every morning.",
    "Omar Reyes founded Gamma Works; Omar sailed from Lisbon to Porto.",
]


def _same(a: BM25Index, b: BM25Index) -> bool:
    return (a.vocab == b.vocab and a.num_docs == b.num_docs and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.doclen, b.doclen)
            and np.array_equal(np.asarray(a.data, np.float32).view(np.int32), np.asarray(b.data, np.float32).view(np.int32)))


def _corpus(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)] + ["paris", "lisbon", "glass"]
    zipf = 1.0 / np.arange(1, len(words) + 1)
    zipf /= zipf.sum()
    return [" ".join(rng.choice(words, size=int(rng.integers(0, 120)), p=zipf)) for _ in range(n)]


def test_term_frequencies_invert_the_stored_scores():
    index = BM25Index.build(TEXTS)
    tf = index.term_frequencies()
    assert tf.dtype == np.int32 and tf.min() >= 1
    ship = index.token_to_id["ships"]
    lo, hi = index.indptr[ship], index.indptr[ship + 1]
    assert tf[lo:hi].tolist() == [5]  # "Ships, ships, ships ... ships" in one document
    assert np.array_equal(np.bincount(index.indices, weights=tf, minlength=len(TEXTS)), index.doclen)


@pytest.mark.parametrize("seed,block", [(0, 1 << 22), (1, 7), (2, 1000)])
def test_updated_equals_a_build_bit_for_bit(seed, block, monkeypatch):
    monkeypatch.setattr(BM25Index, "update_block", block)  # postings rescored a block at a time
    texts = _corpus(seed, 400)
    base = BM25Index.build(texts[:300])
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(300, 220, replace=False))  # deletes, including the only holders of some terms
    new = texts[300:] + ["zzz unseen words here", ""]
    origin = np.concatenate([kept, -np.ones(len(new), dtype=np.int64)])
    order = iter(new)
    final = [texts[o] if o >= 0 else next(order) for o in origin]
    assert _same(base.updated(origin, tokenize(new)), BM25Index.build(final))
    # add only, delete only, nothing changed
    assert _same(base.updated(np.r_[np.arange(300), -np.ones(100, np.int64)], tokenize(texts[300:])),
                 BM25Index.build(texts))
    assert _same(base.updated(kept, []), BM25Index.build([texts[i] for i in kept]))
    assert _same(base.updated(np.arange(300), []), base)


def test_updated_search_matches_a_rebuild():
    base = BM25Index.build(TEXTS[:4])
    new = base.updated(np.array([0, 2, -1, -1]), tokenize(TEXTS[4:]))
    ref = BM25Index.build([TEXTS[0], TEXTS[2], TEXTS[4], TEXTS[5]])
    for q in ("Paris bread", "Gamma ships Lisbon", "Jane Doe telescopes"):
        s1, i1 = new.search(q, 3)
        s2, i2 = ref.search(q, 3)
        assert np.array_equal(i1, i2) and np.array_equal(s1, s2)
    assert "telescopes" not in new.token_to_id  # its only document was deleted


def test_updated_refuses_bad_origins():
    index = BM25Index.build(TEXTS)
    with pytest.raises(ValueError):
        index.updated(np.array([0, 0]), [])  # an old document twice
    with pytest.raises(ValueError):
        index.updated(np.array([0, 99]), [])  # no such old document
    with pytest.raises(ValueError):
        index.updated(np.array([0, -1]), [])  # a new row without its text
    with pytest.raises(ValueError):
        index.updated(np.array([1, 0]), [])  # kept documents out of their order
    with pytest.raises(ValueError):
        index.updated(np.array([-1, 0]), [["paris"]])  # new documents come after the kept ones


def test_no_update_without_lengths_or_from_a_score_that_does_not_invert(tmp_path):
    index = BM25Index.build(TEXTS)
    index.save(tmp_path / "a")
    assert (tmp_path / "a" / DOCLEN_FILE).is_file()
    old = BM25Index(index.vocab, index.data, index.indices, index.indptr, index.num_docs)  # an older index
    assert old.term_frequencies() is None and old.updated(np.arange(len(TEXTS)), []) is None
    tampered = np.array(index.data, copy=True)
    tampered[3] = np.nextafter(tampered[3], np.float32(np.inf))
    bad = BM25Index(index.vocab, tampered, index.indices, index.indptr, index.num_docs, doclen=index.doclen)
    assert bad.updated(np.arange(len(TEXTS)), []) is None


def test_damaged_lengths_file_is_one_line(tmp_path):
    BM25Index.build(TEXTS).save(tmp_path)
    np.save(tmp_path / DOCLEN_FILE, np.arange(3, dtype=np.int32))
    with pytest.raises(IndexCorruptError, match=DOCLEN_FILE):
        BM25Index.load(tmp_path)
    np.save(tmp_path / DOCLEN_FILE, -np.ones(len(TEXTS), dtype=np.int32))
    with pytest.raises(IndexCorruptError, match="negative"):
        BM25Index.load(tmp_path)


DOCS = [{"id": f"d{i}", "title": f"Doc {i}", "text": text} for i, text in enumerate(TEXTS)]


def _bm25_of(hg: HippoGraph) -> BM25Index:
    return BM25Index.load(hg.dir.generation_path(hg.manifest) / "lexical" / "passages")


def test_writes_update_bm25_from_new_passages_only(tmp_path, monkeypatch):
    hg = HippoGraph.build(DOCS[:4], tmp_path / "idx", Config(embedder="tfidf"))
    seen: list[int] = []
    real = lexical.tokenize
    monkeypatch.setattr(lexical, "tokenize", lambda texts: seen.append(len(texts)) or real(texts))
    report = hg.add(DOCS[4:])
    assert report.to_dict()["derived"]["bm25"] == "updated" and seen == [2]  # the two new passages, not six
    report = hg.delete(["d1"])
    assert report.to_dict()["derived"]["bm25"] == "updated" and seen == [2, 0]
    fresh = HippoGraph.build([d for d in DOCS if d["id"] != "d1"], tmp_path / "scratch", Config(embedder="tfidf"))
    assert _same(_bm25_of(hg), _bm25_of(fresh))


def test_an_index_without_lengths_is_built_once_then_updated(tmp_path, monkeypatch):
    real_build = BM25Index.build.__func__

    def old_build(cls, texts, **kw):  # what an index written before this change holds
        index = real_build(cls, texts, **kw)
        index.doclen = None
        return index

    monkeypatch.setattr(BM25Index, "build", classmethod(old_build))
    hg = HippoGraph.build(DOCS[:3], tmp_path / "idx", Config(embedder="tfidf"))
    gen = hg.dir.generation_path(hg.manifest)
    assert not (gen / "lexical" / "passages" / DOCLEN_FILE).exists()
    monkeypatch.undo()
    assert hg.add(DOCS[3:5]).to_dict()["derived"]["bm25"] == "built"
    assert hg.add(DOCS[5:]).to_dict()["derived"]["bm25"] == "updated"
    assert _same(_bm25_of(hg), BM25Index.build([f"Doc {i}\n{t}" for i, t in enumerate(TEXTS)]))
    assert hg.dir.verify() == []


def test_a_damaged_base_bm25_is_built_again(tmp_path, caplog):
    hg = HippoGraph.build(DOCS[:3], tmp_path / "idx", Config(embedder="tfidf"))
    meta = hg.dir.generation_path(hg.manifest) / "lexical" / "passages" / "bm25_meta.json"
    meta.write_text(json.dumps({"format": "something else"}))
    with caplog.at_level("WARNING"):
        report = hg.add(DOCS[3:])
    assert report.to_dict()["derived"]["bm25"] == "built" and "bm25_meta.json" in caplog.text
    assert _same(_bm25_of(hg), BM25Index.build([f"Doc {i}\n{t}" for i, t in enumerate(TEXTS)]))
