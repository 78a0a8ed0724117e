"""Metadata filters on every retrieval surface, checked against a brute-force filter.

The index is the bundled sample corpus with metadata added per document (numbers, ISO dates,
lists, nested objects, booleans, source folders) plus one document that repeats another's
passage with different metadata (a shared passage). `matches` below is an independent, plain
Python reading of the filter semantics in docs/filters.md.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import DATA, ROOT

Q = "In which town was the founder of Kessel Shipworks born?"
Q2 = "Which river flows through the town where the Meriden Star was built?"


def _doc_records() -> list[dict]:
    from hippograph import Config
    from hippograph.indexers.loaders import load_documents

    docs, _ = load_documents(DATA / "corpus", Config())
    recs = []
    for i, d in enumerate(sorted(docs, key=lambda d: d.id)):
        recs.append({
            "id": d.id, "title": d.title, "text": d.text, "source": f"{('papers', 'notes', 'web')[i % 3]}/{d.id}",
            "metadata": {
                "year": 1990 + i, "lang": ("en", "de", "fr", "en")[i % 4],
                "date": f"20{10 + i % 10}-0{1 + i % 9}-15" + ("T12:00:00+02:00" if i % 2 else ""),
                "tags": ["a", "b"] if i % 2 else ["c"], "org": {"team": "x" if i % 5 else "y"},
                "reviewed": i % 3 == 0, **({"score": 0.5 * i} if i % 4 else {}),
            },
        })
    first = recs[0]
    recs.append({"id": "zz-copy", "title": first["title"], "text": first["text"], "source": "archive/copy",
                 "metadata": {"year": 3000, "lang": "xx", "tags": ["copy"]}})
    return recs


@pytest.fixture(scope="module")
def meta_index(tmp_path_factory):
    from hippograph import Config, HippoGraph

    path = tmp_path_factory.mktemp("filters") / "idx"
    HippoGraph.build(_doc_records(), path, Config(embedder="tfidf"))
    return path


@pytest.fixture(scope="module")
def hg(meta_index):
    from hippograph import HippoGraph

    with HippoGraph.open(meta_index) as hg:
        yield hg


# ---------------------------------------------------------------------------- brute force
def _date(v):
    if not isinstance(v, str) or len(v) < 8 or v[4:5] != "-":
        return None
    try:
        d = dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def _values(record: dict, field: str) -> list:
    if field in ("doc_id", "source", "passage_id", "title"):
        return [record[field]]
    node = record["metadata"]
    for part in field.removeprefix("meta.").removeprefix("metadata.").split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return list(node) if isinstance(node, list) else [node]


def _same(a, b) -> bool:
    return type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                  and not isinstance(a, bool) and not isinstance(b, bool))


def _cmp(v, op: str, x) -> bool:
    ops = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
    if op == "$eq":
        return _same(v, x) and v == x
    if op == "$in":
        return any(_cmp(v, "$eq", y) for y in x)
    if op == "$prefix":
        return isinstance(v, str) and v.startswith(x)
    if op == "$glob":
        return isinstance(v, str) and fnmatch.fnmatchcase(v, x)
    if isinstance(x, str) and _date(x) is not None:
        return _date(v) is not None and ops[op](_date(v), _date(x))
    if isinstance(x, str):
        return isinstance(v, str) and ops[op](v, x)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and ops[op](v, x)


def matches(record: dict, flt: dict) -> bool:
    """Plain reading of docs/filters.md (Mongo-like form)."""
    for key, cond in flt.items():
        if key == "$and":
            ok = all(matches(record, c) for c in cond)
        elif key == "$or":
            ok = any(matches(record, c) for c in cond)
        elif key == "$not":
            ok = not matches(record, cond)
        else:
            vals = _values(record, key)
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            ok = True
            for op, x in ops.items():
                if op == "$exists":
                    ok &= bool(vals) == x
                elif op == "$ne":
                    ok &= not any(_cmp(v, "$eq", x) for v in vals)
                elif op == "$nin":
                    ok &= not any(_cmp(v, "$in", x) for v in vals)
                else:
                    ok &= any(_cmp(v, op, x) for v in vals)
        if not ok:
            return False
    return True


@pytest.fixture(scope="module")
def owners(hg) -> dict[int, list[dict]]:
    """Every (passage row → records of each document holding it) pair, read from the index tables."""
    conn = hg.snapshot.conn
    docs = {r["id"]: json.loads(r["metadata"]) for r in conn.execute("SELECT id, metadata FROM documents")}
    out: dict[int, list[dict]] = {}
    for r in conn.execute("SELECT idx, id, doc_id, source, title, metadata FROM passages"):
        out[r["idx"]] = [{"passage_id": r["id"], "doc_id": r["doc_id"], "source": r["source"], "title": r["title"],
                          "metadata": json.loads(r["metadata"])}]
    for r in conn.execute("SELECT passage_idx, doc_id, source FROM passage_owners"):
        first = out[r["passage_idx"]][0]
        out[r["passage_idx"]].append({**first, "doc_id": r["doc_id"], "source": r["source"],
                                      "metadata": docs[r["doc_id"]]})
    return out


def brute_force(owners: dict[int, list[dict]], flt: dict) -> set[str]:
    return {recs[0]["passage_id"] for recs in owners.values() if any(matches(r, flt) for r in recs)}


FILTERS = [
    {"year": 1995},
    {"year": {"$gte": 2000, "$lt": 2010}},
    {"lang": {"$in": ["de", "fr"]}},
    {"lang": {"$nin": ["en"]}},
    {"lang": {"$ne": "en"}},
    {"source": {"$glob": "papers/*"}},
    {"doc_id": {"$prefix": "people/"}},
    {"date": {"$gte": "2014-01-01", "$lt": "2017-06-30T00:00:00Z"}},
    {"tags": "a", "org.team": "y"},
    {"meta.org.team": "x", "reviewed": True},
    {"score": {"$gt": 3}},
    {"score": {"$exists": False}},
    {"$or": [{"lang": "fr"}, {"doc_id": {"$prefix": "rec"}}]},
    {"$not": {"year": {"$lt": 2010}}},
    {"lang": "xx"},
    {"title": {"$gte": "M"}},
    {"year": {"$gte": 2100}, "lang": "en"},
]


@pytest.mark.parametrize("flt", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_mask_equals_brute_force(hg, owners, flt):
    got = hg.retriever.passage_filter(flt)
    ids = {hg.snapshot.passage_ids[i] for i in np.flatnonzero(got.mask)}
    assert ids == brute_force(owners, flt)


def test_shared_passage_matches_through_any_owner(hg, owners):
    hits = hg.retrieve(Q, 5, mode="bm25", filters={"lang": "xx"})
    assert hits and all(h.doc_id != "zz-copy" for h in hits)  # the passage row names its first owner
    for h in hits:
        assert any(r["doc_id"] == "zz-copy" for r in owners[hg.snapshot.passage_index[h.passage_id]])
    assert {h.passage_id for h in hits} == brute_force(owners, {"lang": "xx"})


@pytest.mark.parametrize("mode", ["bm25", "dense"])
@pytest.mark.parametrize("flt", FILTERS[:9], ids=[json.dumps(f) for f in FILTERS[:9]])
def test_exact_modes_equal_filtered_unfiltered_ranking(hg, owners, flt, mode):
    """BM25 and (exact, all-candidate) dense: the filtered top-k is the unfiltered ranking with the
    non-matching passages removed — the best matching passages, not a filtered top-k."""
    n = hg.snapshot.n_passages
    full = hg.retrieve(Q2, n, mode=mode, candidates_per_granularity=n)
    keep = brute_force(owners, flt)
    expected = [h.passage_id for h in full if h.passage_id in keep][:5]
    got = hg.retrieve(Q2, 5, mode=mode, filters=flt, candidates_per_granularity=n)
    assert [h.passage_id for h in got] == expected
    few = hg.retrieve(Q2, 5, mode=mode, filters=flt, candidates_per_granularity=10)  # a widened search
    assert [h.passage_id for h in few] == expected


@pytest.mark.parametrize("mode", ["hybrid", "ppr"])
@pytest.mark.parametrize("flt", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_graph_modes_return_only_and_enough_matching_passages(hg, owners, flt, mode):
    keep = brute_force(owners, flt)
    hits = hg.retrieve(Q, 8, mode=mode, filters=flt)
    assert {h.passage_id for h in hits} <= keep
    assert len(hits) == min(8, len(keep))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filter_keeping_everything_changes_nothing(hg):
    for mode in ("hybrid", "ppr", "dense", "bm25"):
        plain = hg.retrieve_many([Q, Q2], 10, mode=mode, explain=True)
        kept = hg.retrieve_many([Q, Q2], 10, mode=mode, explain=True, filters={"year": {"$gte": 0}})
        assert [[(h.passage_id, round(h.score, 9)) for h in hits] for hits in plain] == \
               [[(h.passage_id, round(h.score, 9)) for h in hits] for hits in kept]


def test_retrieve_many_equals_retrieve(hg):
    flt = {"source": {"$glob": "*/people/*"}}
    many = hg.retrieve_many([Q, Q2], 4, filters=flt)
    assert [[h.passage_id for h in hits] for hits in many] == \
           [[h.passage_id for h in hg.retrieve(q, 4, filters=flt)] for q in (Q, Q2)]


def test_ppr_mass_stays_out_of_excluded_passages(hg):
    """Excluded passages get exactly zero PPR mass and seeds come only from kept passages' entities;
    the second hop starts from and boosts kept passages only."""
    flt = hg.retriever.passage_filter({"source": {"$glob": "notes/*"}})
    snap = hg.snapshot
    res = hg.retriever.search([Q, Q2], hg.config, "hybrid", flt)
    kept_entities = (snap.entity_passages @ flt.mask.astype(float)) > 0
    for r in res:
        assert r.ppr is not None and np.all(r.ppr[~flt.mask] == 0) and r.ppr[flt.mask].sum() > 0
        assert np.all(r.ppr_entities[~kept_entities] == 0)
        assert all(kept_entities[s.entity] for s in r.seeds)
        assert np.all(flt.mask[r.ranking])
        if r.bridge is not None:
            assert flt.mask[r.bridge.first_hop]
    unfiltered = hg.retriever.search([Q], hg.config, "hybrid")[0]
    assert np.any(unfiltered.ppr[~flt.mask] > 0)  # the filter is what zeroed them


# ---------------------------------------------------------------------------- malformed filters
BAD = [
    ("year>=2000", "must be a JSON object"),
    ({"year": {"$foo": 1}}, "unknown operator '$foo'"),
    ({"$or": {"year": 1}}, "non-empty list"),
    ({"lang": {"$in": "en"}}, "non-empty list"),
    ({"year": {"$gte": [1, 2]}}, "number or a (date) string"),
    ({"year": {"$gte": True}}, "number or a (date) string"),
    ({"meta.": 1}, "bad field name"),
    ({"year": {"a": 1}}, "expected a value or an object of operators"),
    ({"$xor": []}, "unknown operator '$xor'"),
    ({"operator": "AND", "conditions": "x"}, "non-empty list"),
    ({"field": "meta.x", "operator": "~", "value": 1}, "unknown comparison '~'"),
    ({"source": {"$glob": 3}}, "string pattern"),
    ({"x": {"$eq": {"y": 1}}}, "string, number or boolean"),
]


@pytest.mark.parametrize("flt,message", BAD, ids=[str(b[0]) for b in BAD])
def test_malformed_filters_raise_one_line_config_errors(hg, flt, message):
    from hippograph.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        hg.retrieve(Q, 3, mode="bm25", filters=flt)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hippograph.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_cli_filters_match_the_api(hg, meta_index):
    out = _cli("query", str(meta_index), Q, "--mode", "bm25", "-k", "4", "--json",
               "--filter", "year>=2000", "--filter", "source~=*/people/*", "--filter", '{"lang": {"$ne": "fr"}}',
               "--filter", 'tags=["a","c"]')
    assert out.returncode == 0, out.stderr
    flt = {"$and": [{"year": {"$gte": 2000}}, {"source": {"$glob": "*/people/*"}}, {"lang": {"$ne": "fr"}},
                    {"tags": {"$in": ["a", "c"]}}]}
    assert [h["passage_id"] for h in json.loads(out.stdout)["hits"]] == \
           [h.passage_id for h in hg.retrieve(Q, 4, mode="bm25", filters=flt)]


def test_cli_filter_values(meta_index):
    from hippograph.retrievers.filters import parse_cli_filter

    assert parse_cli_filter("year>=2020") == {"year": {"$gte": 2020}}
    assert parse_cli_filter("doc_id=0123") == {"doc_id": {"$eq": "0123"}}
    assert parse_cli_filter("doc_id=123") == {"doc_id": {"$eq": "123"}}  # ids stay strings
    assert parse_cli_filter('zip="02139"') == {"zip": {"$eq": "02139"}}
    assert parse_cli_filter("source^=papers/") == {"source": {"$prefix": "papers/"}}
    assert parse_cli_filter("lang!=[\"en\"]") == {"lang": {"$nin": ["en"]}}
    assert parse_cli_filter("date<2020-01-01") == {"date": {"$lt": "2020-01-01"}}


@pytest.mark.parametrize("arg", ["year>>2000", "=2000", '{"year": ', '{"year": {"$gte": null}}', "lang"])
def test_cli_bad_filter_exits_2_with_one_line(meta_index, arg, capsys):
    from hippograph.cli import main

    assert main(["query", str(meta_index), Q, "--mode", "bm25", "--filter", arg]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hippograph: error: --filter ") and err.count("\n") == 1


# ---------------------------------------------------------------------------- adapters
def test_haystack_filters(hg):
    pytest.importorskip("haystack")
    from hippograph.integrations.haystack import HippoGraphRetriever

    default = {"field": "meta.year", "operator": ">=", "value": 2005}
    comp = HippoGraphRetriever(hg, top_k=4, filters=default)
    got = comp.run(Q)["documents"]
    assert [d.id for d in got] == [h.passage_id for h in hg.retrieve(Q, 4, filters={"year": {"$gte": 2005}})]
    per_call = {"operator": "OR", "conditions": [{"field": "meta.lang", "operator": "==", "value": "de"},
                                                 {"field": "meta.doc_id", "operator": "in", "value": ["rec-vantry"]}]}
    got = comp.run(Q, filters=per_call)["documents"]
    assert [d.id for d in got] == [h.passage_id for h in hg.retrieve(
        Q, 4, filters={"$or": [{"lang": "de"}, {"doc_id": {"$in": ["rec-vantry"]}}]})]
    assert comp.to_dict()["init_parameters"]["filters"] == default
    by_id = {"field": "id", "operator": "==", "value": got[0].id}
    assert [d.id for d in comp.run(Q, filters=by_id)["documents"]] == [got[0].id]


def test_llamaindex_metadata_filters(hg, owners):
    pytest.importorskip("llama_index.core")
    from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

    from hippograph.integrations.llamaindex import HippoGraphRetriever, metadata_filters_to_dict

    mf = MetadataFilters(filters=[
        MetadataFilter(key="year", value=2010, operator=FilterOperator.LT),
        MetadataFilters(filters=[MetadataFilter(key="tags", value="a", operator=FilterOperator.CONTAINS),
                                 MetadataFilter(key="source", value="web", operator=FilterOperator.TEXT_MATCH)],
                        condition=FilterCondition.OR),
    ])
    as_dict = metadata_filters_to_dict(mf)
    assert as_dict == {"$and": [{"year": {"$lt": 2010}}, {"$or": [{"tags": {"$eq": "a"}}, {"source": {"$glob": "*web*"}}]}]}
    nodes = HippoGraphRetriever(hg, top_k=6, filters=mf).retrieve(Q)
    assert [n.node.node_id for n in nodes] == [h.passage_id for h in hg.retrieve(Q, 6, filters=as_dict)]
    assert {n.node.node_id for n in nodes} <= brute_force(owners, as_dict)
    with pytest.raises(ValueError, match="text_match_insensitive"):
        HippoGraphRetriever(hg, filters=MetadataFilters(filters=[
            MetadataFilter(key="title", value="x", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)]))


def test_langchain_search_kwargs_filter(hg):
    pytest.importorskip("langchain_core")
    from hippograph.integrations.langchain import HippoGraphRetriever

    flt = {"source": {"$glob": "web/*"}}
    r = HippoGraphRetriever(index=hg, search_kwargs={"filter": flt, "k": 3})
    assert [d.id for d in r.invoke(Q)] == [h.passage_id for h in hg.retrieve(Q, 3, filters=flt)]
    other = {"source": {"$prefix": "notes/"}}
    assert [d.id for d in r.invoke(Q, filter=other)] == [h.passage_id for h in hg.retrieve(Q, 3, filters=other)]
    with pytest.raises(ValueError, match="unknown operator"):
        HippoGraphRetriever(index=hg, search_kwargs={"filter": {"year": {"$bad": 1}}})
    with pytest.raises(ValueError, match="unknown key"):
        HippoGraphRetriever(index=hg, search_kwargs={"fetch_k": 3})


# ---------------------------------------------------------------------------- push PPR and candidate-only scoring
@pytest.mark.parametrize("flt", FILTERS[:6] + [{"source": {"$glob": "notes/*"}}], ids=lambda f: json.dumps(f))
def test_push_ppr_with_filter_equals_power_iteration_with_filter(hg, owners, flt):
    """Forward push under a filter walks the same induced subgraph as power iteration under it: same
    PPR scores (to push's residual), no mass on excluded passages, same filtered ranking."""
    keep = brute_force(owners, flt)
    view = hg.retriever.passage_filter(flt)
    cfg = hg.config.replace(ppr_tol=1e-12, ppr_max_iter=500)
    exact = hg.retriever.search([Q, Q2], cfg.replace(ppr_method="power"), "hybrid", view, depth=8)
    push = hg.retriever.search([Q, Q2], cfg.replace(ppr_method="push", ppr_push_eps=1e-9), "hybrid", view, depth=8)
    for e, p in zip(exact, push):
        assert {hg.snapshot.passage_ids[i] for i in p.ranking} <= keep and len(p.ranking) == min(8, len(keep))
        assert p.ranking.tolist() == e.ranking.tolist()
        if e.ppr is None:
            assert p.ppr is None
            continue
        assert np.all(p.ppr[~view.mask] == 0) and np.all(e.ppr[~view.mask] == 0)
        np.testing.assert_allclose(np.asarray(p.ppr), np.asarray(e.ppr), atol=1e-7)
        np.testing.assert_allclose(np.asarray(p.ppr_entities), np.asarray(e.ppr_entities), atol=1e-7)


def _excluding_top(hg, query: str, mode: str, m: int) -> dict:
    """A filter that drops the unfiltered top `m` passages of `query` (they would fill a short candidate list)."""
    top = hg.retrieve(query, m, mode=mode, candidates_per_granularity=hg.snapshot.n_passages)
    return {"passage_id": {"$nin": [h.passage_id for h in top]}}


@pytest.mark.parametrize("mode,cands", [("bm25", {"bm25_candidates": 3}), ("dense", {"candidates_per_granularity": 5})])
def test_filtered_candidate_lists_come_from_matching_passages(hg, owners, mode, cands):
    """Candidate-only scoring under a filter that removes the unfiltered top passages: the BM25 list
    (3 long) and the vector candidates (5) are taken from the matching passages, so the top 5 is the
    full ranking with the non-matching passages removed — 5 real hits, not a truncated list."""
    n = hg.snapshot.n_passages
    flt = _excluding_top(hg, Q2, mode, 15)
    keep = brute_force(owners, flt)
    full = hg.retrieve(Q2, n, mode=mode, candidates_per_granularity=n, bm25_candidates=n)
    expected = [h.passage_id for h in full if h.passage_id in keep and h.score > 0][:5]
    assert len(expected) == 5
    got = hg.retrieve(Q2, 5, mode=mode, filters=flt, **cands)
    assert [h.passage_id for h in got] == expected
    assert all(h.score > 0 for h in got)


def test_filtered_hybrid_keeps_its_evidence_with_short_lists(hg, owners):
    """Hybrid with short BM25/vector lists under a filter that drops the unfiltered top 15: k matching
    hits, and BM25 and dense evidence from matching passages (not lists emptied by the filter)."""
    flt = _excluding_top(hg, Q, "bm25", 15)
    keep = brute_force(owners, flt)
    cfg = hg.config.replace(bm25_candidates=3, candidates_per_granularity=5)
    res = hg.retriever.search([Q], cfg, "hybrid", hg.retriever.passage_filter(flt), depth=8)[0]
    assert {hg.snapshot.passage_ids[i] for i in res.ranking} <= keep and len(res.ranking) == 8
    assert len(res.bm25.idx) == 3 and all(hg.snapshot.passage_ids[i] in keep for i in res.bm25.idx)
    assert len(res.dense.idx) == 5 and all(hg.snapshot.passage_ids[i] in keep for i in res.dense.idx)
