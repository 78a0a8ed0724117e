"""HippoGraph facade: build → open round trip, retrieval modes, explanations, add, crash safety."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from hippograph import Config, HippoGraph, Hit
from hippograph.errors import HippoGraphError, IndexCorruptError, IndexNotFoundError, SourceError

from .conftest import DATA


def _recall(hits: list[Hit], gold: list[str], k: int) -> float:
    titles = []
    for h in hits:
        if h.title not in titles:
            titles.append(h.title)
    return len(set(titles[:k]) & set(gold)) / len(gold)


def test_build_open_round_trip(sample_index):
    hg = HippoGraph.open(sample_index)
    s = hg.stats()
    assert s["documents"] == 37
    assert s["passages"] > s["documents"]  # the long documents were chunked
    assert s["entities"] > 100 and s["triples"] > 100 and s["edges"] > s["entities"]
    again = HippoGraph.open(sample_index).stats()
    assert {k: again[k] for k in ("documents", "passages", "entities", "facts", "edges")} == {
        k: s[k] for k in ("documents", "passages", "entities", "facts", "edges")
    }
    titles = {d["title"] for d in hg.documents()}
    assert {"Kessel Shipworks", "Wren relay", "University of Drumlow"} <= titles


def test_hits_carry_provenance(sample_index):
    hg = HippoGraph.open(sample_index)
    hits = hg.retrieve("Who founded Kessel Shipworks?", top_k=5)
    assert 1 <= len(hits) <= 5
    assert hits[0].title == "Kessel Shipworks"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert h.passage_id and h.doc_id and h.source and h.text
        assert 0 <= h.span[0] < h.span[1]
        assert h.explanation is None


def test_all_modes_and_explanation(sample_index):
    hg = HippoGraph.open(sample_index)
    q = "On which island was the founder of Vantry Glassworks born?"
    for mode in ("hybrid", "ppr", "dense", "bm25"):
        hits = hg.retrieve(q, top_k=5, mode=mode)
        assert len(hits) == 5, mode
        assert len({h.passage_id for h in hits}) == 5
    hit = hg.retrieve(q, top_k=1, explain=True)[0]
    ex = hit.explanation
    assert ex["mode"] == "hybrid"
    assert ex["seeds"], "a multi-hop question about named entities must produce seeds"
    assert abs(sum(ex["router"]["weights"].values()) - 1) < 1e-3  # weights rounded to 4 places
    assert set(ex["scores"]) == {"final", "dense", "bm25", "routed", "ppr"}


def test_graph_retrieval_beats_lexical_on_sample(sample_index, sample_questions):
    hg = HippoGraph.open(sample_index)
    qs = [q["question"] for q in sample_questions]
    rec = {}
    for mode in ("bm25", "hybrid"):
        res = hg.retrieve_many(qs, top_k=10, mode=mode)
        rec[mode] = sum(_recall(h, q["gold"], 5) for h, q in zip(res, sample_questions)) / len(qs)
    assert rec["hybrid"] >= 0.6, rec
    assert rec["hybrid"] >= rec["bm25"] - 0.02, rec


def test_retrieve_many_matches_single(sample_index, sample_questions):
    hg = HippoGraph.open(sample_index)
    qs = [q["question"] for q in sample_questions[:5]]
    batch = hg.retrieve_many(qs, top_k=5)
    for q, hits in zip(qs, batch):
        single = hg.retrieve(q, top_k=5)
        assert [h.passage_id for h in hits] == [h.passage_id for h in single]
        assert [round(h.score, 6) for h in hits] == [round(h.score, 6) for h in single]
    # blocks of 2 queries (the last one short) give the same answers as one block
    blocked = hg.retrieve_many(qs, top_k=5, query_batch_size=2)
    assert [[(h.passage_id, round(h.score, 6)) for h in hits] for hits in blocked] == \
        [[(h.passage_id, round(h.score, 6)) for h in hits] for hits in batch]
    with pytest.raises(ValueError, match="query_batch_size"):
        hg.retrieve_many(qs, query_batch_size=0)


def test_bad_queries(sample_index):
    hg = HippoGraph.open(sample_index)
    with pytest.raises(ValueError, match="empty"):
        hg.retrieve("   ")
    with pytest.raises(ValueError, match="top_k"):
        hg.retrieve("river", top_k=0)
    with pytest.raises(ValueError, match="unknown mode"):
        hg.retrieve("river", mode="magic")
    with pytest.raises(ValueError, match="unknown config option"):
        hg.retrieve("river", not_an_option=1)
    hits = hg.retrieve("zzzzqqq xxyyzz", top_k=3)  # nothing matches: still a ranked answer, no crash
    assert len(hits) <= 3
    long_hits = hg.retrieve("river " * 5000, top_k=3)
    assert len(long_hits) == 3


def test_open_errors(tmp_path):
    with pytest.raises(IndexNotFoundError):
        HippoGraph.open(tmp_path / "missing")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("x")
    with pytest.raises(IndexNotFoundError, match="not a hippograph index"):
        HippoGraph.open(tmp_path / "foreign")
    with pytest.raises(HippoGraphError, match="not empty"):
        HippoGraph.build(DATA / "corpus", tmp_path / "foreign", Config(embedder="tfidf"))


def test_empty_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no readable documents"):
        HippoGraph.build(tmp_path / "empty", tmp_path / "idx", Config(embedder="tfidf"))
    assert not (tmp_path / "idx" / "manifest.json").exists()


def test_interrupted_build_leaves_no_valid_index(tmp_path, monkeypatch):
    from hippograph.indexers import vectors

    def boom(self, out, embeddings):
        raise KeyboardInterrupt

    monkeypatch.setattr(vectors.VectorIndexes, "write", boom)
    docs = [{"id": "a", "title": "Alpha", "text": "Alpha Corp was founded by Jane Doe in Paris."}]
    with pytest.raises(KeyboardInterrupt):
        HippoGraph.build(docs, tmp_path / "idx", Config(embedder="tfidf"))
    with pytest.raises((IndexNotFoundError, IndexCorruptError)):
        HippoGraph.open(tmp_path / "idx")


def test_failed_rebuild_keeps_old_index(sample_index, tmp_path, monkeypatch):
    from hippograph.indexers import generation

    copy = tmp_path / "copy"
    shutil.copytree(sample_index, copy)
    before = HippoGraph.open(copy).stats()

    def boom(conn, out, lexical, rows_from, base=None, origin=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generation, "write_lexical", boom)
    docs = [{"id": "a", "title": "Alpha", "text": "Alpha Corp was founded by Jane Doe in Paris."}]
    with pytest.raises(RuntimeError):
        HippoGraph.build(docs, copy, Config(embedder="tfidf"), overwrite=True)
    after = HippoGraph.open(copy).stats()
    assert after["generation"] == before["generation"] and after["passages"] == before["passages"]


def test_add_appends_without_reextracting(sample_index, tmp_path, monkeypatch):
    from hippograph.indexers import extraction

    copy = tmp_path / "copy"
    shutil.copytree(sample_index, copy)
    hg = HippoGraph.open(copy)
    before = hg.stats()
    seen: list[int] = []
    original = extraction.TripleExtractor.extract

    def counting(self, passages, **kw):
        seen.append(len(passages))
        return original(self, passages, **kw)

    monkeypatch.setattr(extraction.TripleExtractor, "extract", counting)
    docs = [
        {"id": "new-1", "title": "Pellow Mill", "text": "Pellow Mill was founded by Fenna Brannock in Kesselby in 1902. It made sailcloth."},
    ]
    report = hg.add(docs)
    assert seen == [1]
    assert report.added["documents"] == 1 and report.added["passages"] == 1
    after = hg.stats()
    assert after["documents"] == before["documents"] + 1
    assert after["generation"] != before["generation"]
    hits = hg.retrieve("Who founded Pellow Mill?", top_k=3)
    assert hits[0].doc_id == "new-1"
    # adding the same document again changes nothing
    report2 = hg.add(docs)
    assert report2.added.get("documents", 0) == 0
    assert hg.stats()["generation"] == after["generation"]


def test_export_graphml(sample_index, tmp_path):
    from collections import Counter

    import networkx as nx

    out = HippoGraph.open(sample_index).export_graphml(tmp_path / "g.graphml")
    g = nx.read_graphml(out)
    stats = HippoGraph.open(sample_index).stats()
    assert g.number_of_nodes() == stats["nodes"]
    kinds = Counter(d["kind"] for _, _, d in g.edges(data=True))
    assert kinds["fact"] == stats["facts"] and kinds["synonym"] == stats["synonyms"] and kinds["mention"] > 0


def test_query_time_defaults_follow_the_installed_version(tmp_path, monkeypatch):
    """Only query-time values the user changed are frozen into the manifest; the rest follow
    the current defaults, so improving a default improves existing indexes."""
    from hippograph.config import QUERY_TIME_FIELDS

    docs = [{"id": "a", "title": "Ada", "text": "Ada Lovelace worked with Charles Babbage in London."},
            {"id": "b", "title": "Babbage", "text": "Charles Babbage designed the Analytical Engine."}]
    path = tmp_path / "idx"
    HippoGraph.build(docs, path, Config(embedder="tfidf", top_k=3, chunk_words=150))
    stored = HippoGraph.open(path).manifest.config
    assert stored["top_k"] == 3 and stored["chunk_words"] == 150 and stored["embedder"] == "tfidf"
    assert "damping" not in stored and "ppr_fusion_weight" not in stored
    assert {"top_k", "damping", "router_temperature"} <= QUERY_TIME_FIELDS and "chunk_words" not in QUERY_TIME_FIELDS
    # a newer version with another default: the index picks it up, the user's top_k stays
    import hippograph.config as config_mod

    new_defaults = {f.name: f.default for f in config_mod.fields(Config)}
    monkeypatch.setattr(Config, "__init__", _init_with(Config.__init__, damping=0.7))
    hg = HippoGraph.open(path)
    assert hg.config.damping == 0.7 and hg.config.top_k == 3 and new_defaults["top_k"] != 3
    assert HippoGraph.open(path, damping=0.3).config.damping == 0.3


def _init_with(init, **defaults):
    def patched(self, *args, **kwargs):
        for k, v in defaults.items():
            kwargs.setdefault(k, v)
        init(self, *args, **kwargs)
    return patched


def test_documents_view_for_multi_passage_documents(sample_index):
    hg = HippoGraph.open(sample_index)
    view = hg.snapshot.document_view
    assert view is not None  # the long sample documents were chunked
    vecs, members = view
    assert vecs.shape[0] == members.shape[0] and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert (np.asarray(members.sum(axis=1)).ravel() >= 2).all()
    docs = np.asarray(hg.snapshot.passage_doc_ids, dtype=object)
    for d in range(members.shape[0]):  # each row is exactly one document's passages
        assert len(set(docs[members[d].indices])) == 1
    hit = hg.retrieve("Who founded Kessel Shipworks?", top_k=3, use_documents=True, explain=True)[0]
    assert "documents" in hit.explanation["router"]["weights"]
    plain = hg.retrieve("Who founded Kessel Shipworks?", top_k=3, explain=True)[0]
    assert "documents" not in plain.explanation["router"]["weights"]


def test_spann_granularities_probe_the_configured_number_of_lists(tmp_path, monkeypatch):
    """Granularities big enough for SPANN are searched with Config.spann_max_lists (per call)."""
    from hippograph.indexers.spann import SpannIndex

    hg = HippoGraph.build(DATA / "corpus", tmp_path / "idx",
                          Config(embedder="tfidf", spann_min_vectors=200, spann_replica=3))
    spann = [ix for g in ("sentences", "facts", "entities")
             if isinstance(ix := getattr(hg.snapshot.vector_index(g), "index", hg.snapshot.vector_index(g)), SpannIndex)]
    assert spann and all(ix.params.replica_count == 3 for ix in spann)  # Config.spann_replica reaches the build
    seen: list[int | None] = []
    original = SpannIndex.search

    def spy(self, queries, k, *, max_lists=None, **kw):
        seen.append(max_lists)
        return original(self, queries, k, max_lists=max_lists, **kw)

    monkeypatch.setattr(SpannIndex, "search", spy)
    hg.retrieve("Who founded Kessel Shipworks?", top_k=3)
    assert seen and set(seen) == {Config().spann_max_lists}
    seen.clear()
    few = hg.retrieve("Who founded Kessel Shipworks?", top_k=3, spann_max_lists=2)
    assert seen and set(seen) == {2} and few
