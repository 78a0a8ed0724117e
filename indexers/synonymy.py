"""Synonymy edges that scale: new-vs-all nearest neighbours, streamed, through an approximate index.

The exact search costs new × all inner products: for a scratch build that is quadratic in the
entity count (1M entities: 10¹² products). Synonym pairs are very close (cosine ≥
`synonymy_threshold`, 0.8), which is where an inverted file (k-means cells; each query searches
the `nprobe` cells nearest to it) loses almost nothing: both ends of such a pair fall in the same
or neighbouring cells. So above `EXACT_WORK` products the entities are searched through cells
trained on a sample, and below it exactly. Recall of the pairs against the exact search is
measured in eval/results/synonymy.md (eval/bench_synonymy.py).

Memory stays bounded either way: the entity vectors are read from the embeddings file (a memory
map) `BASE_CHUNK` rows at a time (a cell's members too), queries `QUERY_BLOCK` at a time, at most
`CELL_PRODUCTS` scores at once, and only the scores at or above the threshold are kept, at most
`max_neighbors + 1` per query. Holding a float32 copy of every entity vector (and a faiss index of
them) cost 2 × 1.5 KB per entity: about 4 GB at 100k passages, in every `add` too.

Work stays linear in the pairs above the threshold, however degenerate the vectors: TF-IDF/LSA
vectors of short names put thousands of entities at cosine ≥ 0.8 of each other (kernel docs: 52M
such scores among 244k entities), so each score matrix keeps a query's best `cap` only, and kept
pairs are re-sorted geometrically and per finished query block (`_Hits`; eval/results/synonymy_tfidf.md).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

from .graph_builder import SynonymEdge, synonymy_eligible

EXACT_WORK = 1e9
"""Below this many query × entity products (≈ 31k new × 31k entities) the search is exact: there
the exact search is a few BLAS calls and cells save little (MuSiQue's 24.6k entities: 2.5× faster
at recall 0.997, eval/results/synonymy.md), so the shared eval datasets but SciFact stay exact."""
CELLS_PER_SQRT = 1
"""Cells = CELLS_PER_SQRT · √n. Fewer and larger cells than faiss's usual 4–16 · √n: k-means
training costs sample × cells (∝ cells²) and dominated at 4 · √n on MuSiQue's 24.6k entities."""
KMEANS_ITERATIONS = 10
NPROBE = 8
"""Cells searched per query: recall of the synonym pairs 0.997 on MuSiQue's entities (0.990 at 4;
eval/results/synonymy.md)."""
TRAIN_PER_CELL = 40
"""Training sample: this many vectors per cell (faiss warns below 39)."""
BASE_CHUNK = 65_536
"""Entity vectors dequantised at a time when streaming over all of them (25 MB of float32)."""
QUERY_BLOCK = 65_536
"""New entities searched through the cells at a time; each block reads every cell it probes once."""
EXACT_QUERY_BATCH = 4096
"""New entities per exact search call: faiss picks its kernel by batch size (BLAS from 20 queries),
so this keeps the scores those of the in-memory exact search, bit for bit."""


