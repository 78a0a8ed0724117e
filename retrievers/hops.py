"""Second hop without an LLM: from the first-hop passages to the passages about the entities they introduce.

A multi-hop question names one entity ("the director of film Gaby: A True Story") or two ("which
film's director was born later, X or Y?"); the passages that answer it are about entities the named
passages introduce (Luis Mandoki). `second_hop` takes as first hops the top fused passage and, for
each other entity the query names exactly, the best passage about it (the second side of a
comparison), ranked right after the top passage. Every entity a first hop mentions that the query
does not name is a bridge. A bridge is weighted by its relation fit: the query's similarity to the
first hop's fact that connects it (every fact of the first hop is scored with the index's stored
fact embeddings: "gaby: a true story directed by luis mandoki" fits "the director of ..."), so the
director outranks the cast. A passage about a bridge (its title names it) scores the better of
w · its own fit (any page a first hop leads to) and, when it is the entity's own page (the passages
about the entity are one document's, not a title shared by a chat session's turns), its path score (first hop × relation fit, mostly
independent of its own similarity to the question, which is low exactly when the question names the
film and not the director); one that only mentions a bridge gains w · idf · relation fit · own fit.
A filter's excluded passages are never first hops and never gain. Every boosted passage keeps the
hop that reached it (first hop, entity, fact) for the explanation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hippograph.config import Config
from hippograph.snapshot import IndexSnapshot
from hippograph.text import is_bare_date_or_number, normalize_entity

from .sparse import SparseScores


@dataclass
class Link:
    """How a second-hop passage was reached: from `first_hop`, through `entity`, introduced there by `fact`."""

    first_hop: int
    entity: int
    fact: int | None
    about: bool
    """True: the passage is about the entity (its title names it); False: it only mentions it."""


@dataclass
class BridgeHop:
    """The second-hop step of one query: first hops (the top passage, then the passages about the
    query's other named entities), the bridge entities, the boost each passage got and the link
    that reached each boosted passage."""

    first_hop: int
    bridges: list[int]
    named: list[int]
    boost: SparseScores
    """Per passage: its final score minus its fused score (non-zero only where the hop raised it)."""
    first_hops: list[int] = field(default_factory=list)
    relation_fit: dict[int, float] = field(default_factory=dict)
    """Bridge entity → its relation fit in [0, 1] (1 = the best-fitting bridge of its first hop)."""
    links: dict[int, Link] = field(default_factory=dict)
    sides: dict[int, int] = field(default_factory=dict)
    """Side first hop → the named query entity it is about."""


TAU = 0.05
"""Temperature of the relation fit: a bridge whose fact is this much less similar to the query than the
best bridge's fact of the same first hop weighs 1/e as much."""
PAGE_FIT = 0.25
"""Share of the path score that depends on the bridge page's own routed fit to the question (2wiki_dev300
R@2/R@5: 0.711/0.889 at 0.5, 0.748/0.915 at 0.25, 0.750/0.915 at 0)."""


def _fact_scores(fact_ids: np.ndarray, fact_sims: np.ndarray) -> dict[int, float]:
    """The query's candidate facts (vector search) as fact → similarity."""
    out: dict[int, float] = {}
    for f, s in zip(fact_ids.tolist(), fact_sims.tolist()):
        if f >= 0 and s > out.get(f, -np.inf):
            out[f] = float(s)
    return out


class Pages:
    """Entity → the passages about it: their title names the entity, or a title name is a run of ≥ 2 of
    the entity's words ("king bertram ashcombe" → the page "Bertram Ashcombe"). Memoised per entity."""

    def __init__(self, snap: IndexSnapshot) -> None:
        self.snap = snap
        self._by_entity = snap.title_entities.T.tocsr()
        self._memo: dict[int, np.ndarray] = {}
        self._page_memo: dict[int, bool] = {}

    def is_page(self, e: int) -> bool:
        """True when the passages about `e` are one document's (the entity's own page, maybe chunked). A
        title shared by many documents (every turn of a chat session, every log entry of a day) names a
        category, not a page: no path score and no comparison side comes from it."""
        got = self._page_memo.get(e)
        if got is None:
            docs = {self.snap.passage_doc_ids[p] for p in self.about(e).tolist()}
            got = self._page_memo[e] = len(docs) == 1
        return got

    def about(self, e: int) -> np.ndarray:
        got = self._memo.get(e)
        if got is None:
            got = self._by_entity[e].indices
            if not len(got):
                words = self.snap.entities[e].split()
                for n in range(len(words) - 1, 1, -1):  # longest run first
                    runs = (self.snap.entity_index.get(" ".join(words[i:i + n])) for i in range(len(words) - n + 1))
                    hits = [self._by_entity[r].indices for r in runs if r is not None and self._by_entity[r].nnz]
                    if hits:
                        got = np.unique(np.concatenate(hits))
                        break
            self._memo[e] = got
        return got


def _bridges_of(snap: IndexSnapshot, pages: Pages, p: int, excluded: set[int], query_norm: str) -> list[int]:
    """Entities of passage p the query does not name that lead somewhere: mentioned by ≥ 2 passages or with a page."""
    counts = snap.entity_passage_counts
    return [int(e) for e in snap.passage_entities[p].indices
            if int(e) not in excluded and f" {snap.entities[e]} " not in query_norm
            and not is_bare_date_or_number(snap.entities[e])  # "1873" ties unrelated passages together
            and (counts[e] >= 2 or len(pages.about(int(e))))]


def _relation_fit(snap: IndexSnapshot, p: int, bridges: list[int], facts: dict[int, float],
                  qvec: np.ndarray | None) -> dict[int, tuple[float, int | None]]:
    """Bridge → (similarity of the query to the best fact of passage p that has the bridge as subject
    or object, that fact). Every fact of p is scored against the query vector when the index has fact
    embeddings; otherwise only the query's candidate facts count and bridges without one get (-inf, None)."""
    best: dict[int, tuple[float, int | None]] = {b: (-np.inf, None) for b in bridges}
    own = snap.passage_facts[p].indices
    vecs = snap.fact_vectors
    if qvec is not None and vecs is not None and len(own):
        sims = dict(zip(own.tolist(), (np.asarray(vecs[own], dtype=np.float32) @ qvec).tolist()))
    else:
        sims = {f: facts[f] for f in own.tolist() if f in facts}
    for f, s in sims.items():
        for e in (int(snap.fact_subject[f]), int(snap.fact_object[f])):
            if e in best and s > best[e][0]:
                best[e] = (s, f)
    return best


def second_hop(
    snap: IndexSnapshot,
    pages: Pages,
    fused: SparseScores,
    routed: SparseScores,
    query: str,
    linked: list[tuple[str, int, float]],
    fact_ids: np.ndarray,
    fact_sims: np.ndarray,
    cfg: Config,
    qvec: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> tuple[SparseScores, BridgeHop | None]:
    """Fused scores plus the second-hop boost (see the module docstring); None when nothing to hop from.
    `qvec`: the query embedding (relation fit over every fact of a first hop); `keep`: a filter's
    passage mask — only kept passages are first hops or gain a boost (`fused` is 0 elsewhere).
    Scores are read and written only at the passages the hop touches (a dict of new scores over the
    sparse fused vector), so a query costs what its first hops reach, not the corpus size."""
    if not fused.any():
        return fused, None
    w = cfg.bridge_weight
    top = int(fused.top(1)[0])
    fused_at = dict(zip(fused.idx.tolist(), fused.val.tolist()))  # the candidates' scores, for many lookups

    def at(p: int) -> float:
        return fused_at.get(p, fused.fill)

    query_norm = f" {normalize_entity(query)} "
    linked_ids = {e for _, e, _ in linked}
    top_about = set(snap.title_entities[top].indices.tolist())
    named = sorted({e for _, e, sim in linked if sim >= 1.0 and e not in top_about})

    # first hops: the top passage, then the best passage about each other named entity
    first_hops, sides = [top], {}
    if cfg.bridge_sides > 0 and named:
        best: dict[int, int] = {}
        for e in named:
            if not pages.is_page(e):
                continue
            about_e = [int(p) for p in pages.about(e) if p != top and (keep is None or keep[p])]
            if about_e:
                best[e] = max(about_e, key=at)
        for e, p in sorted(best.items(), key=lambda ep: -at(ep[1]))[: cfg.bridge_sides]:
            if p not in sides:
                sides[p] = e
                first_hops.append(p)

    relevance = routed.minmax()
    final: dict[int, float] = {}  # passage → its new score (every other passage keeps its fused score)
    links: dict[int, Link] = {}
    fit_of: dict[int, float] = {}
    all_bridges: list[int] = []
    facts = _fact_scores(fact_ids, fact_sims)
    floor = min(facts.values()) if facts else 0.0
    idf = snap.entity_idf
    f_top = at(top)
    head = {h: at(h) + w for h in first_hops}  # first hops: +w (the top passage stays first)
    for h in first_hops[1:]:  # sides rank right after the top passage, in their fused order
        head[h] = f_top + w * (1.0 + at(h) / f_top) / 2

    def raise_to(p: int, value: float, link: Link) -> None:
        if value > final.get(p, at(p)):
            final[p] = value
            links[p] = link

    for h in first_hops:
        bridges = _bridges_of(snap, pages, h, linked_ids, query_norm)
        if not bridges:
            continue
        all_bridges += [b for b in bridges if b not in all_bridges]
        fits = _relation_fit(snap, h, bridges, facts, qvec)
        with_pages = [fits[b][0] for b in bridges if len(pages.about(b))]
        top_fit = max(with_pages + [floor])  # fit is relative to the best bridge that leads to a page
        fit_b = {b: min(1.0, float(np.exp((max(fits[b][0], floor) - top_fit) / TAU))) for b in bridges}
        # passages that mention a bridge: w · idf(bridge) · the bridge's relation fit · their own fit to the question
        counts = snap.entity_passage_counts
        mentioned = [b for b in bridges if counts[b] >= 2]
        if mentioned:
            mention = snap.entity_passages[mentioned].tocoo()
            gain = w * idf[mentioned][mention.row] * relevance.values_at(mention.col)
            gain = gain * np.array([fit_b[b] for b in mentioned])[mention.row]
            rows, cols = mention.row, mention.col
            about_bridge = np.zeros(cols.size, dtype=bool)  # a page about the bridge is scored by its path below
            for j, b in enumerate(mentioned):
                sel = np.flatnonzero(rows == j)
                about_bridge[sel] = np.isin(cols[sel], pages.about(b))
            order = np.argsort(-gain, kind="stable")
            order = order[~about_bridge[order]]
            # per passage only its best mention can raise it (the first in that order, as one by one)
            _, first = np.unique(cols[order], return_index=True)
            best = order[first]
            value = fused.values_at(cols[best]) + gain[best]
            for i, p, v in zip(best.tolist(), cols[best].tolist(), value.tolist()):
                b = mentioned[rows[i]]
                raise_to(p, v, Link(h, b, fits[b][1], about=False))
        # passages about a bridge: the better of reach 1 (w · own fit, as for any entity page the first hop
        # leads to) and the path score, first hop × relation fit × (mostly fixed, part own) fit
        for b in bridges:
            fit = fit_b[b]
            fit_of[b] = max(fit_of.get(b, 0.0), fit)
            path = cfg.bridge_path * head[h] * fit if pages.is_page(b) else 0.0
            about_b = pages.about(b)
            for p, f_p, r_p in zip(about_b.tolist(), fused.values_at(about_b).tolist(),
                                   relevance.values_at(about_b).tolist()):
                value = max(f_p + w * r_p,  # reach 1, whatever the relation
                            path * (1.0 - PAGE_FIT + PAGE_FIT * r_p))
                raise_to(p, value, Link(h, b, fits[b][1], about=True))
    # passages about the other named entities that are not first hops keep the old reach (1 × fit)
    for e in named:
        about_e = pages.about(e)
        for p, f_p, r_p in zip(about_e.tolist(), fused.values_at(about_e).tolist(),
                               relevance.values_at(about_e).tolist()):
            if p not in sides:
                raise_to(p, f_p + w * r_p, Link(top, e, None, about=True))
    if not all_bridges and not named:
        return fused, None
    for h in first_hops:
        final[h] = head[h]
        links.pop(h, None)
    if keep is not None:  # a filtered-out passage is never reached
        final = {p: v for p, v in final.items() if keep[p]}
        links = {p: link for p, link in links.items() if keep[p]}
    ids = np.fromiter(sorted(final), dtype=np.int64, count=len(final))
    values = np.array([final[p] for p in ids.tolist()], dtype=np.float64)
    boost = values - fused.values_at(ids)
    changed = boost != 0
    boosted = SparseScores(fused.n, ids[changed], boost[changed])
    return fused.with_values(ids, values), BridgeHop(top, all_bridges, named, boosted, first_hops, fit_of, links, sides)


def explain_hop(snap: IndexSnapshot, hop: BridgeHop, p: int) -> dict[str, Any] | None:
    """The `bridge` record of a passage's explanation: which hop reached it, through which entity and fact."""
    if p == hop.first_hop:
        return {"role": "first hop", "boost": round(float(hop.boost[p]), 6)}
    if p in hop.sides:
        return {"role": "first hop", "named": [snap.entities[hop.sides[p]]], "boost": round(float(hop.boost[p]), 6)}
    link = hop.links.get(p)
    if link is None or hop.boost[p] <= 0:
        return None
    titled = set(snap.title_entities[p].indices.tolist())
    about = [e for e in hop.bridges + hop.named if e in titled]  # what this passage is about
    if link.about and link.entity not in about:  # its title is a run of the entity's words
        about.append(link.entity)
    via = sorted((e for e in hop.bridges if e not in titled and snap.entity_passages[e, p]),
                 key=lambda e: -snap.entity_idf[e])  # other bridges it mentions, rarest first
    out = {
        "role": "second hop",
        "first_hop": snap.passage_ids[link.first_hop],
        "first_hop_title": snap.passage_titles[link.first_hop],
        "entity": snap.entities[link.entity],
        "about": [snap.entities[e] for e in about],
        "via": [snap.entities[e] for e in via[:5]],
        "boost": round(float(hop.boost[p]), 6),
    }
    if link.fact is not None:
        out["fact"] = snap.fact_text(link.fact)
        out["relation_fit"] = round(min(1.0, hop.relation_fit.get(link.entity, 0.0)), 4)
    return out
