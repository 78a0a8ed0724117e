"""The graph grown by an add (base graph files + this write's rows), or shrunk by a delete (base graph files +
the deleted triples), equals one built from every row."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.format import GRAPH_FILES, GRAPH_PAIR_WEIGHTS, upper_graph
from hippograph.indexers.generation import write_graph
from hippograph.indexers.graph_builder import build_adjacency_arrays, grown_upper_graph, shrunk_upper_graph


def _built(n_entities, n_passages, facts, mentions, syn):
    a, b, w = (np.array(x, dtype=t) for x, t in zip(zip(*syn) if syn else ([], [], []), (np.int64, np.int64, np.float64)))
    adj, kind = build_adjacency_arrays(n_entities, n_passages, np.array(facts, np.int64).reshape(-1, 2),
                                       np.array(mentions, np.int64).reshape(-1, 2), a, b, w)
    return upper_graph(adj.indptr, adj.indices, adj.data, kind.data, n_entities)


def _grown(base, e0, e1, p1, facts, mentions, syn, base_syn):
    scores = {(a, b): w for a, b, w in base_syn}
    a, b, w = (np.array(x, dtype=t) for x, t in zip(zip(*syn) if syn else ([], [], []), (np.int64, np.int64, np.float64)))
    return grown_upper_graph(tuple(base[name] for name in GRAPH_FILES), e0, e1, p1,
                             np.array(facts, np.int64).reshape(-1, 2), np.array(mentions, np.int64).reshape(-1, 2),
                             a, b, w, lambda x, y: np.array([scores.get((i, j), 0.0) for i, j in zip(x, y)]))


def _same(a, b) -> bool:
    return all(a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n]) for n in GRAPH_FILES)


def _random_rows(rng, e_lo, e_hi, p_lo, p_hi, n_facts, n_syn, all_entities):
    facts = [tuple(rng.integers(0, e_hi, 2)) for _ in range(n_facts)]
    mentions = sorted({(int(rng.integers(0 if all_entities else e_lo, e_hi)), int(p))
                       for p in range(p_lo, p_hi) for _ in range(3)})
    syn = {}
    for _ in range(n_syn):
        x, y = sorted(int(v) for v in (rng.integers(0, e_hi), rng.integers(e_lo, e_hi)))
        if x != y:
            syn[(x, y)] = float(rng.uniform(0.8, 1.0))
    return facts, mentions, [(x, y, w) for (x, y), w in sorted(syn.items())]


@pytest.mark.parametrize("seed", range(6))
def test_grown_graph_equals_a_build(seed):
    rng = np.random.default_rng(seed)
    e0, p0, e1, p1 = 30, 20, 42, 27
    facts0, ment0, syn0 = _random_rows(rng, 0, e0, 0, p0, 60, 25, True)
    facts1, ment1, syn1 = _random_rows(rng, e0, e1, p0, p1, 30, 15, True)
    facts1 += [facts0[0], facts0[0], (syn0[0][0], syn0[0][1])]  # old pairs gain triples, one also a synonym
    base = _built(e0, p0, facts0, ment0, syn0)
    scratch = _built(e1, p1, facts0 + facts1, ment0 + ment1, syn0 + syn1)
    assert _same(_grown(base, e0, e1, p1, facts1, ment1, syn1, syn0), scratch)


def test_an_old_fact_and_synonym_pair_gains_a_triple():
    base_syn = [(1, 2, 0.8712345)]
    base = _built(5, 2, [(1, 2), (2, 1)], [(1, 0), (2, 1)], base_syn)
    grown = _grown(base, 5, 6, 3, [(1, 2)], [(5, 2), (1, 2)], [], base_syn)
    scratch = _built(6, 3, [(1, 2), (2, 1), (1, 2)], [(1, 0), (2, 1), (5, 2), (1, 2)], base_syn)
    assert _same(grown, scratch)
    assert grown[GRAPH_PAIR_WEIGHTS].tolist() == [np.float32(3 + 0.8712345)]


def test_a_weight_that_does_not_split_is_refused():
    base = _built(5, 2, [(1, 2), (2, 1)], [(1, 0), (2, 1)], [])
    base[GRAPH_PAIR_WEIGHTS] = base[GRAPH_PAIR_WEIGHTS] + np.float32(0.25)  # 2.25: no synonym explains it
    assert _grown(base, 5, 5, 3, [(1, 2)], [(1, 2)], [], []) is None


DOCS = [
    {"id": "alpha", "title": "Alpha Corp", "text": "Alpha Corp was founded by Jane Doe in Paris. Alpha Corp makes glass lenses."},
    {"id": "beta", "title": "Beta Labs", "text": "Beta Labs was founded by Jane Doe in Berlin. Beta Labs builds telescopes."},
    {"id": "gamma", "title": "Gamma Works", "text": "Gamma Works was founded by Omar Reyes in Lisbon. Jane Doe visited Paris."},
]


def _shrunk(base, e0, entity_new, passage_new, removed, syn_after):
    scores = {(a, b): w for a, b, w in syn_after}
    out = shrunk_upper_graph(tuple(base[name] for name in GRAPH_FILES), e0, np.array(entity_new), np.array(passage_new),
                             np.array(removed, np.int64).reshape(-1, 2),
                             lambda x, y: np.array([scores.get((i, j), np.nan) for i, j in zip(x, y)]))
    return None if out is None else dict(zip(GRAPH_FILES, out))


def _delete(rng, e0, p0, triples, mentions, syn, doomed):
    """What `indexers.delete` leaves of these rows without passages `doomed`: the kept rows renumbered,
    the row maps and the deleted passages' (subject, object) pairs in old numbers."""
    kept_p = [p for p in range(p0) if p not in doomed]
    passage_new = np.full(p0, -1)
    passage_new[kept_p] = np.arange(len(kept_p))
    kept_e = sorted({e for e, p in mentions if p not in doomed} | {x for s, o, p in triples if p not in doomed for x in (s, o)})
    entity_new = np.full(e0, -1)
    entity_new[kept_e] = np.arange(len(kept_e))
    facts = [(entity_new[s], entity_new[o]) for s, o, p in triples if p not in doomed]
    ment = [(entity_new[e], passage_new[p]) for e, p in mentions if p not in doomed]
    syn_after = [(entity_new[a], entity_new[b], w) for a, b, w in syn if entity_new[a] >= 0 and entity_new[b] >= 0]
    removed = [(s, o) for s, o, p in triples if p in doomed]
    return entity_new, passage_new, removed, facts, ment, syn_after, len(kept_e), len(kept_p)


