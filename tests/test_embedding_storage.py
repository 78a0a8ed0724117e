"""Compact embedding storage (hippograph/format.py, "Embedding storage"): int8 + per-row scales by
default, float16 / float32 on request; version-1 indexes (float32 files) still open and update."""
from __future__ import annotations

import json
import shutil
import os
from pathlib import Path

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.errors import IndexCorruptError
from hippograph.format import (FORMAT_VERSION, RowWriter, embedding_path, open_embeddings, quantize, scale_path,
                               write_embeddings_file)

from .conftest import DATA


def _unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("storage,bytes_per_value", [("int8", 1), ("float16", 2), ("float32", 4)])
def test_round_trip_within_the_storage_precision(tmp_path: Path, storage: str, bytes_per_value: int):
    x = _unit_rows(300, 64)
    x[7] = 0.0  # an all-zero row has scale 0 and reads back as zeros
    path = tmp_path / "facts.npy"
    write_embeddings_file(path, x, storage)
    emb = open_embeddings(path)
    assert emb.shape == x.shape and len(emb) == 300 and emb.storage == storage
    assert path.stat().st_size < 300 * 64 * bytes_per_value + 200
    assert scale_path(path).is_file() == (storage == "int8")
    y = np.asarray(emb)
    assert y.dtype == np.float32
    tol = {"int8": 0.5 * np.abs(x).max(axis=1, keepdims=True) / 127, "float16": 1e-3, "float32": 0.0}[storage]
    assert np.all(np.abs(y - x) <= tol + 1e-7)
    cos = (y * x).sum(1)[np.arange(300) != 7] / np.linalg.norm(y, axis=1)[np.arange(300) != 7]
    assert cos.min() > 0.9995
    assert not y[7].any()
    # indexing by slice, by row array and by one row agrees with the whole matrix
    rows = np.array([5, 0, 299, 7])
    assert np.array_equal(emb[rows], y[rows]) and np.array_equal(emb[10:20], y[10:20]) and np.array_equal(emb[3], y[3])


def test_stored_rows_are_copied_not_requantised(tmp_path: Path):
    x = _unit_rows(50, 16, seed=1)
    write_embeddings_file(tmp_path / "a.npy", x, "int8")
    a = open_embeddings(tmp_path / "a.npy")
    keep = np.array([3, 1, 4, 15, 9, 26])
    w = RowWriter(tmp_path / "b.npy", len(keep) + 2, 16, "int8")
    w.append_stored(a, keep)
    w.append(x[:2])
    w.close()
    b = open_embeddings(tmp_path / "b.npy")
    assert np.array_equal(b.codes[: len(keep)], a.codes[keep]) and np.array_equal(b.scales[: len(keep)], a.scales[keep])
    assert np.array_equal(b.codes[len(keep):], quantize(x[:2], "int8")[0])
    # a float32 source written into int8 storage is converted; nothing is left under temp names
    write_embeddings_file(tmp_path / "c.npy", x, "float32")
    w = RowWriter(tmp_path / "d.npy", 50, 16, "int8")
    w.append_stored(open_embeddings(tmp_path / "c.npy"))
    w.close()
    assert np.array_equal(open_embeddings(tmp_path / "d.npy").codes, a.codes)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    write_embeddings_file(tmp_path / "e.npy", np.zeros((0, 16), np.float32), "int8")  # an empty granularity
    assert open_embeddings(tmp_path / "e.npy").shape == (0, 16)


