"""Online retrieval: candidates per granularity → entropy router → seeds → PPR → fused passage
ranking → second hop.

One `Retriever` wraps an `IndexSnapshot` plus the query-side models (embedder, entity
mention extractor). `search` works on a batch of queries: embeddings, vector searches
and PPR run as blocks; the per-query work is sparse-vector arithmetic.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from hippograph.config import Config
from hippograph.snapshot import IndexSnapshot
from hippograph.text import normalize_entity

from .filters import FilterIndex, FilterView, PassageFilter
from .fusion import minmax
from .hops import BridgeHop, Pages, explain_hop, second_hop
from .ppr import PPR
from .router import RouterResult, route

logger = logging.getLogger(__name__)

MODES = ("hybrid", "ppr", "dense", "bm25")
ROUTED = ("passages", "sentences", "facts", "entities")
"""Granularities searched by vector for every query; "documents" joins them when documents
span several passages (`Config.use_documents`)."""


@dataclass
class Seed:
    """A PPR seed entity and why it was chosen."""

    entity: int
    weight: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class QueryResult:
    """Ranked passage rows and the intermediate signals needed to explain them."""

    ranking: np.ndarray
    scores: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    routed: np.ndarray
    ppr: np.ndarray | None
    router: RouterResult | None
    seeds: list[Seed]
    fact_scores: dict[int, float]
    mode: str
    fallback: str | None = None
    ppr_entities: np.ndarray | None = None
    bridge: BridgeHop | None = None


def hop_summary(bridge: dict[str, Any], max_via: int = 3) -> str:
    """One line for an explanation's `bridge` record: "first hop" (", about the query's X" for the second
    side of a comparison), or "second hop from 'T': about X, via Y (fact: ...)" (at most `max_via` via)."""
    if bridge["role"] != "second hop":
        named = bridge.get("named")
        return bridge["role"] + (f", about the query's {', '.join(named)}" if named else "")
    how = ", ".join([f"about {e}" for e in bridge["about"]] + [f"via {e}" for e in bridge["via"][:max_via]])
    line = f"second hop from '{bridge['first_hop_title']}': {how}"
    return line + (f" (fact: {bridge['fact']})" if bridge.get("fact") else "")


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (stable for ties)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


class Retriever:
    """Query-time engine over one index snapshot."""

    def __init__(
        self,
        snapshot: IndexSnapshot,
        embed: Callable[[Sequence[str]], np.ndarray],
        mentions: Callable[[str], list[str]] | None,
        config: Config,
    ):
        self.snap = snapshot
        self.embed = embed
        self.mentions = mentions
        self.config = config
        self._ppr_cache: dict[tuple[bool, float], PPR] = {}
        self._filter_index: FilterIndex | None = None
        self._views: dict[str, FilterView] = {}
        self._pages: Pages | None = None

    # ---- metadata filters ----------------------------------------------------------------
    def passage_filter(self, filters: Any) -> PassageFilter | None:
        """The passage mask of a filter dict (retrievers/filters.py), cached per filter."""
        if self._filter_index is None:
            self._filter_index = FilterIndex(self.snap)
        return self._filter_index.passage_filter(filters)

    def _view(self, flt: PassageFilter | None) -> "FilterView | None":
        if flt is None:
            return None
        view = self._views.get(flt.key)
        if view is None:
            view = self._views[flt.key] = FilterView.of(self.snap, flt.mask)
            for old in list(self._views)[:-16]:  # keep the 16 newest
                self._views.pop(old, None)
        return view

    # ---- building blocks -----------------------------------------------------------------
    def _ppr(self, cfg: Config) -> PPR:
        key = (cfg.use_synonymy, cfg.damping)
        if key not in self._ppr_cache:
            self._ppr_cache[key] = PPR(
                self.snap.graph(synonymy=cfg.use_synonymy), damping=cfg.damping, tol=cfg.ppr_tol, max_iter=cfg.ppr_max_iter
            )
        ppr = self._ppr_cache[key]
        ppr.tol, ppr.max_iter = cfg.ppr_tol, cfg.ppr_max_iter
        return ppr

    def _vector_search(
        self, gran: str, q: np.ndarray, k: int, cfg: Config, view: "FilterView | None" = None
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self.snap.vector_index(gran)
        if index is None or len(index) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if view is None:
            # exact (flat) indexes ignore max_lists; SPANN probes that many posting lists
            return index.search(q, min(k, len(index)), max_lists=cfg.spann_max_lists)
        kk, lists = view.widen(gran, k, len(index), cfg.spann_max_lists)
        scores, ids = index.search(q, kk, max_lists=lists)
        return view.keep_units(gran, scores, ids, k)

    def _document_search(self, q: np.ndarray, k: int, view: "FilterView | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner-product search over the documents view (few vectors: one per multi-passage document)."""
        import faiss

        vecs = self.snap.document_view[0]
        kk = k if view is None else view.widen("documents", k, vecs.shape[0], 0)[0]
        scores, ids = faiss.knn(q, vecs, min(kk, vecs.shape[0]), metric=faiss.METRIC_INNER_PRODUCT)
        ids = ids.astype(np.int64)
        return (scores, ids) if view is None else view.keep_units("documents", scores, ids, k)

    def _unit_to_passage_scores(
        self, gran: str, ids: np.ndarray, scores: np.ndarray, view: "FilterView | None" = None
    ) -> np.ndarray:
        """Max-reduce candidate unit scores onto passages (only the passages a filter keeps)."""
        out = self._unit_scores_unfiltered(gran, ids, scores)
        if view is not None:
            out[~view.passages] = 0.0
        return out

    def _unit_scores_unfiltered(self, gran: str, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        n = self.snap.n_passages
        out = np.zeros(n)
        valid = ids >= 0
        ids, scores = ids[valid], scores[valid]
        if len(ids) == 0:
            return out
        if gran == "passages":
            np.maximum.at(out, ids, scores)
            return out
        if gran == "documents":  # a document's score goes to each of its passages
            sub = self.snap.document_view[1][ids].tocoo()
            np.maximum.at(out, sub.col, scores[sub.row])
            return out
        mapping = {
            "sentences": self.snap.sentence_passages,
            "facts": self.snap.fact_passages,
            "entities": self.snap.entity_passages,
        }[gran]
        sub = mapping[ids].tocoo()
        np.maximum.at(out, sub.col, scores[sub.row])
        return out

    # ---- main entry -------------------------------------------------------------------------
    def search(
        self, queries: Sequence[str], cfg: Config, mode: str, flt: PassageFilter | None = None
    ) -> list[QueryResult]:
        """Ranked passages per query; with a filter (`passage_filter`) only the passages it keeps are
        scored, seeded, reached by PPR and ranked."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        snap = self.snap
        n = snap.n_passages
        if n == 0:
            return [QueryResult(np.zeros(0, np.int64), np.zeros(0), *(np.zeros(0),) * 3, None, None, [], {}, mode)
                    for _ in queries]
        M = cfg.candidates_per_granularity
        view = self._view(flt)
        keep = None if view is None else view.passages
        bm25_all = self._bm25_scores(queries) if mode in ("hybrid", "ppr", "bm25") else [np.zeros(n)] * len(queries)
        if keep is not None:
            bm25_all = [bm * keep for bm in bm25_all]
        if mode == "bm25":
            return [self._final(bm, np.zeros(n), np.zeros(n), bm, None, None, [], {}, mode, keep=keep) for bm in bm25_all]

        qv = np.ascontiguousarray(self.embed(list(queries)), dtype=np.float32)
        grans = ROUTED if mode != "dense" else ("passages",)
        cands = {g: self._vector_search(g, qv, M if g != "facts" else max(M, cfg.linking_top_facts), cfg, view)
                 for g in grans}
        if mode != "dense" and cfg.use_documents and snap.document_view is not None:
            cands["documents"] = self._document_search(qv, M, view)

        links = self._link_mentions(queries, cfg) if mode != "dense" else []
        if view is not None:  # a linked entity no kept passage mentions cannot seed
            links = [[link for link in ql if view.entities[link[1]]] for ql in links]
        results: list[QueryResult] = []
        resets: list[np.ndarray] = []
        pending: list[dict[str, Any]] = []
        for qi, query in enumerate(queries):
            dense = self._unit_to_passage_scores("passages", cands["passages"][1][qi], cands["passages"][0][qi], view)
            if mode == "dense":
                results.append(self._final(dense, dense, np.zeros(n), dense, None, None, [], {}, mode, keep=keep))
                continue
            bm = bm25_all[qi]
            router = self._route(cands, qi, bm, cfg)
            routed = self._routed_passage_scores(cands, qi, bm, router, view)
            seeds, fact_scores = self._seeds(links[qi], cands, qi, router, cfg)
            use_ppr = mode == "ppr" or cfg.use_ppr
            item = dict(qi=qi, dense=dense, bm=bm, router=router, routed=routed, seeds=seeds, fact_scores=fact_scores)
            if use_ppr and (seeds or routed.any()):
                reset = np.zeros(snap.n_entities + n)
                for s in seeds:
                    reset[s.entity] += s.weight
                if cfg.use_passage_priors or not seeds:
                    prior = minmax(routed) if routed.any() else routed
                    reset[snap.n_entities:] += prior * (cfg.passage_node_weight if seeds else 1.0)
                if view is not None:
                    reset *= view.nodes
                if reset.any():
                    item["reset_col"] = len(resets)
                    resets.append(reset)
            pending.append(item)
            results.append(None)  # type: ignore[arg-type]

        ppr_block = None
        if resets:
            ppr_block = self._ppr(cfg).run(np.stack(resets, axis=1), mask=None if view is None else view.nodes)
        for item in pending:
            qi = item["qi"]
            ppr_scores = ppr_entities = None
            fallback = None
            if "reset_col" in item:
                ppr_scores = ppr_block[snap.n_entities:, item["reset_col"]]
                ppr_entities = ppr_block[: snap.n_entities, item["reset_col"]]
            elif mode == "ppr" or cfg.use_ppr:
                fallback = "no seeds and no dense/BM25 evidence: PPR skipped"
            final = self._fuse(item["routed"], ppr_scores, mode, cfg)
            if keep is not None:  # the second hop starts from, and boosts, kept passages only
                final = np.where(keep, final, 0.0)
            bridge = None
            if mode == "hybrid" and cfg.bridge_weight > 0:
                final, bridge = self._bridge(final, item["routed"], queries[qi], qv[qi], links[qi], cands["facts"], qi,
                                             cfg, keep)
            results[qi] = self._final(
                final, item["dense"], item["bm"], item["routed"], ppr_scores, item["router"], item["seeds"],
                item["fact_scores"], mode, fallback, keep=keep,
            )
            results[qi].ppr_entities = ppr_entities
            results[qi].bridge = bridge
        return results

    # ---- stages ------------------------------------------------------------------------------
    def _bm25_scores(self, queries: Sequence[str]) -> list[np.ndarray]:
        bm25 = self.snap.bm25
        if bm25 is None:
            return [np.zeros(self.snap.n_passages) for _ in queries]
        return [np.asarray(bm25.scores(q), dtype=np.float64) for q in queries]

    def _route(self, cands: dict, qi: int, bm: np.ndarray, cfg: Config) -> RouterResult:
        M = cfg.candidates_per_granularity
        views: dict[str, np.ndarray] = {}
        for g in cands:
            scores, ids = cands[g][0][qi], cands[g][1][qi]
            views[g] = minmax(scores[ids >= 0][:M].astype(np.float64)) if len(ids) else np.zeros(0)
        top_bm = bm[_topk(bm, M)]
        views["bm25"] = minmax(top_bm[top_bm > 0]) if (top_bm > 0).any() else np.zeros(0)
        fixed = (cfg.fixed_weights or {g: 1.0 for g in views}) if not cfg.router else None
        return route(views, temperature=cfg.router_temperature, fixed_weights=fixed)

    def _routed_passage_scores(
        self, cands: dict, qi: int, bm: np.ndarray, router: RouterResult, view: "FilterView | None" = None
    ) -> np.ndarray:
        """Σ_g w_g · minmax(passage-mapped scores of g); entities act through seeds, not here."""
        n = self.snap.n_passages
        total = np.zeros(n)
        for g in ("passages", "sentences", "facts", "documents"):
            if g not in cands:
                continue
            w = router.weights.get(g, 0.0)
            if w <= 0:
                continue
            mapped = self._unit_to_passage_scores(g, cands[g][1][qi], cands[g][0][qi], view)
            total += w * minmax(mapped)
        w = router.weights.get("bm25", 0.0)
        if w > 0 and bm.any():
            total += w * minmax(bm)
        return total

    def _link_mentions(self, queries: Sequence[str], cfg: Config) -> list[list[tuple[str, int, float]]]:
        """Query mentions → entity nodes: exact normalised match (similarity 1), else the nearest
        entity by embedding if its cosine ≥ `linking_min_similarity`. One embedding call per batch."""
        if self.mentions is None:
            return [[] for _ in queries]
        out: list[list[tuple[str, int, float]]] = []
        unmatched: list[tuple[int, str]] = []
        for qi, query in enumerate(queries):
            links = []
            for name in dict.fromkeys(m for m in self.mentions(query) if m):
                e = self.snap.entity_index.get(normalize_entity(name))
                if e is not None:
                    links.append((name, e, 1.0))
                else:
                    unmatched.append((qi, name))
            out.append(links)
        if unmatched:
            mv = np.ascontiguousarray(self.embed([name for _, name in unmatched]), dtype=np.float32)
            scores, ids = self._vector_search("entities", mv, 1, cfg)
            for (qi, name), row_s, row_i in zip(unmatched, scores, ids):
                if len(row_i) and row_i[0] >= 0 and row_s[0] >= cfg.linking_min_similarity:
                    out[qi].append((name, int(row_i[0]), float(row_s[0])))
        return out

    def _seeds(
        self, linked: list[tuple[str, int, float]], cands: dict, qi: int, router: RouterResult, cfg: Config
    ) -> tuple[list[Seed], dict[int, float]]:
        """Entity seeds: linked query mentions and entities of the top facts, × specificity."""
        snap = self.snap
        spec = snap.specificity
        seeds: dict[int, Seed] = {}

        def add(e: int, w: float, why: str) -> None:
            if w <= 0 or spec[e] <= 0:
                return
            s = seeds.setdefault(e, Seed(e, 0.0))
            s.weight = max(s.weight, w)
            s.reasons.append(why)

        # HippoRAG 2: top facts' subject/object, fact score × specificity
        fact_scores: dict[int, float] = {}
        f_scores, f_ids = cands["facts"][0][qi], cands["facts"][1][qi]
        for score, f in list(zip(f_scores, f_ids))[: cfg.linking_top_facts]:
            if f < 0:
                continue
            fact_scores[int(f)] = float(score)
            for e in (snap.fact_subject[f], snap.fact_object[f]):
                add(int(e), float(score) * spec[e] * max(router.weights.get("facts", 0.0), 1e-3),
                    f"fact '{snap.fact_text(int(f))}' ({score:.2f})")
        # HippoRAG 1: query mentions linked to entity nodes (resolved for the batch in _link_mentions)
        w_ent = max(router.weights.get("entities", 0.0), 1e-3)
        for name, e, sim in linked:
            add(e, sim * spec[e] * w_ent, f"mention '{name}'" + (" (exact)" if sim >= 1.0 else f" → '{snap.entities[e]}' ({sim:.2f})"))
        ranked = sorted(seeds.values(), key=lambda s: -s.weight)[: cfg.max_seeds]
        return ranked, fact_scores

    def _fuse(self, routed: np.ndarray, ppr: np.ndarray | None, mode: str, cfg: Config) -> np.ndarray:
        if ppr is None:
            return routed
        if mode == "ppr":
            return ppr
        return cfg.ppr_fusion_weight * minmax(ppr) + (1.0 - cfg.ppr_fusion_weight) * minmax(routed)

    def _bridge(
        self, fused: np.ndarray, routed: np.ndarray, query: str, qvec: np.ndarray, linked: list[tuple[str, int, float]],
        fact_cands: tuple[np.ndarray, np.ndarray], qi: int, cfg: Config, keep: np.ndarray | None,
    ) -> tuple[np.ndarray, BridgeHop | None]:
        """Second hop (retrievers/hops.py): first hops, bridge entities weighted by relation fit, boosts."""
        if self._pages is None:
            self._pages = Pages(self.snap)
        return second_hop(self.snap, self._pages, fused, routed, query, linked, fact_cands[1][qi], fact_cands[0][qi],
                          cfg, qvec=qvec, keep=keep)

    def _final(self, scores, dense, bm, routed, ppr, router, seeds, fact_scores, mode, fallback=None,
               keep=None) -> QueryResult:
        """`keep`: a filter's passage mask; only kept passages are ranked."""
        scores = np.asarray(scores, dtype=np.float64)
        if not scores.any() and (dense.any() or bm.any()):
            scores = minmax(dense) + minmax(bm)  # never a uniform ranking when evidence exists
            fallback = fallback or "fused score empty: hybrid dense+BM25"
        if keep is None:
            ranking = _topk(scores, len(scores))
        else:
            rows = np.flatnonzero(keep)
            ranking = rows[_topk(scores[rows], len(rows))]
        return QueryResult(
            ranking=ranking, scores=scores, dense=dense, bm25=bm, routed=routed, ppr=ppr,
            router=router, seeds=seeds, fact_scores=fact_scores, mode=mode, fallback=fallback,
        )

    # ---- explanations ------------------------------------------------------------------------
    def explain(self, result: QueryResult, passage_idx: int) -> dict[str, Any]:
        """Why a passage was returned: seeds, router weights, connecting facts/entities, component scores."""
        snap = self.snap
        p = int(passage_idx)
        seed_set = {s.entity for s in result.seeds}
        ents = np.sort(snap.passage_entities[p].indices)
        facts = snap.fact_passages[:, p].nonzero()[0]
        connecting_facts = [
            snap.fact_text(int(f))
            for f in facts
            if snap.fact_subject[f] in seed_set or snap.fact_object[f] in seed_set or int(f) in result.fact_scores
        ][:10]
        out: dict[str, Any] = {
            "mode": result.mode,
            "scores": {
                "final": float(result.scores[p]),
                "dense": float(result.dense[p]),
                "bm25": float(result.bm25[p]),
                "routed": float(result.routed[p]),
                "ppr": None if result.ppr is None else float(result.ppr[p]),
            },
            "seeds": [
                {"entity": snap.entities[s.entity], "weight": round(float(s.weight), 6), "reasons": s.reasons[:3]}
                for s in result.seeds
            ],
            "seed_entities_in_passage": [snap.entities[e] for e in ents if e in seed_set],
            "connecting_facts": connecting_facts,
        }
        if result.ppr_entities is not None:
            by_mass = sorted(ents, key=lambda e: -result.ppr_entities[e])
            out["passage_entities_by_ppr"] = [snap.entities[e] for e in by_mass[:10]]
        if result.bridge is not None:
            record = explain_hop(snap, result.bridge, p)
            if record is not None:
                out["bridge"] = record
        if result.router is not None:
            out["router"] = {
                "weights": {k: round(v, 4) for k, v in result.router.weights.items()},
                "entropies": {k: round(v, 4) for k, v in result.router.entropies.items()},
                "temperature": result.router.temperature,
                "scheme": result.router.scheme,
            }
        if result.fallback:
            out["fallback"] = result.fallback
        return out
