"""CLI: `python -m eval run|report|list` (run from the repository root)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: models are installed locally
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from . import EVAL_DIR  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eval", description="hippograph evaluation harness")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run systems on datasets, write results and regenerate the report")
    r.add_argument("--datasets", default=None,
                   help="comma list of names under the data root, paths, or custom:CORPUS,QUESTIONS_JSONL "
                        "(default: musique_train100,hotpotqa_train100,scifact,locomo,2wiki_dev300; --quick: musique_train100)")
    r.add_argument("--systems", default="all",
                   help="comma list of systems or groups (baselines, hippograph, ablations, all)")
    r.add_argument("--out", type=Path, default=EVAL_DIR / "results", help="results directory")
    r.add_argument("--report", type=Path, default=None,
                   help="markdown report to regenerate (default: eval/RESULTS.md when OUT is eval/results, else OUT/RESULTS.md; --quick: OUT/runs/RESULTS_quick.md)")
    r.add_argument("--cache", type=Path, default=EVAL_DIR / "cache", help="index/embedding cache directory")
    r.add_argument("--data-root", type=Path, default=None, help="datasets directory (default ../shared/datasets)")
    r.add_argument("--embedder", choices=["minilm", "tfidf"], default=None,
                   help="minilm (sentence-transformers all-MiniLM-L6-v2) or tfidf (default: minilm; --quick: tfidf)")
    r.add_argument("--quick", action="store_true",
                   help="tiny slices (10 questions + gold + 100 distractors) for CI smoke runs")
    r.add_argument("--rebuild", action="store_true", help="ignore cached indexes and embeddings")
    r.add_argument("--jobs", type=int, default=1, help="spaCy processes for hippograph index builds")
    r.add_argument("--latency-queries", type=int, default=100, help="questions timed one at a time per system")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                   help="engine Config field for every hippograph system, repeatable; VALUE is JSON "
                        "(e.g. --set synonymy_threshold=0.9); index-time fields key the index cache")
    r.add_argument("-v", "--verbose", action="store_true")
    g = sub.add_parser("report", help="regenerate the markdown report from a results JSON")
    g.add_argument("--results", type=Path, default=EVAL_DIR / "results" / "latest.json")
    g.add_argument("--report", type=Path, default=EVAL_DIR / "RESULTS.md")
    g.add_argument("--plots", type=Path, default=EVAL_DIR / "results" / "plots", help="PNG directory (replaced)")
    sub.add_parser("list", help="list systems and datasets")
    return ap


def default_report_path(out: Path, quick: bool) -> Path:
    """Where `run` writes its report unless told: eval/RESULTS.md only for a full run into the
    repository's own results directory; a quick run, or one written elsewhere, keeps it under OUT."""
    if quick:
        return out / "runs" / "RESULTS_quick.md"
    if out.resolve() == (EVAL_DIR / "results").resolve():
        return EVAL_DIR / "RESULTS.md"
    return out / "RESULTS.md"


def parse_overrides(items: list[str]) -> dict[str, object]:
    """`--set FIELD=VALUE` items as a dict; VALUE is read as JSON, else kept as a string."""
    out: dict[str, object] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def split_dataset_specs(value: str) -> list[str]:
    """Comma-separated dataset specs; `custom:CORPUS,QUESTIONS` keeps its own comma."""
    specs: list[str] = []
    for part in value.split(","):
        if specs and specs[-1].startswith("custom:") and "," not in specs[-1]:
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from . import report
    from .systems import SYSTEM_GROUPS, all_systems, select_systems

    if args.cmd == "list":
        from .datasets import data_root

        for s in all_systems():
            print(f"{s.name:16s} {s.family:10s} {s.description}")
        print("groups:", ", ".join(f"{g}={','.join(v)}" for g, v in SYSTEM_GROUPS.items()))
        root = data_root()
        print(f"datasets under {root}:", ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
              if root.is_dir() else "none")
        return 0
    if args.cmd == "report":
        results = json.loads(args.results.read_text())
        report.generate(results, args.report, args.plots, EVAL_DIR / "results")
        print(f"wrote {args.report}")
        return 0

    from .runner import DEFAULT_DATASETS, QUICK_DATASETS, RunOptions, run

    datasets = split_dataset_specs(args.datasets) if args.datasets else list(QUICK_DATASETS if args.quick else DEFAULT_DATASETS)
    try:
        systems = select_systems(args.systems)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = RunOptions(
        overrides=overrides,
        datasets=[d.strip() for d in datasets if d.strip()], systems=systems, out_dir=args.out,
        cache_dir=args.cache, embedder=args.embedder or ("tfidf" if args.quick else "minilm"), quick=args.quick,
        rebuild=args.rebuild, jobs=args.jobs, latency_queries=args.latency_queries, progress=not args.no_progress,
        command="python -m eval " + " ".join(shlex.quote(a) for a in argv), data_root=args.data_root,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(opts)
    # quick runs keep every artefact under OUT/runs/ (ignored by git) so they never replace the real report
    report_path = args.report or default_report_path(args.out, args.quick)
    plots_dir = args.out / "runs" / "plots_quick" if args.quick else args.out / "plots"
    report.generate(results, report_path, plots_dir, EVAL_DIR / "results")
    print(report.console_summary(results))
    print(f"results: {results['_paths']['latest']}  per-question: {results['_paths']['run_dir']}  report: {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
