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
from .errors import HippoGraphError
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
    ix.add_argument("sources", nargs="+", help="folders or files (.txt .md .html .json .jsonl .pdf)")
    ix.add_argument("--index", "-o", required=True, metavar="DIR", help="index directory")
    ix.add_argument("--config", metavar="FILE", help="JSON/TOML file of Config options")
    ix.add_argument("--jobs", "-j", type=int, metavar="N", help="spaCy processes (default 1)")
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
    ix.add_argument("--ray-address", metavar="ADDR", help="Ray cluster for --executor ray ('auto', 'ray://host:10001')")
    ix.add_argument("--json", action="store_true", help="print the summary as JSON")
    ix.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    q = sub.add_parser("query", help="retrieve passages for a question")
    q.add_argument("index", metavar="DIR")
    q.add_argument("question")
    q.add_argument("--top-k", "-k", type=int, default=None)
    q.add_argument("--mode", choices=["hybrid", "ppr", "dense", "bm25"], default=None)
    q.add_argument("--explain", action="store_true", help="include why each passage was returned")
    q.add_argument("--json", action="store_true")

    info = sub.add_parser("info", help="index summary")
    info.add_argument("index", metavar="DIR")
    info.add_argument("--triples", type=int, default=0, metavar="N", help="also show N triples")
    info.add_argument("--json", action="store_true")

    ex = sub.add_parser("export", help="export the knowledge graph")
    ex.add_argument("index", metavar="DIR")
    ex.add_argument("--graphml", required=True, metavar="FILE")

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
    if args.jobs:
        overrides["n_process"] = args.jobs
    if args.embedder:
        overrides["embedder"] = args.embedder
    if args.include:
        overrides["include"] = args.include
    if args.exclude:
        overrides["exclude"] = args.exclude
    executor = {"executor": args.executor} if args.executor else {}
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
        hg = HippoGraph.open(args.index, **executor)
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
            args.sources, args.index, config, openie=args.openie, show_progress=progress, overwrite=args.overwrite
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
    for key in ("documents", "passages", "sentences", "entities", "facts", "triples", "synonyms", "nodes", "edges"):
        print(f"  {key:<10} {stats.get(key, 0):>10,}")
    return 0


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


def _cmd_query(args: argparse.Namespace) -> int:
    from .api import HippoGraph
    from .retrievers.engine import hop_summary

    hg = HippoGraph.open(args.index)
    hits = hg.retrieve(args.question, top_k=args.top_k, mode=args.mode, explain=args.explain)
    if args.json:
        _emit({"query": args.question, "hits": [h.to_dict() for h in hits]})
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


def _cmd_info(args: argparse.Namespace) -> int:
    from .api import HippoGraph

    hg = HippoGraph.open(args.index)
    stats = hg.stats()
    triples = hg.triples(limit=args.triples) if args.triples else []
    if args.json:
        _emit({**stats, "triples_sample": triples})
        return 0
    print(f"index {stats['path']} ({stats['generation']}, updated {stats['updated']})")
    for key in ("documents", "passages", "sentences", "entities", "facts", "triples", "synonyms", "nodes", "edges"):
        print(f"  {key:<10} {stats.get(key, 0):>10,}")
    print(f"  embedder   {stats['embedder'].get('backend', '?')} {stats['embedder'].get('model', '')}")
    for t in triples:
        print(f"  ({t['subject']}; {t['predicate']}; {t['object']})  [{t['passage']}]")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .api import HippoGraph

    path = HippoGraph.open(args.index).export_graphml(args.graphml)
    print(f"wrote {path}")
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
