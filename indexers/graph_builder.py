"""Knowledge-graph construction (HippoRAG 1+2): entity and passage nodes, fact, mention and synonymy edges.

Node numbering: entities are nodes ``0..E-1``, passages are nodes ``E..E+P-1``. The graph is
undirected; it is stored as a symmetric CSR adjacency whose parallel ``kind`` array says
which edge family each entry came from, so ablations can drop a family at load time.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

from hippograph.format import (EDGE_FACT, EDGE_KIND_NAMES, EDGE_MENTION, EDGE_SYNONYM,  # noqa: F401  (re-exported)
                              GRAPH_FILES, upper_entries, upper_files)

_ALNUM = re.compile(r"[a-z0-9]")


@dataclass(frozen=True, slots=True)
class SynonymEdge:
    """An undirected synonymy edge between two entities (a < b). Slots: millions of them at once
    (6.9M on TF-IDF kernel-docs names) cost 0.15 instead of 0.45 KB each."""

    a: int
    b: int
    score: float
    kind: str  # "embedding" | "minhash"


_NOT_ALNUM = bytes(b for b in range(256) if not _ALNUM.match(chr(b)))
"""Every byte but ASCII [a-z0-9]: UTF-8 writes any other character with bytes outside that range."""


def synonymy_eligible(name: str, min_chars: int) -> bool:
    """HippoRAG only links entities with more than two alphanumeric characters ([a-z0-9], counted on
    the UTF-8 bytes: 4× faster than a regex over the 250k names every add checks)."""
    return len(name.encode("utf-8", "surrogatepass").translate(None, _NOT_ALNUM)) >= min_chars


def embedding_synonyms(
    embeddings: np.ndarray,
    names: Sequence[str],
    new_ids: np.ndarray,
    *,
    threshold: float,
    max_neighbors: int,
    min_chars: int,
    make_index: Callable[[np.ndarray], Any] | None = None,
) -> list[SynonymEdge]:
    """Synonymy edges from the new entities to all entities (new-vs-all, never all-pairs again).

    For each new entity, its nearest entities by cosine (inner product of normalised
    embeddings), kept while score ≥ threshold, at most `max_neighbors`. `make_index` builds
    the faiss index searched over the eligible entities' vectors (default: exact
    IndexFlatIP; indexers/synonymy.py passes an approximate one for large sets).
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
    if make_index is None:
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(base)
    else:
        index = make_index(base)
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
    existing: set[tuple[int, int]] | np.ndarray | None = None,
) -> list[SynonymEdge]:
    """Surface-form near-duplicates ("barack obama" / "obama") by MinHash LSH on character 3-grams.

    Pairs (new entity, any entity) proposed by datasketch-compatible LSH banding whose
    estimated Jaccard ≥ threshold; the edge weight is that estimate. The incremental
    builder calls `minhash_signatures` / `lsh_synonyms` directly to reuse old signatures.
    """
    new = np.fromiter((int(i) for i in new_ids), dtype=np.int64)
    if threshold <= 0 or not new.size:
        return []
    eligible = np.fromiter((synonymy_eligible(n, min_chars) for n in names), dtype=bool, count=len(names))
    signatures = minhash_signatures(names, eligible, num_perm)
    return lsh_synonyms(signatures, eligible, new, threshold=threshold,
                        existing=set() if existing is None else existing)


def minhash_signatures(names: Sequence[str], eligible: np.ndarray, num_perm: int) -> np.ndarray:
    """datasketch MinHash signatures (seed 1, character 3-grams) of `names`, one row each.

    Ineligible names get an all-max row (they are never paired). Permutations are created
    once and shared, which is what makes this ≈2× faster than one `MinHash()` per name.
    """
    from datasketch import MinHash

    tpl = MinHash(num_perm=num_perm, seed=1)
    dtype = tpl.hashvalues.dtype
    out = np.full((len(names), num_perm), np.iinfo(dtype).max, dtype=dtype)
    for i, name in enumerate(names):
        if not eligible[i]:
            continue
        m = MinHash(num_perm=num_perm, seed=1, permutations=tpl.permutations, scheme=tpl.scheme)
        m.update_batch(list(_shingles(name)))
        out[i] = m.hashvalues
    return out


