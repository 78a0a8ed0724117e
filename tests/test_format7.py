"""Format 7: the graph stores its symmetric adjacency once, as the strict upper triangle with the
weights and kinds of entity–entity edges only (`format.GRAPH_FILES`), and ``fact_passages`` is a
WITHOUT ROWID table keyed by (passage, position) (`tables.FACT_PASSAGES_TABLE`). Format-6 files
(both directions of the graph; a rowid fact_passages with an index on passage_idx) read to the same
arrays, rows and hits, and the next write replaces them with the new layout."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from hippograph import HippoGraph
from hippograph.format import (EDGE_MENTION, FORMAT_VERSION, GRAPH_DIR, GRAPH_FILES, GRAPH_INDICES, GRAPH_INDPTR,
                               GRAPH_KINDS, GRAPH_SPECIFICITY, GRAPH_WEIGHTS)
from hippograph.storage import sha256_file
from hippograph.tables import CorpusTables, has_rowid, upgrade_tables

from .conftest import record_checksum
from .test_sentence_spans import NEW_DOC, _meta

QUESTION = "Who founded Kessel Shipworks?"
FORMAT_6_FILES = (GRAPH_INDPTR, GRAPH_INDICES, GRAPH_WEIGHTS, GRAPH_KINDS, GRAPH_SPECIFICITY)


def _graph_dir(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text())["generation"] / GRAPH_DIR


def _as_version_6(src: Path, dst: Path) -> Path:
    """A copy of an index whose graph is as format 6 wrote it (arrays from the reader of format 7)."""
    shutil.copytree(src, dst)
    with HippoGraph.open(src) as hg:
        snap = hg.snapshot
        arrays = {GRAPH_INDPTR: snap.adjacency.indptr.astype(np.int64),
                  GRAPH_INDICES: snap.adjacency.indices.astype(np.int32),
                  GRAPH_WEIGHTS: snap.adjacency.data.astype(np.float32),
                  GRAPH_KINDS: np.asarray(snap.edge_kinds, dtype=np.int8),
                  GRAPH_SPECIFICITY: snap.specificity.astype(np.float32)}
    g = _graph_dir(dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for name in GRAPH_FILES:
        (g / name).unlink()
        del manifest["checksums"][f"{GRAPH_DIR}/{name}"]
    for name, array in arrays.items():
        np.save(g / name, array, allow_pickle=False)
        manifest["checksums"][f"{GRAPH_DIR}/{name}"] = sha256_file(g / name)
    manifest["format_version"] = 6
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _graph(hg: HippoGraph) -> tuple:
    s = hg.snapshot
    return (s.adjacency.indptr.tolist(), s.adjacency.indices.tolist(), s.adjacency.data.tolist(),
            np.asarray(s.edge_kinds).tolist(), s.specificity.tolist())


def _hits(hg: HippoGraph) -> list[dict]:
    return [h.to_dict() for h in hg.retrieve(QUESTION, top_k=5, explain=True)]


def test_graph_is_stored_once(sample_index: Path) -> None:
    g = _graph_dir(sample_index)
    assert sorted(p.name for p in g.glob("*.npy") if not p.name.startswith("minhash")) == sorted(GRAPH_FILES)
    indptr, indices = np.load(g / GRAPH_FILES[0]), np.load(g / GRAPH_FILES[1])
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    assert (indices > rows).all()
    with HippoGraph.open(sample_index) as hg:
        s = hg.snapshot
        assert s.adjacency.nnz == 2 * len(indices) and (s.adjacency != s.adjacency.T).nnz == 0
        mention = np.asarray(s.edge_kinds) == EDGE_MENTION
        assert mention.any() and (s.adjacency.data[mention] == 1.0).all()
        assert len(np.load(g / GRAPH_FILES[2])) * 2 == int((~mention).sum())  # weights of entity pairs only


def test_version_6_graph_reads_the_same_and_the_next_write_replaces_it(sample_index: Path, tmp_path: Path) -> None:
    new = tmp_path / "v7"
    shutil.copytree(sample_index, new)
    old = _as_version_6(sample_index, tmp_path / "v6")
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        assert b.manifest.format_version == 6 and a.manifest.format_version == FORMAT_VERSION == 7
        assert b.dir.verify() == []
        assert _graph(a) == _graph(b)
        assert _hits(a) == _hits(b)
        for hg in (a, b):
            assert hg.add([NEW_DOC]).added["documents"] == 1
        assert b.manifest.format_version == FORMAT_VERSION
        assert sorted(p.name for p in _graph_dir(old).glob("*.npy")) == sorted(p.name for p in _graph_dir(new).glob("*.npy"))
        assert not any((_graph_dir(old) / name).exists() for name in FORMAT_6_FILES)
        assert _graph(a) == _graph(b)
        assert _hits(a) == _hits(b)
        assert b.dir.verify() == []


def _rowid_fact_passages(index: Path) -> Path:
    """The index's fact_passages as format 6 stored it: a rowid table and an index on passage_idx."""
    conn = sqlite3.connect(_meta(index))
    conn.executescript(
        "BEGIN;"
        "CREATE TABLE v6 (fact_idx INTEGER NOT NULL, passage_idx INTEGER NOT NULL, sentence_start INTEGER, "
        "sentence_end INTEGER);"
        "INSERT INTO v6 SELECT fact_idx, passage_idx, sentence_start, sentence_end FROM fact_passages "
        "ORDER BY passage_idx, seq;"
        "DROP TABLE fact_passages; ALTER TABLE v6 RENAME TO fact_passages;"
        "CREATE INDEX fact_passages_passage ON fact_passages(passage_idx);"
        "PRAGMA user_version = 6;"
        "COMMIT; VACUUM;")
    conn.close()
    record_checksum(index)  # as format 6's writer did
    return index


