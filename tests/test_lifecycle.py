"""Index lifecycle: delete, update, sync (API and CLI), SPANN tombstones + compaction, and
the equality of an incrementally maintained graph with a from-scratch build."""
from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.format import GRANULARITIES, GRAPH_FILES, load_embeddings
from hippograph.indexers.generation import write_graph
from hippograph.indexers.graph_builder import EDGE_KIND_NAMES
from hippograph.retrievers.lexical import BM25Index
from hippograph.tables import CorpusTables
from hippograph.text import passage_embedding_text

from .conftest import DATA, record_checksum

DOCS = [
    {"id": "alpha", "title": "Alpha Corp", "text": "Alpha Corp was founded by Jane Doe in Paris. Alpha Corp makes glass lenses."},
    {"id": "beta", "title": "Beta Labs", "text": "Beta Labs was founded by Jane Doe in Berlin. Beta Labs builds telescopes."},
    {"id": "gamma", "title": "Gamma Works", "text": "Gamma Works was founded by Omar Reyes in Lisbon. Gamma Works repairs ships."},
]


def _tables(hg: HippoGraph) -> CorpusTables:
    return CorpusTables.load(hg.dir.generation_path(hg.manifest) / "meta.sqlite")


def _assert_consistent(hg: HippoGraph) -> None:
    """Invariants every generation must satisfy, whatever produced it."""
    assert hg.dir.verify() == []
    gen = hg.dir.generation_path(hg.manifest)
    t = _tables(hg)
    emb = load_embeddings(gen)
    rows = {"passages": len(t.passages), "sentences": len(t.sentences), "facts": len(t.facts), "entities": len(t.entities)}
    for gran in GRANULARITIES:
        assert len(emb.get(gran, ())) == rows[gran], gran
        index = hg.snapshot.vector_index(gran)
        assert (0 if index is None else len(index)) == rows[gran], gran
    # the rows a vector index returns are the rows of the tables: the score it reports for a
    # hit must be the inner product with that row's embedding (checks the vector-id maps)
    rng = np.random.default_rng(0)
    for gran in GRANULARITIES:
        index, vecs = hg.snapshot.vector_index(gran), emb.get(gran)
        if index is None or vecs is None or not len(vecs):
            continue
        queries = rng.choice(len(vecs), size=min(5, len(vecs)), replace=False)
        scores, ids = index.search(vecs[queries], min(3, len(vecs)))
        for q, srow, irow in zip(queries, scores, ids):
            for score, row in zip(srow, irow):
                if row >= 0:
                    assert abs(float(vecs[row] @ vecs[q]) - float(score)) < 1e-3, (gran, q, row)
    assert {p.doc_id for p in t.passages} <= {d.id for d in t.documents}
    mentioned = {e for e, _ in t.mentions}
    assert mentioned == set(range(len(t.entities))), "every entity is mentioned by a passage"
    assert {f for f, *_ in t.fact_passages} == set(range(len(t.facts))), "every fact has an occurrence"
    assert all(0 <= a < b < len(t.entities) for a, b, _, _ in t.synonyms)
    assert hg.stats()["documents"] == len(t.documents)
    # the graph, grown by an add from the base graph and the new rows, equals one built from every row
    with tempfile.TemporaryDirectory() as tmp, sqlite3.connect(gen / "meta.sqlite") as conn:
        write_graph(conn, Path(tmp) / "graph", len(t.entities), len(t.passages), None)
        for name in GRAPH_FILES:
            stored, scratch_arr = np.load(gen / "graph" / name), np.load(Path(tmp) / "graph" / name)
            assert stored.dtype == scratch_arr.dtype and np.array_equal(stored, scratch_arr), name
    # BM25, updated by a write from the new passages alone, equals a build over every passage, bit for bit
    bm25 = BM25Index.load(gen / "lexical" / "passages")
    scratch = BM25Index.build([passage_embedding_text(p.title, p.text) for p in t.passages])
    assert bm25.vocab == scratch.vocab and np.array_equal(bm25.indptr, scratch.indptr)
    assert np.array_equal(bm25.indices, scratch.indices) and np.array_equal(bm25.doclen, scratch.doclen)
    assert np.array_equal(bm25.data.view(np.int32), scratch.data.view(np.int32))


