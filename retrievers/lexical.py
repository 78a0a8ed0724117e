"""BM25 lexical index: bm25s eager scoring, stored as plain .npy + JSON (no pickle).

`bm25s` precomputes every (term, document) BM25 contribution at build time into a sparse
term-by-document matrix, so a query is a sum of a few sparse rows (≈0.2 ms at 2k docs)
instead of `rank_bm25`'s Python loop over all documents. We use bm25s to build that
matrix (Lucene BM25 variant, always-positive IDF) and keep the three CSR arrays
ourselves: scoring is a `np.bincount` over the query terms' rows, and the index
directory holds only `.npy` (loaded with ``allow_pickle=False``) and JSON files, so it
does not depend on the on-disk layout of a particular bm25s version.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

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
    ) -> None:
        """Wrap precomputed term-by-document CSR arrays (use `build` or `load` instead)."""
        self.vocab = vocab
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(vocab)}
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.num_docs = int(num_docs)
        self.k1 = float(k1)
        self.b = float(b)
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
        if not any(corpus_tokens):
            logger.warning("BM25 index: none of the %d texts has an indexable token; every query scores 0", n)
            return cls([], np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), n, k1=k1, b=b)

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
        return cls(vocab, data, indices, indptr, n, k1=k1, b=b)

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
        return cls(vocab, data, indices, indptr, num_docs, k1=k1, b=b)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{path}: missing BM25 index file") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: unreadable BM25 index file ({exc})") from exc


