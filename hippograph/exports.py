"""Getting the graph out: triples as rows (JSONL, CSV, Parquet), the graph as GraphML or networkx.

Everything streams from the snapshot's SQLite tables and in-memory name lists: a triples or
GraphML export of any size holds one passage's rows at a time, never the full list.

The graph (GraphML and `to_networkx`) is directed and may hold parallel edges:
- nodes ``e<idx>`` (kind ``entity``: label, specificity) and ``p<idx>`` (kind ``passage``:
  label = title, passage_id, doc_id);
- one ``fact`` edge per distinct fact, subject → object, with ``predicate`` (also its
  ``label``, which Gephi shows on the edge), ``fact_id``, ``passages`` (the ids of the
  passages stating it, space-separated) and ``weight`` = how many passages state it;
- ``mention`` edges passage → entity (weight 1) and ``synonym`` edges entity → entity
  (weight = similarity), as in the PPR graph.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator
from xml.sax.saxutils import escape, quoteattr

from .errors import HippoGraphError
from .format import replaced_on_success
from .tables import fact_passage_rows

if TYPE_CHECKING:
    from .snapshot import IndexSnapshot

TRIPLE_FIELDS = ("subject", "predicate", "object", "passage_id", "doc_id", "title", "sentence_start", "sentence_end")
"""Columns of a triples export and keys of `HippoGraph.triples()` rows. `title` is the passage title;
the sentence span is in characters of the loaded document text (like `Hit.span`), empty when the
stated sentence is not found verbatim in its passage."""

TRIPLE_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}

NODE_ATTRS = (("kind", "string"), ("label", "string"), ("passage_id", "string"), ("doc_id", "string"),
              ("specificity", "double"))
EDGE_ATTRS = (("kind", "string"), ("label", "string"), ("predicate", "string"), ("fact_id", "long"),
              ("passages", "string"), ("weight", "double"))

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# ---- triples ---------------------------------------------------------------------------------
def iter_triples(snap: "IndexSnapshot") -> Iterator[dict[str, Any]]:
    """Every (fact, passage) statement, ordered by passage: one row per `TRIPLE_FIELDS`."""
    rows = snap.conn.cursor()
    rows.row_factory = None
    lookup = snap.conn.cursor()
    lookup.row_factory = None
    current, passage = -1, None
    query = ("SELECT passage_idx, fact_idx, sentence_start, sentence_end FROM (%s) "
             "ORDER BY passage_idx, row_order" % fact_passage_rows(snap.conn))
    for p_idx, f_idx, start, end in rows.execute(query):
        if p_idx != current:
            current = p_idx
            passage = lookup.execute(
                "SELECT id, doc_id, title, span_start FROM passages WHERE idx = ?", (p_idx,)
            ).fetchone()
        pid, doc_id, title, base = passage
        if isinstance(start, int) and isinstance(end, int):
            start, end = base + start, base + end
        else:
            start = end = None
        yield {
            "subject": snap.entities[snap.fact_subject[f_idx]],
            "predicate": snap.fact_predicate[f_idx],
            "object": snap.entities[snap.fact_object[f_idx]],
            "passage_id": pid, "doc_id": doc_id, "title": title,
            "sentence_start": start, "sentence_end": end,
        }


def triples_format(path: str | Path) -> str:
    """The export format named by a file's suffix, or a one-line error naming the accepted ones."""
    fmt = TRIPLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise HippoGraphError(f"{path}: unknown triples format; use a .jsonl, .csv or .parquet file")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise HippoGraphError(
                f"{path}: writing Parquet needs pyarrow; install it with: pip install 'hippograph[parquet]'"
            ) from None
    return fmt


def write_triples(snap: "IndexSnapshot", path: str | Path, *, batch_rows: int = 50_000) -> int:
    """Stream every triple to `path` (.jsonl, .csv or .parquet by suffix); returns the row count."""
    fmt = triples_format(path)
    path = Path(path)
    rows = iter_triples(snap)
    with replaced_on_success(path) as tmp:
        return _write_parquet(rows, tmp, batch_rows) if fmt == "parquet" else _write_text_triples(rows, tmp, fmt)