def _keyed(index: Path) -> bool:
    with sqlite3.connect(_meta(index)) as conn:
        keyed = not has_rowid(conn, "fact_passages")
    conn.close()
    return keyed


def test_fact_passages_keyed_by_passage_read_grow_shrink_like_format_6(sample_index: Path, tmp_path: Path) -> None:
    new = tmp_path / "v7"
    shutil.copytree(sample_index, new)
    old = _as_version_6(sample_index, tmp_path / "v6")
    _rowid_fact_passages(old)
    assert _keyed(new) and not _keyed(old)
    rows = CorpusTables.load(_meta(new)).fact_passages
    assert len(rows) > 100 and rows == CorpusTables.load(_meta(old)).fact_passages
    with sqlite3.connect(_meta(new)) as conn:  # positions count each passage's rows from 0
        assert conn.execute("SELECT count(*) FROM fact_passages GROUP BY passage_idx "
                            "HAVING max(seq) != count(*) - 1").fetchall() == []
    conn.close()
    with HippoGraph.open(new) as a, HippoGraph.open(old) as b:
        assert b.triples() == a.triples() and _hits(a) == _hits(b)
        for hg in (a, b):
            assert hg.add([NEW_DOC]).added["documents"] == 1
        assert _keyed(old)  # the add rewrote the copied table
        assert CorpusTables.load(_meta(old)).fact_passages == CorpusTables.load(_meta(new)).fact_passages
        assert b.triples() == a.triples() and _hits(a) == _hits(b)
        assert b.dir.verify() == []
        doomed = a.triples(limit=1)[0]["doc_id"]
    old2 = _rowid_fact_passages(_as_version_6(new, tmp_path / "v6b"))
    with HippoGraph.open(new) as a, HippoGraph.open(old2) as b:
        for hg in (a, b):
            hg.delete(doomed)
        assert _keyed(old2)  # a delete writes a fresh database in the new layout
        assert CorpusTables.load(_meta(old2)).fact_passages == CorpusTables.load(_meta(new)).fact_passages
        assert b.triples() == a.triples() and _hits(a) == _hits(b)
        assert b.dir.verify() == []
    with sqlite3.connect(_meta(new)) as conn:
        assert upgrade_tables(conn) == []
    conn.close()


def test_format_6_fact_passages_upgraded_in_one_step(sample_index: Path, tmp_path: Path) -> None:
    old = _rowid_fact_passages(_as_version_6(sample_index, tmp_path / "v6"))
    with sqlite3.connect(_meta(old)) as conn:
        assert upgrade_tables(conn) == ["fact_passages rewritten WITHOUT ROWID keyed by passage (format 7)"]
        assert upgrade_tables(conn) == []
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'fact_passages_passage'").fetchone() is None
    conn.close()
    assert CorpusTables.load(_meta(old)).fact_passages == CorpusTables.load(_meta(sample_index)).fact_passages


def _vacuumed_size(meta: Path) -> int:
    with sqlite3.connect(meta) as conn:
        conn.execute("VACUUM")
    conn.close()
    return meta.stat().st_size


def test_a_write_leaves_meta_sqlite_packed(sample_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(sample_index, index)
    _vacuumed_size(_meta(index))  # full pages: the add's inserts into name- and pair-keyed b-trees split them
    record_checksum(index)
    docs = [{"id": f"more-{i}", "title": f"Vessel {i}",
             "text": f"Captain Ilse Marrow{i} sailed the Vessel {i} from Kesselby to Drumlow{i}. "
                     f"The Vessel {i} carried Ostrel timber{i} for Kessel Shipworks."} for i in range(12)]
    with HippoGraph.open(index) as hg:
        report = hg.add([NEW_DOC, *docs])
        assert report.added["documents"] == 13 and "compact" in hg.manifest.timings
    meta = _meta(index)
    before = meta.stat().st_size
    assert _vacuumed_size(meta) == before  # packed already: another VACUUM frees nothing
