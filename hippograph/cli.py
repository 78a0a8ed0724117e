"""`hippograph` command line: index (build or sync), query, info, export, check, compact.

Every error prints one line naming the file and the problem and exits non-zero;
`--json` prints machine-readable output on stdout (logs and progress go to stderr).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .config import Config
from .errors import ConfigError, HippoGraphError
from .server import add_serve_parser, cmd_serve

logger = logging.getLogger("hippograph")

EXIT_ERROR = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hippograph", description="Graph-based multi-hop retrieval without an LLM.")
    p.add_argument("--version", action="version", version=f"hippograph {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", required=True)

    ix = sub.add_parser(
        "index",
        help="build an index from files/folders, or sync an existing one (add new, re-index changed, delete removed files)",
    )
    ix.add_argument("sources", nargs="+", help="folders or files (.txt .md .rst .html .json .jsonl .pdf; .gz of them)")
    ix.add_argument("--index", "-o", required=True, metavar="DIR", help="index directory")
    ix.add_argument("--config", metavar="FILE", help="JSON/TOML file of Config options")
    ix.add_argument("--jobs", "-j", type=int, metavar="N", help="spaCy processes (default: auto = the available CPUs in the shard worker process)")
    ix.add_argument("--threads", type=int, metavar="N",
                    help="CPU threads the build may use (default: auto = affinity, cgroup quota, OMP_NUM_THREADS)")
    ix.add_argument("--adaptive-threads", action="store_true",
                    help="run fewer embedding passes at once while other work keeps the cores busy (speed only; vectors never change)")
    ix.add_argument("--embedder", choices=["auto", "sentence-transformers", "tfidf"], help="embedding backend")
    ix.add_argument("--openie", metavar="FILE", help="use triples from a HippoRAG OpenIE JSON instead of spaCy")
    ix.add_argument("--include", action="append", metavar="GLOB", help="only files matching (repeatable)")
    ix.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching (repeatable)")
    ix.add_argument("--overwrite", action="store_true", help="rebuild from scratch if an index exists")
    ix.add_argument(
        "--no-delete", action="store_true",
        help="on an existing index, keep documents whose files are no longer under the given sources",
    )
    ix.add_argument("--executor", choices=["local", "ray"], help="where shards are built (default local)")
    ix.add_argument("--shard-process", choices=["auto", "worker", "inline"],
                    help="with the local executor: extract and embed in a worker process that exits before the "
                         "merge stages (less memory), or in this one (default auto: a worker for model embedders)")
    ix.add_argument("--ray-address", metavar="ADDR", help="Ray cluster for --executor ray ('auto', 'ray://host:10001')")
    ix.add_argument("--json", action="store_true", help="print the summary as JSON")
    ix.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    q = sub.add_parser("query", help="retrieve passages for a question, or for a file of questions")
    q.add_argument("index", metavar="DIR")
    q.add_argument("question", nargs="?")
    q.add_argument("--questions", metavar="FILE",
                   help="a .txt (one per line) or .jsonl file of questions: one JSON line of hits per question")
    q.add_argument("--out", metavar="FILE", help="with --questions: write the JSONL here instead of stdout")
    q.add_argument("--top-k", "-k", type=int, default=None)
    q.add_argument("--mode", choices=["hybrid", "ppr", "dense", "bm25"], default=None)
    q.add_argument("--explain", action="store_true", help="include why each passage was returned")
    q.add_argument(
        "--filter", action="append", metavar="FILTER", dest="filters",
        help="metadata filter, repeatable (all must hold): FIELD=VALUE, FIELD!=, >, >=, <, <=, ^= (prefix), "
             "~= (glob), or a JSON object (docs/filters.md); e.g. --filter 'year>=2020' --filter 'source~=papers/*'",
    )
    q.add_argument("--json", action="store_true")
    q.add_argument("--quiet", "-q", action="store_true", help="with --questions: no progress bar")

    info = sub.add_parser("info", help="index summary")
    info.add_argument("index", metavar="DIR")
    info.add_argument("--triples", type=int, default=0, metavar="N", help="also show N triples")
    info.add_argument("--json", action="store_true")

    ex = sub.add_parser("export", help="export the knowledge graph (GraphML) and/or its triples (JSONL, CSV, Parquet)")
    ex.add_argument("index", metavar="DIR")
    ex.add_argument("--graphml", metavar="FILE", help="the graph with typed nodes and edges (predicates on fact edges)")
    ex.add_argument("--triples", metavar="FILE",
                    help="one row per triple with provenance; format by suffix: .jsonl, .csv, .parquet")

    ck = sub.add_parser("check", help="verify the index's checksums and report damage")
    ck.add_argument("index", metavar="DIR")
    ck.add_argument("--json", action="store_true")

    cp = sub.add_parser("compact", help="compact vector indexes (tombstones, dead space) and remove old generations")
    cp.add_argument("index", metavar="DIR")
    cp.add_argument("--rebuild", action="store_true", help="rebuild every vector index from the stored embeddings")
    cp.add_argument("--keep-previous", action="store_true", help="keep the generation before the live one")
    cp.add_argument("--json", action="store_true")
    add_serve_parser(sub)
    return p


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


LOADER_FIELDS = ("include", "exclude", "text_fields", "title_fields", "id_fields", "max_file_bytes", "fallback_encodings")
"""Config fields a sync may override for reading files; index-time fields stay as the index was built."""


def _cmd_index(args: argparse.Namespace) -> int:
    from .api import HippoGraph
    from .storage import IndexDir

    config = Config.from_file(args.config) if args.config else Config()
    overrides: dict[str, Any] = {}
    if args.jobs is not None:
        overrides["n_process"] = args.jobs
    if getattr(args, "threads", None) is not None:
        if args.threads < 0:
            raise ConfigError(f"--threads: {args.threads} is negative (0 = auto)")
        overrides["threads"] = args.threads
    if getattr(args, "adaptive_threads", False):
        overrides["adaptive_threads"] = True
    if args.embedder:
        overrides["embedder"] = args.embedder
    if args.include:
        overrides["include"] = args.include
    if args.exclude:
        overrides["exclude"] = args.exclude
    executor = {"executor": args.executor} if args.executor else {}
    if args.shard_process:
        executor["shard_process"] = args.shard_process
    if args.ray_address:
        if args.executor != "ray":
            raise HippoGraphError("--ray-address: only used with --executor ray")
        executor["ray_address"] = args.ray_address
    overrides.update(executor)
    config = config.replace(**overrides)
    for s in args.sources:
        if not Path(s).exists():
            raise HippoGraphError(f"{s}: no such file or directory")
    progress = not (args.quiet or args.json)
    t0 = time.perf_counter()
    report = None
    if IndexDir(args.index).exists() and not args.overwrite:
        # writing only: the index's read view (tables, graph, vectors, BM25 in RAM) is never opened
        hg = HippoGraph(args.index, config_overrides=executor, load_snapshot=False)
        given = Config.from_file(args.config).to_dict() if args.config else {}
        given.update({k: v for k, v in overrides.items() if k in LOADER_FIELDS})
        load_config = hg.config.replace(**{k: v for k, v in given.items() if k in LOADER_FIELDS})
        report = hg.sync(
            args.sources, delete_missing=not args.no_delete, show_progress=progress, openie=args.openie,
            load_config=load_config,
        )
        only_added = not (report.updated_documents or report.deleted_documents)
        action = "unchanged" if not report.changed else ("added" if only_added else "synced")
    else:
        hg = HippoGraph.build(
            args.sources, args.index, config, openie=args.openie, show_progress=progress, overwrite=args.overwrite,
            load_snapshot=False,  # the command only reports the build
        )
        action = "built"
    stats = hg.stats()
    summary = {"action": action, "index": args.index, "seconds": round(time.perf_counter() - t0, 2), **stats}
    if report is not None:
        summary["added"] = report.added
        summary["deleted"] = report.deleted
        summary["changes"] = report.to_dict()
    if args.json:
        _emit(summary)
        return 0
    print(f"{action} index {args.index} in {summary['seconds']} s")
    if report is not None:
        print(
            f"  documents: {len(report.added_documents)} added, {len(report.updated_documents)} updated, "
            f"{len(report.deleted_documents)} deleted, {report.unchanged_documents} unchanged"
        )
        for label, ids in (("+", report.added_documents), ("~", report.updated_documents), ("-", report.deleted_documents)):
            for doc_id in ids[:20]:
                print(f"    {label} {doc_id}")
            if len(ids) > 20:
                print(f"    {label} … {len(ids) - 20} more")
        for note in report.compacted:
            print(f"  maintenance: {note}")
    _print_summary(stats)
    return 0


STAGE_ORDER = ("load", "chunk", "extract", "tables", "embed", "synonymy", "graph", "vectors", "lexical", "write")
"""Build stages in pipeline order for the summary; stages not named here follow, `total` comes last."""


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """The index summary shared by `index` and `info`: counts, embedder, per-stage times of the
    last write, and a warning line when the embedder fell back to the zero-model TF-IDF."""
    lines = [f"  {key:<10} {stats.get(key, 0):>10,}"
             for key in ("documents", "passages", "sentences", "entities", "facts", "triples", "synonyms", "nodes", "edges")]
    emb = stats.get("embedder") or {}
    dim = f" ({emb['dim']}-d)" if emb.get("dim") else ""
    lines.append(f"  embedder   {emb.get('backend', '?')} {emb.get('model', '')}{dim}".rstrip())
    timings = dict(stats.get("timings") or {})
    total = timings.pop("total", None)
    order = [k for k in STAGE_ORDER if k in timings] + sorted(k for k in timings if k not in STAGE_ORDER)
    if order or total is not None:
        parts = [f"{k} {timings[k]:.2f}" for k in order] + ([f"total {total:.2f}"] if total is not None else [])
        lines.append(f"  stages (s) {', '.join(parts)}")
    if stats.get("embedder_warning"):
        lines.append(f"  WARNING    {stats['embedder_warning']}")
    return lines


def _print_summary(stats: dict[str, Any]) -> None:
    for line in summary_lines(stats):
        print(line)


def _cmd_compact(args: argparse.Namespace) -> int:
    from .api import HippoGraph
    from .storage import IndexDir

    idx = IndexDir(args.index)
    before = sum(p.stat().st_size for p in idx.root.rglob("*") if p.is_file()) if idx.root.is_dir() else 0
    hg = HippoGraph.open(args.index)
    report = hg.compact(rebuild_vectors=args.rebuild, keep_previous=args.keep_previous)
    hg.close()
    after = sum(p.stat().st_size for p in idx.root.rglob("*") if p.is_file())
    if args.json:
        _emit({"index": args.index, "generation": report.generation, "actions": report.compacted,
               "bytes_before": before, "bytes_after": after, "seconds": round(report.timings.get("total", 0.0), 2)})
        return 0
    for note in report.compacted or ["nothing to compact"]:
        print(f"  {note}")
    print(f"{args.index}: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB ({report.generation})")
    return 0


BATCH_QUESTIONS = 64
"""Questions answered per `retrieve_many` call of `query --questions` (one progress step, one write)."""


def _cmd_query(args: argparse.Namespace) -> int:
    from .api import HippoGraph
    from .retrievers.engine import hop_summary

    from .retrievers.filters import FilterError, merge_filters, parse_cli_filter

    try:
        filters = merge_filters([parse_cli_filter(f) for f in args.filters or []])
    except FilterError as exc:
        print(f"hippograph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (args.question is None) == (args.questions is None):
        raise HippoGraphError("query: give either a QUESTION or --questions FILE")
    if args.out and not args.questions:
        raise HippoGraphError("query: --out needs --questions FILE")
    if args.questions:
        return _query_file(args, filters)
    hg = HippoGraph.open(args.index)
    mode = args.mode or hg.config.mode
    t0 = time.perf_counter()
    hits = hg.retrieve(args.question, top_k=args.top_k, mode=mode, explain=args.explain, filters=filters)
    took_ms = round((time.perf_counter() - t0) * 1000, 1)
    if args.json:
        _emit({"query": args.question, "mode": mode, "took_ms": took_ms, "hits": [h.to_dict() for h in hits]})
        return 0
    print(f"{'#':>2}  {'score':>7}  {'title':<40}  text")
    for i, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        print(f"{i:>2}  {h.score:>7.4f}  {h.title[:40]:<40}  {text[:90]}{'…' if len(text) > 90 else ''}")
        if args.explain and h.explanation:
            ex = h.explanation
            seeds = ", ".join(f"{s['entity']} ({s['weight']:.3g})" for s in ex.get("seeds", [])[:5])
            print(f"      seeds: {seeds or '-'}")
            if ex.get("connecting_facts"):
                print(f"      facts: {'; '.join(ex['connecting_facts'][:3])}")
            if ex.get("bridge"):
                print(f"      {hop_summary(ex['bridge'], max_via=3)}")
            if ex.get("router"):
                w = ", ".join(f"{k}={v:.2f}" for k, v in ex["router"]["weights"].items())
                print(f"      router: {w}")
            sc = ex["scores"]
            print("      scores: " + ", ".join(f"{k}={v:.4f}" for k, v in sc.items() if v is not None))
    return 0


def _query_file(args: argparse.Namespace, filters: dict | None = None) -> int:
    """`query --questions FILE`: every question of the file through one open index (one model
    load), in blocks of `BATCH_QUESTIONS` through `retrieve_many`; one JSON line per question."""
    from tqdm import tqdm

    from .api import HippoGraph
    from .questions import read_questions

    questions = read_questions(args.questions)  # every line checked before the index is opened
    hg = HippoGraph.open(args.index)
    mode = args.mode or hg.config.mode
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    bar = tqdm(total=len(questions), desc=f"query {mode}", unit="question", file=sys.stderr,
               disable=args.quiet or None)  # None: only on a terminal
    try:
        for b0 in range(0, len(questions), BATCH_QUESTIONS):
            block = questions[b0:b0 + BATCH_QUESTIONS]
            t0 = time.perf_counter()
            results = hg.retrieve_many([q.text for q in block], top_k=args.top_k, mode=mode, explain=args.explain,
                                       filters=filters)
            took_ms = round((time.perf_counter() - t0) * 1000 / len(block), 1)  # the block's time, shared
            for q, hits in zip(block, results):
                answer = {"id": q.id, "query": q.text, "mode": mode, "took_ms": took_ms,
                          "hits": [h.to_dict() for h in hits]}
                if q.id is None:
                    del answer["id"]
                out.write(json.dumps(answer, ensure_ascii=False, default=str) + "\n")
            out.flush()
            bar.update(len(block))
    finally:
        bar.close()
        if out is not sys.stdout:
            out.close()
    if args.out:
        print(f"wrote {args.out} ({len(questions):,} answers)", file=sys.stderr)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .api import HippoGraph

    hg = HippoGraph.open(args.index)
    stats = hg.stats()
    triples = hg.triples(limit=args.triples) if args.triples else []
    if args.json:
        _emit({**stats, "triples_sample": triples})
        return 0
    print(f"index {stats['path']} ({stats['generation']}, updated {stats['updated']})")
    _print_summary(stats)
    for t in triples:
        print(f"  ({t['subject']}; {t['predicate']}; {t['object']})  [{t['title']}]")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .api import HippoGraph
    from .exports import triples_format

    if not (args.graphml or args.triples):
        raise HippoGraphError("export: give --graphml FILE and/or --triples FILE")
    if args.triples:
        triples_format(args.triples)  # a bad suffix or missing pyarrow fails before any work
    hg = HippoGraph.open(args.index)
    if args.graphml:
        print(f"wrote {hg.export_graphml(args.graphml)}")
    if args.triples:
        n = hg.export_triples(args.triples)
        print(f"wrote {args.triples} ({n:,} triples)")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .storage import IndexDir

    idx = IndexDir(args.index)
    manifest = idx.read_manifest()
    problems = idx.verify(manifest)
    if not problems:  # checksums fine: also check that the parts agree with each other
        from .api import HippoGraph

        try:
            HippoGraph.open(args.index).close()
        except HippoGraphError as exc:
            problems.append(str(exc))
    if args.json:
        _emit({"index": args.index, "generation": manifest.generation, "ok": not problems, "problems": problems})
    elif problems:
        for p in problems:
            print(f"damaged: {p}")
    else:
        print(f"{args.index}: ok ({len(manifest.checksums)} files verified)")
    return EXIT_ERROR if problems else 0


COMMANDS = {"index": _cmd_index, "query": _cmd_query, "info": _cmd_info, "export": _cmd_export, "check": _cmd_check, "serve": cmd_serve,
            "compact": _cmd_compact}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except HippoGraphError as exc:
        print(f"hippograph: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError) as exc:
        print(f"hippograph: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("hippograph: interrupted; the index was left unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
