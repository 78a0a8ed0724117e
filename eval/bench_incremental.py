"""Incremental-update cost: full rebuild of a ~10k-passage index vs adding 1 % new documents.

    python eval/bench_incremental.py [--embedder tfidf|sentence-transformers] [--jobs 1]
                                     [--passages 10000] [--fraction 0.01] [--base DIR] [--out FILE]

Corpus: MuSiQue sample + HotpotQA sample + SciFact abstracts (in that order), the first
documents whose chunked passages total ≈ `--passages`; the 1 % to add are the next SciFact
abstracts. Measures, each on its own copy of the index:

* full build of base (A) and of base + new (A+B) from scratch,
* ``add(B)`` on A (the headline: target ≤ 5 % of the A+B full build),
* ``delete(B)`` after the add, ``update`` of 1 % changed documents, and ``compact``.

Stage timings come from the manifest (`timings`), so the report shows what dominates.
``--base DIR`` reuses an index of A built earlier by this script (skips the slow full build
of A; the A+B build is still run unless ``--skip-full``). Writes eval/results/incremental.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("HIPPOGRAPH_DATASETS", ROOT.parent / "shared" / "datasets"))


def load_corpus(n_passages: int, fraction: float) -> tuple[list[dict], list[dict]]:
    """(base documents ≈ n_passages passages, new documents ≈ fraction × n_passages passages)."""
    from hippograph.config import Config
    from hippograph.indexers.chunking import chunk_document
    from hippograph.types import Document

    docs: list[dict] = []
    for i, r in enumerate(json.loads((DATASETS / "musique_train100" / "musique_train_corpus.json").read_text())):
        docs.append({"id": f"musique-{i}", "title": r["title"], "text": r["text"]})
    for i, r in enumerate(json.loads((DATASETS / "hotpotqa_train100" / "hotpotqa_train_corpus_list.json").read_text())):
        docs.append({"id": f"hotpotqa-{i}", "title": r["title"], "text": r["text"]})
    with open(DATASETS / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            docs.append({"id": f"scifact-{r['_id']}", "title": r["title"], "text": r["text"]})
    cfg = Config()
    counts = [len(chunk_document(Document(d["id"], d["title"], d["text"], d["id"]), cfg)) for d in docs]
    base, new, total = [], [], 0
    it = iter(zip(docs, counts))
    for d, c in it:
        if total + c > n_passages:
            new.append(d)
            total_new = c
            break
        base.append(d)
        total += c
    else:
        raise SystemExit(f"corpus has fewer than {n_passages} passages")
    target = max(1, round(fraction * n_passages))
    for d, c in it:
        if total_new >= target:
            break
        new.append(d)
        total_new += c
    return base, new


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _stages(timings: dict[str, float]) -> str:
    keys = sorted((k for k in timings if k != "total"), key=lambda k: -timings[k])
    return ", ".join(f"{k} {timings[k]:.2f}" for k in keys if timings[k] >= 0.01)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="tfidf", help="tfidf (quick) or sentence-transformers (MiniLM)")
    ap.add_argument("--jobs", type=int, default=1, help="spaCy processes")
    ap.add_argument("--passages", type=int, default=10_000)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--base", help="reuse an index of the base documents built earlier (copied, not modified)")
    ap.add_argument("--keep-base", help="save the freshly built base index here for later --base runs")
    ap.add_argument("--skip-full", action="store_true", help="do not run the A+B full build (use --full-seconds)")
    ap.add_argument("--full-seconds", type=float, help="A+B full-build seconds measured in an earlier run")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "incremental.md"))
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from hippograph import Config, HippoGraph

    base_docs, new_docs = load_corpus(args.passages, args.fraction)
    cfg = Config(embedder=args.embedder, n_process=args.jobs)
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-incr-"))
    rows: list[tuple[str, float, dict[str, float], str]] = []
    try:
        # ---- base index A
        if args.base:
            shutil.copytree(args.base, tmp / "A")
            base_build = json.loads((Path(args.base) / "manifest.json").read_text())["timings"].get("total")
        else:
            _, base_build = _timed(lambda: HippoGraph.build(base_docs, tmp / "A", cfg))
            if args.keep_base:
                shutil.rmtree(args.keep_base, ignore_errors=True)
                shutil.copytree(tmp / "A", args.keep_base)
        stats_a = HippoGraph.open(tmp / "A").stats()
        if base_build is not None:
            rows.append(("full build A (base)", base_build, stats_a["timings"], f"{stats_a['passages']:,} passages"))

        # ---- full build A+B from scratch (the reference for the 5 % target)
        full = args.full_seconds
        if not args.skip_full:
            hg_full, full = _timed(lambda: HippoGraph.build(base_docs + new_docs, tmp / "AB", cfg))
            s = hg_full.stats()
            rows.append(("full build A+B", full, s["timings"], f"{s['passages']:,} passages"))
            hg_full.close()
            shutil.rmtree(tmp / "AB", ignore_errors=True)

        # ---- add B to A
        hg = HippoGraph.open(tmp / "A")
        report, t_add = _timed(lambda: hg.add(new_docs))
        rows.append(("add 1 % (B)", t_add, dict(report.timings), f"+{report.added.get('passages', 0)} passages"))
        stats_ab = hg.stats()

        # ---- update 1 %: the same documents with changed text
        changed = [dict(d, text=d["text"] + " (revised)") for d in new_docs]
        report, t_upd = _timed(lambda: hg.update(changed))
        rows.append(("update 1 % (B changed)", t_upd, dict(report.timings), f"{len(report.updated_documents)} documents re-indexed"))

        # ---- delete B
        report, t_del = _timed(lambda: hg.delete([d["id"] for d in new_docs]))
        rows.append(("delete 1 % (B)", t_del, dict(report.timings), f"-{report.deleted.get('passages', 0)} passages"))

        # ---- compact
        report, t_cmp = _timed(lambda: hg.compact())
        rows.append(("compact", t_cmp, dict(report.timings), ", ".join(report.compacted) or "nothing to compact"))
        size = _dir_bytes(tmp / "A")
        hg.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = f"{100 * t_add / full:.1f} %" if full else "n/a"
    cmd = "python eval/bench_incremental.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "## Incremental updates (add / update / delete vs full rebuild)",
        "",
        f"`{cmd.strip()}` — {dt.date.today().isoformat()}, commit {_git_commit()}, {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}, embedder {args.embedder}, spaCy jobs {args.jobs}. "
        "Measured while the machine was shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), so absolute seconds are noisy; the ratio is what matters.",
        "",
        f"Base A: {stats_a['documents']:,} documents, {stats_a['passages']:,} passages, {stats_a['entities']:,} entities, "
        f"{stats_a['facts']:,} facts. B: {len(new_docs)} documents "
        f"({stats_ab['passages'] - stats_a['passages']} passages, {100 * (stats_ab['passages'] - stats_a['passages']) / stats_a['passages']:.2f} %).",
        "",
        "| operation | seconds | what | stages (s, largest first) |",
        "|---|---:|---|---|",
        *[f"| {name} | {sec:.2f} | {what} | {_stages(tm)} |" for name, sec, tm, what in rows],
        "",
        f"**add 1 % = {ratio} of a full rebuild** (target ≤ 5 %). Index size after the run: {size / 2**20:.0f} MiB.",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
