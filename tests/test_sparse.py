"""SparseScores (the engine's per-query score vectors) against the dense numpy operations they replace,
and candidate-only scoring against full scoring on the bundled sample index."""
from __future__ import annotations

import numpy as np
import pytest

from hippograph.retrievers.engine import _topk
from hippograph.retrievers.fusion import minmax
from hippograph.retrievers.sparse import SparseScores, weighted_sum


def random_sparse(rng: np.random.Generator, n: int, fill: float = 0.0, ties: bool = False) -> SparseScores:
    k = int(rng.integers(0, n + 1))
    idx = np.sort(rng.choice(n, k, replace=False))
    val = rng.integers(-2, 3, k).astype(float) if ties else rng.normal(size=k)
    return SparseScores(n, idx, val, fill)


@pytest.mark.parametrize("seed", range(30))
def test_sparse_operations_equal_dense(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    fill = float(rng.choice([0.0, 0.0, 0.5, -1.0]))
    a = random_sparse(rng, n, fill, ties=seed % 2 == 0)
    b = random_sparse(rng, n, ties=seed % 3 == 0)
    da, db = a.toarray(), b.toarray()
    np.testing.assert_allclose(a.minmax().toarray(), minmax(da))
    np.testing.assert_allclose(weighted_sum([(0.3, a), (0.7, b)], n).toarray(), 0.3 * da + 0.7 * db)
    np.testing.assert_allclose(a.times(b).toarray(), da * db)
    stable = np.lexsort((np.arange(n), -da))  # score desc, then lower id (what _topk does at k = n)
    assert stable.tolist() == _topk(da, n).tolist()
    for k in (None, 1, 3, n):
        assert a.top(k).tolist() == stable[: n if k is None else k].tolist(), (k, da)
    assert a.any() == da.any()
    ids = rng.integers(0, n, 5)
    np.testing.assert_allclose(a.values_at(ids), da[ids])
    assert [a.at(int(i)) for i in ids] == da[ids].tolist()
    np.testing.assert_allclose(a.with_values(ids[:2], 7.0).toarray(), np.where(np.isin(np.arange(n), ids[:2]), 7.0, da))


def test_max_at_matches_maximum_at() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, 50)
    scores = rng.normal(size=50)
    out = np.zeros(20)
    np.maximum.at(out, ids, scores)
    np.testing.assert_allclose(SparseScores.max_at(20, ids, scores).toarray(), out)


@pytest.fixture(scope="module")
def sample_hg(sample_index):
    from hippograph import HippoGraph

    return HippoGraph.open(sample_index)


def test_candidate_only_scoring_equals_full_scoring_on_the_top_k(sample_hg, sample_questions) -> None:
    """Top-20 BM25 lists and forward push give the same top 5 as BM25 over every passage and exact
    power iteration, question by question. (Fused scores may differ a little: a passage outside the lists
    loses its BM25 share of the PPR passage prior.)"""
    hg = sample_hg
    n = hg.snapshot.n_passages
    assert n > 40, "the sample corpus must be larger than the candidate lists"
    questions = [q["question"] for q in sample_questions]
    cfg = hg.config.replace(candidates_per_granularity=10)  # the router sees the top 10 of each list
    full = hg.retriever.search(questions, cfg.replace(ppr_method="power", bm25_candidates=n), "hybrid")
    cand = hg.retriever.search(questions, cfg.replace(ppr_method="power", bm25_candidates=20), "hybrid", depth=5)
    push = hg.retriever.search(questions, cfg.replace(ppr_method="push", ppr_push_eps=1e-7, bm25_candidates=20),
                               "hybrid", depth=5)
    for f, c, p in zip(full, cand, push):
        assert len(c.ranking) == len(p.ranking) == 5
        assert c.ranking.tolist() == f.ranking[:5].tolist()
        # the routed dense/BM25 evidence of the top passages the lists hold is the same (a passage the
        # second hop reached from outside the lists has none in candidate-only scoring)
        listed = c.ranking[c.routed.values_at(c.ranking) > 0]
        np.testing.assert_allclose(c.routed.values_at(listed), f.routed.values_at(listed))
        assert p.ranking.tolist() == f.ranking[:5].tolist()
        # PPR mass within push's residual (fused scores differ a little: exact PPR gives every passage of the
        # component some mass, so its minmax floor is above 0, while push leaves unreached passages at 0)
        np.testing.assert_allclose(p.ppr.values_at(p.ranking), c.ppr.values_at(p.ranking), atol=1e-5)  # power stops at L1 change 1e-6
        # the dense vector behind the sparse one ranks the same way
        assert f.ranking.tolist() == _topk(np.asarray(f.scores), n).tolist()
    assert any(len(f.bm25.idx) > 20 for f in full)  # the lists did cut something


def test_unknown_ppr_method_is_one_clear_error(sample_hg) -> None:
    with pytest.raises(ValueError, match="ppr_method"):
        sample_hg.retrieve("Who founded Kessel Shipworks?", ppr_method="magic")


def test_sorted_unique_equals_np_unique():
    from hippograph.retrievers.sparse import sorted_unique

    rng = np.random.default_rng(11)
    cases = [np.zeros(0, np.int64), np.array([5]), np.array([3, 3, 3]), np.array([-2, 7, -2, 0])]
    cases += [rng.integers(-50, 10 ** int(e), size=int(n)) for e, n in zip(rng.integers(1, 8, 40), rng.integers(0, 5000, 40))]
    for ids in cases:
        got = sorted_unique(ids)
        assert got.dtype == np.unique(ids).dtype and np.array_equal(got, np.unique(ids))
