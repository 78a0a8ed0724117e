"""Approximate synonymy (indexers/synonymy.py) against the exact all-vs-all search."""
from __future__ import annotations

import numpy as np

from hippograph.indexers.graph_builder import embedding_synonyms
from hippograph.indexers import synonymy
from hippograph.indexers.synonymy import synonym_edges
from hippograph.tables import synonym_kind_name


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


class _CountingRows:
    """A row-indexable matrix that records how many rows each read asked for."""

    def __init__(self, x: np.ndarray):
        self.x, self.shape, self.reads = x, x.shape, []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, ids):
        ids = np.asarray(ids)
        self.reads.append(ids.size)
        return self.x[ids]


def test_streamed_exact_search_equals_the_in_memory_one_and_reads_chunks(monkeypatch):
    """Entities are read a chunk at a time, and the edges (scores to the bit, neighbour caps
    included) are those of one in-memory IndexFlatIP over every entity."""
    x = _clustered(n_groups=120, per_group=6, dim=24, noise=0.15, seed=4)
    names = [f"entity {i}" for i in range(len(x))]
    names[5] = "ab"  # ineligible: never linked
    kw = dict(threshold=0.8, max_neighbors=3, min_chars=3)  # groups of 6: the cap decides
    want = embedding_synonyms(x, names, np.arange(len(x)), **kw)
    monkeypatch.setattr(synonymy, "BASE_CHUNK", 50)
    monkeypatch.setattr(synonymy, "EXACT_QUERY_BATCH", 64)
    rows = _CountingRows(x)
    got = synonym_edges(rows, names, np.arange(len(x)), **kw)
    assert max(rows.reads) <= 64 and len(rows.reads) > 10
    assert want and got == want
    assert not any(5 in (e.a, e.b) for e in got)


def test_cell_search_reads_bounded_blocks_and_does_not_depend_on_them(monkeypatch):
    x = _clustered(n_groups=800, per_group=3, dim=32, noise=0.2, seed=5)
    names = [f"entity {i}" for i in range(len(x))]
    new = np.arange(600, len(x))
    kw = dict(threshold=0.8, max_neighbors=100, min_chars=3, exact_work=0)
    whole = synonym_edges(x, names, new, **kw)
    monkeypatch.setattr(synonymy, "BASE_CHUNK", 300)
    monkeypatch.setattr(synonymy, "QUERY_BLOCK", 97)
    monkeypatch.setattr(synonymy, "HITS_COMPACT", 50)  # trimming to the best per query on the way
    rows = _CountingRows(x)
    blocked = synonym_edges(rows, names, new, **kw)
    assert _pairs(blocked) == _pairs(whole) and len(whole) > 1000
    # scores are BLAS products over other row counts: equal up to float32 rounding
    np.testing.assert_allclose([e.score for e in blocked], [e.score for e in whole], rtol=0, atol=1e-6)
    # the k-means sample (√n cells × TRAIN_PER_CELL), then chunks, query blocks and single cells
    assert rows.reads[0] <= synonymy.TRAIN_PER_CELL * np.sqrt(len(x)) < len(x)
    assert max(rows.reads[1:]) <= 300
    exact = _pairs(synonym_edges(x, names, new, threshold=0.8, max_neighbors=100, min_chars=3))
    assert len(_pairs(whole) & exact) / len(exact) >= 0.98


def test_eligible_mask_stands_in_for_names():
    x = _clustered(n_groups=100, per_group=2, dim=16, noise=0.05, seed=6)
    names = ["ab" if i % 3 == 0 else f"entity {i}" for i in range(len(x))]
    eligible = np.array([i % 3 != 0 for i in range(len(x))])
    kw = dict(threshold=0.8, max_neighbors=10, min_chars=3)
    assert synonym_edges(x, None, np.arange(len(x)), eligible=eligible, **kw) == synonym_edges(x, names, np.arange(len(x)), **kw)


