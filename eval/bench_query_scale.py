"""Query cost against corpus size: the corpus-dependent stages of a hybrid query on synthetic index
arrays of 100k, 1M and 3M passages, built at the per-passage densities measured on a real index.

    python eval/bench_query_scale.py [--profile INDEX_DIR] [--sizes 100000,1000000,3000000]
                                     [--queries 50] [--power-queries 3] [--out eval/results/query_scale.md]

What is generated (from the real index `--profile`, default the cached MuSiQue eval index):
* the PPR graph: entity nodes per passage, passage–entity mention edges with the real distribution of
  passages per entity (entities mentioned by ≥ 1 % of the real passages keep that share, so hubs grow
  with the corpus), entity–entity (fact) edges per passage joining entities of one passage;
* BM25: the posting lists of query terms only (a query never reads another term's list), each holding
  the share of the corpus its real query term has (df / n), with BM25 scores drawn from that real
  term's own postings (so a common word keeps its low weight);
* per query: ~10 entity seeds (picked like specificity-weighted seeds) and passage priors on as many
  passages as real resets hold, half of them in the seeds' passages; dense/sentence/fact candidate
  lists of 200.
Measured per query: BM25 top-k (`BM25Index.search`), PPR by forward push (`PPR.push`) and by power
iteration (`PPR.run`, a few queries), and the candidate-only fusion (`SparseScores` minmax, weighted
sums, top 30) — the engine's own classes on these arrays. The stages whose cost does not depend on the
corpus size (query embedding, spaCy mentions, linking, router, seeds, bridge, hits) are timed on the
real index in the same run (eval/bench_query.py's stage split). Vector search is timed there at the real
index's size; with `--vectors DIR` it is timed at each size instead, on generated SPANN indexes of every
granularity at the profile's units per passage (eval/synth_vectors.py: MiniLM-shaped clustered vectors,
int8 rows read by id, built with their generated clustering), and that time replaces the real index's.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

clock = time.process_time
"""By default every stage is timed in process CPU time (all threads): on shared cores wall time would
include waiting for a core. `--clock wall` times latency instead, for a quiet machine: the query's
spaCy mentions then overlap its embedding on the second core, which CPU time cannot show."""
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def real_questions(dataset: str, n_questions: int) -> list[str]:
    """The first `n_questions` questions of `dataset` that have gold passages."""
    from eval.datasets import load_dataset

    return [q.question for q in load_dataset(dataset).queries if q.gold][:n_questions]


def bm25_query_terms(bm, questions: list[str]) -> list[list[tuple[float, np.ndarray]]]:
    """Per question, per query term in the index: (its df as a share of the corpus, its BM25 values)."""
    from hippograph.retrievers.lexical import tokenize

    df = np.diff(bm.indptr)
    out = []
    for toks in tokenize(questions):
        ids = [bm.token_to_id[t] for t in toks if t in bm.token_to_id]
        out.append([(df[i] / bm.num_docs, np.asarray(bm.data[bm.indptr[i]:bm.indptr[i + 1]])) for i in ids])
    return out


# ---- profile of a real index -------------------------------------------------------------------
def profile(index: Path, dataset: str, n_questions: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-passage densities of a real index and of its real queries (the index opened with `overrides`)."""
    from hippograph import HippoGraph

    hg = HippoGraph.open(index, **(overrides or {}))
    s = hg.snapshot
    ne, n = s.n_entities, s.n_passages
    a = s.graph(synonymy=True).tocsr()
    ep = a[:ne, ne:].tocsr()
    ee = a[:ne, :ne]
    bm = s.bm25
    questions = real_questions(dataset, n_questions)
    q_terms = bm25_query_terms(bm, questions)
    reset_sizes = []
    orig = hg.retriever._run_ppr

    def spy(resets, cfg, *rest):
        reset_sizes.extend(len(nodes) for nodes, _ in resets)
        return orig(resets, cfg, *rest)

    hg.retriever._run_ppr = spy
    hg.retrieve_many(questions, top_k=10)
    hg.retriever._run_ppr = orig
    return dict(
        hg=hg, questions=questions, n=n, ne=ne,
        ent_per_passage=ne / n, ep_per_passage=ep.nnz / n, ee_per_passage=ee.nnz / 2 / n,
        passages_per_entity=np.diff(ep.indptr), ee_weights=ee.data if ee.nnz else np.ones(1),
        q_term_fracs=q_terms, bm25_values=np.asarray(bm.data), reset_size=float(np.mean(reset_sizes)),
        nnz_per_passage=a.nnz / n, name=index.name,
        units_per_passage={"passages": 1.0, "sentences": len(s.sentence_passage) / n, "facts": s.n_facts / n,
                           "entities": ne / n},
    )


