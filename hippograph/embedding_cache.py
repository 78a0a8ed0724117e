"""A persistent text → vector cache for deterministic embedders, in one SQLite file.

Embedding every passage, sentence, fact and entity dominates indexing time. Rebuilding
an index of the same corpus (a config change, an ablation, an eval re-run) re-embeds the
same texts; with `Config.embedding_cache_dir` set, those vectors come from this cache.
Only for embedders whose output depends on the text alone (not TF-IDF, which is fitted
per corpus). Rows are keyed by sha256(namespace + text), so one file can serve several
models. Safe for concurrent processes (SQLite WAL, busy timeout); a damaged cache file
is reported and bypassed, never trusted.
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FILE = "embeddings.sqlite"
_CHUNK = 500  # SQLite host-parameter budget per SELECT


class EmbeddingCache:
    """Vectors of one embedder (its `namespace`, e.g. model name + dim) stored by text hash."""

    def __init__(self, directory: str | Path, namespace: str, dim: int):
        self.path = Path(directory) / CACHE_FILE
        self.namespace = namespace
        self.dim = int(dim)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")
        self.hits = 0
        """Texts served from the cache."""
        self.misses = 0
        """Distinct texts that had to be embedded."""

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.namespace}\x1f{text}".encode("utf-8", "surrogatepass")).digest()[:20]

    def get_many(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, dim) with zeros where missing, found mask (n,))."""
        keys = [self._key(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found = np.zeros(len(texts), dtype=bool)
        where: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            where.setdefault(k, []).append(i)
        unique = list(where)
        for s in range(0, len(unique), _CHUNK):
            part = unique[s : s + _CHUNK]
            rows = self._db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})", part
            ).fetchall()
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape != (self.dim,):
                    continue  # written by another model with the same namespace: recompute
                for i in where[key]:
                    out[i] = vec
                    found[i] = True
        return out, found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(self._key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)

    def encode_through(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors of `texts`: cached ones read, the rest computed by `encode` (unique texts only) and stored."""
        try:
            out, found = self.get_many(texts)
        except sqlite3.DatabaseError as exc:
            logger.warning("embedding cache %s unreadable (%s); computing without it", self.path, exc)
            return encode(list(texts))
        missing = [i for i in np.flatnonzero(~found)]
        self.hits += len(texts) - len(missing)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))
            self.misses += len(todo)
            vecs = np.asarray(encode(todo), dtype=np.float32)
            pos = {t: j for j, t in enumerate(todo)}
            for i in missing:
                out[i] = vecs[pos[texts[i]]]
            try:
                self.put_many(todo, vecs)
            except sqlite3.DatabaseError as exc:
                logger.warning("embedding cache %s not writable (%s); vectors not cached", self.path, exc)
        return out

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
