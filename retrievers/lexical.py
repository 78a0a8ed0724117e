"""BM25 lexical index: bm25s eager scoring, stored as plain .npy + JSON (no pickle).

`bm25s` precomputes every (term, document) BM25 contribution at build time into a sparse
term-by-document matrix, so a query is a sum of a few sparse rows (≈0.2 ms at 2k docs)
instead of `rank_bm25`'s Python loop over all documents. We use bm25s to build that
matrix (Lucene BM25 variant, always-positive IDF) and keep the three CSR arrays
ourselves: scoring is a `np.bincount` over the query terms' rows, and the index
directory holds only `.npy` (loaded with ``allow_pickle=False``) and JSON files, so it
does not depend on the on-disk layout of a particular bm25s version.

A write that adds or removes passages does not tokenize the corpus again: the index also keeps
each document's length, which makes every stored score invertible to its term frequency, and
`updated` rescores the old postings with the new corpus statistics plus the new documents' own,
equal bit for bit to `build` over the new corpus (docs/write_path.md, "BM25 updates").
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from hippograph import validate
from hippograph.errors import IndexCorruptError, IndexNotFoundError

logger = logging.getLogger(__name__)

__all__ = ["BM25Index", "tokenize", "STOP_WORDS"]

FORMAT_NAME = "hippograph-bm25"
FORMAT_VERSION = 1
TOKENIZER_NAME = "hippograph-simple-v1"  # bump when `tokenize` changes: old indexes must be rebuilt

META_FILE = "bm25_meta.json"
META_SCHEMA = {"num_docs": (int, 0, 2**31 - 1), "k1": ((int, float), 0, 100), "b": ((int, float), 0, 1)}
"""Fields of bm25_meta.json and their ranges (document ids are int32, so at most 2^31 - 1 documents)."""
VOCAB_FILE = "bm25_vocab.json"
DATA_FILE = "bm25_data.npy"
INDICES_FILE = "bm25_indices.npy"
INDPTR_FILE = "bm25_indptr.npy"
DOCLEN_FILE = "bm25_doclen.npy"
"""Tokens per document (int32): written since the incremental update; an index without it is rebuilt
from the texts on its next write."""

# Runs of Unicode letters/digits ("naïve", "東京", "1960"); underscores split words.
_WORD_RE = re.compile(r"[^\W_]+")


def _english_stop_words() -> frozenset[str]:
    """bm25s's short English list (33 words, the Lucene default).

    Measured on the MuSiQue and HotpotQA samples: as good as or better than
    scikit-learn's 318-word list, which also drops content words such as "first",
    "found", "bill", "fire", "system" (HotpotQA recall@2 0.60 vs 0.565).
    """
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


STOP_WORDS: frozenset[str] = _english_stop_words()


def tokenize(texts: str | Sequence[str]) -> list[list[str]]:
    """Lower-case, split on non-alphanumerics (Unicode-aware), drop stop words and 1-char tokens.

    One tokenizer shared by indexing and querying; a single string is treated as a
    one-element batch. Single characters (possessive "s", initials) are dropped like
    the usual ``\\w\\w+`` pattern. No stemming: a plural/suffix stripper changed
    MuSiQue/HotpotQA recall by less than one question's worth, so it is left out.
    """
    if isinstance(texts, str):
        texts = [texts]
    out: list[list[str]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"tokenize: item {i} is {type(text).__name__}, expected str")
        out.append([t for t in _WORD_RE.findall(text.lower()) if len(t) > 1 and t not in STOP_WORDS])
    return out


class BM25Index:
    """BM25 (Lucene variant) over a fixed list of texts; document ids are list positions."""

    block_docs: int = 1 << 16
    """Documents per block of `_top_blocks`: one block's float64 scores (512 KB) stay in cache."""
    touched_share: float = 1 / 16
    """A query whose lists hold fewer postings than this share of the documents is ranked over the
    documents in its lists only (`_top_touched`); `_top_blocks` otherwise. Both give the same result."""

    def __init__(
        self,
        vocab: list[str],
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        num_docs: int,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        doclen: np.ndarray | None = None,
    ) -> None:
        """Wrap precomputed term-by-document CSR arrays (use `build` or `load` instead); `doclen`,
        tokens per document, is what `updated` needs."""
        self.vocab = vocab
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(vocab)}
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.num_docs = int(num_docs)
        self.k1 = float(k1)
        self.b = float(b)
        self.doclen = doclen
        self._term_sorted: np.ndarray | None = None  # see _lists_ascending
        self.last_blocks = 0  # blocks `_top_blocks` scanned for the last query (0: it ranked the touched documents)

    # ---- construction ------------------------------------------------------------
    @classmethod
    def build(cls, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> "BM25Index":
        """Tokenize `texts` and precompute BM25 scores; raises ValueError on an empty corpus."""
        if isinstance(texts, str):
            raise TypeError("BM25Index.build expects a sequence of texts, not a single string")
        if len(texts) == 0:
            raise ValueError("BM25Index.build: cannot build a BM25 index over an empty corpus")
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25Index.build: need k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        corpus_tokens = tokenize(texts)
        n = len(corpus_tokens)
        doclen = np.fromiter((len(doc) for doc in corpus_tokens), dtype=np.int32, count=n)
        if not any(corpus_tokens):
            logger.warning("BM25 index: none of the %d texts has an indexable token; every query scores 0", n)
            return cls([], np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), n, k1=k1, b=b,
                       doclen=doclen)

        import bm25s

        # bm25s builds a vocabulary in set order (hash-seed dependent); give it sorted
        # ids ourselves so the saved index is byte-reproducible.
        vocab = sorted({t for doc in corpus_tokens for t in doc})
        tok_id = {t: i for i, t in enumerate(vocab)}
        corpus_ids = [[tok_id[t] for t in doc] for doc in corpus_tokens]
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        scores = model.build_index_from_ids(
            unique_token_ids=list(range(len(vocab))), corpus_token_ids=corpus_ids, show_progress=False
        )
        data = np.ascontiguousarray(scores["data"], dtype=np.float32)
        indices = np.ascontiguousarray(scores["indices"], dtype=np.int32)
        indptr = np.ascontiguousarray(scores["indptr"], dtype=np.int64)
        if indptr.shape != (len(vocab) + 1,) or int(scores["num_docs"]) != n:
            raise RuntimeError("bm25s returned a score matrix of unexpected shape")  # library contract changed
        logger.debug("BM25 index: %d docs, %d terms, %d postings", n, len(vocab), len(data))
        return cls(vocab, data, indices, indptr, n, k1=k1, b=b, doclen=doclen)

    # ---- updates -----------------------------------------------------------------
    update_block: int = 1 << 22
    """Postings inverted or rescored at a time by `term_frequencies` / `updated` (float64 temporaries:
    ≈ 40 bytes per posting of a block, so ≈ 170 MB whatever the index size)."""

    def _blocks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(lo, hi, term of each posting) over the postings, `update_block` at a time."""
        n = len(self.indices)
        for lo in range(0, n, self.update_block):
            hi = min(n, lo + self.update_block)
            yield lo, hi, np.searchsorted(self.indptr, np.arange(lo, hi), side="right") - 1

    def term_frequencies(self) -> np.ndarray | None:
        """Each posting's term frequency (int32, aligned with `data`), recovered from its score and
        its document's length; None when the lengths are not stored or a score does not invert
        exactly (rescoring the recovered frequencies must give every stored score bit for bit, and a
        document's frequencies must add up to its length)."""
        if self.doclen is None:
            return None
        idf, norm = _idf(np.diff(self.indptr), self.num_docs), _length_norms(self.doclen, self.k1, self.b)
        out = np.zeros(len(self.indices), dtype=np.int32)
        for lo, hi, terms in self._blocks():
            s = np.asarray(self.data[lo:hi], dtype=np.float64)
            t_idf = idf[terms].astype(np.float64)
            d_norm = norm[self.indices[lo:hi]]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                tf = np.rint(s * d_norm / (t_idf - s))
            if len(tf) and not (np.isfinite(tf).all() and tf.min() >= 1 and tf.max() < 2**31):
                return None
            if not np.array_equal(_scores(tf, t_idf, d_norm).view(np.int32),
                                  np.asarray(self.data[lo:hi], dtype=np.float32).view(np.int32)):
                return None  # rescoring the frequency must give the stored score bit for bit
            out[lo:hi] = tf
        if not np.array_equal(np.bincount(self.indices, weights=out, minlength=self.num_docs), self.doclen):
            return None
        return out

    def updated(self, origin: np.ndarray, new_tokens: Sequence[Sequence[str]]) -> "BM25Index | None":
        """The index of a changed corpus without tokenizing the unchanged documents: `origin` lists the
        old documents kept, in their order, then -1 for each new document, whose tokens (`tokenize`d
        texts) are `new_tokens`. Equal bit for bit to `build` over the new corpus's texts; None when
        this index cannot give its term frequencies (`term_frequencies`): build from the texts instead.

        Memory: the old postings' frequencies (4 bytes per posting), the new index's arrays (8 bytes per
        posting), one block of float64 temporaries (`update_block`) and a few arrays per term and per
        document; the old arrays may be memory-mapped."""
        origin = np.asarray(origin, dtype=np.int64)
        n_kept = int((origin >= 0).sum())
        kept = origin[:n_kept]
        if origin.ndim != 1 or (origin[n_kept:] >= 0).any() or len(origin) - n_kept != len(new_tokens) \
                or (n_kept and (kept.min() < 0 or kept.max() >= self.num_docs or (np.diff(kept) <= 0).any())):
            raise ValueError("BM25Index.updated: origin must list kept old documents in increasing order, "
                             "then -1 for each new text")
        if len(origin) == 0:
            raise ValueError("BM25Index.updated: cannot build a BM25 index over an empty corpus")
        old_tf = self.term_frequencies()
        if old_tf is None:
            return None
        n_old_terms = len(self.vocab)
        old_to_new = np.full(self.num_docs, -1, dtype=np.int64)
        old_to_new[kept] = np.arange(n_kept)
        alive_per_term = np.zeros(n_old_terms, dtype=np.int64)  # postings of kept documents, per old term
        for lo, hi, terms in self._blocks():
            alive_per_term += np.bincount(terms[old_to_new[self.indices[lo:hi]] >= 0], minlength=n_old_terms)
        # the vocabulary of the new corpus, sorted like `build`'s: old terms still posted, plus new words
        counts = [Counter(doc) for doc in new_tokens]
        alive = [t for t, k in zip(self.vocab, alive_per_term.tolist()) if k]
        added = sorted({t for c in counts for t in c}.difference(alive))
        vocab = sorted(alive + added)  # two sorted runs: timsort merges them in one pass
        new_id = {t: i for i, t in enumerate(vocab)}
        old_map = np.fromiter((new_id.get(t, -1) for t in self.vocab), dtype=np.int64, count=n_old_terms)
        # the new documents' postings, by (term, document)
        n_fresh = sum(len(c) for c in counts)
        t_new = np.fromiter((new_id[t] for c in counts for t in c), dtype=np.int64, count=n_fresh)
        f_new = np.fromiter((v for c in counts for v in c.values()), dtype=np.float64, count=n_fresh)
        d_new = np.repeat(np.arange(n_kept, len(origin)), [len(c) for c in counts])
        order = np.lexsort((d_new, t_new))
        t_new, d_new, f_new = t_new[order], d_new[order], f_new[order]
        # the new statistics
        old_df = np.zeros(len(vocab), dtype=np.int64)
        has = old_map >= 0
        old_df[old_map[has]] = alive_per_term[has]
        df = old_df + np.bincount(t_new, minlength=len(vocab))
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        doclen = np.concatenate([np.asarray(self.doclen)[kept], [sum(c.values()) for c in counts]]).astype(np.int32)
        idf, norm = _idf(df, len(origin)), _length_norms(doclen, self.k1, self.b)
        data = np.empty(int(indptr[-1]), dtype=np.float32)
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        # old postings: recovered frequencies, rescored, each at its term's start + its rank among the
        # term's kept postings (kept documents keep their order, so every list stays ascending)
        alive_start = np.zeros(n_old_terms, dtype=np.int64)  # kept postings of earlier terms
        np.cumsum(alive_per_term[:-1], out=alive_start[1:])
        seen = 0
        for lo, hi, terms in self._blocks():
            docs = old_to_new[self.indices[lo:hi]]
            live = docs >= 0
            terms, docs, tf = terms[live], docs[live], old_tf[lo:hi][live].astype(np.float64)
            rank = seen + np.arange(len(docs)) - alive_start[terms]
            seen += len(docs)
            pos = indptr[old_map[terms]] + rank
            data[pos] = _scores(tf, idf[old_map[terms]].astype(np.float64), norm[docs])
            indices[pos] = docs
        # new postings after the term's kept ones (new documents come last)
        first = np.searchsorted(t_new, t_new, side="left")
        pos = indptr[t_new] + old_df[t_new] + (np.arange(n_fresh) - first)
        data[pos] = _scores(f_new, idf[t_new].astype(np.float64), norm[d_new])
        indices[pos] = d_new
        return type(self)(vocab, data, indices, indptr, len(origin), k1=self.k1, b=self.b, doclen=doclen)

    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        return f"BM25Index(docs={self.num_docs}, terms={len(self.vocab)}, k1={self.k1}, b={self.b})"

    # ---- scoring ------------------------------------------------------------------
    def _scores_for_tokens(self, tokens: list[str]) -> np.ndarray:
        ids = [self.token_to_id[t] for t in tokens if t in self.token_to_id]
        if not ids:
            return np.zeros(self.num_docs, dtype=np.float32)
        starts = self.indptr[ids]
        ends = self.indptr[np.asarray(ids) + 1]
        if len(ids) == 1:
            sel_idx = self.indices[starts[0] : ends[0]]
            sel_val = self.data[starts[0] : ends[0]]
        else:
            sel_idx = np.concatenate([self.indices[s:e] for s, e in zip(starts, ends)])
            sel_val = np.concatenate([self.data[s:e] for s, e in zip(starts, ends)])
        return np.bincount(sel_idx, weights=sel_val, minlength=self.num_docs).astype(np.float32)

    def _lists_ascending(self, terms: set[int]) -> bool:
        """Whether these terms' document lists are ascending (bm25s writes them so), checked on a term's
        first query and kept: one byte per vocabulary word, and lists never queried are never read (an
        index may be memory-mapped)."""
        if self._term_sorted is None:
            self._term_sorted = np.zeros(len(self.vocab), dtype=np.int8)  # 0 unknown, 1 ascending, 2 not
        for t in terms:
            if self._term_sorted[t] == 0:
                docs = self.indices[self.indptr[t]:self.indptr[t + 1]]
                self._term_sorted[t] = 1 if bool(np.all(docs[1:] > docs[:-1])) else 2
        return all(self._term_sorted[t] == 1 for t in terms)

    def _top_touched(self, ids: list[int], allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Every document in the query's lists with its score: np.unique + bincount over the postings alone,
        cheaper than anything corpus-long for queries of rare words (and needing no order in the lists)."""
        docs = np.concatenate([self.indices[self.indptr[t]:self.indptr[t + 1]] for t in ids])
        vals = np.concatenate([self.data[self.indptr[t]:self.indptr[t + 1]] for t in ids])
        cand, inv = np.unique(docs, return_inverse=True)
        # bincount adds in list order, term by term in query order: the float64 sums of _scores_for_tokens
        s = np.bincount(inv, weights=vals, minlength=cand.size).astype(np.float32)
        keep = s > 0 if allowed is None else (s > 0) & allowed[cand]
        return cand[keep].astype(np.int64), s[keep]

    def _top_blocks(self, ids: list[int], k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k candidates scanning the documents in blocks of `block_docs` with a running threshold.

        A block's scores are one bincount of the query lists' postings inside it (each list is cut at the
        block edges by binary search), in a block-long array: no corpus-long temporary, no partition over
        every document. θ, the k-th best score met so far (allowed documents only), only grows; a block
        keeps just its documents scoring at least θ, so the kept pool stays near k. Returns (documents,
        float32 scores), every document tied in float32 with the k-th included.

        MaxScore skipping (the lists of the terms with the smallest maximum contributions looked up by
        binary search for the other lists' candidates only) and block-max bounds were measured and lose
        on MuSiQue-shaped queries: at 1M documents a block's candidates number a third or more of the
        skipped lists' postings, so the binary searches cost more than reading the lists, and with
        documents in no topical order every block's bound stays above θ (eval/results/bm25_topk.md)."""
        n, step, dt = self.num_docs, self.block_docs, self.indices.dtype
        edges = np.append(np.arange(0, n, step), n).astype(dt)
        cuts = {t: self.indptr[t] + np.searchsorted(self.indices[self.indptr[t]:self.indptr[t + 1]], edges)
                for t in set(ids)}  # cuts[t][b]: where block b starts in term t's list
        theta = 0.0  # a document scoring below θ cannot be in the top k (0: fewer than k found yet)
        pool_doc, pool_s = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.last_blocks = len(edges) - 1
        for b in range(len(edges) - 1):
            b0, b1 = int(edges[b]), int(edges[b + 1])
            spans = [(cuts[t][b], cuts[t][b + 1]) for t in ids]  # query order: the float64 sums of `scores`
            docs = np.concatenate([self.indices[lo:hi] for lo, hi in spans], dtype=np.intp)
            docs -= b0
            vals = np.concatenate([self.data[lo:hi] for lo, hi in spans], dtype=np.float64)
            s = np.bincount(docs, weights=vals, minlength=b1 - b0)
            hit = np.flatnonzero(s >= theta) if theta > 0 else np.flatnonzero(s > 0)
            if allowed is not None:
                hit = hit[allowed[b0 + hit]]
            pool_doc = np.concatenate([pool_doc, hit + b0])
            pool_s = np.concatenate([pool_s, s[hit]])
            if pool_s.size >= k:
                # 1e-6 below the k-th best float64 score: a document further below has a float32 score
                # strictly under the k-th's (several float32 steps), so no float32 tie is lost
                theta = float(np.partition(pool_s, pool_s.size - k)[pool_s.size - k]) * (1 - 1e-6)
                keep = pool_s >= theta
                pool_doc, pool_s = pool_doc[keep], pool_s[keep]
        return pool_doc, pool_s.astype(np.float32)

    def scores(self, query: str) -> np.ndarray:
        """Dense BM25 score of `query` against every document (float32, length len(self))."""
        if not isinstance(query, str):
            raise TypeError(f"BM25Index.scores expects one query string, got {type(query).__name__}")
        return self._scores_for_tokens(tokenize(query)[0])

    def search(
        self, queries: str | Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query: (scores float32 (nq, k), indices int64 (nq, k)).

        Only documents sharing at least one term with the query are returned, best first
        (ties by lower index); the rest of each row is padded with index -1 and score 0.
        `allowed` (boolean, one per document; a metadata filter) limits the candidates: the
        top k of the allowed documents, not the allowed part of the top k.
        """
        if isinstance(queries, str):
            queries = [queries]
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"BM25Index.search: k must be a positive integer (got {k!r})")
        k = int(k)
        if allowed is not None:
            allowed = np.asarray(allowed)
            if allowed.shape != (self.num_docs,) or allowed.dtype != np.bool_:
                raise ValueError(f"BM25Index.search: allowed must be a boolean array of shape ({self.num_docs},)")
        nq = len(queries)
        out_scores = np.zeros((nq, k), dtype=np.float32)
        out_idx = np.full((nq, k), -1, dtype=np.int64)
        kk = min(k, self.num_docs)
        for qi, tokens in enumerate(tokenize(queries)):
            ids = [self.token_to_id[t] for t in tokens if t in self.token_to_id]  # a repeated word counts twice
            self.last_blocks = 0
            if not ids:
                continue
            postings = int(sum(self.indptr[t + 1] - self.indptr[t] for t in ids))
            if postings < self.touched_share * self.num_docs or not self._lists_ascending(set(ids)):
                cand, cs = self._top_touched(ids, allowed)
            else:
                cand, cs = self._top_blocks(ids, kk, allowed)
            if cand.size > kk:  # keep every document tied with the k-th: ties go to the lower index
                cut = cs >= np.partition(cs, cand.size - kk)[cand.size - kk]
                cand, cs = cand[cut], cs[cut]
            order = np.lexsort((cand, -cs))[:kk]  # score desc, then index asc
            top, top_s = cand[order], cs[order]
            keep = top_s > 0
            top, top_s = top[keep], top_s[keep]
            out_idx[qi, : len(top)] = top
            out_scores[qi, : len(top)] = top_s
        return out_scores, out_idx

    # ---- persistence ----------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the index as JSON + .npy files into `directory` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / DATA_FILE, self.data, allow_pickle=False)
        np.save(directory / INDICES_FILE, self.indices, allow_pickle=False)
        np.save(directory / INDPTR_FILE, self.indptr, allow_pickle=False)
        if self.doclen is not None:
            np.save(directory / DOCLEN_FILE, np.asarray(self.doclen, dtype=np.int32), allow_pickle=False)
        with open(directory / VOCAB_FILE, "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        meta: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "method": "lucene",
            "k1": self.k1,
            "b": self.b,
            "num_docs": self.num_docs,
            "num_terms": len(self.vocab),
            "num_postings": int(len(self.data)),
            "tokenizer": TOKENIZER_NAME,
        }
        with open(directory / META_FILE, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)

    @classmethod
    def load(cls, directory: str | Path, *, mmap: bool = False) -> "BM25Index":
        """Read an index written by `save`; `mmap=True` memory-maps the score arrays."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise IndexNotFoundError(f"{meta_path}: no BM25 index here (missing {META_FILE})")
        meta = _read_json(meta_path)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise IndexCorruptError(f"{meta_path}: not a hippograph BM25 index")
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"{meta_path}: BM25 format version {meta.get('format_version')!r} is not supported "
                f"(this hippograph reads version {FORMAT_VERSION})"
            )
        if meta.get("tokenizer") != TOKENIZER_NAME:
            raise IndexCorruptError(f"{meta_path}: unknown tokenizer {meta.get('tokenizer')!r}; rebuild the index")
        validate.check_fields(meta_path, meta, META_SCHEMA, "BM25 metadata")
        vocab = _read_json(directory / VOCAB_FILE)
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise IndexCorruptError(f"{directory / VOCAB_FILE}: expected a JSON list of terms")
        num_docs, k1, b = meta["num_docs"], float(meta["k1"]), float(meta["b"])
        data = validate.load_npy(directory / DATA_FILE, kind="f", ndim=1, mmap=mmap)
        indices = validate.load_npy(directory / INDICES_FILE, kind="iu", ndim=1, mmap=mmap)
        indptr = validate.load_npy(directory / INDPTR_FILE, kind="iu", ndim=1, mmap=mmap)
        validate.check_csr(directory / INDICES_FILE, indptr, indices, len(vocab), num_docs, "BM25 term × document",
                           directory / INDPTR_FILE)
        validate.check_length(directory / DATA_FILE, data, len(indices), "BM25 scores")
        validate.check_finite(directory / DATA_FILE, data, "BM25 scores")
        for key, n in (("num_terms", len(vocab)), ("num_postings", len(indices))):
            if key in meta and meta[key] != n:
                raise IndexCorruptError(f"{meta_path}: {key} is {meta[key]}, the files hold {n}")
        doclen = None
        if (directory / DOCLEN_FILE).is_file():  # absent before incremental updates: the next write rebuilds
            doclen = validate.load_npy(directory / DOCLEN_FILE, kind="iu", ndim=1, mmap=mmap)
            validate.check_length(directory / DOCLEN_FILE, doclen, num_docs, "BM25 document lengths")
            if len(doclen) and int(doclen.min()) < 0:
                raise IndexCorruptError(f"{directory / DOCLEN_FILE}: negative BM25 document length")
        return cls(vocab, data, indices, indptr, num_docs, k1=k1, b=b, doclen=doclen)


def _idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene IDF per term (float32), computed as bm25s computes it (`math.log` of Python floats):
    `updated` must reproduce `build`'s scores bit for bit."""
    return np.fromiter((math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) if d else 0.0 for d in np.asarray(df).tolist()),
                       dtype=np.float64, count=len(df)).astype(np.float32)


def _length_norms(doclen: np.ndarray, k1: float, b: float) -> np.ndarray:
    """k1 · (1 − b + b · |d| / avgdl) per document (float64), in bm25s's order of operations."""
    lengths = np.asarray(doclen, dtype=np.int64)
    avg = lengths.mean() if len(lengths) else np.float64(1.0)
    return k1 * ((1 - b) + b * lengths.astype(np.float64) / avg)


def _scores(tf: np.ndarray, idf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """idf · tf / (norm + tf) per posting (float64 inputs), stored as float32 like bm25s's."""
    return (idf * (tf / (norm + tf))).astype(np.float32)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{path}: missing BM25 index file") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: unreadable BM25 index file ({exc})") from exc