@pytest.mark.parametrize("storage", ["int8", "float16", "float32"])
def test_old_rows_copied_file_to_file_equal_the_source(tmp_path: Path, storage: str, monkeypatch):
    """A grown file's old rows are copied by the kernel (or by reads and writes where it cannot),
    byte for byte, codes and scales, followed by the new rows."""
    from hippograph import format as fmt

    x = _unit_rows(70, 12, seed=3)
    write_embeddings_file(tmp_path / "a.npy", x, storage)
    a = open_embeddings(tmp_path / "a.npy")
    copies = []
    real_copy = fmt._copy_range
    monkeypatch.setattr(fmt, "_copy_range", lambda *args: (copies.append(args), real_copy(*args)))
    for name, copy_file_range in (("kernel", os.copy_file_range), ("plain", None)):
        if copy_file_range is None:
            monkeypatch.delattr(os, "copy_file_range")
        w = fmt.RowWriter(tmp_path / f"{name}.npy", 70 + 3, 12, storage)
        w.append_stored(a)
        w.append(x[:3])
        w.close()
        b = open_embeddings(tmp_path / f"{name}.npy")
        assert np.array_equal(b.codes[:70], a.codes)
        assert (b.scales is None) == (a.scales is None)
        if a.scales is not None:
            assert np.array_equal(b.scales[:70], a.scales)
        assert np.array_equal(np.asarray(b[70:]), np.asarray(open_embeddings(tmp_path / "a.npy")[:3]))
    assert len(copies) == 2 * (2 if storage == "int8" else 1)  # codes (and scales) as bytes, both times
    w = fmt.RowWriter(tmp_path / "bad.npy", 5, 8, storage)
    with pytest.raises(ValueError):
        w.append_stored(a)  # another dimension: not copied as bytes, and refused
    w.abort()


def test_damaged_storage_is_one_clear_error(tmp_path: Path):
    write_embeddings_file(tmp_path / "entities.npy", _unit_rows(10, 8), "int8")
    scale_path(tmp_path / "entities.npy").unlink()
    with pytest.raises(IndexCorruptError, match=r"entities\.scale\.npy: scale file .* missing"):
        open_embeddings(tmp_path / "entities.npy")
    np.save(tmp_path / "entities.scale.npy", np.ones(9, np.float32))
    with pytest.raises(IndexCorruptError, match="expected float32 \\(10,\\)"):
        open_embeddings(tmp_path / "entities.npy")
    np.save(tmp_path / "facts.npy", np.ones((3, 4), np.int64))
    with pytest.raises(IndexCorruptError, match="facts.npy: embeddings have dtype int64"):
        open_embeddings(tmp_path / "facts.npy")


# ---- whole indexes --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def float32_index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("f32") / "sample"
    HippoGraph.build(DATA / "corpus", path, Config(embedder="tfidf", embedding_storage="float32"))
    return path


def _embedding_bytes(index: Path) -> int:
    hg = HippoGraph.open(index)
    gen = hg.dir.generation_path(hg.manifest)
    hg.close()
    return sum(p.stat().st_size for p in (gen / "embeddings").iterdir())


def test_int8_index_retrieves_what_the_float32_index_retrieves(sample_index: Path, float32_index: Path,
                                                               sample_questions: list[dict]):
    questions = [q["question"] for q in sample_questions]
    with HippoGraph.open(sample_index) as a, HippoGraph.open(float32_index) as b:
        assert a.manifest.format_version == FORMAT_VERSION
        assert a.stats()["passages"] == b.stats()["passages"]
        for mode in ("hybrid", "dense", "ppr"):
            ra, rb = a.retrieve_many(questions, top_k=5, mode=mode), b.retrieve_many(questions, top_k=5, mode=mode)
            same_set = 0
            for x, y in zip(ra, rb):
                # quantisation moves scores by ~1e-3: clear winners stay, near-ties may swap
                assert [h.passage_id for h in x[:2]] == [h.passage_id for h in y[:2]], mode
                same_set += {h.passage_id for h in x} == {h.passage_id for h in y}
                if mode == "dense":  # raw cosines (fused scores are normalised over the candidates)
                    scores = {h.passage_id: h.score for h in y}
                    assert all(abs(h.score - scores[h.passage_id]) <= 0.01 for h in x if h.passage_id in scores)
            assert same_set >= 0.9 * len(questions), (mode, same_set)
            gold = [set(q["gold"]) for q in sample_questions]
            hits_a = sum(len(g & {h.title for h in x}) for g, x in zip(gold, ra))
            hits_b = sum(len(g & {h.title for h in y}) for g, y in zip(gold, rb))
            assert abs(hits_a - hits_b) <= 1, (mode, hits_a, hits_b)
    assert _embedding_bytes(sample_index) < 0.3 * _embedding_bytes(float32_index)


