"""Knowledge-graph construction (HippoRAG 1+2): entity and passage nodes, fact, mention and synonymy edges.

Node numbering: entities are nodes ``0..E-1``, passages are nodes ``E..E+P-1``. The graph is
undirected; it is stored as a symmetric CSR adjacency whose parallel ``kind`` array says
which edge family each entry came from, so ablations can drop a family at load time.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

EDGE_FACT = 0
EDGE_MENTION = 1
EDGE_SYNONYM = 2
EDGE_KIND_NAMES = {EDGE_FACT: "fact", EDGE_MENTION: "mention", EDGE_SYNONYM: "synonym"}

_ALNUM = re.compile(r"[a-z0-9]")


@dataclass(frozen=True)
class SynonymEdge:
    """An undirected synonymy edge between two entities (a < b)."""

    a: int
    b: int
    score: float
    kind: str  # "embedding" | "minhash"


def synonymy_eligible(name: str, min_chars: int) -> bool:
    """HippoRAG only links entities with more than two alphanumeric characters."""
    return len(_ALNUM.findall(name)) >= min_chars


def embedding_synonyms(
    embeddings: np.ndarray,
    names: Sequence[str],
    new_ids: np.ndarray,
    *,
    threshold: float,
    max_neighbors: int,
    min_chars: int,
) -> list[SynonymEdge]:
    """Synonymy edges from the new entities to all entities (new-vs-all, never all-pairs again).

    For each new entity, its nearest entities by cosine (inner product of normalised
    embeddings), kept while score ≥ threshold, at most `max_neighbors`.
    """
    import faiss

    if len(new_ids) == 0 or len(embeddings) < 2:
        return []
    eligible = np.array([synonymy_eligible(n, min_chars) for n in names], dtype=bool)
    base_ids = np.flatnonzero(eligible)
    query_ids = np.asarray([i for i in new_ids if eligible[i]], dtype=np.int64)
    if len(base_ids) < 2 or len(query_ids) == 0:
        return []
    base = np.ascontiguousarray(embeddings[base_ids], dtype=np.float32)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    k = min(max_neighbors + 1, len(base_ids))
    edges: dict[tuple[int, int], float] = {}
    batch = 4096
    for start in range(0, len(query_ids), batch):
        q_ids = query_ids[start : start + batch]
        scores, idx = index.search(np.ascontiguousarray(embeddings[q_ids], dtype=np.float32), k)
        for row, qid in enumerate(q_ids):
            kept = 0
            for score, j in zip(scores[row], idx[row]):
                if j < 0 or score < threshold:
                    break
                other = int(base_ids[j])
                if other == qid:
                    continue
                key = (min(int(qid), other), max(int(qid), other))
                edges[key] = max(edges.get(key, 0.0), float(score))
                kept += 1
                if kept >= max_neighbors:
                    break
    return [SynonymEdge(a, b, min(s, 1.0), "embedding") for (a, b), s in sorted(edges.items())]


def _shingles(name: str, n: int = 3) -> set[bytes]:
    s = f" {name} "
    return {s[i : i + n].encode("utf-8") for i in range(max(1, len(s) - n + 1))}


def minhash_synonyms(
    names: Sequence[str],
    new_ids: Iterable[int],
    *,
    threshold: float,
    num_perm: int,
    min_chars: int,
    existing: set[tuple[int, int]] | None = None,
) -> list[SynonymEdge]:
    """Surface-form near-duplicates ("barack obama" / "obama") by MinHash LSH on character 3-grams.

    Also links an entity whose tokens are a contiguous sub-sequence of a longer name
    (e.g. "obama" ⊂ "barack obama") only when LSH proposes the pair; the edge weight is
    the estimated Jaccard similarity.
    """
    if threshold <= 0:
        return []
    from datasketch import MinHash, MinHashLSH

    new_set = {int(i) for i in new_ids}
    if not new_set:
        return []
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches: dict[int, MinHash] = {}
    for i, name in enumerate(names):
        if not synonymy_eligible(name, min_chars):
            continue
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch(list(_shingles(name)))
        sketches[i] = m
    with lsh.insertion_session() as session:
        for i, m in sketches.items():
            session.insert(i, m)
    existing = existing or set()
    edges: dict[tuple[int, int], float] = {}
    for i in sorted(new_set):
        if i not in sketches:
            continue
        for j in lsh.query(sketches[i]):
            if j == i:
                continue
            key = (min(i, j), max(i, j))
            if key in existing or key in edges:
                continue
            jac = float(sketches[i].jaccard(sketches[j]))
            if jac >= threshold:
                edges[key] = jac
    return [SynonymEdge(a, b, s, "minhash") for (a, b), s in sorted(edges.items())]


def build_adjacency(
    n_entities: int,
    n_passages: int,
    fact_pairs: np.ndarray,
    mentions: np.ndarray,
    synonyms: Sequence[SynonymEdge],
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Symmetric weighted adjacency (CSR) and the parallel edge-kind matrix.

    - fact edges: subject↔object, weight = number of triples linking them;
    - mention edges: passage↔entity, weight 1.0;
    - synonymy edges: entity↔entity, weight = similarity score.
    Where families overlap on one pair, weights add and the kind of the first family wins.
    """
    n = n_entities + n_passages
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    kinds: list[np.ndarray] = []

    def add(r: np.ndarray, c: np.ndarray, w: np.ndarray, kind: int) -> None:
        if len(r) == 0:
            return
        rows.extend([r, c])
        cols.extend([c, r])
        vals.extend([w, w])
        kinds.extend([np.full(len(r), kind, dtype=np.int8)] * 2)

    if len(fact_pairs):
        fp = np.asarray(fact_pairs, dtype=np.int64).reshape(-1, 2)
        fp = fp[fp[:, 0] != fp[:, 1]]
        lo, hi = np.minimum(fp[:, 0], fp[:, 1]), np.maximum(fp[:, 0], fp[:, 1])
        pairs, counts = np.unique(np.stack([lo, hi], 1), axis=0, return_counts=True)
        add(pairs[:, 0], pairs[:, 1], counts.astype(np.float64), EDGE_FACT)
    if len(mentions):
        m = np.unique(np.asarray(mentions, dtype=np.int64).reshape(-1, 2), axis=0)
        add(m[:, 0], m[:, 1] + n_entities, np.ones(len(m)), EDGE_MENTION)
    if synonyms:
        a = np.array([s.a for s in synonyms], dtype=np.int64)
        b = np.array([s.b for s in synonyms], dtype=np.int64)
        w = np.array([s.score for s in synonyms], dtype=np.float64)
        add(a, b, w, EDGE_SYNONYM)

    if not rows:
        empty = sp.csr_matrix((n, n), dtype=np.float64)
        return empty, sp.csr_matrix((n, n), dtype=np.int8)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    w = np.concatenate(vals)
    k = np.concatenate(kinds)
    adjacency = sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr()
    adjacency.sum_duplicates()
    # kind per stored entry: smallest kind code among duplicates (fact < mention < synonym)
    order = np.lexsort((k, c, r))
    r, c, k = r[order], c[order], k[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    kind = sp.csr_matrix(((k[first] + 1).astype(np.int8), (r[first], c[first])), shape=(n, n))
    kind.sort_indices()
    adjacency.sort_indices()
    kind.data -= 1
    return adjacency, kind


def specificity(mentions: np.ndarray, n_entities: int) -> np.ndarray:
    """Node specificity s_i = 1/|P_i| (HippoRAG), P_i = passages mentioning entity i; 0 if none."""
    counts = np.zeros(n_entities, dtype=np.float64)
    if len(mentions):
        m = np.unique(np.asarray(mentions, dtype=np.int64).reshape(-1, 2), axis=0)
        np.add.at(counts, m[:, 0], 1.0)
    with np.errstate(divide="ignore"):
        spec = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
    return spec