@pytest.mark.parametrize("seed", range(8))
def test_shrunk_graph_equals_a_build(seed):
    rng = np.random.default_rng(seed)
    e0, p0 = 40, 25
    triples = [(int(rng.integers(0, 12)), int(rng.integers(0, e0)), int(rng.integers(0, p0))) for _ in range(90)]
    mentions = sorted({(int(rng.integers(0, e0)), p) for p in range(p0) for _ in range(3)})
    syn = {}
    for _ in range(30):
        a, b = sorted(int(v) for v in rng.integers(0, e0, 2))
        if a != b:
            syn[(a, b)] = float(rng.uniform(0.8, 1.0))
    syn_rows = [(a, b, w) for (a, b), w in sorted(syn.items())]
    # a pair stated once and also a synonym: deleting its passage leaves a synonym edge
    triples.append((syn_rows[0][0], syn_rows[0][1], p0 - 1))
    doomed = {int(p) for p in rng.choice(p0, 8, replace=False)} | {p0 - 1}
    base = _built(e0, p0, [(s, o) for s, o, _ in triples], mentions, syn_rows)
    entity_new, passage_new, removed, facts, ment, syn_after, e1, p1 = _delete(rng, e0, p0, triples, mentions, syn_rows, doomed)
    shrunk = _shrunk(base, e0, entity_new, passage_new, removed, syn_after)
    assert shrunk is not None and _same(shrunk, _built(e1, p1, facts, ment, syn_after))