def _as_version_1(src: Path, dst: Path) -> Path:
    """A copy of a float32 index as the previous format wrote it: format_version 1, 32-bit MinHash."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["format_version"] = 1
    manifest["config"].pop("embedding_storage", None)
    gen = dst / manifest["generation"]
    bands = gen / "graph" / "minhash_bands.npy"
    if bands.is_file():  # v1 stored each entity's full 32-bit signature instead
        bands.unlink()
        manifest["checksums"].pop("graph/minhash_bands.npy", None)
        np.save(gen / "graph" / "minhash.npy", _signatures(gen).astype(np.uint32))
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _signatures(gen: Path) -> np.ndarray:
    """Full MinHash signatures of a generation's entity names, as a scratch build computes them."""
    import sqlite3

    from hippograph.indexers.graph_builder import minhash_signatures, synonymy_eligible

    with sqlite3.connect(gen / "meta.sqlite") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx")]
    config = Config()
    eligible = np.array([synonymy_eligible(n, config.synonymy_min_chars) for n in names], dtype=bool)
    return minhash_signatures(names, eligible, config.minhash_num_perm)


def test_version_1_index_opens_and_grows(float32_index: Path, sample_questions: list[dict], tmp_path: Path):
    old = _as_version_1(float32_index, tmp_path / "v1")
    with HippoGraph.open(old) as hg:
        assert hg.manifest.format_version == 1
        gen = hg.dir.generation_path(hg.manifest)
        assert open_embeddings(embedding_path(gen, "facts")).storage == "float32"
        before = [h.passage_id for h in hg.retrieve(sample_questions[0]["question"], top_k=3)]
        assert before
        report = hg.add([{"id": "new-doc", "title": "Orla Vance",
                          "text": "Orla Vance founded Kessel Shipworks in Ostrel. Orla Vance studied in Drumlow."}])
        assert report.added["documents"] == 1
        assert hg.manifest.format_version == FORMAT_VERSION
        gen = hg.dir.generation_path(hg.manifest)
        grown = open_embeddings(embedding_path(gen, "entities"))  # grew: rewritten in the configured storage
        assert grown.storage == "int8" and len(grown) == hg.stats()["entities"]
        from hippograph.indexers.graph_builder import band_keys, stored_signatures

        # the v1 signatures became band keys, the same a scratch build stores for these names
        keys = np.load(gen / "graph" / "minhash_bands.npy")
        want = band_keys(stored_signatures(_signatures(gen)), Config().minhash_threshold)
        assert keys.dtype == np.uint32 and np.array_equal(keys, want)
        assert not (gen / "graph" / "minhash.npy").exists()
        assert hg.retrieve(sample_questions[0]["question"], top_k=3)
        assert hg.dir.verify() == []