def synonym_pairs(
    embeddings: Any,
    names: Sequence[str] | None,
    new_ids: np.ndarray,
    *,
    threshold: float,
    max_neighbors: int,
    min_chars: int,
    exact_work: float = EXACT_WORK,
    nprobe: int = NPROBE,
    seed: int = 0,
    eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synonymy edges from the new entities to all entities (never all-pairs again), as arrays
    (a < b, sorted by pair; int64, int64, float64 scores ≤ 1): millions of pairs stay numbers.

    For each eligible new entity, its nearest eligible entities by inner product (cosine of
    unit vectors), kept while the score ≥ threshold, at most `max_neighbors`; a pair found from
    both ends keeps its higher score. `embeddings` is any row-indexable matrix (the stored
    embeddings file); `eligible` (a bool per entity) may stand in for `names`. Exact below
    `exact_work` query × entity products, through k-means cells above it.
    """
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
    if eligible is None:
        eligible = np.fromiter((synonymy_eligible(n, min_chars) for n in names or ()), dtype=bool,
                               count=len(names or ()))
    new_ids = np.asarray(new_ids, dtype=np.int64)
    if len(new_ids) == 0 or len(embeddings) < 2:
        return none
    base_ids = np.flatnonzero(eligible)
    query_ids = new_ids[eligible[new_ids]]
    if len(base_ids) < 2 or len(query_ids) == 0:
        return none
    if float(len(new_ids)) * float(len(embeddings)) >= exact_work:
        cells = _Cells.train(embeddings, base_ids, nprobe=nprobe, seed=seed)
        q, e, s = cells.neighbours(embeddings, query_ids, threshold, _Hits(max_neighbors + 1))
    else:
        q, e, s = _exact_neighbours(embeddings, base_ids, query_ids, threshold, _Hits(max_neighbors + 1))
    a, b, score = _pair_scores(q, e, s, max_neighbors)
    return a.astype(np.int64), b.astype(np.int64), np.minimum(score.astype(np.float64), 1.0)


def synonym_edges(embeddings: Any, names: Sequence[str] | None, new_ids: np.ndarray, **kw: Any) -> list[SynonymEdge]:
    """`synonym_pairs` as `SynonymEdge` records (kind "embedding"), for callers that want objects."""
    a, b, score = synonym_pairs(embeddings, names, new_ids, **kw)
    return [SynonymEdge(i, j, x, "embedding") for i, j, x in zip(a.tolist(), b.tolist(), score.tolist())]


def _pair_scores(q: np.ndarray, e: np.ndarray, s: np.ndarray, max_neighbors: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected pairs (a < b, sorted) and scores from per-query triples (grouped by query, best
    first): each query's first `max_neighbors` others; a pair found from both ends keeps its higher
    score. Vectorised: a per-pair Python loop took 100 s over TF-IDF's 6.9M kernel-docs pairs."""
    other = e != q
    q, e, s = q[other], e[other], s[other].astype(np.float64)
    if q.size == 0:
        return q, e, s
    keep = _ranks(q) < max(1, max_neighbors)
    a, b, s = np.minimum(q, e)[keep], np.maximum(q, e)[keep], np.maximum(s[keep], 0.0)
    order = np.lexsort((-s, b, a))
    a, b, s = a[order], b[order], s[order]
    head = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return a[head], b[head], s[head]


def _runs(sorted_keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of equal values in a sorted array."""
    cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    yield from zip(np.concatenate(([0], cuts)).tolist(), np.concatenate((cuts, [sorted_keys.size])).tolist())


def _ranks(sorted_keys: np.ndarray) -> np.ndarray:
    """Each entry's position within its run of equal values in a sorted array (0 first)."""
    first = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    return np.arange(sorted_keys.size) - np.repeat(first, np.diff(np.concatenate((first, [sorted_keys.size]))))


def _rows(embeddings: Any, ids: np.ndarray) -> np.ndarray:
    """float32 rows of the stored vectors (dequantised)."""
    return np.ascontiguousarray(embeddings[ids], dtype=np.float32)


HITS_COMPACT = 1 << 22
"""Pending (query, entity, score) triples that trigger trimming every query to its best `cap` (or
more: compaction waits until the triples added since the last one outnumber those it kept)."""
CELL_PRODUCTS = 1 << 25
"""Query × entity scores computed at a time within one cell (128 MB of float32): a crowded cell
(degenerate vectors, e.g. TF-IDF names) is searched in row blocks rather than as one matrix."""
TRIM_SCORES = 1 << 22
"""Scores of over-full rows (more than `cap` at or above the threshold) trimmed at a time: the
trim's temporaries stay tens of MB however many rows of a crowded cell are over."""


class _Hits:
    """(query, entity, score) triples at or above the threshold; each query keeps its best `cap`
    (its own entry included; ties by entity id), so a crowd of near-duplicates cannot grow memory
    without bound.

    The work stays linear in the triples added: each `add` keeps at most `cap` per query row,
    compaction is geometric (a triple is re-sorted O(1) times), and `seal` sets finished queries
    aside for good. A fixed trigger re-sorted every kept triple on each add once the kept ones
    reached it: hours on TF-IDF entity names (eval/results/synonymy_tfidf.md)."""

    def __init__(self, cap: int) -> None:
        self.cap = max(1, int(cap))
        self.q: list[np.ndarray] = []
        self.e: list[np.ndarray] = []
        self.s: list[np.ndarray] = []
        self.pending = 0  # triples in q/e/s
        self.kept = 0  # of which survived the last compaction
        self.sealed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, scores: np.ndarray, query_ids: np.ndarray, entity_ids: np.ndarray, threshold: float) -> None:
        """A (queries × entities) score matrix; each row keeps its best `cap` at or above threshold."""
        hit = scores >= threshold
        over = np.flatnonzero(np.count_nonzero(hit, axis=1) > self.cap)
        step = max(1, TRIM_SCORES // max(1, scores.shape[1]))
        for a in range(0, over.size, step):
            rows = over[a:a + step]
            hit[rows] = self._best_of_rows(scores[rows], entity_ids)
        r, c = np.nonzero(hit)
        if r.size:
            self._keep(query_ids[r], entity_ids[c], scores[r, c])

    def _best_of_rows(self, scores: np.ndarray, entity_ids: np.ndarray) -> np.ndarray:
        """Mask of each row's best `cap` entries (scores descending, ties by entity id): what
        `_best` would keep of them, so trimming here changes no result."""
        by_id = np.argsort(entity_ids, kind="stable")
        sub = scores[:, by_id]
        kth = -np.partition(-sub, self.cap - 1, axis=1)[:, self.cap - 1:self.cap]
        above = sub > kth
        tied = sub == kth
        room = self.cap - np.count_nonzero(above, axis=1, keepdims=True)
        keep = np.empty_like(above)
        keep[:, by_id] = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
        return keep

    def add_ranked(self, scores: np.ndarray, query_ids: np.ndarray, entity_ids: np.ndarray,
                   threshold: float) -> None:
        """A search's (queries × k) scores with the entity id of each entry."""
        r, c = np.nonzero(scores >= threshold)
        if r.size:
            self._keep(query_ids[r], entity_ids[r, c], scores[r, c])

    def _keep(self, q: np.ndarray, e: np.ndarray, s: np.ndarray) -> None:
        self.q.append(q)
        self.e.append(e)
        self.s.append(s.astype(np.float32))
        self.pending += int(q.size)
        if self.pending - self.kept > max(HITS_COMPACT, self.kept):
            q, e, s = self._best()
            self.q, self.e, self.s, self.pending = [q], [e], [s], int(q.size)
            self.kept = self.pending

    def seal(self) -> None:
        """The queries added so far get no more triples: trim them once and set them aside."""
        if self.q:
            self.sealed.append(self._best())
        self.q, self.e, self.s, self.pending, self.kept = [], [], [], 0, 0

    def _best(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All triples grouped by query, scores descending (ties by entity id), `cap` per query."""
        q, e, s = np.concatenate(self.q), np.concatenate(self.e), np.concatenate(self.s)
        order = np.lexsort((e, -s.astype(np.float64), q))
        q, e, s = q[order], e[order], s[order]
        keep = _ranks(q) < self.cap
        return q[keep], e[keep], s[keep]

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query ids, entity ids, scores) grouped by query, best first (ties by entity id), at
        most `cap` per query; a query sealed in one part gets no triples in another."""
        self.seal()
        if not self.sealed:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        q, e, s = zip(*self.sealed)
        return np.concatenate(q), np.concatenate(e), np.concatenate(s)


def _exact_neighbours(embeddings: Any, base_ids: np.ndarray, query_ids: np.ndarray, threshold: float,
                      hits: _Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, entity) score ≥ threshold (best `hits.cap` per query, as `_Hits.triples`),
    entities streamed in chunks.

    Scores come from faiss's flat inner product over the same query batches as an in-memory
    `IndexFlatIP` over all entities (`graph_builder.embedding_synonyms`), so the edges are the
    same bit for bit; only the entities are read a chunk at a time."""
    import faiss

    dim = int(embeddings.shape[1])
    for qa in range(0, len(query_ids), EXACT_QUERY_BATCH):
        q_ids = query_ids[qa:qa + EXACT_QUERY_BATCH]
        Q = _rows(embeddings, q_ids)
        for ba in range(0, len(base_ids), BASE_CHUNK):
            b_ids = base_ids[ba:ba + BASE_CHUNK]
            index = faiss.IndexFlatIP(dim)
            index.add(_rows(embeddings, b_ids))
            D, I = index.search(Q, min(hits.cap, len(b_ids)))
            ok = I >= 0
            D = np.where(ok, D, -np.inf).astype(np.float32)
            hits.add_ranked(D, q_ids, b_ids[np.where(ok, I, 0)], threshold)
        hits.seal()
    return hits.triples()


class _Cells:
    """An inverted file over the eligible entities: k-means centroids trained (faiss) on a seeded
    sample, each entity listed under its nearest centroid; the vectors stay in the embeddings file."""

    def __init__(self, quantizer: Any, members: np.ndarray, offsets: np.ndarray, nprobe: int):
        self.quantizer = quantizer
        self.members = members
        self.offsets = offsets
        self.nprobe = nprobe

    @classmethod
    def train(cls, embeddings: Any, base_ids: np.ndarray, *, nprobe: int = NPROBE, seed: int = 0) -> "_Cells":
        import faiss

        n, dim = len(base_ids), int(embeddings.shape[1])
        cells = max(1, min(int(CELLS_PER_SQRT * math.sqrt(n)), n // TRAIN_PER_CELL))
        quantizer = faiss.IndexFlatIP(dim)
        trainer = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        trainer.cp.seed = seed
        trainer.cp.niter = KMEANS_ITERATIONS
        sample_size = min(n, cells * TRAIN_PER_CELL)
        rng = np.random.default_rng(seed)
        sample = base_ids if sample_size == n else base_ids[np.sort(rng.choice(n, sample_size, replace=False))]
        trainer.train(_rows(embeddings, sample))  # trains `quantizer`; nothing is added to the IVF itself
        cell = np.empty(n, dtype=np.int64)
        for a in range(0, n, BASE_CHUNK):
            cell[a:a + BASE_CHUNK] = quantizer.search(_rows(embeddings, base_ids[a:a + BASE_CHUNK]), 1)[1][:, 0]
        order = np.argsort(cell, kind="stable")
        offsets = np.zeros(cells + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell, minlength=cells), out=offsets[1:])
        self = cls(quantizer, base_ids[order], offsets, min(cells, max(1, int(nprobe))))
        self._trainer = trainer  # keeps the quantizer's owner alive
        return self

    def neighbours(self, embeddings: Any, query_ids: np.ndarray, threshold: float,
                   hits: _Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query, entity) score ≥ threshold (best `hits.cap` per query, as `_Hits.triples`)
        within the query's `nprobe` nearest cells."""
        for qa in range(0, len(query_ids), QUERY_BLOCK):
            q_ids = query_ids[qa:qa + QUERY_BLOCK]
            Q = _rows(embeddings, q_ids)
            probes = self.quantizer.search(Q, self.nprobe)[1]
            flat_q = np.repeat(np.arange(len(q_ids)), probes.shape[1])
            flat_c = probes.ravel()
            keep = flat_c >= 0
            flat_q, flat_c = flat_q[keep], flat_c[keep]
            order = np.argsort(flat_c, kind="stable")
            flat_q, flat_c = flat_q[order], flat_c[order]
            for a, b in _runs(flat_c) if flat_c.size else ():
                c = int(flat_c[a])
                cell_ids = self.members[self.offsets[c]:self.offsets[c + 1]]
                rows = flat_q[a:b]
                for ma in range(0, cell_ids.size, BASE_CHUNK):
                    m_ids = cell_ids[ma:ma + BASE_CHUNK]
                    M = _rows(embeddings, m_ids).T
                    step = max(1, CELL_PRODUCTS // m_ids.size)
                    for ra in range(0, rows.size, step):
                        r = rows[ra:ra + step]
                        hits.add(Q[r] @ M, q_ids[r], m_ids, threshold)
            hits.seal()
        return hits.triples()