def test_a_pair_losing_its_triples_keeps_its_synonym_edge():
    syn = [(1, 2, 0.8712345)]
    triples = [(1, 2, 0), (2, 1, 1), (1, 3, 1)]
    mentions = [(1, 0), (2, 0), (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]
    base = _built(4, 3, [(s, o) for s, o, _ in triples], mentions, syn)
    entity_new, passage_new, removed, facts, ment, syn_after, e1, p1 = _delete(None, 4, 3, triples, mentions, syn, {0, 1})
    shrunk = _shrunk(base, 4, entity_new, passage_new, removed, syn_after)
    assert _same(shrunk, _built(e1, p1, facts, ment, syn_after))
    assert shrunk[GRAPH_PAIR_WEIGHTS].tolist() == [np.float32(0.8712345)]  # 1-2 is a synonym edge alone; 1-3 gone


def test_a_delete_the_graph_does_not_explain_is_refused():
    triples = [(1, 2, 0), (1, 2, 1)]
    mentions = [(1, 0), (2, 1)]
    base = _built(3, 2, [(s, o) for s, o, _ in triples], mentions, [])
    # a removed triple between entities the graph does not link, and a pair losing more triples than it has
    assert _shrunk(base, 3, np.arange(3), np.array([0, -1]), [(0, 1)], []) is None
    assert _shrunk(base, 3, np.arange(3), np.array([0, -1]), [(1, 2)] * 3, []) is None
    base[GRAPH_PAIR_WEIGHTS] = base[GRAPH_PAIR_WEIGHTS] + np.float32(0.25)
    assert _shrunk(base, 3, np.arange(3), np.array([0, -1]), [(1, 2)], []) is None


def test_add_grows_the_graph_and_delete_updates_it(tmp_path, caplog):
    hg = HippoGraph.build(DOCS[:1], tmp_path / "idx", Config(embedder="tfidf"))
    assert hg.add(DOCS[1:2]).to_dict()["derived"]["graph"] == "grown"
    assert hg.delete(["alpha"]).to_dict()["derived"]["graph"] == "updated"
    graph = hg.dir.generation_path(hg.manifest) / "graph"
    (graph / "upper_indices.npy").write_bytes(b"garbage")  # a damaged base graph: built again, one warning
    with caplog.at_level("WARNING"):
        report = hg.add(DOCS[2:])
    assert report.to_dict()["derived"]["graph"] == "built" and "upper_indices.npy" in caplog.text
    assert hg.add([{"id": "delta", "title": "Delta", "text": "Delta Foods sells bread in Paris and Berlin."}]
                  ).to_dict()["derived"]["graph"] == "grown"
    _assert_built_alike(hg, tmp_path / "rebuilt")
    # an update deletes and adds in one write: the delete taken out of the base graph, the add grown onto it
    changed = {"id": "beta", "title": "Beta Labs", "text": "Beta Labs was founded by Omar Reyes in Lisbon."}
    assert hg.update([changed]).to_dict()["derived"]["graph"] == "updated"
    _assert_built_alike(hg, tmp_path / "rebuilt-after-update")


def _assert_built_alike(hg, scratch):
    gen = hg.dir.generation_path(hg.manifest)
    with sqlite3.connect(gen / "meta.sqlite") as conn:
        counts = write_graph(conn, scratch, hg.stats()["entities"], hg.stats()["passages"], None)
    assert counts["edges"] == hg.stats()["edges"]
    assert _same({n: np.load(gen / "graph" / n) for n in GRAPH_FILES}, {n: np.load(scratch / n) for n in GRAPH_FILES})


def test_a_delete_from_a_damaged_graph_builds_it(tmp_path, caplog):
    hg = HippoGraph.build(DOCS, tmp_path / "idx", Config(embedder="tfidf"))
    graph = hg.dir.generation_path(hg.manifest) / "graph"
    (graph / "pair_weights.npy").write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level("WARNING"):
        report = hg.delete(["beta"])
    assert report.to_dict()["derived"]["graph"] == "built" and "pair_weights.npy" in caplog.text
    _assert_built_alike(hg, tmp_path / "rebuilt")
