"""Graph invariants: edge weights, families, specificity, synonymy thresholds."""
import numpy as np
import pytest

from hippograph.indexers.graph_builder import (
    EDGE_FACT,
    EDGE_MENTION,
    EDGE_SYNONYM,
    SynonymEdge,
    build_adjacency,
    embedding_synonyms,
    minhash_synonyms,
)
from hippograph.format import graph_from_upper, upper_graph


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_fact_edges_weighted_by_triple_count_and_symmetric():
    # entity 0-1 linked by three triples (in either direction), 1-2 by one; self loop ignored
    facts = np.array([[0, 1], [1, 0], [0, 1], [1, 2], [2, 2]])
    adj, kind = build_adjacency(3, 0, facts, np.zeros((0, 2)), [])
    dense = adj.toarray()
    assert dense[0, 1] == 3 and dense[1, 0] == 3
    assert dense[1, 2] == 1 and dense[2, 1] == 1
    assert dense[2, 2] == 0
    assert (abs(dense - dense.T) < 1e-12).all()
    assert set(kind.data.tolist()) == {EDGE_FACT}


def test_mentions_connect_passage_nodes_after_entities():
    mentions = np.array([[0, 0], [1, 0], [1, 1], [1, 1]])  # duplicate mention counted once
    adj, kind = build_adjacency(2, 2, np.zeros((0, 2)), mentions, [])
    d = adj.toarray()
    # passage 0 is node 2, passage 1 is node 3
    assert d[0, 2] == 1 and d[1, 2] == 1 and d[1, 3] == 1 and d[0, 3] == 0
    assert d[3, 1] == 1
    assert set(kind.data.tolist()) == {EDGE_MENTION}


def test_edge_kinds_align_with_weights():
    facts = np.array([[0, 1]])
    mentions = np.array([[0, 0]])
    syn = [SynonymEdge(1, 2, 0.9, "embedding")]
    adj, kind = build_adjacency(3, 1, facts, mentions, syn)
    coo, kcoo = adj.tocoo(), kind.tocoo()
    got = {(r, c): (w, k) for r, c, w, k in zip(coo.row, coo.col, coo.data, kcoo.data)}
    assert got[(0, 1)] == (1.0, EDGE_FACT)
    assert got[(0, 3)] == (1.0, EDGE_MENTION)
    assert got[(2, 1)][1] == EDGE_SYNONYM and got[(2, 1)][0] == pytest.approx(0.9)
    assert adj.nnz == kind.nnz == 6


def _stored_and_read(adjacency, kind, n_entities):
    files = upper_graph(adjacency.indptr, adjacency.indices, adjacency.data, kind.data, n_entities)
    return graph_from_upper(*files.values(), n_entities)


def test_specificity_is_inverse_passage_count():
    mentions = np.array([[0, 0], [0, 1], [0, 2], [1, 2], [1, 2]])
    adjacency, kind = build_adjacency(3, 3, np.zeros((0, 2)), mentions, [])
    s = _stored_and_read(adjacency, kind, 3)[2]
    assert s[0] == np.float32(1 / 3)  # float32 values, as stored before format 7
    assert s[1] == 1.0
    assert s[2] == 0.0  # never mentioned


def test_graph_stored_once_reads_back_value_for_value():
    rng = np.random.default_rng(5)
    n_e, n_p = 40, 25
    facts = rng.integers(0, n_e, size=(120, 2))
    mentions = np.stack([rng.integers(0, n_e, 200), rng.integers(0, n_p, 200)], axis=1)
    syn = [SynonymEdge(int(a), int(b), float(w), "embedding")
           for a, b, w in zip(rng.integers(0, n_e, 30), rng.integers(0, n_e, 30), rng.uniform(0.7, 1, 30)) if a != b]
    adjacency, kind = build_adjacency(n_e, n_p, facts, mentions, syn)
    files = upper_graph(adjacency.indptr, adjacency.indices, adjacency.data, kind.data, n_e)
    assert len(files["upper_indices.npy"]) * 2 == adjacency.nnz
    assert len(files["pair_weights.npy"]) == int((files["upper_indices.npy"] < n_e).sum())
    full, kinds, _ = graph_from_upper(*files.values(), n_e)
    assert np.array_equal(full.indptr, adjacency.indptr) and np.array_equal(full.indices, adjacency.indices)
    assert np.array_equal(full.data, adjacency.data.astype(np.float32).astype(np.float64))
    assert np.array_equal(kinds, kind.data)


def test_embedding_synonyms_threshold_and_new_vs_all():
    emb = _unit([[1, 0, 0], [0.95, 0.05, 0], [0, 1, 0], [0.5, 0.5, 0.7], [1, 0.01, 0]])
    names = ["barack obama", "obama barack", "paris", "xy", "b obama"]
    edges = embedding_synonyms(emb, names, np.array([4]), threshold=0.8, max_neighbors=100, min_chars=3)
    pairs = {(e.a, e.b) for e in edges}
    assert pairs == {(0, 4), (1, 4)}  # only pairs touching the new entity, only above 0.8
    assert all(e.score >= 0.8 for e in edges)
    # "xy" has too few alphanumeric characters to be linked even when identical
    emb2 = _unit([[1, 0], [1, 0]])
    assert embedding_synonyms(emb2, ["xy", "xy "], np.array([0, 1]), threshold=0.8, max_neighbors=5, min_chars=3) == []


