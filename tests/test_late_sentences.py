"""Late sentence vectors (`Config.sentence_vectors = "late"`): a sentence's vector is the mean of its
passage pass's token vectors over the sentence, computed with the passage's own vector."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hippograph import HippoGraph
from hippograph.config import Config
from hippograph.embedders import SentenceTransformerEmbedder, TfidfEmbedder, span_means
from hippograph.errors import ConfigError
from hippograph.format import META_DB, embedding_path, open_embeddings
from hippograph.tables import CorpusTables
from indexers.embedding import late_sentences
from indexers.shards import sentence_spans_in, unit_texts

TEXTS = [
    "Kessel Shipworks\nKessel Shipworks is a former shipyard in Kesselby. It built the steamship Aurora in 1873.",
    "Ada Lovelace wrote the first program. She worked with Charles Babbage on the Analytical Engine.",
    "x " * 300 + "This sentence lies past the model's window.",
]


def test_span_means_pools_the_tokens_inside_each_span() -> None:
    tokens = np.arange(12, dtype=np.float32).reshape(6, 2)  # rows 0 and 5: special tokens
    offsets = [(0, 0), (0, 3), (4, 7), (7, 8), (9, 12), (0, 0)]
    means, ok = span_means(tokens, offsets, [(0, 8), (9, 12), (4, 5), (9, 20), (8, 9)])
    np.testing.assert_array_equal(means[0], tokens[1:4].mean(axis=0))
    np.testing.assert_array_equal(means[1], tokens[4])
    np.testing.assert_array_equal(means[2], tokens[2])  # a span cutting into a token takes that token
    assert ok.tolist() == [True, True, True, False, False]  # past the last token seen; no token inside
    assert not means[3].any() and not means[4].any()


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=4)


def _spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    from indexers.chunking import split_sentences

    return [split_sentences(t) for t in texts]


@pytest.mark.slow
def test_encode_with_spans_reads_each_span_in_its_text(minilm: SentenceTransformerEmbedder) -> None:
    import torch

    spans = _spans(TEXTS)
    text_vecs, span_vecs = minilm.encode_with_spans(TEXTS, spans)
    assert minilm.pools_token_means
    np.testing.assert_array_equal(text_vecs, minilm.encode(TEXTS))  # the passage vector is unchanged
    assert span_vecs.shape == (sum(map(len, spans)), 384)
    np.testing.assert_allclose(np.linalg.norm(span_vecs, axis=1), 1.0, atol=1e-5)
    # against token vectors taken straight from the model, one text at a time, in float32
    plain = SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="float32")
    model = plain._load()
    row = 0
    for text, text_spans in zip(TEXTS, spans):
        enc = model.tokenizer(text, truncation=True, max_length=model.max_seq_length, return_offsets_mapping=True,
                              return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        with torch.inference_mode():
            tokens = model[0](dict(enc))["token_embeddings"][0].numpy()
        for a, b in text_spans:
            inside = [k for k, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
            if b <= max(e for _, e in offsets):
                want = tokens[inside].mean(axis=0)
            else:  # past the window: the sentence on its own
                want = plain.encode([text[a:b]])[0]
            want /= np.linalg.norm(want)
            assert float(span_vecs[row] @ want) > 0.999, (text[a:b], float(span_vecs[row] @ want))
            row += 1
    # the last sentence of the long text lies past the window: encoded on its own
    np.testing.assert_array_equal(span_vecs[-1], minilm.encode([TEXTS[2][spans[2][-1][0]:]])[0])
    # read in context: "It built the steamship ..." is closer to the shipyard than on its own
    shipyard = minilm.encode(["Kessel Shipworks shipyard"])[0]
    alone = minilm.encode(["It built the steamship Aurora in 1873."])[0]
    assert float(span_vecs[2] @ shipyard) > float(alone @ shipyard) + 0.1
    # batch size and the company of other texts do not change a text's vectors
    one_t, one_s = minilm.encode_with_spans(TEXTS[1:2], spans[1:2], batch_size=1)
    np.testing.assert_array_equal(one_t[0], text_vecs[1])
    np.testing.assert_array_equal(one_s, span_vecs[len(spans[0]):len(spans[0]) + len(spans[1])])
    empty_t, empty_s = minilm.encode_with_spans([], [])
    assert empty_t.shape == (0, 384) and empty_s.shape == (0, 384)
    with pytest.raises(ValueError, match="span lists"):
        minilm.encode_with_spans(TEXTS, spans[:1])


@pytest.mark.slow
def test_encode_with_spans_through_the_cache(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    spans = _spans(TEXTS)
    want_t, want_s = minilm.encode_with_spans(TEXTS, spans)
    cached = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=4, cache_dir=tmp_path)
    got_t, got_s = cached.encode_with_spans(TEXTS, spans)
    np.testing.assert_array_equal(got_t, want_t)
    np.testing.assert_array_equal(got_s, want_s)
    # passage vectors are shared with plain `encode`; spans are keyed by text and span
    np.testing.assert_array_equal(cached.encode(TEXTS), want_t)
    assert cached.cache.hits == len(TEXTS)
    cached._model = None  # a second build must not need the model
    cached._load = lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded despite cache"))  # type: ignore[method-assign]
    again_t, again_s = cached.encode_with_spans(TEXTS, spans)
    np.testing.assert_array_equal(again_s, want_s)
    # other spans of a cached text are not served from the cache
    cached2 = SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=4, cache_dir=tmp_path)
    part_t, part_s = cached2.encode_with_spans(TEXTS[:1], [[(0, 6)]])
    assert cached2.span_cache.misses == 0 and float(part_s[0] @ want_s[0]) < 0.99
    np.testing.assert_array_equal(part_s, minilm.encode_with_spans(TEXTS[:1], [[(0, 6)]])[1])


def test_late_needs_a_mean_pooling_model(tmp_path: Path) -> None:
    """TF-IDF embeds sentences on their own whatever the setting; a model whose sentence vector is
    not a token mean (CLS pooling) refuses span vectors with one line."""
    tfidf = TfidfEmbedder(dim=8).fit(["river bank water", "bank loan money"])
    assert not late_sentences(Config(sentence_vectors="late"), tfidf)
    src = SentenceTransformerEmbedder("all-MiniLM-L6-v2").path
    model = tmp_path / "cls-model"
    shutil.copytree(src, model)
    pooling = next(p for p in model.glob("1_Pooling*/config.json"))
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    cls = SentenceTransformerEmbedder(str(model))
    assert not cls.pools_token_means
    assert not late_sentences(Config(sentence_vectors="late"), cls)
    with pytest.raises(ConfigError, match="mean-pools"):
        cls.encode_with_spans(["a b"], [[(0, 1)]])


def test_config_choices_and_legacy_manifests(tmp_path: Path) -> None:
    assert Config().sentence_vectors == "late"
    with pytest.raises(ConfigError):
        Config(sentence_vectors="contextual")
    # a manifest written before the option existed holds sentences embedded on their own
    assert Config.from_manifest({"chunk_words": 120}, tmp_path).sentence_vectors == "separate"
    assert Config.from_manifest({"sentence_vectors": "late"}, tmp_path).sentence_vectors == "late"


def _docs() -> list[dict]:
    return [{"id": f"d{i}", "title": t.split("\n")[0] if "\n" in t else f"Doc {i}", "text": t.split("\n")[-1]}
            for i, t in enumerate(TEXTS[:2])] + [
        {"id": "d2", "title": "Aurora", "text": "The Aurora was a steamship. It sank off Tamsey in 1901 with all hands."},
        {"id": "d3", "title": "Tamsey", "text": "Tamsey is an island. Kesselby is its largest town."}]


def _stored(index: Path) -> tuple[CorpusTables, np.ndarray, HippoGraph]:
    """Tables and float32 sentence rows of an index's current generation (and the open index)."""
    hg = HippoGraph.open(index)
    gen = hg.dir.generation_path(hg.manifest)
    return CorpusTables.load(gen / META_DB), np.asarray(open_embeddings(embedding_path(gen, "sentences"))), hg