def stored_signatures(signatures: np.ndarray) -> np.ndarray:
    """The low 8 bits of each MinHash value (b-bit MinHash, Li & König 2010), as the index
    stores them: 128 bytes per entity instead of 512. Two different values then agree by
    chance with probability 2**-8; `lsh_synonyms` removes that from its Jaccard estimate
    (unbiased), and a whole LSH band agrees by chance with probability 2**-(8·rows). Idempotent."""
    return (np.asarray(signatures) & 0xFF).astype(np.uint8)


def band_keys(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """(n, bands) uint32: each LSH band (datasketch's ranges for `threshold`) of each signature
    hashed to 32 bits. The index stores these instead of the signatures (14 × 4 = 56 bytes per
    entity instead of 128 at 128 permutations and threshold 0.7): entities whose band agrees share
    that band's key, and `lsh_pairs` checks every shared key on the signatures themselves."""
    num_perm = signatures.shape[1]
    ranges = _lsh_bands(float(threshold), int(num_perm))
    mult = _band_multipliers(num_perm)
    out = np.empty((len(signatures), len(ranges)), dtype=np.uint32)
    for s in range(0, len(signatures), _BAND_CHUNK):  # a chunk of rows at a time: no uint64 copy of them all
        part = np.asarray(signatures[s:s + _BAND_CHUNK]).astype(np.uint64)
        for i, (a, b) in enumerate(ranges):
            # wraps mod 2**64: a hash of the band; its high half is the key
            out[s:s + len(part), i] = ((part[:, a:b] * mult[a:b]).sum(axis=1) >> np.uint64(32)).astype(np.uint32)
    return out


def band_count(threshold: float, num_perm: int) -> int:
    """Columns of `band_keys` for these settings."""
    return len(_lsh_bands(float(threshold), int(num_perm)))


@functools.lru_cache(maxsize=8)
def _band_multipliers(num_perm: int) -> np.ndarray:
    """Odd 64-bit multipliers of the band hash (fixed: stored keys must stay comparable)."""
    return np.random.default_rng(20251125).integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)


def lsh_synonyms(
    signatures: np.ndarray,
    eligible: np.ndarray,
    new_ids: np.ndarray,
    *,
    threshold: float,
    existing: set[tuple[int, int]] | np.ndarray,
) -> list[SynonymEdge]:
    """Pairs (new entity, any entity) whose signatures agree on a whole LSH band and whose
    estimated Jaccard ≥ threshold — datasketch `MinHashLSH`'s banding, vectorised with numpy."""
    return lsh_pairs(band_keys(signatures, threshold), eligible, new_ids, threshold=threshold, existing=existing,
                     num_perm=signatures.shape[1], signatures_of=lambda ids: signatures[ids])


def lsh_pairs(
    keys: np.ndarray,
    eligible: np.ndarray,
    new_ids: np.ndarray,
    *,
    threshold: float,
    existing: set[tuple[int, int]] | np.ndarray,
    num_perm: int,
    signatures_of: Callable[[np.ndarray], np.ndarray],
) -> list[SynonymEdge]:
    """`lsh_synonyms` from stored band keys (`band_keys`): candidate pairs share a band key; the
    signatures of candidates only (`signatures_of(ids)`, rows in the order asked) decide. Pairs in
    `existing` (a set of (a, b), or an (m, 2) array of them: millions of embedding edges) are skipped."""
    ranges = _lsh_bands(float(threshold), int(num_perm))
    elig = np.flatnonzero(eligible)
    is_new = np.zeros(len(keys), dtype=bool)
    is_new[new_ids] = True
    is_new &= eligible
    if not is_new.any() or len(elig) < 2:
        return []
    candidates: set[tuple[int, int]] = set()
    seen = np.zeros(1 << _KEY_FILTER_BITS, dtype=bool)
    new_rows = np.flatnonzero(is_new)
    for band in range(len(ranges)):
        # only entities sharing a key with a new one can pair: an add sorts those few, not every key
        near = _sharing_a_key(np.ascontiguousarray(keys[:, band]), new_rows, eligible, seen)
        order = np.argsort(keys[near, band], kind="stable")
        ks = keys[near[order], band]
        cuts = np.flatnonzero(ks[1:] != ks[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(ks)]])
        multi = np.flatnonzero(ends - starts > 1)  # every group holds a new entity: groups it could pair in
        for g in multi:
            members = near[order[starts[g]:ends[g]]]
            fresh = members[is_new[members]]
            if not fresh.size:
                continue
            for i in fresh.tolist():
                for j in members.tolist():
                    if i != j:
                        candidates.add((i, j) if i < j else (j, i))
    pairs = _without(sorted(candidates), existing)
    if not pairs:
        return []
    ids = np.unique(np.asarray(pairs, dtype=np.int64))
    sigs = np.asarray(signatures_of(ids))
    row = {int(e): k for k, e in enumerate(ids)}
    chance = 2.0 ** -(8 * sigs.dtype.itemsize) if sigs.dtype.itemsize <= 2 else 0.0
    edges: list[SynonymEdge] = []
    for i, j in pairs:
        eq = sigs[row[i]] == sigs[row[j]]
        if not any(eq[a:b].all() for a, b in ranges):
            continue  # band-hash collision, not a real band match
        jac = float(np.count_nonzero(eq)) / num_perm
        if chance:  # b-bit signatures: P(agree) = J + (1 − J)·2**-b
            jac = (jac - chance) / (1.0 - chance)
        if jac >= threshold:
            edges.append(SynonymEdge(i, j, jac, "minhash"))
    return edges