@pytest.fixture()
def tiny(tmp_path) -> HippoGraph:
    return HippoGraph.build(DOCS, tmp_path / "idx", Config(embedder="tfidf"))


def test_delete_removes_only_what_the_document_contributed(tiny):
    hg = tiny
    before = _tables(hg)
    assert {"beta labs", "berlin", "jane doe", "paris"} <= set(before.entities)
    spec_before = dict(zip(hg.snapshot.entities, hg.snapshot.specificity))
    assert spec_before["jane doe"] == pytest.approx(0.5)  # mentioned by alpha and beta

    report = hg.delete(["beta", "no-such-doc"])
    assert report.deleted_documents == ["beta"] and report.missing_documents == ["no-such-doc"]
    assert report.deleted["passages"] == 1 and report.deleted["entities"] > 0
    after = _tables(hg)
    assert [d.id for d in after.documents] == ["alpha", "gamma"]
    assert not {"beta labs", "berlin", "telescopes"} & set(after.entities)
    assert {"jane doe", "paris", "alpha corp", "gamma works"} <= set(after.entities)
    assert all("Beta" not in after.fact_text(f) for f in range(len(after.facts)))
    spec_after = dict(zip(hg.snapshot.entities, hg.snapshot.specificity))
    assert spec_after["jane doe"] == pytest.approx(1.0)  # specificity recomputed for touched entities
    _assert_consistent(hg)
    for mode in ("hybrid", "dense", "bm25", "ppr"):
        assert all(h.doc_id != "beta" for h in hg.retrieve("Who founded Beta Labs in Berlin?", top_k=5, mode=mode))
    # a reopened index agrees
    again = HippoGraph.open(hg.dir.root)
    assert again.stats()["documents"] == 2 and again.stats()["generation"] == report.generation
    # deleting nothing writes nothing
    gen = hg.stats()["generation"]
    assert hg.delete(["beta"]).missing_documents == ["beta"]
    assert hg.stats()["generation"] == gen


def test_update_reindexes_only_changed_documents(tiny, monkeypatch):
    from hippograph.indexers import extraction

    hg = tiny
    seen: list[list[str]] = []
    original = extraction.TripleExtractor.extract

    def counting(self, passages, **kw):
        seen.append([p.doc_id for p in passages])
        return original(self, passages, **kw)

    monkeypatch.setattr(extraction.TripleExtractor, "extract", counting)
    changed = dict(DOCS[1], text="Beta Labs was founded by Ana Ruiz in Madrid. Beta Labs builds microscopes.")
    new = {"id": "delta", "title": "Delta Farms", "text": "Delta Farms grows olives near Seville."}
    report = hg.update([DOCS[0], changed, new])
    assert seen == [["beta", "delta"]]  # alpha unchanged: not re-extracted
    assert report.updated_documents == ["beta"] and report.added_documents == ["delta"]
    assert report.unchanged_documents == 1 and report.deleted_documents == []
    ents = set(_tables(hg).entities)
    assert {"ana ruiz", "madrid", "delta farms"} <= ents and "berlin" not in ents
    assert "jane doe" in ents  # still mentioned by alpha
    hashes = {d["id"]: d["content_hash"] for d in hg.documents()}
    assert len(hashes) == 4
    _assert_consistent(hg)
    hit = hg.retrieve("Who founded Beta Labs?", top_k=1)[0]
    assert hit.doc_id == "beta" and "Ana Ruiz" in hit.text
    # the same input again: nothing to do, no new generation
    gen = hg.stats()["generation"]
    again = hg.update([DOCS[0], changed, new])
    assert not again.changed and again.unchanged_documents == 3 and hg.stats()["generation"] == gen


