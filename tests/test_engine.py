"""Retriever behaviour on a crafted two-hop corpus: the bridge passage found through the graph (the
second-hop step, `Config.bridge_weight`), seed specificity, and what the other modes leave alone."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.retrievers.engine import hop_summary

DOCS = [
    {"id": "kessel", "title": "Kessel Shipworks",
     "text": "Kessel Shipworks is a shipyard in Port Arlen. It was founded by Arvid Lenholm in 1871 and built steam trawlers."},
    {"id": "lenholm", "title": "Arvid Lenholm",
     "text": "Arvid Lenholm was a Norwegian engineer. He was born on Varnholm, a small island in the North Sea."},
    {"id": "islands", "title": "Island births",
     "text": "Many sailors of the northern fleet were born on an island and later worked in shipyards."},
    {"id": "brandt", "title": "Olaf Brandt", "text": "Olaf Brandt was a Danish sailor born in 1840. He never founded a company."},
    {"id": "harbour", "title": "Port Arlen harbour",
     "text": "The harbour of Port Arlen was dredged in 1902 and its lighthouse was rebuilt."},
]
TWO_HOP = "On which island was the founder of Kessel Shipworks born?"


@pytest.fixture(scope="module")
def hg(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge")
    src = root / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in DOCS), encoding="utf-8")
    HippoGraph.build(src, root / "index", Config(embedder="tfidf"))
    return HippoGraph.open(root / "index")


def test_bridge_passage_comes_second(hg):
    """The founder's own passage looks less like the question than a distractor about islands; the
    bridge from the first hop (Kessel Shipworks → Arvid Lenholm) puts it second."""
    dense = [h.doc_id for h in hg.retrieve(TWO_HOP, top_k=3, mode="dense")]
    assert "lenholm" not in dense[:2], "precondition: dense retrieval alone misses the bridge passage"
    without = [h.doc_id for h in hg.retrieve(TWO_HOP, top_k=3, bridge_weight=0.0)]
    assert without == ["kessel", "islands", "lenholm"], "precondition: the distractor outranks the bridge passage"
    hits = hg.retrieve(TWO_HOP, top_k=3, explain=True)
    assert [h.doc_id for h in hits] == ["kessel", "lenholm", "islands"]
    first, second, third = (h.explanation.get("bridge") for h in hits)
    assert first == {"role": "first hop", "boost": pytest.approx(Config().bridge_weight)}
    assert second["role"] == "second hop" and second["first_hop_title"] == "Kessel Shipworks"
    assert second["about"] == ["arvid lenholm"] and second["via"] == []  # about the bridge; shares nothing else
    assert second["boost"] > 0 and hits[1].score < hits[0].score  # path score: below its first hop
    assert third is None  # shares no entity with the first hop
    assert hop_summary(first) == "first hop"
    assert hop_summary(second) == ("second hop from 'Kessel Shipworks': about arvid lenholm "
                                   "(fact: kessel shipworks founded by arvid lenholm)")


def test_bridges_exclude_what_the_query_names(hg):
    res = hg.retriever.search([TWO_HOP], hg.config, "hybrid")[0]
    names = [hg.snapshot.entities[e] for e in res.bridge.bridges]
    assert "arvid lenholm" in names and "port arlen" in names
    assert "kessel shipworks" not in names  # named by the query: not new information
    top = res.bridge.first_hop
    assert res.ranking[0] == top and hg.snapshot.passage_titles[top] == "Kessel Shipworks"


def test_second_named_entity_of_a_comparison(hg):
    """Both sides of a comparison are named; the passage about the side not in the top passage is a
    first hop too (`bridge_sides`); with bridge_sides=0 it is a second hop of the top passage."""
    q = "Who was born first, Olaf Brandt or Arvid Lenholm?"
    hits = hg.retrieve(q, top_k=2, explain=True)
    assert [h.doc_id for h in hits] == ["brandt", "lenholm"]
    ex = hits[1].explanation["bridge"]
    assert ex["role"] == "first hop" and ex["named"] == ["arvid lenholm"]
    assert hop_summary(ex) == "first hop, about the query's arvid lenholm"
    hits = hg.retrieve(q, top_k=2, explain=True, bridge_sides=0)
    assert [h.doc_id for h in hits] == ["brandt", "lenholm"]
    ex = hits[1].explanation["bridge"]
    assert ex["role"] == "second hop" and ex["about"] == ["arvid lenholm"] and ex["entity"] == "arvid lenholm"


def test_bridge_only_reorders_after_the_first_hop(hg):
    """bridge_weight=0 is the plain PPR/routed fusion; with the bridge the first hop is the same
    passage, unboosted passages keep their score, and the other modes are untouched."""
    snap = hg.snapshot
    plain = hg.retriever.search([TWO_HOP], hg.config.replace(bridge_weight=0.0), "hybrid")[0]
    bridged = hg.retriever.search([TWO_HOP], hg.config, "hybrid")[0]
    assert plain.bridge is None
    assert bridged.ranking[0] == plain.ranking[0]
    boosted = bridged.bridge.boost > 0
    assert boosted.sum() >= 2
    np.testing.assert_allclose(bridged.scores[~boosted], plain.scores[~boosted])
    np.testing.assert_allclose(bridged.scores - plain.scores, bridged.bridge.boost)
    assert bridged.bridge.boost[bridged.ranking[0]] == pytest.approx(hg.config.bridge_weight)
    assert snap.passage_titles[int(np.argmax(bridged.bridge.boost))] == "Arvid Lenholm"  # the path to the bridge
    for mode in ("ppr", "dense", "bm25"):
        a = hg.retrieve(TWO_HOP, top_k=5, mode=mode, bridge_weight=0.0)
        b = hg.retrieve(TWO_HOP, top_k=5, mode=mode, explain=True)
        assert [(h.passage_id, h.score) for h in a] == [(h.passage_id, h.score) for h in b], mode
        assert all("bridge" not in h.explanation for h in b), mode


def test_snapshot_title_entities_and_idf(hg):
    snap = hg.snapshot
    p = snap.passage_titles.index("Arvid Lenholm")
    assert [snap.entities[e] for e in snap.title_entities[p].indices] == ["arvid lenholm"]
    counts = snap.entity_passage_counts
    assert counts[snap.entity_index["arvid lenholm"]] == 2  # its own passage and Kessel Shipworks
    idf = snap.entity_idf
    assert ((idf >= 0) & (idf < 1)).all()
    rare, common = snap.entity_index["varnholm"], snap.entity_index["port arlen"]
    assert counts[rare] < counts[common] and idf[rare] > idf[common]


def test_specificity_lowers_hub_seeds(hg):
    """Two exactly-linked query mentions: Port Arlen (mentioned by 2 passages) seeds with half the
    weight of Varnholm (1 passage), weight = similarity × 1/|P_e| × router weight."""
    res = hg.retriever.search(["What connects Port Arlen and Varnholm?"], hg.config.replace(linking_top_facts=0), "hybrid")[0]
    weights = {hg.snapshot.entities[s.entity]: s.weight for s in res.seeds}
    assert set(weights) == {"port arlen", "varnholm"}
    assert weights["port arlen"] == pytest.approx(weights["varnholm"] / 2)


def test_mentions_found_on_a_worker_thread_change_nothing(hg):
    """With two CPUs spaCy runs beside the query embedding; hits, scores and explanations equal the
    serial path, for one query and for a batch, and mentions really ran on the worker thread."""
    import threading

    r = hg.retriever
    queries = [TWO_HOP, "Who founded Kessel Shipworks?", "Which harbour was dredged in 1902?"]
    find, seen = r.mentions, []

    def spy(q):
        seen.append(threading.current_thread().name)
        return find(q)

    def run(parallel):
        r.parallel_mentions = parallel
        return [[(h.passage_id, h.score, json.dumps(h.explanation, sort_keys=True, default=str)) for h in res]
                for res in hg.retrieve_many(queries, top_k=5, explain=True)]

    parallel = r.parallel_mentions
    r.mentions = spy
    try:
        serial = run(False)
        assert seen and all(name == threading.current_thread().name for name in seen)
        seen.clear()
        assert run(True) == serial
        assert [[h.passage_id for h in hg.retrieve(q, top_k=5)] for q in queries] == [[h[0] for h in s] for s in serial]
        assert seen and all(name.startswith("hippograph-mentions") for name in seen)
    finally:
        r.mentions, r.parallel_mentions = find, parallel