def _without(pairs: list[tuple[int, int]], existing: set[tuple[int, int]] | np.ndarray) -> list[tuple[int, int]]:
    """`pairs` (a < b) that are not in `existing` (a set of pairs or an (m, 2) array of them)."""
    known_pairs = np.asarray(existing if isinstance(existing, np.ndarray) else sorted(existing),
                             dtype=np.int64).reshape(-1, 2)
    if not pairs or not len(known_pairs):
        return pairs
    cand = np.asarray(pairs, dtype=np.int64)
    n = max(int(cand.max()), int(known_pairs.max())) + 1
    known = np.sort(known_pairs[:, 0] * n + known_pairs[:, 1])
    keys = cand[:, 0] * n + cand[:, 1]
    found = known[np.minimum(np.searchsorted(known, keys), len(known) - 1)] == keys
    return [p for p, f in zip(pairs, found.tolist()) if not f]


def _sharing_a_key(col: np.ndarray, new_rows: np.ndarray, eligible: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Eligible rows (ascending) whose key in `col` is also the key of one of `new_rows`: O(rows),
    not a sort of every key. `seen` (all False, left so) is a table over the keys' low bits that
    drops most other rows before the exact check."""
    new_keys = np.unique(col[new_rows])
    low = np.uint32(seen.size - 1)
    seen[new_keys & low] = True
    maybe = np.flatnonzero(seen[col & low] & eligible)
    seen[new_keys & low] = False
    pos = np.minimum(np.searchsorted(new_keys, col[maybe]), new_keys.size - 1)
    return maybe[new_keys[pos] == col[maybe]]


_KEY_FILTER_BITS = 20
"""Low key bits of `_sharing_a_key`'s table (1 MB: stays in cache, where 16 MB made each lookup a
cache miss): with n new keys about n / 2**20 of the other rows pass it to the exact check."""

_BAND_CHUNK = 65_536
"""Signature rows hashed into band keys at a time by `lsh_synonyms`."""


@functools.lru_cache(maxsize=8)
def _lsh_bands(threshold: float, num_perm: int) -> tuple[tuple[int, int], ...]:
    """datasketch's (start, end) band ranges for a threshold (its parameter search takes ≈0.1 s)."""
    from datasketch import MinHashLSH

    return tuple((int(a), int(b)) for a, b in MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges)