def test_spann_layer_tombstones_compaction_and_id_map(tmp_path):
    """With a tiny SPANN threshold every granularity but passages is a SPANN index: adds go
    through SpannIndex.add on a cloned index, deletes through tombstones + a vector-id map."""
    from hippograph.indexers.loaders import load_documents
    from hippograph.snapshot import RowIdIndex

    docs, _ = load_documents(DATA / "corpus", Config())
    a, b = docs[:24], docs[24:]
    hg = HippoGraph.build(a, tmp_path / "idx", Config(embedder="tfidf", spann_min_vectors=60))
    state = hg.manifest.lifecycle["vectors"]
    assert state["sentences"]["kind"] == "spann" and state["passages"]["kind"] == "flat"
    hg.add(b[:2])  # a small add: cloned SPANN indexes updated in place, not rebuilt
    state2 = hg.manifest.lifecycle["vectors"]
    assert state2["sentences"]["built"] == state["sentences"]["built"]
    assert state2["sentences"]["next_vid"] > state["sentences"]["next_vid"]
    _assert_consistent(hg)
    top = hg.retrieve(b[0].title, top_k=3, mode="dense")
    assert b[0].id in {h.doc_id for h in top}

    victim = a[3].id
    report = hg.delete([victim])
    st = hg.manifest.lifecycle["vectors"]["sentences"]
    assert st["tombstones"] == report.deleted["sentences"] > 0
    assert isinstance(hg.snapshot.vector_index("sentences"), RowIdIndex)
    _assert_consistent(hg)
    for mode in ("dense", "hybrid"):
        assert victim not in {h.doc_id for h in hg.retrieve(a[3].title, top_k=10, mode=mode)}

    # deleting a third of the documents crosses the 20 % tombstone threshold: automatic compaction
    report = hg.delete([d.id for d in a[4:12]])
    assert any(c.startswith("sentences: compacted") for c in report.compacted), report.compacted
    assert hg.manifest.lifecycle["vectors"]["sentences"]["tombstones"] == 0
    _assert_consistent(hg)

    # explicit compaction: --rebuild re-clusters and drops the id maps
    report = hg.compact(rebuild_vectors=True)
    assert any(c.startswith("sentences: rebuilt") for c in report.compacted)
    gen = hg.dir.generation_path(hg.manifest)
    assert not list((gen / "vectors").glob("*.vid2row.npy"))
    assert [p.name for p in (tmp_path / "idx").glob("gen-*")] == [gen.name]  # older generations removed
    _assert_consistent(hg)
    assert victim not in {h.doc_id for h in hg.retrieve(a[3].title, top_k=10)}


