"""Entropy router (DESIGN §3.6): peaked beats flat, weights bounded and summing to 1."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hippograph.retrievers.router import RouterResult, entropy, route


def test_entropy_bounds_and_hand_values() -> None:
    assert entropy(np.array([0.7]), 0.1) == 0.0
    assert entropy(np.array([]), 0.1) == 0.0
    # equal scores -> uniform -> ln M
    assert entropy(np.full(5, 0.3), 0.1) == pytest.approx(math.log(5))
    # two scores 0.1 apart at tau 0.1: p = softmax([1, 0])
    p1 = math.e / (math.e + 1)
    h = -(p1 * math.log(p1) + (1 - p1) * math.log(1 - p1))
    assert entropy(np.array([0.6, 0.5]), 0.1) == pytest.approx(h, rel=1e-12)
    # lower temperature sharpens
    s = np.array([0.9, 0.8, 0.75, 0.7])
    assert entropy(s, 0.05) < entropy(s, 0.1) < entropy(s, 1.0) <= math.log(4)


def test_entropy_is_numerically_stable() -> None:
    s = np.array([1000.0, 999.0, 0.0])
    h = entropy(s, 1e-3)  # huge logits: naive exp overflows
    assert math.isfinite(h) and 0.0 <= h < 1e-6
    with pytest.raises(ValueError, match="temperature"):
        entropy(s, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        entropy(np.array([0.1, np.nan]), 0.1)


@pytest.mark.parametrize("scheme", ["exp", "norm"])
def test_peaked_gets_more_weight_than_flat(scheme: str) -> None:
    scores = {
        "passage": np.array([0.92, 0.55, 0.52, 0.50, 0.49, 0.48]),  # one clear winner
        "sentence": np.array([0.61, 0.60, 0.60, 0.59, 0.59, 0.58]),  # cannot tell apart
    }
    res = route(scores, temperature=0.1, scheme=scheme)
    assert isinstance(res, RouterResult)
    assert res.weights["passage"] > res.weights["sentence"]
    assert res.entropies["passage"] < res.entropies["sentence"]
    assert sum(res.weights.values()) == pytest.approx(1.0)
    assert res.scheme == scheme and res.temperature == 0.1


@pytest.mark.parametrize("scheme", ["exp", "norm"])
def test_weights_nonnegative_and_sum_to_one_for_many_m(scheme: str) -> None:
    rng = np.random.default_rng(0)
    for m in range(3, 101):
        scores = {
            "flat": np.full(m, 0.5) + rng.normal(0, 1e-3, m),  # H ≈ ln M > 1: MemGAS's 1 − H < 0
            "random": rng.uniform(0.2, 0.9, m),
            "peaked": np.r_[0.95, rng.uniform(0.1, 0.3, m - 1)],
        }
        res = route(scores, temperature=0.1, scheme=scheme)
        w = np.array(list(res.weights.values()))
        assert np.all(w >= 0), (m, res.weights)
        assert w.sum() == pytest.approx(1.0)
        assert res.entropies["flat"] > 1.0  # where the buggy formula would go negative
        assert res.weights["peaked"] > res.weights["flat"]
        for g, hn in res.normalized_entropies.items():
            assert 0.0 <= hn <= 1.0 + 1e-12
            assert hn == pytest.approx(res.entropies[g] / math.log(m))


def test_exp_scheme_formula() -> None:
    scores = {"a": np.array([0.9, 0.1, 0.1]), "b": np.array([0.5, 0.5, 0.4, 0.4])}
    res = route(scores, temperature=0.2, scheme="exp")
    ea, eb = math.exp(-entropy(scores["a"], 0.2)), math.exp(-entropy(scores["b"], 0.2))
    assert res.weights["a"] == pytest.approx(ea / (ea + eb))


def test_norm_all_flat_falls_back_to_equal() -> None:
    res = route({"a": np.full(4, 0.3), "b": np.full(10, 0.7)}, scheme="norm")
    assert res.weights == pytest.approx({"a": 0.5, "b": 0.5})


def test_fixed_weights() -> None:
    scores = {"passage": np.array([0.9, 0.1]), "fact": np.array([0.5, 0.5]), "entity": np.array([0.3])}
    res = route(scores, fixed_weights={"passage": 3.0, "fact": 1.0, "unknown": 5.0})
    assert res.scheme == "fixed"
    assert res.weights == pytest.approx({"passage": 0.75, "fact": 0.25, "entity": 0.0})
    assert set(res.entropies) == {"passage", "fact", "entity"}  # still reported
    with pytest.raises(ValueError, match="fixed weight"):
        route(scores, fixed_weights={"passage": -1.0})


def test_single_granularity_and_empty_ones() -> None:
    res = route({"passage": np.array([0.8, 0.7, 0.1])})
    assert res.weights == {"passage": 1.0}
    res = route({"passage": np.array([0.8, 0.7, 0.1]), "fact": np.array([])})
    assert res.weights == {"passage": 1.0, "fact": 0.0}
    assert "fact" not in res.entropies
    res = route({"passage": np.array([]), "fact": np.array([])})
    assert res.weights == {"passage": 0.0, "fact": 0.0}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scheme"):
        route({"a": np.array([0.1, 0.2])}, scheme="memgas")
    with pytest.raises(ValueError, match="at least one"):
        route({})
    with pytest.raises(ValueError, match="'a'"):
        route({"a": np.array([0.1, np.inf])})