# ---- synthetic index arrays ---------------------------------------------------------------------
def synth_graph(prof: dict[str, Any], n: int, rng: np.random.Generator) -> tuple[sp.csr_matrix, int, np.ndarray]:
    """Symmetric entity+passage adjacency at the profile's densities; returns (A, n_entities, mentions per entity)."""
    ne = int(round(prof["ent_per_passage"] * n))
    counts = rng.choice(prof["passages_per_entity"], ne).astype(np.int64)
    hub = prof["passages_per_entity"] >= 0.01 * prof["n"]  # the real hubs keep their share of the corpus
    n_hubs = int(hub.sum())
    hub_counts = prof["passages_per_entity"][hub] * (n / prof["n"])
    counts[rng.choice(ne, n_hubs, replace=False)] = np.minimum(np.asarray(hub_counts, dtype=np.int64), n)
    counts = np.maximum(counts, 1)
    ent = np.repeat(np.arange(ne, dtype=np.int32), counts)
    pas = rng.integers(0, n, ent.size, dtype=np.int32)
    order = np.argsort(pas, kind="stable")
    ent, pas = ent[order], pas[order]
    del order
    # entity–entity edges between entities of one passage
    m = ent.size
    n_ee = int(round(prof["ee_per_passage"] * n))
    starts = np.searchsorted(pas, np.arange(n, dtype=np.int32)).astype(np.int64)
    sizes = np.diff(np.append(starts, m))
    i = rng.integers(0, m, n_ee)
    p = pas[i]
    j = starts[p] + (rng.random(n_ee) * sizes[p]).astype(np.int64)
    keep = ent[i] != ent[j]
    u, v = ent[i[keep]], ent[j[keep]]
    del i, j, p, keep, starts, sizes
    w_ee = rng.choice(prof["ee_weights"], u.size)
    rows = np.concatenate([ent, pas + ne, u, v]).astype(np.int32)
    cols = np.concatenate([pas + ne, ent, v, u]).astype(np.int32)
    data = np.concatenate([np.ones(2 * m), w_ee, w_ee])
    del ent, pas, u, v, w_ee
    a = sp.csr_matrix((data, (rows, cols)), shape=(ne + n, ne + n))
    del rows, cols, data
    a.sum_duplicates()
    a.data[:] = np.minimum(a.data, 2.0)  # a repeated mention counts like a heavier edge, as in the real graph
    gc.collect()
    return a, ne, counts


def synth_bm25(prof: dict[str, Any], n: int, n_queries: int, rng: np.random.Generator):
    """BM25Index over only the query terms' posting lists (real df shares), and the query strings."""
    from hippograph.retrievers.lexical import BM25Index

    vocab, lists, scores, queries = [], [], [], []
    real = [q for q in prof["q_term_fracs"] if q]
    for qi in range(n_queries):
        fracs = real[qi % len(real)]
        words = []
        for t, (f, values) in enumerate(fracs):
            word = f"q{qi}t{t}"
            df = max(1, min(n, int(round(f * n))))
            docs = np.sort(rng.choice(n, df, replace=False)) if df < n // 4 else np.flatnonzero(rng.random(n) < df / n)
            vocab.append(word)
            lists.append(docs.astype(np.int32))
            scores.append(rng.choice(values, docs.size).astype(np.float32))  # this real term's BM25 values
            words.append(word)
        queries.append(" ".join(words))
    order = np.argsort(vocab)  # the index keeps its vocabulary sorted
    vocab = [vocab[i] for i in order]
    lists = [lists[i] for i in order]
    scores = [scores[i] for i in order]
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in lists])
    indices = np.concatenate(lists)
    data = np.concatenate(scores)
    return BM25Index(vocab, data, indices, indptr, n), queries