def test_build_streams_names_signatures_and_vectors_in_chunks(tmp_path, monkeypatch):
    """Tiny chunks for names, MinHash signatures, band keys and entity vectors build the same
    synonymy edges and signatures as the defaults (the banding itself: test_graph_builder)."""
    import sqlite3

    from hippograph import Config, HippoGraph
    from hippograph.indexers import graph_builder, merge

    docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate([
        ("Alpha Corp", "Alpha Corp was founded by Jane Doe in Paris. Alpha Corporation makes glass lenses."),
        ("Beta Labs", "Beta Labs was founded by Jane Doe in Berlin. The Beta Laboratory builds telescopes."),
        ("Gamma Works", "Gamma Works was founded by Omar Reyes in Lisbon. Gamma Works repairs ships for Alpha Corp."),
        ("Jane Doe", "Jane Doe is an engineer from Paris. Doe founded Alpha Corp and Beta Labs."),
    ])]

    def build(name):
        hg = HippoGraph.build(docs, tmp_path / name, Config(embedder="tfidf", synonymy_threshold=0.9, minhash_threshold=0.4))
        gen = hg.dir.generation_path(hg.manifest)
        hg.close()
        with sqlite3.connect(gen / "meta.sqlite") as conn:
            edges = conn.execute("SELECT * FROM synonyms ORDER BY 1, 2, 4").fetchall()
        return edges, np.load(gen / "graph" / "minhash_bands.npy")

    want_edges, want_sig = build("default")
    monkeypatch.setattr(merge, "SIGNATURE_CHUNK", 2)
    monkeypatch.setattr(merge, "INSERT_BLOCK", 2)
    monkeypatch.setattr(graph_builder, "_BAND_CHUNK", 3)
    monkeypatch.setattr(synonymy, "BASE_CHUNK", 4)
    got_edges, got_sig = build("chunked")
    assert want_edges and got_edges == want_edges
    np.testing.assert_array_equal(got_sig, want_sig)


def test_minhash_pairs_of_old_and_new_entities_from_stored_band_keys(tmp_path, monkeypatch):
    """The index stores band keys, not signatures: an add pairs a new name with an old one through
    them, recomputing only the old candidates' signatures from their names, and ends with the
    synonymy rows and band keys of a scratch build."""
    import sqlite3

    from hippograph import Config, HippoGraph
    from hippograph.indexers import graph_builder

    docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate([
        ("Kessel Shipworks", "Kessel Shipworks was founded by Orla Vance in Ostrel."),
        ("Drumlow", "Drumlow lies on the Wren river. Orla Vance studied in Drumlow."),
        ("Kessel Shipwork", "The Kessel Shipwork yard repairs ferries for Drumlow Port."),
        ("Orla", "Orla M. Vance moved from Ostrel to Drumlow Port in 1990."),
    ])]
    config = Config(embedder="tfidf", synonymy_threshold=0.99, minhash_threshold=0.5)
    recomputed: list[int] = []
    real = graph_builder.minhash_signatures

    def counting(names, eligible, num_perm):
        recomputed.append(len(names))
        return real(names, eligible, num_perm)

    def tables(path):
        with HippoGraph.open(path) as hg:
            gen = hg.dir.generation_path(hg.manifest)
        with sqlite3.connect(gen / "meta.sqlite") as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx")]
            edges = [(a, b, w, synonym_kind_name(k)) for a, b, w, k in
                     conn.execute("SELECT a, b, round(score, 6), kind FROM synonyms ORDER BY a, b, kind")]
        return names, edges, np.load(gen / "graph" / "minhash_bands.npy")

    from hippograph.indexers import merge
    # MinHash only: a TF-IDF embedder fitted on two documents links other pairs by embedding,
    # and LSH skips pairs an embedding edge already links
    none = (np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0),)
    monkeypatch.setattr(merge, "synonym_pairs", lambda *a, **k: none)
    HippoGraph.build(docs, tmp_path / "scratch", config).close()
    HippoGraph.build(docs[:2], tmp_path / "grown", config).close()
    old_names = tables(tmp_path / "grown")[0]
    monkeypatch.setattr(merge, "minhash_signatures", counting)
    with HippoGraph.open(tmp_path / "grown") as hg:
        hg.add(docs[2:])
    names, edges, bands = tables(tmp_path / "grown")
    want_names, want_edges, want_bands = tables(tmp_path / "scratch")
    assert sorted(names) == sorted(want_names)
    # rows are numbered in arrival order: compare by name
    by_name = lambda ns, es: {(ns[a], ns[b], s, k) for a, b, s, k in es}  # noqa: E731
    assert by_name(names, edges) == by_name(want_names, want_edges)
    assert np.array_equal(bands[np.argsort(names)], want_bands[np.argsort(want_names)])
    crossing = [(names[a], names[b]) for a, b, _, k in edges
                if k == "minhash" and (names[a] in old_names) != (names[b] in old_names)]
    assert crossing, "no MinHash edge between an old and a new entity"
    # signatures were computed for the new names in one pass, then for old candidates only
    assert recomputed[0] == len(names) - len(old_names) and sum(recomputed[1:]) < len(old_names)