def test_embedding_synonyms_respects_max_neighbors():
    emb = _unit(np.ones((6, 4)) + np.eye(6, 4) * 0.01)
    names = [f"entity {i}" for i in range(6)]
    edges = embedding_synonyms(emb, names, np.array([0]), threshold=0.5, max_neighbors=2, min_chars=3)
    assert len(edges) == 2


def test_minhash_links_surface_variants_only():
    names = ["university of drumlow", "the university of drumlow", "port meriden", "kessel shipworks"]
    edges = minhash_synonyms(names, [1], threshold=0.5, num_perm=128, min_chars=3)
    assert {(e.a, e.b) for e in edges} == {(0, 1)}
    assert minhash_synonyms(names, [1], threshold=0, num_perm=128, min_chars=3) == []


def test_vectorised_minhash_matches_datasketch_lsh():
    """The numpy banding in lsh_synonyms proposes exactly the pairs datasketch's MinHashLSH does."""
    import random

    from datasketch import MinHash, MinHashLSH

    from hippograph.indexers.graph_builder import _shingles, synonymy_eligible

    rnd = random.Random(7)
    stems = ["drumlow", "meriden", "kessel", "halvenne", "wren relay", "ashcombe", "tarsk"]
    names = sorted({f"{rnd.choice(['', 'the ', 'old ', 'new '])}{rnd.choice(stems)}{rnd.choice(['', ' port', ' university', 's'])}"
                    for _ in range(200)})
    new = list(range(0, len(names), 3))
    got = {(e.a, e.b): e.score for e in minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3)}

    lsh = MinHashLSH(threshold=0.6, num_perm=64)
    sk = {}
    for i, n in enumerate(names):
        if synonymy_eligible(n, 3):
            m = MinHash(num_perm=64, seed=1)
            m.update_batch(list(_shingles(n)))
            sk[i] = m
            lsh.insert(i, m)
    want = {}
    for i in new:
        if i in sk:
            for j in lsh.query(sk[i]):
                jac = float(sk[i].jaccard(sk[j]))
                if j != i and jac >= 0.6:
                    want[(min(i, j), max(i, j))] = jac
    assert want and got == want


def _place_names(seed: int) -> list[str]:
    """Up to 300 distinct names built from a few stems: many near-duplicate pairs for MinHash."""
    import random

    rnd = random.Random(seed)
    stems = ["drumlow", "meriden", "kessel", "halvenne", "wren relay", "ashcombe", "tarsk"]
    return sorted({f"{rnd.choice(['', 'the ', 'old '])}{rnd.choice(stems)}{rnd.choice(['', ' port', 's'])}"
                   for _ in range(300)})


def test_lsh_band_keys_hashed_in_chunks_give_the_same_pairs(monkeypatch):
    """Band keys are computed a chunk of signature rows at a time; the chunk size changes nothing."""
    from hippograph.indexers import graph_builder

    names = _place_names(9)
    new = list(range(0, len(names), 2))
    want = minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3)
    monkeypatch.setattr(graph_builder, "_BAND_CHUNK", 5)
    got = minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3)
    assert len(want) > 20 and got == want


def test_rows_sharing_a_key_with_new_rows_match_a_brute_force_search():
    """`lsh_pairs` looks only at rows sharing a band key with a new row (a table over the keys' low bits,
    then an exact check): the rows are those of the all-pairs definition, also when many keys agree in
    their low bits only."""
    from hippograph.indexers.graph_builder import _KEY_FILTER_BITS, _sharing_a_key

    rng = np.random.default_rng(7)
    for spread in (50, 1 << 32):
        col = rng.integers(0, spread, size=5000, dtype=np.uint64).astype(np.uint32)
        col[::3] = (col[::3] & np.uint32((1 << _KEY_FILTER_BITS) - 1)) | np.uint32(1 << 28)  # low-bit twins
        new_rows = rng.choice(5000, size=40, replace=False)
        eligible = rng.random(5000) < 0.8
        seen = np.zeros(1 << _KEY_FILTER_BITS, dtype=bool)
        got = _sharing_a_key(col, new_rows, eligible, seen)
        expected = np.flatnonzero(np.isin(col, col[new_rows]) & eligible)
        assert np.array_equal(got, expected) and got.size >= eligible[new_rows].sum()
        assert not seen.any(), "the table is left empty for the next band"


def test_existing_pairs_as_an_array_skip_what_a_set_skips():
    """The merge passes its embedding edges to `lsh_pairs` as an (m, 2) array (millions of pairs
    stay numbers); the pairs it skips are those the same pairs as a set skip."""
    names = _place_names(11)
    new = list(range(0, len(names), 2))
    every = minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3)
    known = {(e.a, e.b) for e in every[::3]} | {(0, len(names) + 5)}  # a third of them, and a pair never proposed
    as_set = minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3, existing=known)
    as_array = minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3,
                                existing=np.array(sorted(known), dtype=np.int64))
    assert len(every) > 20 and as_set == as_array == [e for e in every if (e.a, e.b) not in known]
    assert minhash_synonyms(names, new, threshold=0.6, num_perm=64, min_chars=3,
                            existing=np.zeros((0, 2), dtype=np.int64)) == every