def test_newer_format_is_refused_in_one_line(float32_index: Path, tmp_path: Path):
    dst = tmp_path / "future"
    shutil.copytree(float32_index, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (dst / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="newer than this hippograph supports") as exc:
        HippoGraph.open(dst)
    assert "\n" not in str(exc.value)


# ---- SPANN posting lists without vector copies ----------------------------------------------------
def test_spann_posting_lists_of_ids_search_like_stored_vectors(tmp_path: Path):
    from hippograph.indexers.spann import SpannIndex, VectorsById

    x, new = _unit_rows(3000, 32, seed=3), _unit_rows(300, 32, seed=4)
    both = np.vstack([x, new])
    params = dict(sketch_bits=0, replica_count=4, seed=1)
    a = SpannIndex.build(x, path=tmp_path / "a", **params)
    SpannIndex.build(x, path=tmp_path / "b", store_vectors=False, **params)
    disk = lambda p: sum(f.stat().st_size for f in p.iterdir() if f.is_file())
    assert not list((tmp_path / "b").glob("postings.*.f32"))
    assert disk(tmp_path / "b") < disk(tmp_path / "a") - 3 * x.nbytes  # ≈ replica_count copies of x saved
    with pytest.raises(IndexCorruptError, match="keep no vectors"):
        SpannIndex.open(tmp_path / "b")
    b = SpannIndex.open(tmp_path / "b", vectors=VectorsById(both))  # ids 0..3299 are rows of `both`
    q = _unit_rows(40, 32, seed=5)

    def same() -> None:
        sa, ia = a.search(q, 10, max_lists=8)
        sb, ib = b.search(q, 10, max_lists=8)
        assert np.array_equal(ia, ib) and np.allclose(sa, sb, atol=1e-6)

    same()
    ids = np.arange(3000, 3300)
    a.add(new, ids)
    b.add(new, ids)  # rewritten lists (and splits) read their old entries by id
    same()
    a.remove(np.arange(0, 900))
    b.remove(np.arange(0, 900))
    same()
    a.compact()
    b.compact()
    same()
    assert not list((tmp_path / "b").glob("postings.*.f32"))


def test_engine_spann_indexes_read_the_embeddings_file(tmp_path: Path, sample_questions: list[dict]):
    hg = HippoGraph.build(DATA / "corpus", tmp_path / "idx", Config(embedder="tfidf", spann_min_vectors=200))
    gen = hg.dir.generation_path(hg.manifest)
    kinds = {g: v["kind"] for g, v in hg.manifest.lifecycle["vectors"].items()}
    assert kinds["facts"] == "spann" and kinds["passages"] == "flat"
    assert not list((gen / "vectors").rglob("postings.*.f32"))
    hits = hg.retrieve(sample_questions[0]["question"], top_k=5, mode="dense")
    assert hits
    hg.close()


def test_stored_minhash_signatures_find_the_pairs_full_ones_find():
    """8-bit MinHash (what the index stores) proposes the pairs of full signatures, with the
    chance agreement taken out of the Jaccard estimate."""
    import random

    from hippograph.indexers.graph_builder import (lsh_synonyms, minhash_signatures, stored_signatures,
                                                   synonymy_eligible)

    rnd = random.Random(3)
    stems = ["drumlow", "meriden", "kessel shipworks", "halvenne", "wren relay", "ashcombe", "tarsk", "corran"]
    names = sorted({f"{rnd.choice(['', 'the ', 'old ', 'new '])}{rnd.choice(stems)}{rnd.choice(['', ' port', 's', ' river'])}"
                    for _ in range(300)})
    eligible = np.array([synonymy_eligible(n, 3) for n in names])
    full = minhash_signatures(names, eligible, 128)
    new = np.arange(0, len(names), 2)
    a = {(e.a, e.b): e.score for e in lsh_synonyms(full, eligible, new, threshold=0.7, existing=set())}
    small = stored_signatures(full)
    assert small.dtype == np.uint8 and np.array_equal(stored_signatures(small), small)
    b = {(e.a, e.b): e.score for e in lsh_synonyms(small, eligible, new, threshold=0.7, existing=set())}
    assert a and len(set(a) ^ set(b)) <= max(1, len(a) // 20)  # near-threshold pairs may differ
    common = set(a) & set(b)
    assert max(abs(a[p] - b[p]) for p in common) < 0.08


@pytest.mark.parametrize("storage", ["int8", "float16", "float32"])
def test_rows_dot_scores_like_the_dequantised_rows(tmp_path: Path, storage: str):
    """`Embeddings.rows_dot` (a search's scoring without dequantising) equals reading the rows and
    multiplying, to float rounding; `VectorsById.ids_dot` maps ids to rows and scores ids without a row 0."""
    from hippograph.indexers.spann import VectorsById

    x = _unit_rows(500, 48, seed=11)
    write_embeddings_file(tmp_path / "e.npy", x, storage)
    emb = open_embeddings(tmp_path / "e.npy")
    q = _unit_rows(1, 48, seed=12)[0]
    rows = np.array([499, 3, 3, 250, 0])
    got = emb.rows_dot(rows, q)
    assert got.dtype == np.float32 and got.shape == (5,)
    assert np.allclose(got, emb[rows] @ q, atol=1e-6)
    by_id = VectorsById.from_map(emb, np.array([4, -1, 2]))  # id 1 has no row
    s = by_id.ids_dot(np.array([0, 1, 2, 7]), q)  # 7 lies outside the map
    assert np.allclose(s, [emb[4] @ q, 0.0, emb[2] @ q, 0.0], atol=1e-6)
    assert np.allclose(by_id.ids_dot(np.array([2, 0]), q), [emb[2] @ q, emb[4] @ q], atol=1e-6)
