"""Compact flat indexes: vectors read from the generation's embeddings file (indexers/flat.py shared_vectors)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hippograph.errors import IndexCorruptError
from hippograph.indexers.flat import FlatIndex
from hippograph.indexers.spann import open_vector_index


def _generation(tmp_path: Path, n: int = 200, dim: int = 16) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gen = tmp_path / "gen-000001"
    (gen / "embeddings").mkdir(parents=True)
    (gen / "vectors").mkdir()
    np.save(gen / "embeddings" / "facts.npy", x, allow_pickle=False)
    return gen, x


def test_shared_flat_index_stores_no_copy_and_searches_like_a_plain_one(tmp_path: Path):
    gen, x = _generation(tmp_path)
    shared = FlatIndex.build(x, path=gen / "vectors" / "facts", shared_vectors="../../embeddings/facts.npy")
    plain = FlatIndex.build(x, path=tmp_path / "plain")
    assert not list((gen / "vectors" / "facts").glob("vectors.*.npy"))
    header = json.loads((gen / "vectors" / "facts" / "header.json").read_text())
    assert header["files"]["vectors"]["ref"] == "../../embeddings/facts.npy"
    reopened = open_vector_index(gen / "vectors" / "facts")
    q = x[:5] + 0.01
    for a, b in ((shared, plain), (reopened, plain)):
        sa, ia = a.search(q, 7)
        sb, ib = b.search(q, 7)
        assert np.array_equal(ia, ib) and np.allclose(sa, sb)
    disk = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    assert disk(gen / "vectors") < disk(tmp_path / "plain") - x.nbytes + 512  # ids and header only


def test_shared_vectors_must_match_and_stay_inside_the_generation(tmp_path: Path):
    gen, x = _generation(tmp_path)
    with pytest.raises(ValueError, match="does not hold exactly"):
        FlatIndex.build(x[:-1], path=gen / "vectors" / "a", shared_vectors="../../embeddings/facts.npy")
    with pytest.raises(IndexCorruptError, match="outside the index generation"):
        FlatIndex.build(x, path=gen / "vectors" / "b", shared_vectors="../../../elsewhere.npy")
    idx = FlatIndex.build(x, path=gen / "vectors" / "c", shared_vectors="../../embeddings/facts.npy")
    header_path = gen / "vectors" / "c" / "header.json"
    header = json.loads(header_path.read_text())
    header["files"]["vectors"]["ref"] = "../../../../etc/passwd"
    header_path.write_text(json.dumps(header))
    with pytest.raises(IndexCorruptError, match="outside the index generation"):
        FlatIndex.open(gen / "vectors" / "c")
    del idx


def test_truncated_shared_file_is_reported(tmp_path: Path):
    gen, x = _generation(tmp_path)
    FlatIndex.build(x, path=gen / "vectors" / "facts", shared_vectors="../../embeddings/facts.npy")
    emb = gen / "embeddings" / "facts.npy"
    emb.write_bytes(emb.read_bytes()[:-64])
    with pytest.raises(IndexCorruptError, match="bytes"):
        FlatIndex.open(gen / "vectors" / "facts")


def test_updating_a_shared_index_writes_its_own_vectors(tmp_path: Path):
    gen, x = _generation(tmp_path)
    idx = FlatIndex.build(x, path=gen / "vectors" / "facts", shared_vectors="../../embeddings/facts.npy")
    idx.remove([0, 1])
    assert list((gen / "vectors" / "facts").glob("vectors.*.npy"))
    again = FlatIndex.open(gen / "vectors" / "facts")
    assert len(again) == len(x) - 2
    assert again.search(x[5], 1)[1][0] == 5


def test_built_index_has_no_vector_copies_and_reopens(sample_index: Path):
    """The builder writes flat indexes that refer to the generation's embeddings; the index opens and answers."""
    from hippograph import HippoGraph

    manifest = json.loads((sample_index / "manifest.json").read_text())
    gen = sample_index / manifest["generation"]
    for vdir in (gen / "vectors").iterdir():
        if not vdir.is_dir():
            continue
        header = json.loads((vdir / "header.json").read_text())
        if header["format"] == "hippograph-flat":
            assert header["files"]["vectors"]["ref"] == f"../../embeddings/{vdir.name}.npy"
            assert not list(vdir.glob("vectors.*.npy"))
    hg = HippoGraph.open(sample_index)
    try:
        assert hg.retrieve("Where does the River Corran rise?", top_k=3, mode="dense")
    finally:
        hg.close()


def test_write_shared_reads_no_vectors_and_opens_like_build(tmp_path: Path):
    from hippograph.format import write_embeddings_file

    gen, x = _generation(tmp_path)
    write_embeddings_file(gen / "embeddings" / "facts.npy", x, "int8")  # the default storage
    FlatIndex.write_shared(gen / "vectors" / "facts", "../../embeddings/facts.npy")
    assert not list((gen / "vectors" / "facts").glob("vectors.*.npy"))
    index = open_vector_index(gen / "vectors" / "facts")
    assert len(index) == len(x) and index.dim == x.shape[1]
    scores, ids = index.search(x[:3], 1)
    assert ids[:, 0].tolist() == [0, 1, 2] and np.all(np.abs(scores[:, 0] - 1) < 0.01)  # int8 rows, upcast
    with pytest.raises(IndexCorruptError, match="outside the index generation"):
        FlatIndex.write_shared(gen / "vectors" / "b", "../../../elsewhere.npy")
