"""The streamed, sharded write path: several shards give the one-shard result, and a build
interrupted between shards resumes from its finished shards to the same index."""
from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.format import GRANULARITIES, GRAPH_DIR, GRAPH_FILES, embedding_path, load_embeddings, open_embeddings, quantize, scale_path
from hippograph.indexers import shards

from .conftest import DATA

ONE_SHARD = Config(embedder="tfidf")  # the sample corpus fits one shard at the default size (as `sample_index`)
SMALL_SHARDS = ONE_SHARD.replace(shard_passages=6)
DOCS = [
    {"id": f"d{i}", "title": f"Firm {i}", "text": f"Firm {i} was founded by Ana Ruiz in City {i}. It makes lenses."}
    for i in range(5)
]
TABLES = {
    "documents": "SELECT * FROM documents ORDER BY rowid",
    "passages": "SELECT * FROM passages ORDER BY idx",
    "sentences": "SELECT * FROM sentences ORDER BY idx",
    "entities": "SELECT * FROM entities ORDER BY idx",
    "facts": "SELECT * FROM facts ORDER BY idx",
    "fact_passages": "SELECT * FROM fact_passages ORDER BY passage_idx, seq",
    "mentions": "SELECT * FROM mentions ORDER BY passage_idx, entity_idx",
    "synonyms": "SELECT * FROM synonyms ORDER BY a, b, kind",
    "passage_owners": "SELECT * FROM passage_owners ORDER BY passage_idx, doc_id",
}


def _rows(hg: HippoGraph) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(hg.dir.generation_path(hg.manifest) / "meta.sqlite")
    try:
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        conn.close()


def _assert_same_index(a: HippoGraph, b: HippoGraph, questions: list[str]) -> None:
    ra, rb = _rows(a), _rows(b)
    for table in TABLES:
        assert ra[table] == rb[table], table
    ga, gb = (a.dir.generation_path(h.manifest) / GRAPH_DIR for h in (a, b))
    for name in GRAPH_FILES:
        assert np.array_equal(np.load(ga / name), np.load(gb / name)), name
    ea = load_embeddings(a.dir.generation_path(a.manifest))
    eb = load_embeddings(b.dir.generation_path(b.manifest))
    for gran in GRANULARITIES:
        assert ea[gran].shape == eb[gran].shape and np.allclose(ea[gran], eb[gran], atol=1e-6), gran
    for mode in ("hybrid", "dense", "bm25", "ppr"):
        for ha, hb in zip(a.retrieve_many(questions, top_k=5, mode=mode), b.retrieve_many(questions, top_k=5, mode=mode)):
            assert [h.passage_id for h in ha] == [h.passage_id for h in hb], mode
            assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-6), mode


@pytest.fixture(scope="module")
def one_shard(sample_index) -> HippoGraph:
    hg = HippoGraph.open(sample_index)
    assert hg.stats()["passages"] <= ONE_SHARD.shard_passages
    return hg


def test_many_shards_equal_one_shard(one_shard, tmp_path, sample_questions):
    many = HippoGraph.build(DATA / "corpus", tmp_path / "many", SMALL_SHARDS)
    n_passages = many.stats()["passages"]
    assert n_passages > 4 * SMALL_SHARDS.shard_passages  # really several shards
    assert one_shard.stats()["passages"] == n_passages
    assert not (tmp_path / "many" / ".build").exists(), "shards are removed once the build is committed"
    _assert_same_index(one_shard, many, [q["question"] for q in sample_questions[:10]])


def _killed_after(n: int, sources, target, config: Config, monkeypatch) -> list[int]:
    """Build until `n` shards are finished, then die as a killed build would (KeyboardInterrupt
    between shards n and n + 1); the sizes of the finished shards. `build_shard` is left patched
    for the caller to replace."""
    built: list[int] = []
    real = shards.build_shard

    def dies_after_n(documents, config, out_dir, **kw):
        if len(built) == n:
            raise KeyboardInterrupt
        built.append(len(documents))
        return real(documents, config, out_dir, **kw)

    monkeypatch.setattr(shards, "build_shard", dies_after_n)
    with pytest.raises(KeyboardInterrupt):
        HippoGraph.build(sources, target, config)
    return built


def test_killed_build_resumes_from_finished_shards(one_shard, tmp_path, monkeypatch, sample_questions, caplog):
    real = shards.build_shard
    target = tmp_path / "idx"
    built = _killed_after(3, DATA / "corpus", target, SMALL_SHARDS, monkeypatch)
    assert len(built) == 3 and not (target / "manifest.json").exists()
    finished = sorted(p.name for p in (target / ".build" / "build").glob("shard-*/done.json"))
    assert len(finished) == 3

    calls: list[int] = []

    def counting(documents, config, out_dir, **kw):
        calls.append(len(documents))
        return real(documents, config, out_dir, **kw)

    monkeypatch.setattr(shards, "build_shard", counting)
    with caplog.at_level(logging.INFO, logger="hippograph.indexers.shards"):
        resumed = HippoGraph.build(DATA / "corpus", target, SMALL_SHARDS)
    assert "resuming" in caplog.text
    report_shards = resumed.stats()["passages"]
    assert report_shards == one_shard.stats()["passages"]
    n_shards = len(calls) + 3
    assert len(calls) == n_shards - 3 and len(calls) > 0, "the three finished shards were not redone"
    _assert_same_index(one_shard, resumed, [q["question"] for q in sample_questions[:10]])


