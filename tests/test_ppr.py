"""PPR power iteration vs igraph prpack (the reference semantics of DESIGN §3.3)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from hippograph.retrievers.ppr import PPR, igraph_reference, transition_matrix


def random_graph(seed: int, n: int = 200, n_isolated: int = 15, loops: bool = True) -> sp.csr_matrix:
    """Symmetric weighted graph of 3 components plus isolated nodes (and a few self-loops)."""
    rng = np.random.default_rng(seed)
    core = n - n_isolated
    bounds = np.linspace(0, core, 4).astype(int)  # 3 components, no edges between them
    rows, cols = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        m = (hi - lo) * 3
        rows.append(rng.integers(lo, hi, m))
        cols.append(rng.integers(lo, hi, m))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    keep = r != c
    r, c = r[keep], c[keep]
    w = rng.uniform(0.1, 5.0, r.size)
    a = sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr()
    a = a + a.T  # undirected; duplicates summed like multi-edges
    if loops:
        li = rng.choice(core, 4, replace=False)
        a = a + sp.coo_matrix((rng.uniform(0.5, 2.0, 4), (li, li)), shape=(n, n))
    perm = rng.permutation(n)  # scatter the isolated nodes over the index range
    a = a.tocsr()[perm][:, perm]
    return sp.csr_matrix(a)


def seeds(rng: np.random.Generator, n: int, k: int = 5) -> np.ndarray:
    r = np.zeros(n)
    r[rng.choice(n, k, replace=False)] = rng.uniform(0.1, 1.0, k)
    return r


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("damping", [0.1, 0.5, 0.85])
def test_matches_igraph_prpack(seed: int, damping: float) -> None:
    a = random_graph(seed)
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    assert (deg == 0).sum() >= 15, "test graph must contain isolated (dangling) nodes"
    rng = np.random.default_rng(100 + seed)
    r = seeds(rng, n)
    r[np.flatnonzero(deg == 0)[:2]] = 0.7  # seeds on dangling nodes too
    ref = igraph_reference(a, r, damping)
    x = PPR(a, damping=damping).run(r)
    assert np.abs(x - ref).sum() < 1e-5
    tight = PPR(a, damping=damping, tol=1e-11, max_iter=500)
    x2 = tight.run(r)
    assert np.abs(x2 - ref).sum() < 1e-8  # issue 4 asks for 1e-6
    assert tight.last_converged


def test_dangling_mass_returns_to_reset_not_uniform() -> None:
    # path 0-1, node 2 isolated; seed only node 1 -> node 2 must get nothing.
    a = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    r = np.array([0.0, 1.0, 0.0])
    x = PPR(a, damping=0.5, tol=1e-12).run(r)
    assert x[2] == 0.0
    # closed form for the 2-node chain: x1 = (1-d) + d*x0, x0 = d*x1
    d = 0.5
    x1 = (1 - d) / (1 - d * d)
    np.testing.assert_allclose(x, [d * x1, x1, 0.0], atol=1e-10)
    # a seeded isolated node keeps its own mass: x2 = (1-d) r2 + d x2 r2 with r2 = 1/2
    r = np.array([0.0, 1.0, 1.0])
    x = PPR(a, damping=d, tol=1e-12).run(r)
    np.testing.assert_allclose(x, igraph_reference(a, r, d), atol=1e-10)
    assert x[2] > 0.5 * (1 - d)


def test_directed_adjacency_matches_igraph() -> None:
    rng = np.random.default_rng(7)
    a = sp.random(80, 80, density=0.05, random_state=3, format="csr")
    a.setdiag(0)
    a.eliminate_zeros()
    assert (a != a.T).nnz > 0
    r = seeds(rng, 80)
    ref = igraph_reference(a, r, 0.5)
    np.testing.assert_allclose(PPR(a, damping=0.5, tol=1e-12).run(r), ref, atol=1e-9)


def test_transition_matrix_is_column_stochastic_with_zero_dangling_columns() -> None:
    a = random_graph(1)
    m = transition_matrix(a)
    assert sp.isspmatrix_csr(m)
    col = np.asarray(m.sum(axis=0)).ravel()
    deg = np.asarray(a.sum(axis=1)).ravel()
    np.testing.assert_allclose(col[deg > 0], 1.0)
    assert np.all(col[deg == 0] == 0)
    i = int(np.flatnonzero(deg > 0)[0])
    e = np.zeros(a.shape[0])
    e[i] = 1
    np.testing.assert_allclose(m @ e, a.getrow(i).toarray().ravel() / deg[i])


def test_batched_equals_single() -> None:
    a = random_graph(2)
    n = a.shape[0]
    rng = np.random.default_rng(5)
    block = np.column_stack([seeds(rng, n, k) for k in (1, 3, 5, 8, 20)])
    ppr = PPR(a, damping=0.5)
    xb = ppr.run(block)
    assert xb.shape == (n, 5)
    iters_b = ppr.last_iterations
    single_iters = []
    for j in range(block.shape[1]):
        xs = ppr.run(block[:, j])
        single_iters.append(ppr.last_iterations)
        np.testing.assert_allclose(xb[:, j], xs, rtol=0, atol=1e-14)
    assert iters_b == max(single_iters)


def test_sums_to_one_and_nonnegative() -> None:
    a = random_graph(3)
    rng = np.random.default_rng(9)
    ppr = PPR(a, damping=0.5)
    x = ppr.run(seeds(rng, a.shape[0]) * 37.0)  # unnormalised reset is normalised inside
    assert x.min() >= 0
    assert abs(x.sum() - 1.0) < 1e-9
    assert 1 <= ppr.last_iterations <= 100


def test_damping_zero_returns_reset() -> None:
    a = random_graph(4)
    r = seeds(np.random.default_rng(1), a.shape[0])
    ppr = PPR(a, damping=0.0)
    np.testing.assert_allclose(ppr.run(r), r / r.sum(), atol=1e-15)
    assert ppr.last_iterations == 1


def test_bad_resets_raise() -> None:
    a = random_graph(0, n=30, n_isolated=3)
    ppr = PPR(a)
    with pytest.raises(ValueError, match="all zero"):
        ppr.run(np.zeros(30))
    block = np.ones((30, 3))
    block[:, 1] = 0
    with pytest.raises(ValueError, match=r"columns \[1\]"):
        ppr.run(block)
    with pytest.raises(ValueError, match="negative"):
        ppr.run(np.r_[-1.0, np.ones(29)])
    with pytest.raises(ValueError, match="NaN"):
        ppr.run(np.r_[np.nan, np.ones(29)])
    with pytest.raises(ValueError, match="shape"):
        ppr.run(np.ones(29))


def test_bad_adjacency_and_parameters_raise() -> None:
    with pytest.raises(ValueError, match="square"):
        PPR(sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="negative"):
        PPR(sp.csr_matrix(np.array([[0, -1.0], [-1.0, 0]])))
    with pytest.raises(ValueError, match="damping"):
        PPR(sp.csr_matrix((2, 2)), damping=1.5)
    with pytest.raises(ValueError, match="tol"):
        PPR(sp.csr_matrix((2, 2)), tol=0)


def test_input_matrix_not_mutated() -> None:
    # explicit zero + duplicate entry: cleaning them in place would change the caller's arrays
    data = np.array([2.0, 0.0, 1.0, 1.0, 2.0])
    indices = np.array([1, 2, 1, 0, 0])
    indptr = np.array([0, 3, 5, 5])
    a = sp.csr_matrix((data, indices, indptr), shape=(3, 3))
    snapshot = (a.data.copy(), a.indices.copy(), a.indptr.copy())
    x = PPR(a, tol=1e-12).run(np.array([1.0, 0, 0]))
    for got, want in zip((a.data, a.indices, a.indptr), snapshot):
        np.testing.assert_array_equal(got, want)
    assert x[2] == 0.0  # the explicit zero is not an edge


def test_max_iter_cap_warns(caplog: pytest.LogCaptureFixture) -> None:
    a = random_graph(5)
    ppr = PPR(a, damping=0.85, tol=1e-15, max_iter=3)
    with caplog.at_level(logging.WARNING, logger="hippograph.retrievers.ppr"):
        x = ppr.run(seeds(np.random.default_rng(0), a.shape[0]))
    assert ppr.last_iterations == 3 and not ppr.last_converged
    assert "did not converge" in caplog.text
    assert abs(x.sum() - 1) < 1e-9


# ---- forward push (local, sparse) against power iteration ----------------------------------
def _dense(n: int, nodes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    out = np.zeros(n)
    out[nodes] = scores
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("impl", ["frontier", "loop"])
def test_push_error_bounded_by_residual_and_monotone_in_eps(seed: int, impl: str) -> None:
    a = random_graph(seed)
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    rng = np.random.default_rng(200 + seed)
    r = seeds(rng, n)
    r[np.flatnonzero(deg == 0)[:1]] = 0.5  # a dangling seed sends its pushed mass back to r
    ppr = PPR(a, damping=0.5, tol=1e-13, max_iter=500)
    exact = ppr.run(r)
    errors = []
    for eps in (1e-2, 1e-3, 1e-4, 1e-5, 1e-7):
        nodes, scores = ppr.push(np.flatnonzero(r), r[r > 0], eps=eps, impl=impl)
        assert np.all(np.diff(nodes) > 0) and np.all(scores > 0)
        x = _dense(n, nodes, scores)
        assert np.all(x <= exact + 1e-12)  # push approaches the fixed point from below
        err = np.abs(exact - x).sum()
        assert err == pytest.approx(ppr.damping * ppr.last_residual, abs=1e-9)  # L1 error = d × residual left
        assert ppr.last_edges <= 1.0 / ((1 - ppr.damping) * eps) + 1  # ACL work bound
        errors.append(err)
    assert all(b <= a_ + 1e-12 for a_, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-4
    assert set(np.flatnonzero(x)) <= set(np.flatnonzero(exact))  # never mass outside the seeds' components


def test_push_touches_only_the_seeds_component() -> None:
    a = random_graph(1)
    n = a.shape[0]
    ppr = PPR(a, damping=0.5, tol=1e-13, max_iter=500)
    seed_node = int(np.flatnonzero(np.asarray(a.sum(axis=1)).ravel() > 0)[0])
    r = np.zeros(n)
    r[seed_node] = 1.0
    reach = set(np.flatnonzero(ppr.run(r)))
    nodes, _ = ppr.push([seed_node], [1.0], eps=1e-9)
    assert set(nodes.tolist()) <= reach and len(reach) < n  # other components untouched


@pytest.mark.parametrize("impl", ["frontier", "loop"])
def test_push_with_mask_walks_the_induced_subgraph_like_power_iteration(impl: str) -> None:
    # path 0 - 1 - 2 - 3 without node 1: node 0 keeps no neighbour, so it is dangling and its
    # pushed mass returns to the reset vector (itself); 2 and 3 are cut off
    a = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=float))
    keep = np.array([True, False, True, True])
    ppr = PPR(a, damping=0.5, tol=1e-13, max_iter=500)
    x = ppr.run(np.array([1.0, 0, 0, 0]), mask=keep)
    nodes, scores = ppr.push([0], [1.0], eps=1e-10, mask=keep, impl=impl)
    assert x[1:].max() == 0 and nodes.tolist() == [0]
    assert scores[0] == pytest.approx(x[0]) == pytest.approx(1.0)
    # random graphs: same error bound and convergence as without a mask, to `run(reset, mask)`
    for seed in range(3):
        g = random_graph(seed)
        n = g.shape[0]
        rng = np.random.default_rng(300 + seed)
        keep = rng.random(n) > 0.3
        r = seeds(rng, n, k=12)
        r[np.flatnonzero(keep)[:3]] = 0.5  # some seeds kept, some on excluded nodes (dropped)
        big = PPR(g, damping=0.5, tol=1e-13, max_iter=500)
        exact = big.run(r, mask=keep)
        for eps in (1e-3, 1e-5, 1e-9):
            nodes, scores = big.push(np.flatnonzero(r), r[r > 0], eps=eps, mask=keep, impl=impl)
            assert keep[nodes].all()  # an excluded node never gets mass
            est = _dense(n, nodes, scores)
            assert np.all(est <= exact + 1e-12)
            assert np.abs(exact - est).sum() == pytest.approx(big.damping * big.last_residual, abs=1e-9)
        np.testing.assert_allclose(est, exact, atol=1e-8)


def test_push_bad_input_raises() -> None:
    ppr = PPR(random_graph(0), damping=0.5)
    with pytest.raises(ValueError, match="eps"):
        ppr.push([0], [1.0], eps=0)
    with pytest.raises(ValueError, match="all zero"):
        ppr.push([0], [0.0])
    with pytest.raises(ValueError, match="node ids"):
        ppr.push([10_000], [1.0])
    with pytest.raises(ValueError, match="impl"):
        ppr.push([0], [1.0], impl="magic")
    with pytest.raises(ValueError, match="mask"):
        ppr.run(np.ones(ppr.n), mask=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        ppr.push([0], [1.0], mask=np.ones(ppr.n))  # not boolean
    with pytest.raises(ValueError, match="all zero"):
        ppr.push([0], [1.0], mask=np.arange(ppr.n) != 0)  # the only seed excluded


@pytest.mark.parametrize("seed", range(3))
def test_mask_runs_on_the_induced_subgraph(seed: int) -> None:
    """Excluded nodes score exactly 0 (no reset weight, no mass flows into or through them); kept
    nodes score what igraph gives on the graph with the excluded nodes removed."""
    a = random_graph(seed)
    n = a.shape[0]
    rng = np.random.default_rng(200 + seed)
    keep = rng.random(n) > 0.3
    r = seeds(rng, n, k=12)
    r[np.flatnonzero(keep)[:3]] = 0.5  # at least some kept seeds; some seeds are on excluded nodes
    ppr = PPR(a, damping=0.5, tol=1e-11, max_iter=500)
    x = ppr.run(r, mask=keep)
    assert np.all(x[~keep] == 0)
    ref = igraph_reference(a[keep][:, keep], r[keep], 0.5)
    assert np.abs(x[keep] - ref).sum() < 1e-8
    block = ppr.run(np.stack([r, r[::-1]], axis=1), mask=keep)
    assert np.allclose(block[:, 0], x, atol=1e-12) and np.all(block[~keep] == 0)
    assert np.abs(ppr.run(r) - igraph_reference(a, r, 0.5)).sum() < 1e-8  # the unmasked matrix is untouched
    with pytest.raises(ValueError, match="all zero"):
        ppr.run(np.where(keep, 0.0, 1.0), mask=keep)  # every seed excluded
