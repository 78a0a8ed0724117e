"""The graph around one entity or passage, as nodes and typed edges (what the web page draws).

    neighbourhood(snapshot, entity="kessel shipworks", limit=50)
    neighbourhood(snapshot, passage="7ac0a16043919051", limit=50)

An entity's neighbourhood: the passages that mention it, the entities it shares a fact with
(one edge per fact, labelled with its predicate) and its synonyms. A passage's neighbourhood:
the entities it mentions and the facts extracted from it. At most `limit` nodes besides the
centre (the kinds take turns, so a hub entity still shows some of each) and at most
`EDGES_PER_NODE × limit` edges; `truncated` says when something was left out.

Cost: one CSR row of the graph (O(degree)) plus, for an entity, one vectorised pass over the
fact subject/object arrays to label its fact edges; for a passage, one indexed SQLite lookup.
"""
from __future__ import annotations

from itertools import zip_longest
from typing import Any, Iterable, Optional

import numpy as np

__all__ = ["neighbourhood", "entity_node_id", "passage_node_id", "DEFAULT_LIMIT", "MAX_LIMIT", "EDGES_PER_NODE"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
EDGES_PER_NODE = 4


class NotInIndex(LookupError):
    """The entity or passage asked for is not in this generation of the index."""


def entity_node_id(name: str) -> str:
    return f"entity:{name}"


def passage_node_id(passage_id: str) -> str:
    return f"passage:{passage_id}"


def neighbourhood(snap: Any, *, entity: Optional[str] = None, passage: Optional[str] = None,
                  limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Nodes and typed edges around exactly one of `entity` (a name) or `passage` (an id).

    Raises ValueError for a bad request (both or neither given, limit out of range) and
    NotInIndex when the entity or passage does not exist.
    """
    if (entity is None) == (passage is None):
        raise ValueError("give exactly one of entity or passage")
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")
    view = _View(snap, int(limit))
    if entity is not None:
        e = snap.entity_index.get(entity)
        if e is None:
            raise NotInIndex(f"no entity named {entity!r} in this index")
        centre = view.entity_node(e)
        view.around_entity(e)
    else:
        p = snap.passage_index.get(passage)
        if p is None:
            raise NotInIndex(f"no passage with id {passage!r} in this index")
        centre = view.passage_node(p, centre=True)
        view.around_passage(p)
    return {"centre": centre, "nodes": list(view.nodes.values()), "edges": view.edges,
            "truncated": view.truncated, "limit": view.limit, "generation": snap.manifest.generation}


class _View:
    """Collects the nodes and edges of one neighbourhood under the caps."""

    def __init__(self, snap: Any, limit: int) -> None:
        from .format import EDGE_FACT, EDGE_MENTION, EDGE_SYNONYM

        self.snap = snap
        self.limit = limit
        self.kinds = (EDGE_FACT, EDGE_MENTION, EDGE_SYNONYM)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, Any]] = []
        self.edge_ids: set[str] = set()
        self.truncated = False

    # ---- nodes -------------------------------------------------------------------------------
    def entity_node(self, e: int) -> str:
        snap = self.snap
        name = snap.entities[e]
        nid = entity_node_id(name)
        if nid not in self.nodes:
            self.nodes[nid] = {"id": nid, "kind": "entity", "label": name, "name": name,
                               "passages": int(snap.entity_passage_counts[e])}
        return nid

    def passage_node(self, p: int, centre: bool = False) -> str:
        snap = self.snap
        nid = passage_node_id(snap.passage_ids[p])
        if nid not in self.nodes:
            node = {"id": nid, "kind": "passage", "label": snap.passage_titles[p] or snap.passage_ids[p],
                    "passage_id": snap.passage_ids[p], "doc_id": snap.passage_doc_ids[p],
                    "title": snap.passage_titles[p]}
            if centre:
                node["text"] = snap.passages([p])[0].text
            self.nodes[nid] = node
        return nid

    def _room(self) -> bool:
        return len(self.nodes) <= self.limit  # the centre does not count

    def edge(self, source: str, target: str, kind: str, weight: float, label: str = "", text: str = "") -> bool:
        if len(self.edges) >= EDGES_PER_NODE * self.limit:
            self.truncated = True
            return False
        ends = (source, target) if kind != "synonym" else tuple(sorted((source, target)))
        eid = f"{kind}:{ends[0]}|{label}|{ends[1]}"  # the same edge from two centres gets one id
        if eid in self.edge_ids:
            return True
        self.edge_ids.add(eid)
        self.edges.append({"id": eid, "source": source, "target": target, "kind": kind, "label": label,
                           "weight": float(weight), **({"text": text} if text else {})})
        return True

    # ---- entity ------------------------------------------------------------------------------
    def around_entity(self, e: int) -> None:
        snap = self.snap
        fact_k, mention_k, synonym_k = self.kinds
        centre = entity_node_id(snap.entities[e])
        lo, hi = snap.adjacency.indptr[e], snap.adjacency.indptr[e + 1]
        cols = snap.adjacency.indices[lo:hi]
        weights = snap.adjacency.data[lo:hi]
        kinds = snap.edge_kinds[lo:hi]
        is_passage = cols >= snap.n_entities
        synonyms = [(int(c), float(w)) for c, w, k, ip in zip(cols, weights, kinds, is_passage)
                    if k == synonym_k and not ip]
        synonyms.sort(key=lambda cw: -cw[1])
        passages = [int(c) - snap.n_entities for c in cols[is_passage]]
        facts_by_other = self._facts_of_entity(e)
        partners = sorted(facts_by_other, key=lambda o: (-len(facts_by_other[o]), snap.entities[o]))
        # synonym/fact neighbours may also be linked by the other kind: one node, both edges
        turns = zip_longest((("fact", o) for o in partners), (("mention", p) for p in passages),
                            (("synonym", s) for s in synonyms))
        for turn in turns:
            for item in turn:
                if item is None:
                    continue
                if not self._room():
                    self.truncated = True
                    return
                kind, what = item
                if kind == "fact":
                    self.entity_node(what)
                    for f in facts_by_other[what]:
                        s, o = int(snap.fact_subject[f]), int(snap.fact_object[f])
                        src, dst = entity_node_id(snap.entities[s]), entity_node_id(snap.entities[o])
                        if not self.edge(src, dst, "fact", 1.0, snap.fact_predicate[f], snap.fact_text(f)):
                            return
                elif kind == "mention":
                    if not self.edge(centre, self.passage_node(what), "mention", 1.0):
                        return
                else:
                    other, score = what
                    if not self.edge(centre, self.entity_node(other), "synonym", score, "synonym"):
                        return

    def _facts_of_entity(self, e: int) -> dict[int, list[int]]:
        """Fact rows with `e` as subject or object, grouped by the other entity (self-facts dropped)."""
        snap = self.snap
        rows = np.flatnonzero((snap.fact_subject == e) | (snap.fact_object == e))
        out: dict[int, list[int]] = {}
        for f in rows.tolist():
            s, o = int(snap.fact_subject[f]), int(snap.fact_object[f])
            other = o if s == e else s
            if other != e:
                out.setdefault(other, []).append(f)
        return out

    # ---- passage -----------------------------------------------------------------------------
    def around_passage(self, p: int) -> None:
        snap = self.snap
        centre = passage_node_id(snap.passage_ids[p])
        mentioned = [int(e) for e in np.sort(snap.passage_entities[p].indices)]
        facts = [r[0] for r in snap.conn.execute(
            "SELECT DISTINCT fact_idx FROM fact_passages WHERE passage_idx = ? ORDER BY fact_idx", (p,))]
        # entities in this passage's facts first (they carry the edges), then the other mentions
        in_facts = _unique(e for f in facts for e in (int(snap.fact_subject[f]), int(snap.fact_object[f])))
        chosen: list[int] = []
        for e in _unique([*in_facts, *mentioned]):
            if len(chosen) >= self.limit:
                self.truncated = True
                break
            chosen.append(e)
        for e in chosen:
            self.entity_node(e)
        mentioned_set = set(mentioned)
        for e in chosen:
            if e in mentioned_set and not self.edge(entity_node_id(snap.entities[e]), centre, "mention", 1.0):
                return
        for f in facts:
            s, o = int(snap.fact_subject[f]), int(snap.fact_object[f])
            src, dst = entity_node_id(snap.entities[s]), entity_node_id(snap.entities[o])
            if src in self.nodes and dst in self.nodes:
                if not self.edge(src, dst, "fact", 1.0, snap.fact_predicate[f], snap.fact_text(f)):
                    return


def _unique(items: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(items))
