"""Incremental-update cost: full rebuild of a ~10k-passage index vs adding 1 % new documents.

    python eval/bench_incremental.py [--embedder tfidf|sentence-transformers] [--jobs 1]
        [--passages 10000] [--fraction 0.01] [--adds 3] [--base DIR] [--keep-base DIR] [--full-ab]

Corpus: MuSiQue sample + HotpotQA sample + SciFact abstracts (in that order), the first
documents whose chunked passages total ≈ `--passages` form the base A; B1, B2, … are the next
SciFact abstracts, ≈ `--fraction` of the passages each. On one index it measures:

* the full build of A from scratch (the reference; `--full-ab` also builds A+B1),
* `--adds` consecutive ``add(Bk)`` calls (the headline: target ≤ 5 % of a full rebuild;
  consecutive so the SPANN compactions a stream of adds triggers are included),
* ``update`` of B1 with changed text, ``delete`` of B2, and ``compact``.

Stage timings come from each operation's report, so the table shows what dominates.
``--base DIR`` reuses an index of A saved earlier with ``--keep-base`` (its recorded build
time is the reference). Writes eval/results/incremental.md.
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


def load_corpus(n_passages: int, fraction: float, batches: int = 3) -> tuple[list[dict], list[list[dict]]]:
    """(base documents ≈ n_passages passages, `batches` lists of new documents ≈ fraction × n_passages passages each)."""
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
    i, total = 0, 0
    while i < len(docs) and total + counts[i] <= n_passages:
        total += counts[i]
        i += 1
    base = docs[:i]
    target = max(1, round(fraction * n_passages))
    new: list[list[dict]] = []
    for _ in range(batches):
        batch, got = [], 0
        while i < len(docs) and got < target:
            batch.append(docs[i])
            got += counts[i]
            i += 1
        if got < target:
            raise SystemExit(f"corpus too small for {batches} batches of {target} passages")
        new.append(batch)
    return base, new


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _dir_bytes(path: Path) -> int:
    """Bytes on disk, each hard-linked file once (generations share unchanged files)."""
    seen: dict[tuple[int, int], int] = {}
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


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
    ap.add_argument("--adds", type=int, default=3, help="consecutive adds of `fraction` each")
    ap.add_argument("--base", help="reuse an index of the base documents built earlier (copied, not modified)")
    ap.add_argument("--keep-base", help="save the freshly built base index here for later --base runs")
    ap.add_argument("--full-ab", action="store_true",
                    help="also build base+first batch from scratch as the reference (default: the base build, 1 %% smaller)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "incremental.md"))
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from hippograph import Config, HippoGraph

    base_docs, batches = load_corpus(args.passages, args.fraction, args.adds)
    cfg = Config(embedder=args.embedder, n_process=args.jobs)
    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-incr-"))
    rows: list[tuple[str, float, dict[str, float], str]] = []
    adds: list[float] = []
    try:
        # ---- full build of the base index A (the reference cost)
        if args.base:
            shutil.copytree(args.base, tmp / "A")
            full = float(json.loads((Path(args.base) / "manifest.json").read_text())["timings"]["total"])
            ref = "full build of A (from --base)"
        else:
            _, full = _timed(lambda: HippoGraph.build(base_docs, tmp / "A", cfg).close())
            ref = "full build of A"
            if args.keep_base:
                shutil.rmtree(args.keep_base, ignore_errors=True)
                shutil.copytree(tmp / "A", args.keep_base)
        stats_a = HippoGraph.open(tmp / "A").stats()
        rows.append((ref, full, stats_a["timings"], f"{stats_a['passages']:,} passages"))
        if args.full_ab:
            hg_full, full = _timed(lambda: HippoGraph.build(base_docs + batches[0], tmp / "AB", cfg))
            s = hg_full.stats()
            rows.append(("full build of A+B1", full, s["timings"], f"{s['passages']:,} passages"))
            ref = "full build of A+B1"
            hg_full.close()
            shutil.rmtree(tmp / "AB", ignore_errors=True)

        hg = HippoGraph.open(tmp / "A")
        for k, batch in enumerate(batches, 1):
            report, t = _timed(lambda: hg.add(batch))
            adds.append(t)
            what = f"+{report.added.get('passages', 0)} passages" + (f"; {'; '.join(report.compacted)}" if report.compacted else "")
            rows.append((f"add {100 * args.fraction:g} % (B{k})", t, dict(report.timings), what))
        changed = [dict(d, text=d["text"] + " (revised)") for d in batches[0]]
        report, t = _timed(lambda: hg.update(changed))
        rows.append((f"update {100 * args.fraction:g} % (B1 changed)", t, dict(report.timings),
                     f"{len(report.updated_documents)} documents re-indexed" + (f"; {'; '.join(report.compacted)}" if report.compacted else "")))
        report, t = _timed(lambda: hg.delete([d["id"] for d in batches[1]]))
        rows.append((f"delete {100 * args.fraction:g} % (B2)", t, dict(report.timings),
                     f"-{report.deleted.get('passages', 0)} passages" + (f"; {'; '.join(report.compacted)}" if report.compacted else "")))
        size_before = _dir_bytes(tmp / "A")
        report, t = _timed(lambda: hg.compact())
        rows.append(("compact", t, dict(report.timings), "; ".join(report.compacted) or "nothing to compact"))
        size = _dir_bytes(tmp / "A")
        problems = hg.dir.verify()
        hg.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mean_add = sum(adds) / len(adds)
    cmd = "python eval/bench_incremental.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"## Incremental updates vs full rebuild ({args.embedder} embedder, {stats_a['passages']:,} passages)",
        "",
        f"`{cmd.strip()}` — {dt.date.today().isoformat()}, commit {_git_commit()}, {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}, embedder {args.embedder}, spaCy jobs {args.jobs}. "
        "Measured while the machine was shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), so absolute seconds are noisy.",
        "",
        f"Base A: {stats_a['documents']:,} documents (MuSiQue + HotpotQA samples, then SciFact abstracts), "
        f"{stats_a['passages']:,} passages, {stats_a['sentences']:,} sentences, {stats_a['entities']:,} entities, "
        f"{stats_a['facts']:,} facts, {stats_a['synonyms']:,} synonymy edges. Each B is the next "
        f"≈{100 * args.fraction:g} % of passages (SciFact). Every row is the wall time of one `HippoGraph` call, "
        "including loading the live generation, writing and committing the new one, and re-opening it.",
        "",
        "| operation | seconds | what | stages (s, largest first) |",
        "|---|---:|---|---|",
        *[f"| {name} | {sec:.1f} | {what} | {_stages(tm)} |" for name, sec, tm, what in rows],
        "",
        f"**Adding {100 * args.fraction:g} % costs {100 * mean_add / full:.1f} % of a full rebuild on average "
        f"({100 * max(adds) / full:.1f} % at worst, over {len(adds)} consecutive adds; reference: {ref})** — target ≤ 5 %. "
        f"Disk use after the run: {size / 2**20:.0f} MiB ({size_before / 2**20:.0f} MiB before `compact`, which also "
        "removes the previous generation kept for readers; hard-linked files counted once); "
        f"`check` after the run: {'ok' if not problems else problems}.",
        "",
    ]
    text = "\n".join(lines)
    out = Path(args.out)
    if out.is_file():  # replace this configuration's section, keep the others (other runs, crash/fuzz notes)
        sections = ["## " + part for part in ("\n" + out.read_text(encoding="utf-8")).split("\n## ")[1:]]
        title = lines[0]
        kept = [sec.rstrip("\n") + "\n" for sec in sections if not sec.startswith(title)]
        text = text + "\n" + "\n".join(kept) if kept else text
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
