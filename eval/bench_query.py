"""Query speed of the engine on one index: one query at a time per mode (p50/p95, including query
embedding and spaCy), where the time of a hybrid query goes, and `retrieve_many` throughput.

    python eval/bench_query.py [INDEX_DIR] [--dataset musique_train100 | --questions Q.jsonl] [--queries 100]
                               [--filter FILTER ...] [--out eval/results/query.md]

INDEX_DIR defaults to the newest MuSiQue index the eval harness cached
(eval/cache/hippograph/musique_train100-spacy-*; `python -m eval run --datasets musique_train100
--systems hippograph` builds one). Questions come from `--dataset`. Every mode runs on the same
index and questions in the same process, so dense and BM25 are the baselines of the same run.
The stage split wraps the engine's own calls with timers (exclusive time: a stage's children are
not counted twice) and adds nothing else. `--filter` (the CLI's syntax, e.g. `--filter 'doc_id~=*7'`)
adds a filtered run of every mode, timed alternately with the unfiltered one query by query so
machine load hits both alike. PPR alone on a 1M-edge synthetic graph is measured by
eval/bench_ppr.py (eval/results/ppr.md).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = ("hybrid", "ppr", "dense", "bm25")


def default_index(dataset: str) -> Path:
    """Newest cached eval index of `dataset` built with spaCy triples."""
    dirs = [Path(d) for d in glob.glob(str(REPO / "eval" / "cache" / "hippograph" / f"{dataset}-spacy-*"))
            if Path(d).is_dir()]
    if not dirs:
        raise SystemExit(f"no cached {dataset} index under eval/cache/hippograph; build one with "
                         f"`python -m eval run --datasets {dataset} --systems hippograph` or pass INDEX_DIR")
    return max(dirs, key=lambda d: d.stat().st_mtime)


class StageTimer:
    """Exclusive wall time per named stage: wraps callables; nested stages are subtracted from their parent."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per active stage: [child seconds]

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0])
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                children = self._stack.pop()[0]
                self.totals[name] = self.totals.get(name, 0.0) + elapsed - children
                if self._stack:
                    self._stack[-1][0] += elapsed
        return timed


def time_single(hg: Any, questions: list[str], mode: str, **kw: Any) -> list[float]:
    out = []
    for q in questions:
        t0 = time.perf_counter()
        hg.retrieve(q, top_k=10, mode=mode, **kw)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def time_paired(hg: Any, questions: list[str], mode: str, filters: dict) -> tuple[list[float], list[float]]:
    """Per question: unfiltered then filtered latency (ms), alternating so load drifts hit both alike."""
    plain, filtered = [], []
    for q in questions:
        for out, kw in ((plain, {}), (filtered, {"filters": filters})):
            t0 = time.perf_counter()
            hg.retrieve(q, top_k=10, mode=mode, **kw)
            out.append((time.perf_counter() - t0) * 1000.0)
    return plain, filtered


def memoised_inference(hg: Any) -> Callable[[], None]:
    """Memoise the retriever's query embeddings and spaCy mentions (so repeated questions time the search
    alone, where a filter's own cost lies); returns the function that restores the models."""
    r = hg.retriever
    embed, mentions = r.embed, r.mentions
    vectors: dict[str, np.ndarray] = {}
    found: dict[str, list[str]] = {}

    def cached_embed(texts: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in vectors]
        if missing:
            vectors.update(zip(missing, embed(missing)))
        return np.stack([vectors[t] for t in texts])

    def cached_mentions(q: str) -> list[str]:
        if q not in found:
            found[q] = mentions(q)
        return found[q]

    r.embed, r.mentions = cached_embed, (cached_mentions if mentions is not None else None)

    def restore() -> None:
        r.embed, r.mentions = embed, mentions
    return restore