def build_adjacency(
    n_entities: int,
    n_passages: int,
    fact_pairs: np.ndarray,
    mentions: np.ndarray,
    synonyms: Sequence[SynonymEdge],
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Symmetric weighted adjacency (CSR) and the parallel edge-kind matrix (see
    `build_adjacency_arrays`), with the synonymy edges as `SynonymEdge` records."""
    return build_adjacency_arrays(
        n_entities, n_passages, fact_pairs, mentions,
        np.array([s.a for s in synonyms], dtype=np.int64),
        np.array([s.b for s in synonyms], dtype=np.int64),
        np.array([s.score for s in synonyms], dtype=np.float64),
    )


def build_adjacency_arrays(
    n_entities: int,
    n_passages: int,
    fact_pairs: np.ndarray,
    mentions: np.ndarray,
    syn_a: np.ndarray,
    syn_b: np.ndarray,
    syn_w: np.ndarray,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Symmetric weighted adjacency (CSR) and the parallel edge-kind matrix.

    - fact edges: subject↔object, weight = number of triples linking them;
    - mention edges: passage↔entity, weight 1.0;
    - synonymy edges: entity↔entity (syn_a[i]↔syn_b[i]), weight = similarity score syn_w[i].
    Where families overlap on one pair, weights add and the kind of the first family wins.
    Synonymy edges come as arrays: an index can hold millions of them.
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
    if len(syn_a):
        add(np.asarray(syn_a, np.int64), np.asarray(syn_b, np.int64), np.asarray(syn_w, np.float64), EDGE_SYNONYM)

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


def grown_upper_graph(
    old: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    old_entities: int,
    n_entities: int,
    n_passages: int,
    fact_pairs: np.ndarray,
    mentions: np.ndarray,
    syn_a: np.ndarray,
    syn_b: np.ndarray,
    syn_w: np.ndarray,
    old_synonym_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> dict[str, np.ndarray] | None:
    """Format 7's graph files after an add, from the base's (`old`: upper indptr, indices, pair weights,
    pair kinds over `old_entities` entities) and the edges of this write's rows alone: its triples'
    (subject, object) pairs, its passages' mentions and its synonyms (each has a new endpoint). Equal
    value for value to `format.upper_graph(build_adjacency_arrays(every row))`; None when the base rows
    are not in CSR order or a base weight does not split into its triple count plus its synonym score
    (`old_synonym_score(a, b)`, 0 where none), so the caller builds from every row instead.

    Entities come first in the node order, so an add shifts every old passage column by the new
    entity count; a new triple between two old entities that already share an edge adds to its
    count (the weight is recomputed as count + synonym score, the sum a scratch build makes)."""
    n = n_entities + n_passages
    rows, cols, weights, kinds = _stored_entries(old, old_entities)
    cols = np.where(cols < old_entities, cols, cols + (n_entities - old_entities))  # passage E0 + j → E1 + j
    keys = _csr_keys(rows, cols, n)
    if keys is None:
        return None  # merging by position needs the rows in CSR order
    adj, kind = build_adjacency_arrays(n_entities, n_passages, fact_pairs, mentions, syn_a, syn_b, syn_w)
    d_rows, up = upper_entries(adj.indptr, adj.indices)
    d_rows, d_cols = d_rows[up], adj.indices[up].astype(np.int64)
    d_w, d_k = adj.data[up], kind.data[up]
    d_keys = d_rows * n + d_cols
    at = np.searchsorted(keys, d_keys)
    hit = at < len(keys)
    hit[hit] = keys[at[hit]] == d_keys[hit]
    if hit.any():  # an old entity pair gains triples: count + synonym score, as a scratch build sums them
        pos = at[hit]
        syn = np.asarray(old_synonym_score(rows[pos], cols[pos]), dtype=np.float64)
        count = _triple_counts(weights[pos], syn)
        if count is None or (d_k[hit] != EDGE_FACT).any():
            return None
        weights[pos] = ((count + d_w[hit]) + syn).astype(np.float32)
        kinds[pos] = EDGE_FACT
    new = ~hit
    at = at[new]
    keys = np.insert(keys, at, d_keys[new])
    cols = np.insert(cols, at, d_cols[new])
    weights = np.insert(weights, at, d_w[new].astype(np.float32))
    kinds = np.insert(kinds, at, d_k[new])
    return upper_files(keys // n, cols, weights, kinds, n, n_entities)


def shrunk_upper_graph(
    old: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    old_entities: int,
    entity_new: np.ndarray,
    passage_new: np.ndarray,
    removed_fact_pairs: np.ndarray,
    synonym_score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Format 7's graph arrays (upper indptr, indices, pair weights, pair kinds) after a delete, from the
    base's (`old`, over `old_entities` entities) and what the delete removed: `entity_new` / `passage_new`
    give every old row's new number (-1: deleted), `removed_fact_pairs` the (subject, object) of every
    triple of the deleted passages (old numbers). Equal value for value to a build from the remaining rows;
    None when a base weight does not split into triple count plus synonym score, or a removed triple has
    no edge to leave, so the caller builds from every row instead.

    A kept pair that loses triples is weighed again as count + synonym score (`synonym_score(a, b)` over
    new numbers, NaN where the pair has no synonym); with no triple left it is a synonym edge or gone.
    Renumbering keeps the order of the kept rows, so the entries stay in CSR order."""
    entity_new, passage_new = np.asarray(entity_new, dtype=np.int64), np.asarray(passage_new, dtype=np.int64)
    n_entities = int((entity_new >= 0).sum())
    node_new = np.concatenate([entity_new, np.where(passage_new >= 0, passage_new + n_entities, -1)])
    n_old, n = len(old[0]) - 1, int((node_new >= 0).sum())
    if len(node_new) != n_old or len(entity_new) != old_entities:
        return None
    rows, cols, weights, kinds = _stored_entries(old, old_entities)
    alive = (node_new[rows] >= 0) & (node_new[cols] >= 0)
    pairs = np.asarray(removed_fact_pairs, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if len(pairs):
        keys = _csr_keys(rows, cols, n_old)
        if keys is None:
            return None  # finding pairs by position needs the rows in CSR order
        lo_hi, lost = np.unique(np.sort(pairs, axis=1), axis=0, return_counts=True)
        wanted = lo_hi[:, 0] * n_old + lo_hi[:, 1]
        at = np.searchsorted(keys, wanted)
        if (at >= len(keys)).any() or not np.array_equal(keys[np.minimum(at, len(keys) - 1)], wanted) \
                or (kinds[at] != EDGE_FACT).any():
            return None  # a removed triple whose fact edge is not there: not the graph of these rows
        kept = alive[at]
        at, lost = at[kept], lost[kept]
        syn = np.asarray(synonym_score(node_new[rows[at]], node_new[cols[at]]), dtype=np.float64)
        has_syn = ~np.isnan(syn)
        syn0 = np.where(has_syn, syn, 0.0)
        count = _triple_counts(weights[at], syn0)
        if count is None or (count < lost).any():
            return None
        count -= lost
        weights[at] = np.where(count > 0, count + syn0, syn0).astype(np.float32)
        kinds[at] = np.where(count > 0, EDGE_FACT, EDGE_SYNONYM)
        alive[at] &= (count > 0) | has_syn
    files = upper_files(node_new[rows[alive]], node_new[cols[alive]], weights[alive], kinds[alive], n, n_entities)
    return tuple(files[name] for name in GRAPH_FILES)  # type: ignore[return-value]


def _stored_entries(old: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                    n_entities: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, weight, kind) of every stored upper entry of format 7's graph arrays (`old`: indptr,
    indices, pair weights, pair kinds): entity pairs carry their stored weight and kind, mentions 1 and
    `EDGE_MENTION`."""
    indptr, indices, pair_w, pair_k = old
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    cols = np.asarray(indices, dtype=np.int64)
    is_pair = cols < n_entities
    weights = np.ones(len(cols), dtype=np.float32)
    weights[is_pair] = pair_w
    kinds = np.full(len(cols), EDGE_MENTION, dtype=np.int8)
    kinds[is_pair] = pair_k
    return rows, cols, weights, kinds


def _csr_keys(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray | None:
    """Row-major keys (row · n + column) of stored entries, or None unless they strictly increase (CSR order)."""
    keys = rows * n + cols
    return None if len(keys) > 1 and (np.diff(keys) <= 0).any() else keys


def _triple_counts(weights: np.ndarray, synonym: np.ndarray) -> np.ndarray | None:
    """Each stored float32 pair weight split into its triple count given its synonym score (0 where none),
    as float64; None unless count + score gives every stored weight back exactly (then it is not a weight
    this code wrote, and the caller builds from every row)."""
    count = np.rint(weights.astype(np.float64) - synonym)
    return count if np.array_equal((count + synonym).astype(np.float32), weights) else None
