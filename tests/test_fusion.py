"""Fusion helpers on small hand-computed arrays."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hippograph.retrievers.fusion import map_to_passages, minmax, rrf, scatter_max, scatter_sum, weighted_sum


def test_minmax() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(minmax(np.array([-1.0, 1.0])), [0.0, 1.0])
    out = minmax(np.full(4, 7.0))
    assert np.all(out == 0) and not np.any(np.isnan(out))
    assert minmax(np.array([])).size == 0
    with pytest.raises(ValueError, match="NaN"):
        minmax(np.array([1.0, np.nan]))


def test_rrf_hand_computed() -> None:
    # list A ranks 2,0,1 ; list B ranks 0,3 ; k = 1 for easy numbers
    s = rrf([np.array([2, 0, 1]), np.array([0, 3])], k=1, n=5)
    np.testing.assert_allclose(s, [1 / 3 + 1 / 2, 1 / 4, 1 / 2, 1 / 3, 0.0])
    # default n = max id + 1 and k = 60
    s = rrf([np.array([1, 0])])
    np.testing.assert_allclose(s, [1 / 62, 1 / 61])
    assert rrf([], n=3).tolist() == [0.0, 0.0, 0.0]


def test_rrf_errors() -> None:
    with pytest.raises(ValueError, match="repeats"):
        rrf([np.array([1, 1])])
    with pytest.raises(ValueError, match="out of range"):
        rrf([np.array([0, 5])], n=3)
    with pytest.raises(ValueError, match="integer"):
        rrf([np.array([0.5, 1.0])])
    with pytest.raises(ValueError, match="negative"):
        rrf([np.array([-1, 0])])


def test_weighted_sum() -> None:
    dense = np.array([0.2, 0.6, 0.4])  # -> [0, 1, .5]
    bm25 = np.array([10.0, 0.0, 5.0])  # -> [1, 0, .5]
    const = np.array([3.0, 3.0, 3.0])  # -> 0
    out = weighted_sum({"dense": dense, "bm25": bm25, "c": const}, {"dense": 0.75, "bm25": 0.25, "c": 1.0})
    np.testing.assert_allclose(out, [0.25, 0.75, 0.5])
    # missing weight counts as 0; unknown weight names ignored
    out = weighted_sum({"dense": dense, "bm25": bm25}, {"dense": 1.0, "other": 9.0})
    np.testing.assert_allclose(out, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        weighted_sum({"a": np.ones(2), "b": np.ones(3)}, {"a": 1.0})


def test_scatter_max_and_sum() -> None:
    scores = np.array([0.5, 0.9, -0.2, 0.3, -0.4])
    to_p = np.array([0, 0, 2, 2, 3])
    np.testing.assert_allclose(scatter_max(scores, to_p, 5), [0.9, 0.0, 0.3, -0.4, 0.0])
    np.testing.assert_allclose(scatter_sum(scores, to_p, 5), [1.4, 0.0, 0.1, -0.4, 0.0])
    np.testing.assert_allclose(scatter_max(scores, to_p, 4, fill=-1.0), [0.9, -1.0, 0.3, -0.4])
    np.testing.assert_allclose(scatter_sum(scores, to_p, 4, fill=np.nan)[[0, 2]], [1.4, 0.1])
    assert np.isnan(scatter_sum(scores, to_p, 4, fill=np.nan)[1])
    with pytest.raises(ValueError, match="outside"):
        scatter_max(scores, np.array([0, 0, 2, 2, 9]), 5)
    with pytest.raises(ValueError, match="shape"):
        scatter_sum(scores, np.array([0, 1]), 5)


def test_map_to_passages_multi_membership() -> None:
    # units: fact0 in passages 0 and 2; fact1 in passage 2; fact2 in passage 1 (stored count 3)
    mapping = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 1, 0], [0, 3, 0, 0]], dtype=float))
    scores = np.array([0.4, 0.7, 0.2])
    np.testing.assert_allclose(map_to_passages(scores, mapping, "max"), [0.4, 0.2, 0.7, 0.0])
    np.testing.assert_allclose(map_to_passages(scores, mapping, "sum"), [0.4, 0.2, 1.1, 0.0])
    # a one-passage-per-unit mapping agrees with scatter_*
    rng = np.random.default_rng(0)
    to_p = rng.integers(0, 6, 30)
    s = rng.normal(size=30)
    m = sp.csr_matrix((np.ones(30), (np.arange(30), to_p)), shape=(30, 6))
    np.testing.assert_allclose(map_to_passages(s, m, "max"), scatter_max(s, to_p, 6))
    np.testing.assert_allclose(map_to_passages(s, m, "sum"), scatter_sum(s, to_p, 6))
    with pytest.raises(ValueError, match="reduce"):
        map_to_passages(scores, mapping, "mean")
    with pytest.raises(ValueError, match="rows"):
        map_to_passages(np.ones(2), mapping)
