"""BM25 lexical index: tokenizer, Lucene BM25 scores, top-k padding, save/load without pickle."""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hippograph.errors import IndexCorruptError, IndexNotFoundError
from hippograph.retrievers.lexical import STOP_WORDS, BM25Index, tokenize

DOCS = [
    "The cat sat on the mat.",
    "Dogs and cats are common pets; the cat is independent.",
    "Stock markets fell sharply on Monday.",
    "Paris is the capital of France.",
    "The Eiffel Tower is in Paris, France.",
    "Quantum entanglement links particles.",
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(DOCS)


def test_tokenize_lowercases_splits_unicode_and_drops_stop_words() -> None:
    assert tokenize("The Café in São-Paulo, naïve_user's 2nd visit!") == [
        ["café", "são", "paulo", "naïve", "user", "2nd", "visit"]
    ]
    assert tokenize(["", "the a of", "Über ÉCOLE x 7"]) == [[], [], ["über", "école"]]
    assert "the" in STOP_WORDS and "first" not in STOP_WORDS
    with pytest.raises(TypeError, match="item 1"):
        tokenize(["ok", None])  # type: ignore[list-item]


def _lucene_bm25(query: str, docs: list[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Reference Lucene BM25 written out from the formula."""
    toks = tokenize(docs)
    n = len(docs)
    avgdl = sum(map(len, toks)) / n
    df = Counter(t for d in toks for t in set(d))
    out = np.zeros(n)
    for q in tokenize(query)[0]:
        if q not in df:
            continue
        idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
        for i, d in enumerate(toks):
            tf = d.count(q)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


@pytest.mark.parametrize("query", ["cat", "paris france", "capital of France cat cat", "stock pets quantum"])
def test_scores_match_lucene_formula(index: BM25Index, query: str) -> None:
    np.testing.assert_allclose(index.scores(query), _lucene_bm25(query, DOCS), rtol=1e-5, atol=1e-6)


def test_custom_k1_b_change_scores() -> None:
    idx = BM25Index.build(DOCS, k1=0.9, b=0.4)
    np.testing.assert_allclose(idx.scores("cat paris"), _lucene_bm25("cat paris", DOCS, 0.9, 0.4), rtol=1e-5)
    with pytest.raises(ValueError, match="0 <= b <= 1"):
        BM25Index.build(DOCS, b=1.5)


def test_search_ranking_and_padding(index: BM25Index) -> None:
    scores, ids = index.search(["capital of France", "cat"], k=4)
    assert scores.shape == ids.shape == (2, 4)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    # "capital of France": doc 3 has both terms, doc 4 only "france"; nothing else matches.
    assert ids[0].tolist() == [3, 4, -1, -1]
    assert scores[0, 0] > scores[0, 1] > 0 and scores[0, 2] == scores[0, 3] == 0
    # "cat": docs 0 and 1 match ("cats" is a different token: no stemming)
    assert set(ids[1, :2].tolist()) == {0, 1} and ids[1, 2] == -1
    assert scores[1, 0] >= scores[1, 1] > 0
    # search agrees with the dense score vector
    dense = index.scores("cat")
    np.testing.assert_allclose(scores[1, :2], dense[ids[1, :2]], rtol=1e-6)


def test_k_larger_than_corpus_and_single_string_query(index: BM25Index) -> None:
    scores, ids = index.search("paris", k=50)
    assert ids.shape == (1, 50)
    assert sorted(ids[0, :2].tolist()) == [3, 4] and np.all(ids[0, 2:] == -1) and np.all(scores[0, 2:] == 0)


def test_unknown_and_empty_queries_never_crash(index: BM25Index) -> None:
    scores, ids = index.search(["zzqx unknownword", "", "the of and", "!!!"], k=3)
    assert np.all(ids == -1) and np.all(scores == 0)
    assert np.all(index.scores("nothing-known-zzqx") == 0) and index.scores("").shape == (len(DOCS),)
    s, i = index.search([], k=3)
    assert s.shape == i.shape == (0, 3)
    with pytest.raises(ValueError, match="positive integer"):
        index.search("cat", k=0)


def test_ties_break_by_lower_index() -> None:
    idx = BM25Index.build(["apple pie", "banana", "apple pie", "apple pie"])
    _, ids = idx.search("apple", k=3)
    assert ids[0].tolist() == [0, 2, 3]


def test_empty_corpus_and_bad_input() -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Index.build([])
    with pytest.raises(TypeError, match="single string"):
        BM25Index.build("not a list")


def test_corpus_without_tokens_builds_and_matches_nothing(tmp_path: Path) -> None:
    idx = BM25Index.build(["", "the of", "!!"])
    assert len(idx) == 3
    scores, ids = idx.search("anything", k=2)
    assert np.all(ids == -1) and np.all(scores == 0)
    idx.save(tmp_path)
    assert len(BM25Index.load(tmp_path)) == 3


def test_save_load_round_trip_without_pickle(index: BM25Index, tmp_path: Path) -> None:
    index.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith((".json", ".npy")) for name in files), files
    for p in tmp_path.glob("*.npy"):
        assert np.load(p, allow_pickle=False).dtype != object
    for p in tmp_path.glob("*.json"):
        json.loads(p.read_text(encoding="utf-8"))

    for mmap in (False, True):
        loaded = BM25Index.load(tmp_path, mmap=mmap)
        assert len(loaded) == len(index) and loaded.vocab == index.vocab
        assert (loaded.k1, loaded.b) == (index.k1, index.b)
        queries = ["capital of France", "cat pets", "zzz", "stock Monday"]
        for a, b in zip(loaded.search(queries, 5), index.search(queries, 5)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.scores("paris cat"), index.scores("paris cat"))


def test_build_is_reproducible(tmp_path: Path) -> None:
    BM25Index.build(DOCS).save(tmp_path / "a")
    BM25Index.build(DOCS).save(tmp_path / "b")
    for p in (tmp_path / "a").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name


def test_load_errors_name_the_problem(index: BM25Index, tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="bm25_meta.json"):
        BM25Index.load(tmp_path / "nowhere")
    index.save(tmp_path)
    (tmp_path / "bm25_indices.npy").unlink()
    with pytest.raises(IndexCorruptError, match="bm25_indices.npy"):
        BM25Index.load(tmp_path)
    index.save(tmp_path)
    np.save(tmp_path / "bm25_indptr.npy", np.array([0, 1], dtype=np.int64))
    with pytest.raises(IndexCorruptError, match="bm25_indptr.npy"):
        BM25Index.load(tmp_path)
    index.save(tmp_path)
    meta = json.loads((tmp_path / "bm25_meta.json").read_text())
    (tmp_path / "bm25_meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexCorruptError, match="version 99"):
        BM25Index.load(tmp_path)
    # an object array (needs pickle) is refused, not unpickled
    index.save(tmp_path)
    np.save(tmp_path / "bm25_data.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(IndexCorruptError, match="bm25_data.npy"):
        BM25Index.load(tmp_path)


def test_pruned_top_k_equals_scoring_every_document():
    """MaxScore pruning (rare terms scored in full, the rest looked up for candidates) returns exactly
    the top k of the full score vector, on a corpus with rare and very common words."""
    rng = np.random.default_rng(0)
    common = [f"common{i}" for i in range(5)]
    rare = [f"rare{i}" for i in range(300)]
    docs = []
    for _ in range(3000):
        words = list(rng.choice(common, rng.integers(1, 5))) + list(rng.choice(rare, rng.integers(1, 6)))
        docs.append(" ".join(words))
    index = BM25Index.build(docs)
    queries = [" ".join(rng.choice(rare, 3)) + " " + " ".join(rng.choice(common, 3)) for _ in range(40)]
    queries += ["rare1 rare1 common0", "common0 common1", "rare7"]
    pruned_used = 0
    for k in (5, 50):
        scores, ids = index.search(queries, k)
        for q, row_s, row_i in zip(queries, scores, ids):
            full = index.scores(q)
            order = np.lexsort((np.arange(len(full)), -full))[:k]
            order = order[full[order] > 0]
            assert row_i[: len(order)].tolist() == order.tolist(), q
            np.testing.assert_allclose(row_s[: len(order)], full[order], rtol=1e-6)
            pruned_used += index._top_pruned(tokenize(q)[0], k) is not None
    assert pruned_used > 20  # the pruned path did run (not only the full fallback)


def test_allowed_top_k_is_the_top_of_the_allowed_documents():
    """`allowed` (a metadata filter): the top k of the allowed documents, in the MaxScore and the full
    path alike — not the allowed part of the unfiltered top k, so a filter never shortens the list."""
    rng = np.random.default_rng(1)
    common = [f"common{i}" for i in range(5)]
    rare = [f"rare{i}" for i in range(300)]
    docs = [" ".join(list(rng.choice(common, rng.integers(1, 5))) + list(rng.choice(rare, rng.integers(1, 6))))
            for _ in range(3000)]
    index = BM25Index.build(docs)
    queries = [" ".join(rng.choice(rare, 3)) + " " + " ".join(rng.choice(common, 3)) for _ in range(30)]
    queries += ["common0 common1", "rare7"]
    allowed = rng.random(3000) < 0.2
    pruned_used = 0
    for k in (5, 50):
        scores, ids = index.search(queries, k, allowed=allowed)
        unfiltered = index.search(queries, k)[1]
        for q, row_s, row_i, plain in zip(queries, scores, ids, unfiltered):
            full = np.where(allowed, index.scores(q), 0.0)
            order = np.lexsort((np.arange(len(full)), -full))[:k]
            order = order[full[order] > 0]
            assert row_i[: len(order)].tolist() == order.tolist(), q
            assert np.all(row_i[len(order):] == -1) and allowed[row_i[: len(order)]].all()
            np.testing.assert_allclose(row_s[: len(order)], full[order], rtol=1e-6)
            if len(order) == k:  # the unfiltered top k is mostly filtered out, the list is still full
                assert allowed[plain[plain >= 0]].sum() < k
            pruned_used += index._top_pruned(tokenize(q)[0], k, allowed) is not None
    assert pruned_used > 10
    with pytest.raises(ValueError, match="allowed"):
        index.search(queries, 5, allowed=np.ones(10, dtype=bool))
