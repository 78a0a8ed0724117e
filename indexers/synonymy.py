"""Synonymy edges that scale: new-vs-all nearest neighbours through an approximate index.

The exact search (`graph_builder.embedding_synonyms` over a flat index) costs new × all
inner products: for a scratch build that is quadratic in the entity count (1M entities:
10¹² products). Synonym pairs are very close (cosine ≥ `synonymy_threshold`, 0.8), which is
where an inverted-file index (faiss IVF: k-means cells, search the `nprobe` cells nearest to
the query) loses almost nothing: both ends of such a pair fall in the same or neighbouring
cells. So above `EXACT_WORK` products the entities are searched through an IVF index trained on
a sample, and below it exactly; the pairs kept (score ≥ threshold, at most
`synonymy_max_neighbors` per entity) follow the same rule either way. Recall of the pairs
against the exact search is measured in eval/results/synonymy.md (eval/bench_synonymy.py).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .graph_builder import SynonymEdge, embedding_synonyms

EXACT_WORK = 1e9
"""Below this many query × entity products (≈ 31k new × 31k entities) the search is exact: there
the exact search is a few BLAS calls and IVF saves little (MuSiQue's 24.6k entities: 2.5× faster
at recall 0.997, eval/results/synonymy.md), so the shared eval datasets but SciFact stay exact."""
CELLS_PER_SQRT = 1
"""IVF cells = CELLS_PER_SQRT · √n. Fewer and larger cells than faiss's usual 4–16 · √n: k-means
training costs sample × cells (∝ cells²) and dominated at 4 · √n on MuSiQue's 24.6k entities."""
KMEANS_ITERATIONS = 10
NPROBE = 8
"""Cells searched per query: recall of the synonym pairs 0.997 on MuSiQue's entities (0.990 at 4;
eval/results/synonymy.md)."""
TRAIN_PER_CELL = 40
"""Training sample: this many vectors per cell (faiss warns below 39)."""


def synonym_edges(
    embeddings: np.ndarray,
    names: Sequence[str],
    new_ids: np.ndarray,
    *,
    threshold: float,
    max_neighbors: int,
    min_chars: int,
    exact_work: float = EXACT_WORK,
    nprobe: int = NPROBE,
    seed: int = 0,
) -> list[SynonymEdge]:
    """Synonymy edges new-vs-all: exact below `exact_work` products, through IVF above it."""
    n_new = len(new_ids)
    approximate = float(n_new) * float(len(embeddings)) >= exact_work

    def make_index(base: np.ndarray) -> Any:
        return ivf_index(base, nprobe=nprobe, seed=seed)

    return embedding_synonyms(
        embeddings, names, new_ids, threshold=threshold, max_neighbors=max_neighbors, min_chars=min_chars,
        make_index=make_index if approximate else None,
    )


def ivf_index(base: np.ndarray, *, nprobe: int = NPROBE, seed: int = 0) -> Any:
    """A faiss IndexIVFFlat (inner product) over `base`, k-means trained on a seeded sample."""
    import faiss

    n, dim = base.shape
    cells = max(1, min(int(CELLS_PER_SQRT * math.sqrt(n)), n // TRAIN_PER_CELL))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = KMEANS_ITERATIONS
    sample_size = min(n, cells * TRAIN_PER_CELL)
    rng = np.random.default_rng(seed)
    sample = base if sample_size == n else base[np.sort(rng.choice(n, sample_size, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    index.nprobe = min(cells, max(1, int(nprobe)))
    return index