def _count_sorts(monkeypatch) -> dict[str, int]:
    """Counts triples handed to `_Hits._keep` and triples re-sorted by `_Hits._best`."""
    seen = {"kept": 0, "sorted": 0}
    keep, best = synonymy._Hits._keep, synonymy._Hits._best

    def counting_keep(self, q, e, s):
        seen["kept"] += int(q.size)
        keep(self, q, e, s)

    def counting_best(self):
        seen["sorted"] += sum(int(q.size) for q in self.q)
        return best(self)

    monkeypatch.setattr(synonymy._Hits, "_keep", counting_keep)
    monkeypatch.setattr(synonymy._Hits, "_best", counting_best)
    return seen


def test_hits_resort_each_triple_a_bounded_number_of_times(monkeypatch):
    """Kept triples beyond the compaction trigger (many queries × `cap`) must not be re-sorted on
    every add: the old fixed trigger did, which took hours on TF-IDF entity names."""
    monkeypatch.setattr(synonymy, "HITS_COMPACT", 100)
    monkeypatch.setattr(synonymy, "TRIM_SCORES", 30, raising=False)  # over-full rows trimmed 3 at a time
    seen = _count_sorts(monkeypatch)
    rng = np.random.default_rng(7)
    hits, want = synonymy._Hits(cap=5), {}
    for call in range(200):  # 20 new queries × 10 entities per call, all above the threshold
        q_ids = np.arange(call * 20, call * 20 + 20)
        e_ids = rng.choice(1000, 10, replace=False)
        scores = rng.choice([0.9, 0.95, 1.0], size=(20, 10)).astype(np.float32)  # ties, decided by id
        hits.add(scores, q_ids, e_ids, threshold=0.8)
        for r, q in enumerate(q_ids.tolist()):
            want[q] = sorted(zip((-scores[r]).tolist(), e_ids.tolist()))[:5]
    assert seen["sorted"] <= 3 * 200 * 20 * 10  # linear in the triples added (old: ≈ 100×)
    q, e, s = hits.triples()
    got = {}
    for qi, ei, si in zip(q.tolist(), e.tolist(), s.tolist()):
        got.setdefault(qi, []).append((-si, ei))
    assert got == {k: [(float(np.float32(a)), b) for a, b in v] for k, v in want.items()}


def test_degenerate_vectors_give_bounded_triples_and_matrices(monkeypatch):
    """TF-IDF-like input: a crowd of identical vectors, all-zero vectors and a few groups. Every
    query hands at most `cap` triples per score matrix to the hits, and no score matrix exceeds
    `CELL_PRODUCTS` (the old code kept crowd² triples and scored a whole cell at once)."""
    x = np.concatenate([np.repeat(_clustered(1, 1, 32, 0.0, seed=8), 1500, axis=0),
                        np.zeros((300, 32), np.float32), _clustered(100, 3, 32, 0.1, seed=9)])
    names = [f"entity {i}" for i in range(len(x))]
    monkeypatch.setattr(synonymy, "CELL_PRODUCTS", 50_000, raising=False)
    seen = _count_sorts(monkeypatch)
    shapes = []
    add = synonymy._Hits.add

    def recording_add(self, scores, q, e, threshold):
        shapes.append(scores.shape)
        add(self, scores, q, e, threshold)

    monkeypatch.setattr(synonymy._Hits, "add", recording_add)
    edges = synonym_edges(x, names, np.arange(len(x)), threshold=0.8, max_neighbors=5, min_chars=3, exact_work=0)
    cap = 6  # max_neighbors + the query itself
    assert seen["kept"] <= sum(rows for rows, _ in shapes) * cap
    assert max(rows * cols for rows, cols in shapes) <= 50_000
    assert len(edges) <= len(x) * 5
    degree = np.bincount([i for e in edges for i in (e.a, e.b)], minlength=len(x))
    assert (degree[:1500] >= 5).all() and not degree[1500:1800].any()  # the crowd linked, zeros never


def test_eligibility_counts_ascii_letters_and_digits_only():
    import re

    from hippograph.indexers.graph_builder import synonymy_eligible

    names = ["ab", "abc", "a-b-c", "ABC", "ñandú", "éab", "x1", "x12", "日本語", "a\ud800bc", "", "  9 9 9 ", "ab\u00e9c"]
    for name in names:
        expected = len(re.findall(r"[a-z0-9]", name)) >= 3
        assert synonymy_eligible(name, 3) is expected, name
