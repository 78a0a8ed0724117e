"""Graph and triple exports: GraphML re-read by networkx and igraph, triples files, to_networkx."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from hippograph import HippoGraph
from hippograph.cli import main as cli_main


@pytest.fixture(scope="module")
def hg(sample_index):
    with HippoGraph.open(sample_index) as h:
        yield h


def _expected(hg) -> dict:
    """Edge counts and fact predicates straight from the index tables."""
    conn = hg.snapshot.conn
    return {
        "nodes": hg.snapshot.n_entities + hg.snapshot.n_passages,
        "fact": conn.execute("SELECT count(*) FROM facts").fetchone()[0],
        "mention": conn.execute("SELECT count(*) FROM mentions").fetchone()[0],
        "synonym": conn.execute("SELECT count(*) FROM synonyms").fetchone()[0],
        "predicates": Counter(r[0] for r in conn.execute("SELECT predicate FROM facts")),
    }


def test_graphml_round_trips_through_networkx_and_igraph(hg, tmp_path):
    import igraph as ig
    import networkx as nx

    want = _expected(hg)
    path = hg.export_graphml(tmp_path / "g.graphml")

    g = nx.read_graphml(path)
    assert g.is_directed() and g.is_multigraph()
    assert g.number_of_nodes() == want["nodes"]
    kinds = Counter(d["kind"] for _, _, d in g.edges(data=True))
    assert kinds == Counter({k: want[k] for k in ("fact", "mention", "synonym") if want[k]})
    facts = [(u, v, d) for u, v, d in g.edges(data=True) if d["kind"] == "fact"]
    assert Counter(d["predicate"] for _, _, d in facts) == want["predicates"]
    assert all(d["label"] == d["predicate"] for _, _, d in facts)  # Gephi shows `label` on the edge
    # a fact edge carries its id and the passages stating it
    snap = hg.snapshot
    u, v, d = facts[0]
    f = int(d["fact_id"])
    assert (u, v) == (f"e{snap.fact_subject[f]}", f"e{snap.fact_object[f]}")
    assert d["predicate"] == snap.fact_predicate[f]
    stated = {snap.passage_ids[p] for p in snap.fact_passages[f].indices}
    assert set(d["passages"].split()) == stated and d["weight"] == len(stated)
    assert g.nodes[u]["label"] == snap.entities[snap.fact_subject[f]] and g.nodes[u]["kind"] == "entity"

    ig_graph = ig.Graph.Read_GraphML(str(path))
    assert ig_graph.vcount() == want["nodes"] and ig_graph.ecount() == g.number_of_edges()
    assert Counter(p for p, k in zip(ig_graph.es["predicate"], ig_graph.es["kind"]) if k == "fact") == want["predicates"]
    assert Counter(ig_graph.vs["kind"]) == Counter(entity=snap.n_entities, passage=snap.n_passages)


def test_graphml_escapes_hostile_names(tmp_path):
    docs = [{"id": "x<&>\"", "title": "A <b>&amp; \x0b title",
             "text": "Ada <Lovelace> & Co worked with Charles Babbage in London. Charles Babbage designed the Engine."}]
    with HippoGraph.build(docs, tmp_path / "idx", _tfidf()) as h:
        import networkx as nx

        g = nx.read_graphml(h.export_graphml(tmp_path / "g.graphml"))
        assert any(d.get("doc_id") == "x<&>\"" for _, d in g.nodes(data=True))


def _tfidf():
    from hippograph import Config

    return Config(embedder="tfidf")


def test_to_networkx_matches_graphml(hg, tmp_path):
    import networkx as nx

    g = hg.to_networkx()
    assert isinstance(g, nx.MultiDiGraph)
    want = _expected(hg)
    assert g.number_of_nodes() == want["nodes"]
    assert g.number_of_edges() == want["fact"] + want["mention"] + want["synonym"]
    assert Counter(d["predicate"] for *_, d in g.edges(data=True) if d["kind"] == "fact") == want["predicates"]
    read = nx.read_graphml(hg.export_graphml(tmp_path / "g.graphml"))
    assert dict(g.nodes(data=True)) == dict(read.nodes(data=True))
    mine = {k: d for _, _, k, d in g.edges(keys=True, data=True)}
    theirs = {k: d for _, _, k, d in read.edges(keys=True, data=True)}
    assert mine.keys() == theirs.keys()
    assert all(mine[k] == {a: (float(v) if a == "weight" else v) for a, v in theirs[k].items()} for k in mine)


def test_triples_export_equals_triples(hg, tmp_path):
    rows = hg.triples()
    assert len(rows) == hg.stats()["triples"]
    assert hg.triples(limit=3) == rows[:3]
    # the sentence span points at the stated sentence in the document text
    snap = hg.snapshot
    p = snap.passages([snap.passage_index[rows[0]["passage_id"]]])[0]
    s, e = rows[0]["sentence_start"], rows[0]["sentence_end"]
    assert p.span[0] <= s < e <= p.span[1] and rows[0]["subject"].split()[0] in p.text[s - p.span[0]:e - p.span[0]].lower()

    assert hg.export_triples(tmp_path / "t.jsonl") == len(rows)
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows

    assert cli_main(["export", str(hg.dir.root), "--triples", str(tmp_path / "t.csv")]) == 0
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as f:
        got = list(csv.DictReader(f))
    as_text = [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    assert got == as_text

    import pyarrow.parquet as pq  # in the dev extra

    assert cli_main(["export", str(hg.dir.root), "--triples", str(tmp_path / "t.parquet")]) == 0
    assert pq.read_table(tmp_path / "t.parquet").to_pylist() == rows


def test_export_errors_are_one_line(sample_index, tmp_path, capsys):
    assert cli_main(["export", str(sample_index), "--triples", str(tmp_path / "t.xml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "t.xml" in err and ".parquet" in err and not (tmp_path / "t.xml").exists()
    assert cli_main(["export", str(sample_index)]) == 1
    assert "--graphml" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_extra(sample_index, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an install without pyarrow sees
    assert cli_main(["export", str(sample_index), "--triples", str(tmp_path / "t.parquet")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "hippograph[parquet]" in err and not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("name", ["t.jsonl", "t.csv", "t.parquet", "g.graphml"])
def test_an_export_that_fails_half_way_keeps_the_previous_file(hg, tmp_path, monkeypatch, name):
    """A write that dies part-way (full disk, Ctrl-C) leaves the earlier export intact and no temp file."""
    from hippograph import exports

    target = tmp_path / name
    write = exports.write_graphml if name.endswith("graphml") else exports.write_triples
    write(hg.snapshot, target)
    before = target.read_bytes()

    def dying(original):
        def gen(snap):
            it = original(snap)
            yield next(it)
            raise OSError(28, "No space left on device")
        return gen

    monkeypatch.setattr(exports, "iter_triples", dying(exports.iter_triples))
    monkeypatch.setattr(exports, "iter_edges", dying(exports.iter_edges))
    with pytest.raises(OSError):
        write(hg.snapshot, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
