"""The graph grown by an add (base graph files + this write's rows) equals one built from every row."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.format import GRAPH_FILES, GRAPH_PAIR_WEIGHTS, upper_graph
from hippograph.indexers.generation import write_graph
from hippograph.indexers.graph_builder import build_adjacency_arrays, grown_upper_graph


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


def test_add_grows_the_graph_and_delete_builds_it(tmp_path, caplog):
    hg = HippoGraph.build(DOCS[:1], tmp_path / "idx", Config(embedder="tfidf"))
    assert hg.add(DOCS[1:2]).to_dict()["derived"]["graph"] == "grown"
    assert hg.delete(["alpha"]).to_dict()["derived"]["graph"] == "built"
    graph = hg.dir.generation_path(hg.manifest) / "graph"
    (graph / "upper_indices.npy").write_bytes(b"garbage")  # a damaged base graph: built again, one warning
    with caplog.at_level("WARNING"):
        report = hg.add(DOCS[2:])
    assert report.to_dict()["derived"]["graph"] == "built" and "upper_indices.npy" in caplog.text
    assert hg.add([{"id": "delta", "title": "Delta", "text": "Delta Foods sells bread in Paris and Berlin."}]
                  ).to_dict()["derived"]["graph"] == "grown"
    gen = hg.dir.generation_path(hg.manifest)
    with sqlite3.connect(gen / "meta.sqlite") as conn:
        counts = write_graph(conn, tmp_path / "rebuilt", hg.stats()["entities"], hg.stats()["passages"], None)
    assert counts["edges"] == hg.stats()["edges"]
    assert _same({n: np.load(gen / "graph" / n) for n in GRAPH_FILES},
                 {n: np.load(tmp_path / "rebuilt" / n) for n in GRAPH_FILES})