def synth_reset(prof: dict[str, Any], a: sp.csr_matrix, ne: int, n: int, counts: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """~10 entity seeds (weight × specificity 1/|passages|) and passage priors (× 0.05) like a real reset."""
    seeds = rng.choice(ne, 10, replace=False)
    weights = rng.uniform(0.3, 1.0, 10) / counts[seeds]
    n_prior = int(prof["reset_size"]) - 10
    near = np.concatenate([a.indices[a.indptr[e]:a.indptr[e + 1]] for e in seeds])
    near = near[near >= ne][: n_prior // 2]
    prior = np.unique(np.concatenate([near, rng.integers(ne, ne + n, n_prior - near.size)]))
    return (np.concatenate([seeds, prior]).astype(np.int64),
            np.concatenate([weights, 0.05 * rng.uniform(0, 1, prior.size)]))


def fuse(n: int, ne: int, bm: tuple[np.ndarray, np.ndarray], ppr_nodes: np.ndarray, ppr_scores: np.ndarray,
         rng: np.random.Generator) -> np.ndarray:
    """The engine's candidate-only fusion on this query's lists: routed Σ w·minmax + PPR, top 30."""
    from hippograph.retrievers.sparse import SparseScores, weighted_sum

    terms = []
    for w in (0.4, 0.2, 0.2):  # passages, sentences, facts: 200 candidates each, mapped to passages
        terms.append((w, SparseScores.max_at(n, rng.integers(0, n, 200), rng.uniform(0.2, 0.8, 200)).minmax()))
    s, i = bm
    keep = i >= 0
    order = np.argsort(i[keep])
    terms.append((0.2, SparseScores(n, i[keep][order], s[keep][order].astype(np.float64)).minmax()))
    routed = weighted_sum(terms, n)
    cut = int(np.searchsorted(ppr_nodes, ne))
    ppr = SparseScores(n, ppr_nodes[cut:] - ne, ppr_scores[cut:])
    fused = weighted_sum([(0.8, ppr.minmax()), (0.2, routed.minmax())], n)
    return fused.top(30)


def generated_vector_search(prof: dict[str, Any], n: int, work: Path, n_queries: int) -> dict[str, Any]:
    """Per query, wall-or-CPU ms of the engine's vector searches at `n` passages on generated indexes
    (eval/synth_vectors.py): one search per routed granularity (k = candidates_per_granularity, facts
    at least linking_top_facts) and one linking search of the entities (k = 1), over
    `spann_max_lists` lists, as `Retriever._vector_search` runs them."""
    from eval.synth_vectors import generate_index, open_generated
    from hippograph.config import Config

    cfg = Config()
    sizes, infos, opened = {}, {}, {}
    for g, per in prof["units_per_passage"].items():
        m = max(1, int(round(per * n)))
        t0 = time.perf_counter()
        infos[g] = generate_index(work / f"{g}-{m}", m, seed=m, n_queries=n_queries + 1)
        sizes[g] = m
        print(f"  {g}: {m:,} generated vectors ({time.perf_counter() - t0:.0f} s)", infos[g], flush=True)
        opened[g] = open_generated(work / f"{g}-{m}")
    M = cfg.candidates_per_granularity
    ks = {g: (max(M, cfg.linking_top_facts) if g == "facts" else M) for g in opened}
    for g, (index, Q) in opened.items():  # warm-up: heads, memory maps
        for q in Q[:20]:
            index.search(q[None, :], ks[g], max_lists=cfg.spann_max_lists)
    ms, per_gran = [], {g: [] for g in opened}
    for i in range(n_queries):
        total = 0.0
        for g, (index, Q) in opened.items():
            t0 = clock()
            index.search(Q[i][None, :], ks[g], max_lists=cfg.spann_max_lists)
            dt = (clock() - t0) * 1000
            per_gran[g].append(dt)
            total += dt
        index, Q = opened["entities"]
        t0 = clock()
        index.search(Q[i + 1][None, :], 1, max_lists=cfg.spann_max_lists)  # linking an unmatched mention
        total += (clock() - t0) * 1000
        ms.append(total)
    del opened
    gc.collect()
    return dict(ms=ms, sizes=sizes, per_gran=per_gran, infos=infos)


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object (a malformed one is argparse's one-line usage error)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object of config fields")
    return value


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, default=None, help="real index to measure densities on")
    ap.add_argument("--dataset", default="musique_train100")
    ap.add_argument("--sizes", default="100000,1000000,3000000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--power-queries", type=int, default=3, help="queries timed with power iteration per size")
    ap.add_argument("--loop-max-size", type=int, default=100_000, help="largest size that also times the queue push")
    ap.add_argument("--eps", type=float, default=None, help="push residual bound (default Config.ppr_push_eps)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                    help="cpu: process CPU time (a shared machine); wall: latency (a quiet machine)")
    ap.add_argument("--open-config", default="{}", type=json_object,
                    help='query-time config overrides for the real index, as JSON (e.g. {"embedding_precision": "float32"})')
    ap.add_argument("--vectors", type=Path, default=None,
                    help="work folder for generated vector indexes: time vector search at every size on them")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "query_scale.md",
                    help="report file: this run's section goes on top, earlier runs' sections stay below it")
    args = ap.parse_args(argv)
    history = args.out.read_text(encoding="utf-8") if args.out and args.out.is_file() else ""
    global clock
    clock = CLOCKS[args.clock]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    logging.basicConfig(level=logging.WARNING)
    import eval.bench_query as bench_query
    from eval.bench_query import default_index, stage_split
    from hippograph.config import Config
    from hippograph.retrievers.ppr import PPR

    eps = args.eps or Config.ppr_push_eps
    index = args.profile or default_index(args.dataset)
    from eval.runner import git_info

    git = git_info(REPO)
    commit = git["commit"][:7] + (" (+ uncommitted changes)" if git["dirty"] else "")
    load0 = os.getloadavg()
    prof = profile(index, args.dataset, args.queries, args.open_config)
    hg = prof["hg"]
    for q in prof["questions"][-5:]:
        hg.retrieve(q, top_k=10)
    bench_query.time = type("clock", (), {"perf_counter": staticmethod(clock)})
    split, split_total = stage_split(hg, prof["questions"][: args.queries])
    scale_stages = {"BM25", "PPR", "rest of search (fusion, passage mapping)"}
    constant_ms = sum(ms for name, ms in split.items() if name not in scale_stages)
    e2e = []
    for q in prof["questions"][: args.queries]:
        t0 = clock()
        hg.retrieve(q, top_k=10)
        e2e.append((clock() - t0) * 1000)
    e2e_small = float(np.mean(e2e))
    hits_ms = max(0.0, e2e_small - split_total)  # building hits from SQLite, outside search
    # what every hybrid query pays besides the stages that grow with the corpus: end to end on the real
    # index (median: a mean follows the odd slow query) minus its own BM25, PPR and fusion (means; the
    # split is serial, while end to end overlaps the mentions with the query embedding in wall time)
    fixed_ms = float(np.median(e2e)) - sum(ms for name, ms in split.items() if name in scale_stages)
    profile_vs_ms = split.get("vector search (4 granularities + linking)", 0.0)
    del hg, prof["hg"]
    gc.collect()

    rows, notes = [], []

    open_flag = f" --open-config '{json.dumps(args.open_config)}'" if args.open_config else ""

    def write_report() -> None:
        """The table so far (rewritten after every size, so a size that runs out of memory keeps the others)."""
        lines = ["## Query cost against corpus size (`eval/bench_query_scale.py`)", "",
                 f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · commit {commit} · 2 cores shared · "
                 + ("**CPU ms** (process CPU time of each stage; the machine was shared, wall time would count waiting) · "
                    if args.clock == "cpu" else "**wall ms** (latency, one query at a time) · ")
                 + 
                 f"load average {load0[0]:.1f} at the start, per size below · command: `python eval/bench_query_scale.py "
                 f"--sizes {args.sizes} --queries {args.queries} --power-queries {args.power_queries} --clock {args.clock}"
                 f"{f' --profile {index}' if args.profile else ''}{f' --vectors {args.vectors}' if args.vectors else ''}"
                 f"{open_flag}` · "
                 f"push ε {eps:g}", "",
                 f"Densities measured on `{prof['name']}` ({prof['n']:,} passages): {prof['ent_per_passage']:.2f} entities, "
                 f"{prof['ep_per_passage']:.2f} mention edges and {prof['ee_per_passage']:.2f} entity–entity edges per "
                 f"passage ({prof['nnz_per_passage']:.1f} stored graph entries); query terms cover on average "
                 f"{np.mean([sum(f for f, _ in q) for q in prof['q_term_fracs']]):.2f}× the corpus size in postings; PPR resets of "
                 f"{prof['reset_size']:.0f} nodes.", "",
                 "Stages that do not grow with the corpus, timed one after another on the real index in this run "
                 "(mean ms per query): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in sorted(split.items(), key=lambda kv: -kv[1]) if k not in scale_stages)
                 + f", building hits {hits_ms:.2f} — {constant_ms + hits_ms:.1f} ms in all. End to end on that index "
                 f"({np.median(e2e):.1f} ms per query p50, {e2e_small:.1f} mean) less its BM25, PPR and fusion leaves "
                 f"**{fixed_ms:.1f} ms**, added to "
                 + ("every hybrid number below. Vector search is in it at the real index's size; at 1M vectors a 64-list "
                    "SPANN search costs ≈0.75 ms more per granularity (eval/results/ann.md: 0.29 ms at 10.8k, 1.04 ms at 1M)."
                    if not args.vectors else
                    f"every hybrid number below in place of its vector search ({profile_vs_ms:.2f} ms on the real index), "
                    "which is timed at each size instead on generated indexes of every granularity "
                    f"({', '.join(f'{g} {u:.2f}' for g, u in prof['units_per_passage'].items())} vectors per passage; "
                    "eval/synth_vectors.py; one search per granularity and one linking search per query)."), "",
                 "| passages | graph nodes | graph entries | BM25 top-k p50/p95 | push PPR p50/p95 (edges visited p50) | "
                 "fusion p50/p95 | " + ("vector search p50/p95 (vectors searched) | " if args.vectors else "")
                 + "**hybrid p50/p95** | power-iteration PPR (n) | hybrid with power p50 | "
                 "queue push p50 | top-10 push vs power | load |",
                 "|---|---|---|---|---|---|" + ("---|" if args.vectors else "") + "---|---|---|---|---|---|"]
        for r in rows:
            t = r["t"]
            lines.append(
                f"| {r['n']:,} | {r['ne'] + r['n']:,} | {r['nnz']:,} | {pct(t['bm25'], 50):.1f} / {pct(t['bm25'], 95):.1f} | "
                f"{pct(t['push'], 50):.1f} / {pct(t['push'], 95):.1f} ({pct(r['edges'], 50):,.0f}) | "
                f"{pct(t['fusion'], 50):.1f} / {pct(t['fusion'], 95):.1f} | "
                + (f"{pct(r['vec'], 50):.1f} / {pct(r['vec'], 95):.1f} ({sum(r['vec_sizes'].values()):,}) | " if args.vectors else "")
                + f"**{pct(r['hybrid'], 50):.1f} / "
                f"{pct(r['hybrid'], 95):.1f}** | {pct(t['power'], 50):.0f} ({len(t['power'])}) | "
                f"{pct(r['hybrid_power'], 50):.0f} | {pct(t['loop'], 50):.1f} | "
                f"{np.mean(r['overlap']) if r['overlap'] else float('nan'):.2f} | {r['load']:.1f} |")
        if len(rows) >= 2:
            lo, hi = rows[0], rows[-1]
            slope = np.log(pct(hi["hybrid"], 50) / pct(lo["hybrid"], 50)) / np.log(hi["n"] / lo["n"])
            lines += ["", f"Log–log slope of hybrid p50 from {lo['n']:,} to {hi['n']:,} passages: {slope:.2f} "
                          "(target ≤ 0.2)."]
        lines += [""] + notes + ["", "Targets (issue 17, 2 cores): hybrid p50 ≤ 50 ms and p95 ≤ 150 ms at 1M passages; "
                                 "log–log slope ≤ 0.2 from 100k to 3M.", ""]
        text = "\n".join(lines)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + ("\n---\n\n" + history if history.strip() else ""), encoding="utf-8")

    for n in [int(x) for x in args.sizes.split(",")]:
        rng = np.random.default_rng(n)
        try:
            t0 = clock()
            a, ne, counts = synth_graph(prof, n, rng)
            bm25, queries = synth_bm25(prof, n, args.queries, rng)
            ppr = PPR(a, damping=Config.damping)
            gen_s = clock() - t0
        except MemoryError:
            notes.append(f"{n:,} passages: the synthetic arrays did not fit in memory (MemoryError); not measured.")
            break
        resets = [synth_reset(prof, a, ne, n, counts, rng) for _ in queries]
        k = min(Config.bm25_candidates, n)
        t = {"bm25": [], "push": [], "fusion": [], "loop": [], "power": []}
        edges = []
        bm25.search(queries[0], k)  # warm-up
        for q, (nodes, weights) in zip(queries, resets):
            t0 = clock()
            bm = bm25.search([q], k)
            t1 = clock()
            pn, ps = ppr.push(nodes, weights, eps=eps)
            t2 = clock()
            fuse(n, ne, (bm[0][0], bm[1][0]), pn, ps, rng)
            t3 = clock()
            t["bm25"].append((t1 - t0) * 1000)
            t["push"].append((t2 - t1) * 1000)
            t["fusion"].append((t3 - t2) * 1000)
            edges.append(ppr.last_edges)
        if n <= args.loop_max_size:
            for nodes, weights in resets[: args.power_queries * 3]:
                t0 = clock()
                ppr.push(nodes, weights, eps=eps, impl="loop")
                t["loop"].append((clock() - t0) * 1000)
        overlap = []
        for nodes, weights in resets[: args.power_queries]:
            r = np.zeros(ppr.n)
            np.add.at(r, nodes, weights)
            t0 = clock()
            x = ppr.run(r)
            t["power"].append((clock() - t0) * 1000)
            pn, ps = ppr.push(nodes, weights, eps=eps)
            y = np.zeros(ppr.n)
            y[pn] = ps
            top_x = set(np.argsort(-x[ne:], kind="stable")[:10].tolist())
            top_y = set(np.argsort(-y[ne:], kind="stable")[:10].tolist())
            overlap.append(len(top_x & top_y) / 10)
            del r, x, y
        nnz = a.nnz
        del a, ppr, bm25
        gc.collect()
        vec, vec_sizes, base = [0.0] * len(queries), {}, fixed_ms
        if args.vectors:  # the real index's vector search out, this size's generated one in
            timed = generated_vector_search(prof, n, args.vectors, len(queries))
            vec, vec_sizes, base = timed["ms"], timed["sizes"], fixed_ms - profile_vs_ms
            notes.append(f"{n:,} passages, generated vector search p50 per granularity (ms): " + ", ".join(
                f"{g} {pct(v, 50):.2f} ({vec_sizes[g]:,} vectors, {timed['infos'][g]['heads']:,} lists)"
                for g, v in timed["per_gran"].items()) + "; plus one entity linking search.")
        hybrid = [base + v + b + p + f for v, b, p, f in zip(vec, t["bm25"], t["push"], t["fusion"])]
        hybrid_power = [base + np.median(vec) + np.median(t["bm25"]) + pw + np.median(t["fusion"]) for pw in t["power"]]
        rows.append(dict(n=n, ne=ne, nnz=nnz, gen_s=gen_s, t=t, edges=edges, hybrid=hybrid, vec=vec, vec_sizes=vec_sizes,
                         hybrid_power=hybrid_power, overlap=overlap, load=os.getloadavg()[0]))
        print(n, {key: round(pct(v, 50), 2) for key, v in t.items()}, "hybrid p50", round(pct(hybrid, 50), 1),
              flush=True)
        del resets
        gc.collect()
        write_report()

    write_report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