def _write_text_triples(rows: Iterator[dict[str, Any]], path: Path, fmt: str) -> int:
    """JSON lines or CSV, one row at a time."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=TRIPLE_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                n += 1
        else:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    return n


def _write_parquet(rows: Iterator[dict[str, Any]], path: Path, batch_rows: int) -> int:
    """Parquet in row groups of `batch_rows`: memory holds one batch, not the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f, pa.int64() if f.startswith("sentence_") else pa.string()) for f in TRIPLE_FIELDS])
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


# ---- graph -----------------------------------------------------------------------------------
def iter_nodes(snap: "IndexSnapshot") -> Iterator[tuple[str, dict[str, Any]]]:
    """(node id, attributes): entities then passages."""
    spec = snap.specificity
    for e, name in enumerate(snap.entities):
        yield f"e{e}", {"kind": "entity", "label": name, "specificity": float(spec[e])}
    for p, (pid, doc_id, title) in enumerate(zip(snap.passage_ids, snap.passage_doc_ids, snap.passage_titles)):
        yield f"p{p}", {"kind": "passage", "label": title, "passage_id": pid, "doc_id": doc_id}


def iter_edges(snap: "IndexSnapshot") -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(source, target, edge id, attributes): facts, then mentions, then synonyms."""
    cur = snap.conn.cursor()
    cur.row_factory = None
    pids = snap.passage_ids
    q = ("SELECT fact_idx, group_concat(passage_idx, ' '), count(*) FROM "
         "(SELECT DISTINCT fact_idx, passage_idx FROM fact_passages) GROUP BY fact_idx ORDER BY fact_idx")
    for f, passages, n in cur.execute(q):
        predicate = snap.fact_predicate[f]
        yield f"e{snap.fact_subject[f]}", f"e{snap.fact_object[f]}", f"f{f}", {
            "kind": "fact", "label": predicate, "predicate": predicate, "fact_id": int(f),
            "passages": " ".join(pids[int(p)] for p in passages.split()), "weight": float(n),
        }
    for i, (e, p) in enumerate(cur.execute("SELECT entity_idx, passage_idx FROM mentions ORDER BY passage_idx, entity_idx")):
        yield f"p{p}", f"e{e}", f"m{i}", {"kind": "mention", "label": "mentions", "weight": 1.0}
    for i, (a, b, score) in enumerate(cur.execute("SELECT a, b, score FROM synonyms ORDER BY a, b")):
        yield f"e{a}", f"e{b}", f"s{i}", {"kind": "synonym", "label": "synonym", "weight": float(score)}


def _xml(value: Any) -> str:
    return escape(_XML_INVALID.sub("\ufffd", str(value)))


def _write_data(out: IO[str], attrs: dict[str, Any], prefix: str) -> None:
    for key, value in attrs.items():
        if value is not None:
            out.write(f'<data key="{prefix}_{key}">{_xml(value)}</data>')


def write_graphml(snap: "IndexSnapshot", path: str | Path) -> Path:
    """Stream the graph as GraphML (readable by Gephi, networkx, igraph, yEd)."""
    path = Path(path)
    with replaced_on_success(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
                  'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
                  'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n')
        for scope, prefix, attrs in (("node", "v", NODE_ATTRS), ("edge", "e", EDGE_ATTRS)):
            for name, kind in attrs:
                out.write(f'<key id="{prefix}_{name}" for="{scope}" attr.name="{name}" attr.type="{kind}"/>\n')
        out.write('<graph id="hippograph" edgedefault="directed">\n')
        for node, attrs in iter_nodes(snap):
            out.write(f"<node id={quoteattr(node)}>")
            _write_data(out, attrs, "v")
            out.write("</node>\n")
        for source, target, edge, attrs in iter_edges(snap):
            out.write(f'<edge id="{edge}" source="{source}" target="{target}">')
            _write_data(out, attrs, "e")
            out.write("</edge>\n")
        out.write("</graph>\n</graphml>\n")
    return path


def to_networkx(snap: "IndexSnapshot"):
    """The graph as a `networkx.MultiDiGraph` with the GraphML export's node ids, keys and attributes."""
    import networkx as nx

    g = nx.MultiDiGraph(name="hippograph")
    g.add_nodes_from(iter_nodes(snap))
    g.add_edges_from((s, t, key, attrs) for s, t, key, attrs in iter_edges(snap))
    return g
