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


def _reference_top(index: BM25Index, query: str, k: int, allowed: np.ndarray | None = None):
    """The documented top k from the dense score vector: allowed documents only, positive scores,
    best first, ties by lower index; padded with -1 / 0 like `search`."""
    full = index.scores(query)
    if allowed is not None:
        full = np.where(allowed, full, np.float32(0))
    order = np.lexsort((np.arange(len(full)), -full))[:k]
    order = order[full[order] > 0]
    ids = np.full(k, -1, dtype=np.int64)
    scores = np.zeros(k, dtype=np.float32)
    ids[: len(order)], scores[: len(order)] = order, full[order]
    return scores, ids


def _assert_search_is_reference(index: BM25Index, queries: list[str], k: int, allowed=None) -> None:
    scores, ids = index.search(queries, k, allowed=allowed)
    for q, row_s, row_i in zip(queries, scores, ids):
        ref_s, ref_i = _reference_top(index, q, k, allowed)
        assert row_i.tolist() == ref_i.tolist(), (q, k)
        assert row_s.dtype == np.float32 and np.array_equal(row_s, ref_s), (q, k)  # bit for bit


def _random_corpus(rng: np.random.Generator, n_docs: int, n_words: int) -> tuple[list[str], list[str]]:
    """Zipf-like words (a few in most documents, many rare), some documents repeated (exact ties)."""
    words = [f"w{i}" for i in range(n_words)]
    p = 1.0 / np.arange(1, n_words + 1)
    p /= p.sum()
    docs = [" ".join(rng.choice(words, rng.integers(1, 12), p=p)) for _ in range(n_docs)]
    for i in rng.choice(n_docs, n_docs // 5):  # duplicates: identical scores, ties broken by index
        docs[int(rng.integers(n_docs))] = docs[i]
    return docs, words


def test_search_equals_dense_scoring_on_random_corpora():
    """Both top-k paths (blocks with a running threshold, touched documents) and the default choice
    return exactly the dense scores' top k — indices and float32 scores — for random corpora and
    queries: k from 1 to past the corpus size, repeated and unknown words, single words, filters
    keeping 1-100 % of the documents, many ties, blocks from 1 document to the whole corpus."""
    rng = np.random.default_rng(7)
    for trial in range(30):
        n_docs = int(rng.integers(1, 400))
        docs, words = _random_corpus(rng, n_docs, int(rng.integers(3, 60)))
        index = BM25Index.build(docs)
        queries = [" ".join(rng.choice(words + ["absentword"], int(rng.integers(1, 7)))) for _ in range(6)]
        queries += [str(rng.choice(words)), f"{words[0]} {words[0]} {words[-1]}", "absentword"]
        masks = [None] + [rng.random(n_docs) < share for share in (0.01, 0.1, 0.5, 1.0)]
        for touched_share, block_docs in ((0.0, int(rng.integers(1, 80))), (0.0, 1 << 16), (np.inf, 1 << 16),
                                          (BM25Index.touched_share, int(rng.integers(1, 40)))):
            index.touched_share, index.block_docs = touched_share, block_docs
            for k in {1, 2, 5, max(1, n_docs // 3), n_docs, n_docs + 5}:
                for allowed in masks:
                    _assert_search_is_reference(index, queries, k, allowed)


def test_block_scan_runs_on_common_words_and_touched_documents_on_rare_ones():
    """On a corpus with common and rare words the default choice scans blocks (the running threshold
    over many blocks) for common words and ranks the touched documents for rare ones; both exact."""
    rng = np.random.default_rng(0)
    common = [f"common{i}" for i in range(5)]
    rare = [f"rare{i}" for i in range(300)]
    docs = [" ".join(list(rng.choice(common, rng.integers(1, 5))) + list(rng.choice(rare, rng.integers(1, 6))))
            for _ in range(3000)]
    index = BM25Index.build(docs)
    index.block_docs = 256
    allowed = rng.random(3000) < 0.2
    mixed = [" ".join(rng.choice(rare, 3)) + " " + " ".join(rng.choice(common, 3)) for _ in range(20)]
    for k in (5, 50, 1000):
        for q in mixed + ["common0 common1", "common3"]:
            for mask in (None, allowed):
                _assert_search_is_reference(index, [q], k, mask)
                index.search(q, k, allowed=mask)
                assert index.last_blocks == -(-3000 // 256), q  # every block scanned, θ carried across
        for q in ("rare7", "rare7 rare8 rare8"):
            _assert_search_is_reference(index, [q], k, allowed)
            assert index.last_blocks == 0, q
    # the filter gives the top k of the allowed documents: the unfiltered top 50 is mostly filtered
    # out, the filtered list is still full
    q = "common0 common1 rare3"
    plain = index.search(q, 50)[1][0]
    _, ids = index.search(q, 50, allowed=allowed)
    assert allowed[plain].sum() < 50 and (ids[0] >= 0).all() and allowed[ids[0]].all()
    with pytest.raises(ValueError, match="allowed"):
        index.search(mixed, 5, allowed=np.ones(10, dtype=bool))


def test_lists_out_of_order_are_ranked_over_touched_documents():
    """An index whose lists are not ascending (not written by bm25s) cannot be cut into blocks by binary
    search; search still returns the exact top k."""
    vocab = ["alpha", "beta"]
    indices = np.array([5, 1, 3, 0, 2, 4, 5, 1], dtype=np.int32)  # alpha: 5 1 3 (descending then up)
    data = np.array([1.0, 2.0, 1.5, 0.5, 0.5, 0.7, 0.2, 0.9], dtype=np.float32)
    index = BM25Index(vocab, data, indices, np.array([0, 3, 8], dtype=np.int64), 6)
    index.touched_share = 0.0  # would scan blocks if the lists allowed it
    for k in (1, 3, 6, 9):
        _assert_search_is_reference(index, ["alpha", "beta", "alpha beta beta"], k)
        assert index.last_blocks == 0


def test_float32_ties_keep_the_lower_index_in_every_path():
    """Scores are summed in float64 and returned in float32: two documents whose float64 sums differ but
    round to the same float32 are tied, so the lower index wins even though its float64 sum is smaller
    (the block scan's threshold must not drop it when the other arrives in a later block)."""
    tiny = np.float32(2.0 ** -30)  # 1 + 2^-30 and 1 + 2^-29 are both 1.0 in float32
    vocab = ["xx", "yy"]
    indices = np.array([0, 1, 0, 1], dtype=np.int32)
    data = np.array([1.0, 1.0, tiny, 2 * tiny], dtype=np.float32)
    index = BM25Index(vocab, data, indices, np.array([0, 2, 4], dtype=np.int64), 2)
    assert index.scores("xx yy")[0] == index.scores("xx yy")[1]
    for touched_share, block_docs in ((0.0, 1), (np.inf, 1), (BM25Index.touched_share, 1 << 16)):
        index.touched_share, index.block_docs = touched_share, block_docs
        scores, ids = index.search("xx yy", 1)
        assert ids[0].tolist() == [0] and scores[0, 0] == np.float32(1.0)
        _assert_search_is_reference(index, ["xx yy", "yy xx", "yy"], 2)