def test_shards_store_the_index_codes_and_older_float32_shards_merge_alike(one_shard, tmp_path, monkeypatch,
                                                                          sample_questions):
    """Shards hold int8 codes + scales (what the merge copies); a shard of older code (float32
    rows) is quantised by the merge instead, to the same bytes."""
    real = shards.build_shard
    target = tmp_path / "idx"
    _killed_after(3, DATA / "corpus", target, SMALL_SHARDS, monkeypatch)
    monkeypatch.setattr(shards, "build_shard", real)
    finished = sorted((target / ".build" / "build").glob("shard-*/done.json"))
    assert len(finished) == 3
    for done in finished:  # what version-1 shards held: float32 rows, no scales
        for gran in GRANULARITIES:
            path = done.parent / "embeddings" / f"{gran}.npy"
            emb = open_embeddings(path)
            assert emb.storage == "int8" and scale_path(path).is_file()
            rows = emb[np.arange(len(emb))]
            assert np.array_equal(quantize(rows, "int8")[0], emb.codes)
            np.save(path, rows)
            scale_path(path).unlink()
    resumed = HippoGraph.build(DATA / "corpus", target, SMALL_SHARDS)
    for gran in GRANULARITIES:
        a = open_embeddings(embedding_path(one_shard.dir.generation_path(one_shard.manifest), gran))
        b = open_embeddings(embedding_path(resumed.dir.generation_path(resumed.manifest), gran))
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales), gran
    _assert_same_index(one_shard, resumed, [q["question"] for q in sample_questions[:10]])


def test_resume_with_another_config_starts_over(tmp_path, monkeypatch, caplog):
    real = shards.build_shard
    target = tmp_path / "idx"
    tiny = ONE_SHARD.replace(shard_passages=1)
    _killed_after(2, DOCS, target, tiny, monkeypatch)
    calls: list[int] = []

    def counting(documents, config, out_dir, **kw):
        calls.append(1)
        return real(documents, config, out_dir, **kw)

    monkeypatch.setattr(shards, "build_shard", counting)
    other = tiny.replace(link_title=False)
    with caplog.at_level(logging.WARNING, logger="hippograph.indexers.shards"):
        hg = HippoGraph.build(DOCS, target, other)
    assert "different configuration" in caplog.text and "starting over" in caplog.text
    assert hg.config.link_title is False and hg.stats()["documents"] == len(DOCS)
    assert len(calls) == len(DOCS), "no shard of the other configuration was reused"


def test_build_shard_is_a_plain_function_of_documents_and_config(tmp_path):
    """What a Ray map_batches worker would call: documents + config → a finished shard directory."""
    from hippograph.embedders import make_embedder
    from hippograph.indexers.loaders import iter_documents

    docs = list(iter_documents(DATA / "corpus", ONE_SHARD))[:3]
    embedder = make_embedder(ONE_SHARD)
    embedder.fit(["Orvik lighthouse island", "Kessel shipworks founded", "river delta salmon"])
    out = shards.build_shard(docs, ONE_SHARD, tmp_path / "shard-00000", embedder=embedder, key="k1")
    assert shards.shard_done(out, "k1") and not shards.shard_done(out, "k2")
    shard = shards.read_shard(out)
    assert [d.id for d in shard.tables.documents] == [d.id for d in docs]
    for gran, rows in (("passages", len(shard.tables.passages)), ("entities", len(shard.tables.entities)),
                       ("facts", len(shard.tables.facts)), ("sentences", len(shard.tables.sentences))):
        assert shard.embeddings[gran].shape == (rows, embedder.dim), gran


def test_progress_names_every_stage(tmp_path, capsys):
    HippoGraph.build(DOCS, tmp_path / "quiet", ONE_SHARD)
    assert capsys.readouterr().err == "", "quiet by default in the API"
    hg = HippoGraph.build(DOCS, tmp_path / "idx", ONE_SHARD.replace(shard_passages=2), show_progress=True)
    err = capsys.readouterr().err
    for stage in ("extract", "embed passages", "embed sentences", "embed facts", "embed entities", "merge",
                  "synonymy", "graph", "vectors", "BM25"):
        assert f"{stage}:" in err, stage
    assert "passage/s" in err or "passage/s]" in err or "s/passage" in err  # tqdm shows a rate
    timings = hg.stats()["timings"]
    assert {"extract", "embed passages", "merge", "synonymy", "graph", "vectors", "BM25", "total"} <= set(timings)
