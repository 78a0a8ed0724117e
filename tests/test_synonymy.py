"""Approximate synonymy (indexers/synonymy.py) against the exact all-vs-all search."""
from __future__ import annotations

import numpy as np

from hippograph.indexers.graph_builder import embedding_synonyms
from hippograph.indexers.synonymy import synonym_edges


def _clustered(n_groups: int, per_group: int, dim: int, noise: float, seed: int) -> np.ndarray:
    """Unit vectors in tight groups (near-duplicate names) plus background spread."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim))
    x = np.repeat(centres, per_group, axis=0) + noise * rng.normal(size=(n_groups * per_group, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pairs(edges) -> set[tuple[int, int]]:
    return {(e.a, e.b) for e in edges}


def test_approximate_finds_the_exact_pairs_on_clustered_near_duplicates():
    x = _clustered(n_groups=1500, per_group=3, dim=48, noise=0.2, seed=1)
    names = [f"entity {i}" for i in range(len(x))]
    ids = np.arange(len(x))
    kw = dict(threshold=0.8, max_neighbors=100, min_chars=3)
    exact = _pairs(embedding_synonyms(x, names, ids, **kw))
    approx = synonym_edges(x, names, ids, exact_work=0, **kw)  # force the IVF path
    found = _pairs(approx)
    assert len(exact) > 3000  # the near-duplicate groups are linked
    assert len(found & exact) / len(exact) >= 0.98
    assert found <= exact  # nothing below the threshold sneaks in: scores are exact inner products
    assert all(e.score >= 0.8 for e in approx)


def test_new_vs_all_and_exact_below_the_work_threshold():
    x = _clustered(n_groups=200, per_group=2, dim=16, noise=0.1, seed=2)
    names = [f"entity {i}" for i in range(len(x))]
    new = np.arange(300, 400)
    kw = dict(threshold=0.8, max_neighbors=100, min_chars=3)
    small = synonym_edges(x, names, new, **kw)  # 100 × 400 products: exact path
    assert small == embedding_synonyms(x, names, new, **kw)
    approx = synonym_edges(x, names, new, exact_work=0, **kw)
    assert all(max(e.a, e.b) >= 300 for e in approx)  # every pair has a new endpoint
    assert len(_pairs(approx) & _pairs(small)) / len(_pairs(small)) >= 0.98


def test_ineligible_names_get_no_edges_on_the_approximate_path():
    x = _clustered(n_groups=300, per_group=2, dim=16, noise=0.05, seed=3)
    names = ["ab" if i % 2 else f"entity {i}" for i in range(len(x))]  # every odd entity too short
    edges = synonym_edges(x, names, np.arange(len(x)), threshold=0.8, max_neighbors=10, min_chars=3, exact_work=0)
    assert all(a % 2 == 0 and b % 2 == 0 for a, b in _pairs(edges))