@pytest.mark.slow
def test_index_stores_late_sentence_vectors_and_updates_keep_them(tmp_path: Path) -> None:
    """Built in shards or grown by an add, the index holds the vectors one pass per passage gives;
    an index whose manifest predates the option keeps embedding its sentences on their own."""
    docs = _docs()
    cfg = Config(embedder="sentence-transformers", shard_passages=1)
    HippoGraph.build(docs, tmp_path / "whole", cfg).close()
    with HippoGraph.build(docs[:2], tmp_path / "grown", cfg) as grown:
        grown.add(docs[2:])
    t, whole, hg = _stored(tmp_path / "whole")
    t2, grown_rows, hg2 = _stored(tmp_path / "grown")
    key = {(t2.passages[p].id, s): i for i, (p, s, _) in enumerate(t2.sentences)}
    assert len(t.sentences) == len(key) >= 8
    for i, (p, s, _) in enumerate(t.sentences):
        np.testing.assert_array_equal(whole[i], grown_rows[key[(t.passages[p].id, s)]])
    # the stored rows are the late vectors (int8 in the index), not the sentences on their own
    texts = unit_texts(t, "passages")
    _, late = hg.embedder.encode_with_spans(texts, sentence_spans_in(t, texts))
    alone = hg.embedder.encode(unit_texts(t, "sentences"))
    assert np.min(np.sum(whole * late, axis=1)) > 0.999
    assert np.min(np.sum(whole * alone, axis=1)) < 0.98
    hg.close()
    hg2.close()

    # an index written before the option: its manifest has no sentence_vectors
    old = tmp_path / "old"
    HippoGraph.build(docs[:2], old, cfg.replace(sentence_vectors="separate")).close()
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["config"].pop("sentence_vectors")
    (old / "manifest.json").write_text(json.dumps(manifest))
    with HippoGraph.open(old) as legacy:
        assert legacy.config.sentence_vectors == "separate"
        legacy.add(docs[2:])
    t, rows, hg = _stored(old)
    assert len(t.passages) == 4 and hg.config.sentence_vectors == "separate"
    alone = hg.embedder.encode(unit_texts(t, "sentences"))
    assert np.min(np.sum(rows * alone, axis=1)) > 0.999
    hg.close()