def _cli(capsys, *args: str) -> str:
    """Run the CLI in-process (spaCy stays loaded between calls) and return its stdout."""
    from hippograph.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_cli_sync_add_update_delete_and_compact(tmp_path, capsys, caplog):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("Orvik\n\nOrvik is an island in the Halvenne Archipelago. Its harbour is small.\n")
    (src / "b.txt").write_text("Kesselby\n\nKesselby is a town on the River Corran. It has a shipyard.\n")
    (src / "sub" / "c.txt").write_text("Tamsey\n\nTamsey is a fishing village north of Port Meriden.\n")
    (src / "recs.json").write_text(json.dumps([{"id": "r1", "title": "Drumlow", "text": "Drumlow is a university town."}]))
    idx = tmp_path / "idx"
    built = json.loads(_cli(capsys, "index", str(src), "--index", str(idx), "--embedder", "tfidf", "--json"))
    assert built["action"] == "built" and built["documents"] == 4

    # nothing changed: no new generation
    same = json.loads(_cli(capsys, "index", str(src), "--index", str(idx), "--json"))
    assert same["action"] == "unchanged" and same["generation"] == built["generation"]

    (src / "b.txt").write_text("Kesselby\n\nKesselby is a town on the River Vell. It has a glassworks.\n")
    (src / "sub" / "c.txt").unlink()
    (src / "d.txt").write_text("Ostrel\n\nOstrel is a mountain pass above the River Vell.\n")
    out = json.loads(_cli(capsys, "index", str(src), "--index", str(idx), "--json"))
    ch = out["changes"]
    assert out["action"] == "synced"
    assert ch["added_documents"] == ["d.txt"] and ch["updated_documents"] == ["b.txt"]
    assert ch["deleted_documents"] == ["sub/c.txt"] and ch["unchanged_documents"] == 2
    assert out["documents"] == 4

    # --no-delete keeps documents whose files are gone; a file that cannot be read this time
    # does not cause its documents to be deleted either
    (src / "recs.json").write_text("[{ broken json")
    (src / "a.txt").unlink()
    kept = json.loads(_cli(capsys, "index", str(src), "--index", str(idx), "--json", "--no-delete"))
    assert kept["action"] == "unchanged" and kept["documents"] == 4
    with caplog.at_level(logging.WARNING):
        text = _cli(capsys, "index", str(src), "--index", str(idx))
    assert "1 deleted" in text and "- a.txt" in text  # human-readable summary names the changes
    assert "recs.json" in caplog.text and "kept document r1" in caplog.text
    assert HippoGraph.open(idx).stats()["documents"] == 3

    # end to end in a subprocess: compact and check
    proc = subprocess.run([sys.executable, "-m", "hippograph.cli", "compact", str(idx), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    comp = json.loads(proc.stdout)
    assert comp["bytes_after"] <= comp["bytes_before"] and comp["generation"].startswith("gen-")
    assert "ok" in _cli(capsys, "check", str(idx))


# ---- incremental == from scratch ---------------------------------------------------------------

def _graph_by_name(hg: HippoGraph) -> dict[tuple[str, str, str], float]:
    snap = hg.snapshot
    names = [f"E:{e}" for e in snap.entities] + [f"P:{p}" for p in snap.passage_ids]
    a = snap.adjacency.tocoo()
    kinds = snap.edge_kinds
    out = {}
    for r, c, w, k in zip(a.row, a.col, a.data, kinds):
        if r < c:
            u, v = sorted((names[r], names[c]))
            out[(u, v, EDGE_KIND_NAMES[int(k)])] = float(w)
    return out


def _facts_by_name(hg: HippoGraph) -> Counter:
    t = _tables(hg)
    return Counter((t.fact_text(f), t.passages[p].id) for f, p, *_ in t.fact_passages)


@pytest.mark.slow
def test_incremental_graph_equals_scratch_build(tmp_path, sample_questions):
    """build(A) + add(B) + delete(C) == build(A + B − C), compared by names, with MiniLM.

    MiniLM has no fitted state, so unit embeddings do not depend on which documents were
    indexed first (the TF-IDF embedder is fitted on the first build's corpus, so an
    incremental TF-IDF index keeps that first fit and differs from a scratch build).
    Synonymy is computed new-vs-all; the corpus is small enough that no entity reaches
    `synonymy_max_neighbors` (asserted), where new-vs-all and all-pairs could differ.
    """
    from hippograph.indexers.loaders import load_documents

    docs, _ = load_documents(DATA / "corpus", Config())
    docs = docs[:12]
    a, b = docs[:8], docs[8:]
    c_ids = {docs[2].id, docs[5].id, docs[9].id}  # from A and from B
    final = [d for d in a + b if d.id not in c_ids]
    # float32, not the bf16 autocast 'auto' picks on a CPU with native bf16: bf16 matrix products
    # round differently with the batch size (measured: 4e-4 per component, 8e-8 in float32), and the same passage is
    # encoded in batches of different sizes by an incremental and a scratch build — one passage's
    # dense score for a query moved by 5.6e-4: noise, not an index inconsistency.
    cfg = Config(embedder="sentence-transformers", embedding_precision="float32")

    inc = HippoGraph.build(a, tmp_path / "inc", cfg)
    inc.add(b)
    inc.delete(sorted(c_ids))
    scratch = HippoGraph.build(final, tmp_path / "scratch", cfg)

    assert {d["id"]: d["content_hash"] for d in inc.documents()} == {d["id"]: d["content_hash"] for d in scratch.documents()}
    assert set(inc.snapshot.entities) == set(scratch.snapshot.entities)
    assert set(inc.snapshot.passage_ids) == set(scratch.snapshot.passage_ids)
    assert _facts_by_name(inc) == _facts_by_name(scratch)
    g_inc, g_scr = _graph_by_name(inc), _graph_by_name(scratch)
    assert set(g_inc) == set(g_scr)
    for key, w in g_scr.items():
        assert g_inc[key] == pytest.approx(w, abs=1e-4), key
    assert dict(zip(inc.snapshot.entities, inc.snapshot.specificity)) == dict(
        zip(scratch.snapshot.entities, scratch.snapshot.specificity))
    syn_degree = Counter()
    for (u, v, kind) in g_scr:
        if kind == "synonym":
            syn_degree[u] += 1
            syn_degree[v] += 1
    assert max(syn_degree.values(), default=0) < cfg.synonymy_max_neighbors
    _assert_consistent(inc)

    questions = [q["question"] for q in sample_questions[:8]] + [d.title for d in final[:4]]
    r_inc = inc.retrieve_many(questions, top_k=5)
    r_scr = scratch.retrieve_many(questions, top_k=5)
    for q, hi, hs in zip(questions, r_inc, r_scr):
        assert [h.passage_id for h in hi] == [h.passage_id for h in hs], q
        assert np.allclose([h.score for h in hi], [h.score for h in hs], atol=1e-4), q


def test_sample_index_copy_delete_then_add_back(sample_index, tmp_path):
    """Delete a document from the shared sample index and add it back: same counts as before."""
    copy = tmp_path / "copy"
    shutil.copytree(sample_index, copy)
    hg = HippoGraph.open(copy)
    before = hg.stats()
    doc = next(d for d in hg.documents() if d["title"] == "Kessel Shipworks")
    path = Path(doc["source"])
    hg.delete([doc["id"]])
    assert hg.stats()["documents"] == before["documents"] - 1
    assert all(h.title != "Kessel Shipworks" for h in hg.retrieve("Who founded Kessel Shipworks?", top_k=5))
    report = hg.sync([path], delete_missing=False)
    assert report.added_documents == [path.name]  # a single file's id is its name
    after = hg.stats()
    for key in ("passages", "sentences", "entities", "facts", "triples", "mentions", "synonyms", "edges"):
        assert after[key] == before[key], key
    _assert_consistent(hg)


def test_adjacency_from_records_matches_arrays():
    from hippograph.indexers.graph_builder import SynonymEdge, build_adjacency, build_adjacency_arrays

    rng = np.random.default_rng(7)
    n_e, n_p = 40, 15
    facts = rng.integers(0, n_e, size=(120, 2))
    mentions = np.stack([rng.integers(0, n_e, 90), rng.integers(0, n_p, 90)], 1)
    pairs = {tuple(sorted(map(int, rng.integers(0, n_e, 2)))) for _ in range(60)}
    syn = [SynonymEdge(a, b, float(rng.uniform(0.8, 1)), "embedding") for a, b in sorted(pairs) if a != b]
    a1, k1 = build_adjacency(n_e, n_p, facts, mentions, syn)
    a2, k2 = build_adjacency_arrays(
        n_e, n_p, facts, mentions, np.array([s.a for s in syn]), np.array([s.b for s in syn]), np.array([s.score for s in syn]))
    for x, y in ((a1, a2), (k1, k2)):
        assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
        assert np.allclose(x.data, y.data)


def test_posting_files_are_shared_append_only_and_verified(tmp_path):
    """An add hard-links the previous generation's SPANN posting files and appends to them;
    the manifest checksums only the prefix each generation uses, so both generations verify."""
    import os

    from hippograph.indexers.loaders import load_documents
    from hippograph.storage import Manifest, parse_segments

    docs, _ = load_documents(DATA / "corpus", Config())
    hg = HippoGraph.build(docs[:30], tmp_path / "idx", Config(embedder="tfidf", spann_min_vectors=60))
    old = hg.manifest
    hg.add(docs[30:32])
    new = hg.manifest
    shared = [rel for rel, v in new.checksums.items() if parse_segments(v) and rel in old.checksums
              and os.path.samefile(tmp_path / "idx" / old.generation / rel, tmp_path / "idx" / new.generation / rel)]
    assert shared, "posting files should be hard-linked between generations"
    rel = shared[0]
    old_segs, new_segs = parse_segments(old.checksums[rel]), parse_segments(new.checksums[rel])
    assert new_segs[: len(old_segs)] == old_segs and new_segs[-1][1] > old_segs[-1][1]
    assert hg.dir.verify() == []
    assert hg.dir.verify(Manifest.from_dict(old.to_dict(), tmp_path / "m")) == []  # the old generation too
    # damage inside a covered segment is reported with its byte range
    path = tmp_path / "idx" / new.generation / rel
    with open(path, "r+b") as fh:
        fh.seek(new_segs[-1][0])
        byte = fh.read(1)
        fh.seek(new_segs[-1][0])
        fh.write(bytes([byte[0] ^ 0xFF]))
    problems = hg.dir.verify()
    assert any(rel.split("/")[-1] in p and f"bytes {new_segs[-1][0]}..{new_segs[-1][1]}" in p for p in problems)


def test_sync_from_another_root_relabels_instead_of_reindexing(tmp_path, monkeypatch):
    """Ids of files are paths relative to the folder given; syncing the parent folder changes
    every id but no content: the documents are relabelled (same source + content hash), not
    re-extracted. An index folder inside the synced folder is not read as documents."""
    from hippograph.indexers import extraction

    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("Orvik\n\nOrvik is an island in the Halvenne Archipelago.\n")
    (root / "src" / "b.txt").write_text("Kesselby\n\nKesselby is a town on the River Corran.\n")
    idx = root / "idx"  # the index lives inside the folder that is synced below
    hg = HippoGraph.build(root / "src", idx, Config(embedder="tfidf"))
    assert sorted(d["id"] for d in hg.documents()) == ["a.txt", "b.txt"]
    before = hg.stats()

    calls: list[int] = []
    original = extraction.TripleExtractor.extract
    monkeypatch.setattr(extraction.TripleExtractor, "extract",
                        lambda self, ps, **kw: calls.append(len(ps)) or original(self, ps, **kw))
    report = hg.sync([root])
    assert calls == [] and report.renamed_documents == [("a.txt", "src/a.txt"), ("b.txt", "src/b.txt")]
    assert report.added_documents == [] and report.deleted_documents == []
    assert sorted(d["id"] for d in hg.documents()) == ["src/a.txt", "src/b.txt"]
    assert {h.doc_id for h in hg.retrieve("Orvik island", top_k=2)} <= {"src/a.txt", "src/b.txt"}
    after = hg.stats()
    assert all(after[k] == before[k] for k in ("passages", "entities", "facts", "edges"))
    _assert_consistent(hg)


SHARED = "Delta Station relays signals from Alpha Corp to Beta Labs. Delta Station runs on solar power."


def test_shared_passage_survives_deleting_its_first_owner(tmp_path):
    """Two documents with an identical passage (same title + text) store it once; deleting
    either owner keeps it for the other, deleting both removes it."""
    one = {"id": "one", "title": "Delta Station", "text": SHARED, "metadata": {"who": "one"}}
    two = {"id": "two", "title": "Delta Station", "text": SHARED, "metadata": {"who": "two"}}
    hg = HippoGraph.build([*DOCS, one], tmp_path / "idx", Config(embedder="tfidf"))
    hg.add([two])  # through the add path: the repeat is recorded, not re-extracted
    t = _tables(hg)
    assert sum(p.title == "Delta Station" for p in t.passages) == 1
    assert [(r[1]) for r in t.passage_owners] == ["two"]
    hg.delete(["one"])
    _assert_consistent(hg)
    hits = hg.retrieve("Which station relays signals and runs on solar power?", top_k=3)
    delta = [h for h in hits if h.title == "Delta Station"]
    assert delta and delta[0].doc_id == "two" and delta[0].metadata == {"who": "two"}
    assert _tables(hg).passage_owners == []
    # reopen from disk: the handed-over passage is stored under its new owner
    again = HippoGraph.open(tmp_path / "idx")
    assert [p.doc_id for p in _tables(again).passages if p.title == "Delta Station"] == ["two"]
    again.delete(["two"])
    assert not [p for p in _tables(again).passages if p.title == "Delta Station"]
    _assert_consistent(again)


def test_shared_passage_within_one_build_and_rename(tmp_path):
    one = {"id": "one", "title": "Delta Station", "text": SHARED}
    two = {"id": "two", "title": "Delta Station", "text": SHARED}
    three = {"id": "three", "title": "Delta Station", "text": SHARED}
    hg = HippoGraph.build([one, two, three, *DOCS], tmp_path / "idx", Config(embedder="tfidf"))
    t = _tables(hg)
    assert [r[1] for r in t.passage_owners] == ["two", "three"]
    hg.delete(["one", "two"])
    t = _tables(hg)
    assert [p.doc_id for p in t.passages if p.title == "Delta Station"] == ["three"] and t.passage_owners == []
    hg.delete(["three"])
    assert hg.stats()["documents"] == len(DOCS)
    _assert_consistent(hg)


def test_index_without_owner_table_still_opens_and_writes(tmp_path):
    """Indexes written before shared passages were tracked have no passage_owners table."""
    import sqlite3

    hg = HippoGraph.build(DOCS, tmp_path / "idx", Config(embedder="tfidf"))
    db = hg.dir.generation_path(hg.manifest) / "meta.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE passage_owners")
    record_checksum(tmp_path / "idx")  # checksums are part of the manifest: re-stamp as an old writer would have
    hg = HippoGraph.open(tmp_path / "idx")
    assert _tables(hg).passage_owners == []
    hg.add([{"id": "one", "title": "Delta Station", "text": SHARED}])
    assert len(_tables(hg).passages) == len(DOCS) + 1
    _assert_consistent(hg)


def test_write_only_open_never_loads_the_read_view(tmp_path: Path, monkeypatch):
    """The CLI's build, add and sync (and `HippoGraph(..., load_snapshot=False)`) write without opening
    the index's read view (tables, graph, vectors and BM25 in RAM); it opens on first use."""
    from hippograph import api
    from hippograph.cli import main as cli

    idx = tmp_path / "idx"
    HippoGraph.build(DOCS[:2], idx, Config(embedder="tfidf")).close()
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(DOCS[2:]), encoding="utf-8")
    real = api.IndexSnapshot

    def refuse(*a, **k):
        raise AssertionError("the read view was opened by a write")

    monkeypatch.setattr(api, "IndexSnapshot", refuse)
    assert cli(["index", str(extra), "--index", str(idx), "--no-delete", "--json"]) == 0
    first = tmp_path / "first.json"
    first.write_text(json.dumps(DOCS[:1]), encoding="utf-8")
    assert cli(["index", str(first), "--index", str(tmp_path / "built"), "--embedder", "tfidf", "--json"]) == 0  # a build
    hg = HippoGraph(idx, load_snapshot=False)
    assert hg.stats()["documents"] == 3 and [d["id"] for d in hg.documents()] == ["alpha", "beta", "gamma"]
    report = hg.sync([{"id": "delta", "title": "Delta Yard", "text": "Delta Yard was founded by Omar Reyes in Porto."}],
                     delete_missing=False)
    assert report.added["documents"] == 1 and hg._snapshot is None
    monkeypatch.setattr(api, "IndexSnapshot", real)
    hits = hg.retrieve("Who founded Delta Yard?", top_k=1)  # the read view opens now, on the newest generation
    assert hg._snapshot is not None and hits[0].doc_id == "delta"
    hg.close()
