"""eval/synth_vectors.py: generated SPANN indexes stand in for built ones in the query-scale benchmark,
so they must hold every vector once per list it joined, be searchable like a built index, and be reused."""
from __future__ import annotations

import numpy as np

from eval.synth_vectors import HEAD_EVERY, ClusteredStream, assign_to_heads, generate_index, open_generated
from hippograph.format import open_embeddings


def test_stream_covers_every_position_once_in_whole_clusters():
    stream = ClusteredStream(5000, 7, seed=3, d=32)
    starts, total = [], 0
    for s0, x in stream.chunks(rows=700):
        starts.append(s0)
        assert s0 == total and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
        total += len(x)
    assert total == 5000 and set(starts) <= set(stream.bounds.tolist())  # chunks end at cluster bounds
    assert np.allclose(np.linalg.norm(stream.queries, axis=1), 1, atol=1e-5)


def test_assign_to_heads_picks_the_nearest_heads_of_the_window():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    heads = x[::HEAD_EVERY]
    lists, dist = assign_to_heads(x, 0, 0, heads, 2, 1)
    for i in range(40):
        own = i // HEAD_EVERY
        window = sorted({min(max(own + o, 0), len(heads) - 1) for o in (-1, 0, 1)})
        sims = {h: float(x[i] @ heads[h]) for h in window}
        best = sorted(window, key=lambda h: -sims[h])[:2]
        assert lists[i].tolist() == best and np.allclose(dist[i], [1 - sims[h] for h in best], atol=1e-6)
    assert (lists[::HEAD_EVERY, 0] == np.arange(len(heads))).all()  # a head is nearest its own list


def test_generated_index_is_searchable_and_reused(tmp_path):
    info = generate_index(tmp_path / "g", 6000, seed=5, n_queries=30)
    assert info["heads"] >= 6000 // HEAD_EVERY and info["entries"] >= 6000
    index, Q = open_generated(tmp_path / "g")
    assert len(index) == 6000 and Q.shape == (30, 384)
    X = np.asarray(open_embeddings(tmp_path / "g" / "emb.npy"))
    truth = np.argsort(-(Q @ X.T), axis=1)[:, :10]
    _, found = index.search(Q, 10, max_lists=64)
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) > 0.8
    stamp = (tmp_path / "g" / "emb.npy").stat().st_mtime_ns
    assert generate_index(tmp_path / "g", 6000, seed=5, n_queries=30) == info  # reused, not rewritten
    assert (tmp_path / "g" / "emb.npy").stat().st_mtime_ns == stamp
