"""Online retrieval: candidates per granularity → entropy router → seeds → PPR → fused passage
ranking → second hop.

One `Retriever` wraps an `IndexSnapshot` plus the query-side models (embedder, entity
mention extractor). `search` works on a batch of queries: embeddings and vector searches
run as blocks (the queries' spaCy mentions beside them, on a worker thread when there are two
CPUs); the per-query work is sparse-vector arithmetic. Every score vector is a
`SparseScores` over the query's candidates (top-k BM25, top-M vector hits, the passages
PPR reached), so a query costs what its candidates cost, not the corpus size.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from hippograph.config import Config
from hippograph.snapshot import IndexSnapshot
from hippograph.text import normalize_entity
from hippograph.threads import available_cpus

from .filters import FilterIndex, FilterView, PassageFilter
from .fusion import minmax
from .hops import BridgeHop, Pages, explain_hop, second_hop
from .ppr import METHODS, PPR
from .router import RouterResult, route
from .sparse import SparseScores, weighted_sum

logger = logging.getLogger(__name__)

MODES = ("hybrid", "ppr", "dense", "bm25")
WIDEN_RETRIES = 3
"""A filtered vector search that returns fewer kept units than asked retries up to this many times,
each asking for 4× the candidates and probing 2× the posting lists."""
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
    """Ranked passage rows (the best `depth` of `search`) and the intermediate signals needed to
    explain them, as sparse per-passage (`ppr_entities`: per-entity) score vectors."""

    ranking: np.ndarray
    scores: SparseScores
    dense: SparseScores
    bm25: SparseScores
    routed: SparseScores
    ppr: SparseScores | None
    router: RouterResult | None
    seeds: list[Seed]
    fact_scores: dict[int, float]
    mode: str
    fallback: str | None = None
    ppr_entities: SparseScores | None = None
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
        # the query mentions are found, matched and embedded on a second CPU while this thread embeds the
        # queries and searches the vector indexes (neither needs the mentions); off with one CPU
        self.parallel_mentions = available_cpus() >= 2
        self._mention_pool: ThreadPoolExecutor | None = None

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
        allowed = view.vector_mask(gran, index)
        if allowed is not None:  # the index skips excluded entries itself: k is enough
            kk = min(k, len(index))
        kw = {} if allowed is None else {"allowed": allowed}
        scores, ids = view.keep_units(gran, *index.search(q, kk, max_lists=lists, **kw), k)
        # a query whose neighbours are mostly filtered out comes back short: search it again, wider,
        # so the candidates are the best kept units, not the kept part of the best ones
        want = min(k, int(view.units(gran).sum()))
        for _ in range(WIDEN_RETRIES):
            short = np.flatnonzero((ids >= 0).sum(axis=1) < want)
            if not short.size or (kk >= len(index) and allowed is None):
                break
            kk, lists = min(len(index), kk * 4), lists * 2
            scores[short], ids[short] = view.keep_units(gran, *index.search(q[short], kk, max_lists=lists, **kw), k)
        return scores, ids

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
    ) -> SparseScores:
        """Max-reduce candidate unit scores onto passages (floored at 0: a passage without a
        candidate scores 0); with a filter `view`, onto the passages it keeps only."""
        out = self._unit_scores_unfiltered(gran, ids, scores)
        return out if view is None else out.where(view.passages)

    def _unit_scores_unfiltered(self, gran: str, ids: np.ndarray, scores: np.ndarray) -> SparseScores:
        n = self.snap.n_passages
        valid = ids >= 0
        ids, scores = ids[valid], scores[valid]
        if len(ids) == 0:
            return SparseScores.zeros(n)
        if gran == "passages":
            return SparseScores.max_at(n, ids, scores)
        if gran == "documents":  # a document's score goes to each of its passages
            sub = self.snap.document_view[1][ids].tocoo()
            return SparseScores.max_at(n, sub.col, scores[sub.row])
        mapping = {
            "sentences": self.snap.sentence_passages,
            "facts": self.snap.fact_passages,
            "entities": self.snap.entity_passages,
        }[gran]
        sub = mapping[ids].tocoo()
        return SparseScores.max_at(n, sub.col, scores[sub.row])

    # ---- main entry -------------------------------------------------------------------------
    def search(
        self, queries: Sequence[str], cfg: Config, mode: str, flt: PassageFilter | None = None,
        depth: int | None = None,
    ) -> list[QueryResult]:
        """Rank passages for each query; `ranking` holds the best `depth` rows (None: all passages).
        With a filter (`passage_filter`) only the passages it keeps are scored, seeded, reached by
        PPR and ranked."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        snap = self.snap
        n = snap.n_passages
        if n == 0:
            empty = SparseScores.zeros(0)
            return [QueryResult(np.zeros(0, np.int64), empty, empty, empty, empty, None, None, [], {}, mode)
                    for _ in queries]
        M = cfg.candidates_per_granularity
        if mode in ("bm25", "dense") and depth is not None:  # the one list is the ranking: at least `depth` long
            M, cfg = max(M, depth), cfg.replace(bm25_candidates=max(cfg.bm25_candidates, depth))
        none = SparseScores.zeros(n)
        view = self._view(flt)
        bm25_all = self._bm25_scores(queries, cfg, view) if mode in ("hybrid", "ppr", "bm25") else [none] * len(queries)
        if mode == "bm25":
            return [self._final(bm, none, none, bm, None, None, [], {}, mode, depth=depth, view=view) for bm in bm25_all]

        matched = self._start_linking(queries) if mode != "dense" else None
        qv = np.ascontiguousarray(self.embed(list(queries)), dtype=np.float32)
        grans = ROUTED if mode != "dense" else ("passages",)
        cands = {g: self._vector_search(g, qv, M if g != "facts" else max(M, cfg.linking_top_facts), cfg, view)
                 for g in grans}
        if mode != "dense" and cfg.use_documents and snap.document_view is not None:
            cands["documents"] = self._document_search(qv, M, view)

        links = self._link_mentions(matched(), cfg) if matched is not None else []
        if view is not None:  # a linked entity no kept passage mentions cannot seed
            links = [[link for link in ql if view.entities[link[1]]] for ql in links]
        results: list[QueryResult] = []
        resets: list[tuple[np.ndarray, np.ndarray]] = []
        pending: list[dict[str, Any]] = []
        for qi, query in enumerate(queries):
            dense = self._unit_to_passage_scores("passages", cands["passages"][1][qi], cands["passages"][0][qi], view)
            if mode == "dense":
                results.append(self._final(dense, dense, none, dense, None, None, [], {}, mode, depth=depth, view=view))
                continue
            bm = bm25_all[qi]
            router = self._route(cands, qi, bm, cfg)
            routed = self._routed_passage_scores(cands, qi, bm, router, view)
            seeds, fact_scores = self._seeds(links[qi], cands, qi, router, cfg)
            use_ppr = mode == "ppr" or cfg.use_ppr
            item = dict(qi=qi, dense=dense, bm=bm, router=router, routed=routed, seeds=seeds, fact_scores=fact_scores)
            if use_ppr and (seeds or routed.any()):
                nodes, weights = self._reset(seeds, routed, cfg)
                if view is not None:  # no reset weight on excluded passages or on entities no kept passage mentions
                    kept = view.nodes[nodes]
                    nodes, weights = nodes[kept], weights[kept]
                if (weights > 0).any():
                    item["reset_col"] = len(resets)
                    resets.append((nodes, weights))
            pending.append(item)
            results.append(None)  # type: ignore[arg-type]

        ppr_cols = self._run_ppr(resets, cfg, view)
        for item in pending:
            qi = item["qi"]
            ppr_scores = ppr_entities = None
            fallback = None
            if "reset_col" in item:
                ppr_entities, ppr_scores = ppr_cols[item["reset_col"]]
            elif mode == "ppr" or cfg.use_ppr:
                fallback = "no seeds and no dense/BM25 evidence: PPR skipped"
            final = self._fuse(item["routed"], ppr_scores, mode, cfg)
            if view is not None:  # the second hop starts from, and boosts, kept passages only
                final = final.where(view.passages)
            bridge = None
            if mode == "hybrid" and cfg.bridge_weight > 0:
                final, bridge = self._bridge(final, item["routed"], queries[qi], qv[qi], links[qi], cands["facts"], qi,
                                             cfg, None if view is None else view.passages)
            results[qi] = self._final(
                final, item["dense"], item["bm"], item["routed"], ppr_scores, item["router"], item["seeds"],
                item["fact_scores"], mode, fallback, depth=depth, view=view,
            )
            results[qi].ppr_entities = ppr_entities
            results[qi].bridge = bridge
        return results

    # ---- stages ------------------------------------------------------------------------------
    def _bm25_scores(self, queries: Sequence[str], cfg: Config, view: "FilterView | None" = None) -> list[SparseScores]:
        """Each query's top `bm25_candidates` BM25 passages (documents sharing no term score 0); with a
        filter `view`, the top of the passages it keeps (not the kept part of the unfiltered top)."""
        n = self.snap.n_passages
        bm25 = self.snap.bm25
        if bm25 is None or not queries:
            return [SparseScores.zeros(n) for _ in queries]
        scores, ids = bm25.search(list(queries), min(cfg.bm25_candidates, n),
                                  allowed=None if view is None else view.passages)
        out = []
        for row_s, row_i in zip(scores, ids):
            keep = row_i >= 0
            order = np.argsort(row_i[keep])
            out.append(SparseScores(n, row_i[keep][order], row_s[keep][order].astype(np.float64)))
        return out

    def _reset(self, seeds: list[Seed], routed: SparseScores, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
        """The PPR reset vector as (graph node ids, weights): seeds × specificity on entity nodes,
        minmax(routed) × `passage_node_weight` on passage nodes (DESIGN §3.3)."""
        nodes = [np.asarray([s.entity for s in seeds], dtype=np.int64)]
        weights = [np.asarray([s.weight for s in seeds], dtype=np.float64)]
        if cfg.use_passage_priors or not seeds:
            prior = routed.minmax() if routed.any() else routed
            if prior.fill != 0 and not prior.covers_all():  # every passage has a prior (a small corpus)
                prior = SparseScores(prior.n, np.arange(prior.n), prior.toarray())
            nodes.append(prior.idx + self.snap.n_entities)
            weights.append(prior.val * (cfg.passage_node_weight if seeds else 1.0))
        return np.concatenate(nodes), np.concatenate(weights)

    def _run_ppr(
        self, resets: list[tuple[np.ndarray, np.ndarray]], cfg: Config, view: "FilterView | None" = None
    ) -> list[tuple[SparseScores, SparseScores]]:
        """(entity scores, passage scores) per reset vector: forward push from the seeds
        (`ppr_method="push"`), or power iteration over the whole graph as one block ("power"); with a
        filter `view`, both on the subgraph of its kept nodes (`PPR.restricted`)."""
        if cfg.ppr_method not in METHODS:
            raise ValueError(f"ppr_method must be one of {', '.join(METHODS)}, got {cfg.ppr_method!r}")
        if not resets:
            return []
        snap, ppr = self.snap, self._ppr(cfg)
        n_ent = snap.n_entities
        mask = None if view is None else view.nodes
        out = []
        if cfg.ppr_method == "power":
            block = np.zeros((ppr.n, len(resets)))
            for j, (nodes, weights) in enumerate(resets):
                np.add.at(block[:, j], nodes, weights)
            x = ppr.run(block, mask=mask)
            for j in range(len(resets)):
                out.append((SparseScores.from_dense(x[:n_ent, j]), SparseScores.from_dense(x[n_ent:, j])))
            return out
        for nodes, weights in resets:
            ids, scores = ppr.push(nodes, weights, eps=cfg.ppr_push_eps, mask=mask)
            cut = int(np.searchsorted(ids, n_ent))
            out.append((SparseScores(n_ent, ids[:cut], scores[:cut]),
                        SparseScores(snap.n_passages, ids[cut:] - n_ent, scores[cut:])))
        return out

    def _route(self, cands: dict, qi: int, bm: SparseScores, cfg: Config) -> RouterResult:
        M = cfg.candidates_per_granularity
        views: dict[str, np.ndarray] = {}
        for g in cands:
            scores, ids = cands[g][0][qi], cands[g][1][qi]
            views[g] = minmax(scores[ids >= 0][:M].astype(np.float64)) if len(ids) else np.zeros(0)
        top_bm = bm.top_values(M)
        views["bm25"] = minmax(top_bm[top_bm > 0]) if (top_bm > 0).any() else np.zeros(0)
        fixed = (cfg.fixed_weights or {g: 1.0 for g in views}) if not cfg.router else None
        return route(views, temperature=cfg.router_temperature, fixed_weights=fixed)

    def _routed_passage_scores(
        self, cands: dict, qi: int, bm: SparseScores, router: RouterResult, view: "FilterView | None" = None
    ) -> SparseScores:
        """Σ_g w_g · minmax(passage-mapped scores of g); entities act through seeds, not here."""
        terms = []
        for g in ("passages", "sentences", "facts", "documents"):
            if g not in cands:
                continue
            w = router.weights.get(g, 0.0)
            if w <= 0:
                continue
            mapped = self._unit_to_passage_scores(g, cands[g][1][qi], cands[g][0][qi], view)
            terms.append((w, mapped.minmax()))
        w = router.weights.get("bm25", 0.0)
        if w > 0 and bm.any():
            terms.append((w, bm.minmax()))
        return weighted_sum(terms, self.snap.n_passages)

    def _start_linking(self, queries: Sequence[str]) -> Callable[[], tuple[list, list, np.ndarray | None]]:
        """Start linking the queries' mentions: spaCy, exact entity matches and one embedding call for the
        rest (`_match_mentions`); none of it needs the query embedding, so with two CPUs it runs on a worker
        thread beside the query embedding and vector search. Returns the function that waits for it."""
        def run() -> tuple[list, list, np.ndarray | None]:
            found = [self.mentions(q) for q in queries] if self.mentions is not None else [[] for _ in queries]
            return self._match_mentions(found)

        if not self.parallel_mentions or self.mentions is None:
            done = run()
            return lambda: done
        if self._mention_pool is None:
            self._mention_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hippograph-mentions")
        return self._mention_pool.submit(run).result

    def _match_mentions(self, mentions: list[list[str]]) -> tuple[list, list, np.ndarray | None]:
        """Per query, its mentions with an exact normalised entity match (similarity 1); the others as
        (query, mention) pairs with their embeddings (one call for the batch), or None when all matched."""
        out: list[list[tuple[str, int, float]]] = []
        unmatched: list[tuple[int, str]] = []
        for qi, found in enumerate(mentions):
            links = []
            for name in dict.fromkeys(m for m in found if m):
                e = self.snap.entity_index.get(normalize_entity(name))
                if e is not None:
                    links.append((name, e, 1.0))
                else:
                    unmatched.append((qi, name))
            out.append(links)
        mv = np.ascontiguousarray(self.embed([name for _, name in unmatched]), dtype=np.float32) if unmatched else None
        return out, unmatched, mv

    def _link_mentions(self, matched: tuple[list, list, np.ndarray | None], cfg: Config) -> list[list[tuple[str, int, float]]]:
        """Query mentions → entity nodes: the exact matches, else the nearest entity by embedding if its
        cosine ≥ `linking_min_similarity`."""
        out, unmatched, mv = matched
        if unmatched:
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

    def _fuse(self, routed: SparseScores, ppr: SparseScores | None, mode: str, cfg: Config) -> SparseScores:
        if ppr is None:
            return routed
        if mode == "ppr":
            return ppr
        w = cfg.ppr_fusion_weight
        return weighted_sum([(w, ppr.minmax()), (1.0 - w, routed.minmax())], routed.n)

    def _bridge(
        self, fused: SparseScores, routed: SparseScores, query: str, qvec: np.ndarray,
        linked: list[tuple[str, int, float]], fact_cands: tuple[np.ndarray, np.ndarray], qi: int, cfg: Config,
        keep: np.ndarray | None,
    ) -> tuple[SparseScores, BridgeHop | None]:
        """Second hop (retrievers/hops.py): first hops, bridge entities weighted by relation fit, boosts;
        reads and writes scores only at the passages the hop reaches."""
        if self._pages is None:
            self._pages = Pages(self.snap)
        return second_hop(self.snap, self._pages, fused, routed, query, linked,
                          fact_cands[1][qi], fact_cands[0][qi], cfg, qvec=qvec, keep=keep)

    def _final(self, scores, dense, bm, routed, ppr, router, seeds, fact_scores, mode, fallback=None, *,
               depth: int | None = None, view: "FilterView | None" = None) -> QueryResult:
        """The result record; ranks the best `depth` passages, with a filter `view` only those it keeps."""
        if not scores.any() and (dense.any() or bm.any()):
            scores = dense.minmax().plus(bm.minmax())  # never a uniform ranking when evidence exists
            fallback = fallback or "fused score empty: hybrid dense+BM25"
        return QueryResult(
            ranking=scores.top(depth, rows=None if view is None else view.rows), scores=scores, dense=dense,
            bm25=bm, routed=routed, ppr=ppr,
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
                "final": result.scores.at(p),
                "dense": result.dense.at(p),
                "bm25": result.bm25.at(p),
                "routed": result.routed.at(p),
                "ppr": None if result.ppr is None else result.ppr.at(p),
            },
            "seeds": [
                {"entity": snap.entities[s.entity], "weight": round(float(s.weight), 6), "reasons": s.reasons[:3]}
                for s in result.seeds
            ],
            "seed_entities_in_passage": [snap.entities[e] for e in ents if e in seed_set],
            "connecting_facts": connecting_facts,
        }
        if result.ppr_entities is not None:
            mass = result.ppr_entities.values_at(ents)
            by_mass = ents[np.lexsort((ents, -mass))]
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