def stage_split(hg: Any, questions: list[str]) -> tuple[dict[str, float], float]:
    """Mean exclusive ms per hybrid query in each stage of `Retriever.search`, and their sum (the
    search itself; building the returned hits from SQLite is outside it)."""
    r = hg.retriever
    timer = StageTimer()
    names = {"embed": "embedding (query + unmatched mentions)", "mentions": "spaCy query mentions",
             "_vector_search": "vector search (4 granularities + linking)", "_bm25_scores": "BM25",
             "_match_mentions": "entity linking (lookup)", "_route": "entropy router", "_seeds": "seeds",
             "_run_ppr": "PPR", "_bridge": "second-hop bridge"}
    saved = {attr: getattr(r, attr) for attr in names}
    own = set(vars(r))  # instance attributes (embed, mentions); the rest are methods of the class
    parallel, r.parallel_mentions = getattr(r, "parallel_mentions", False), False  # one thread: exclusive times add up
    try:
        for attr, fn in saved.items():
            if fn is not None:  # no mention extractor without spaCy
                setattr(r, attr, timer.wrap(names[attr], fn))
        search = timer.wrap("total", r.search)
        r.search = search
        for q in questions:
            hg.retrieve(q, top_k=10)
    finally:
        for attr, fn in saved.items():
            if attr in own:
                setattr(r, attr, fn)
            else:
                vars(r).pop(attr, None)
        vars(r).pop("search", None)
        r.parallel_mentions = parallel
    n = len(questions)
    total = sum(timer.totals.values()) / n * 1000.0
    split = {k: v / n * 1000.0 for k, v in timer.totals.items()}
    split["rest of search (fusion, passage mapping)"] = split.pop("total")
    return split, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path, nargs="?")
    ap.add_argument("--dataset", default="musique_train100")
    ap.add_argument("--questions", type=Path, help="JSONL with a 'question' per line instead of --dataset's questions")
    ap.add_argument("--queries", type=int, default=100, help="questions timed one at a time per mode")
    ap.add_argument("--filter", action="append", dest="filters", metavar="FILTER",
                    help="also time every mode with this metadata filter (repeatable: all must hold)")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "query.md")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    logging.basicConfig(level=logging.WARNING)
    from eval.datasets import load_dataset
    from eval.runner import machine_info
    from hippograph import HippoGraph
    from hippograph.retrievers.filters import merge_filters, parse_cli_filter

    filters = merge_filters([parse_cli_filter(f) for f in args.filters or []])
    index = args.index or default_index(args.dataset)
    if args.questions:
        lines = args.questions.read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line)["question"] for line in lines if line.strip()]
        source = str(args.questions)
    else:
        questions = [q.question for q in load_dataset(args.dataset).queries if q.gold]
        source = args.dataset
    if not questions:
        raise SystemExit(f"{args.questions or args.dataset}: no questions")
    timed_qs = questions[: args.queries]
    t0 = time.perf_counter()
    hg = HippoGraph.open(index)
    open_s = time.perf_counter() - t0
    for mode in MODES:  # warm-up: models, caches, kernel shapes
        for q in questions[-5:]:
            hg.retrieve(q, top_k=10, mode=mode)

    rows = []
    for mode in MODES:
        lat = time_single(hg, timed_qs, mode)
        rows.append((f"`{mode}`", lat))
    rows.append(("`hybrid`, explain=True", time_single(hg, timed_qs, "hybrid", explain=True)))
    split, split_total = stage_split(hg, timed_qs)
    paired = []
    if filters:
        t0 = time.perf_counter()
        flt = hg.retriever.passage_filter(filters)  # first use: columns + mask (cached afterwards)
        mask_ms = (time.perf_counter() - t0) * 1000.0
        for mode in MODES:
            for q in questions[-3:]:  # warm-up: per-filter views and the restricted PPR matrix
                hg.retrieve(q, top_k=10, mode=mode, filters=filters)
            paired.append((f"`{mode}`", *time_paired(hg, timed_qs, mode, filters)))
        restore = memoised_inference(hg)
        try:
            for mode in ("hybrid", "ppr"):
                for q in timed_qs:  # fills the memo for both runs
                    hg.retrieve(q, top_k=10, mode=mode, filters=filters)
                paired.append((f"`{mode}`, search only (models memoised)", *time_paired(hg, timed_qs, mode, filters)))
        finally:
            restore()

    batched = []
    for bs in (1, 16, 64):
        t0 = time.perf_counter()
        hg.retrieve_many(questions, top_k=10, query_batch_size=bs)
        secs = time.perf_counter() - t0
        batched.append((bs, len(questions) / secs))

    m = machine_info()
    snap = hg.snapshot
    lines = [
        "## Query speed (`eval/bench_query.py`)",
        "",
        f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · {m['cores']} cores ({m['cpu']}) · "
        f"load average {os.getloadavg()[0]:.1f} at the end · "
        f"embedding precision {getattr(hg.embedder, 'precision', 'n/a')}",
        "",
        f"Index `{index.name}`: {snap.n_passages:,} passages, {snap.n_entities:,} entities, {snap.n_facts:,} facts, "
        f"{snap.adjacency.nnz:,} graph edges (opened in {open_s:.2f} s). {len(timed_qs)} {source} questions, "
        f"one at a time, `retrieve(q, top_k=10)` including query embedding and spaCy. Command: "
        f"`python eval/bench_query.py{' ' + str(args.index) if args.index else ''} "
        f"{'--questions ' + str(args.questions) if args.questions else '--dataset ' + args.dataset} --queries {args.queries}"
        f"{''.join(f' --filter {f!r}' for f in args.filters or [])}`.",
        "",
        "| mode | p50 ms | p95 ms | mean ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name, lat in rows:
        lines.append(f"| {name} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 95):.1f} | "
                     f"{statistics.fmean(lat):.1f} | {max(lat):.1f} |")
    lines += ["", f"Where a `hybrid` query's time goes inside `Retriever.search` (mean exclusive ms per query, "
              f"{split_total:.1f} ms in all; the rest of the end-to-end time is building the hits):", "",
              "| stage | ms | share |", "|---|---|---|"]
    for name, ms in sorted(split.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ms:.2f} | {ms / split_total:.0%} |")
    if paired:
        kept = flt.count
        lines += ["", f"With the metadata filter `{json.dumps(filters)}` (keeps {kept:,} of {snap.n_passages:,} passages, "
                  f"{kept / max(snap.n_passages, 1):.1%}; its mask took {mask_ms:.1f} ms on first use, then cached), "
                  "timed alternately with the unfiltered query, question by question:", "",
                  "| mode | unfiltered p50 ms | filtered p50 ms | ratio p50 | unfiltered p95 ms | filtered p95 ms |",
                  "|---|---|---|---|---|---|"]
        for label, plain, filt in paired:
            p50, f50 = np.percentile(plain, 50), np.percentile(filt, 50)
            lines.append(f"| {label} | {p50:.1f} | {f50:.1f} | {f50 / p50:.2f}× | {np.percentile(plain, 95):.1f} | "
                         f"{np.percentile(filt, 95):.1f} |")
    lines += ["", f"`retrieve_many` over all {len(questions)} questions (`hybrid`):", "",
              "| query_batch_size | queries/s |", "|---|---|"]
    lines += [f"| {bs} | {qps:.1f} |" for bs, qps in batched]
    lines += ["", "Targets (issue 4, MuSiQue index, 2 cores): `hybrid` p50 ≤ 50 ms, p95 ≤ 150 ms.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
