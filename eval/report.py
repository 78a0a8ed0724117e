"""eval/RESULTS.md and plots from a run's results JSON; component benchmark sections appended."""
from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PUBLISHED_LABEL = "published, 1,000-question sets, different models"
# DESIGN.md §5: HippoRAG (NeurIPS 2024) Table 2, recall@2 / recall@5, 1,000 questions each; 2Wiki as
# listed in ../shared/datasets/README.md (its dev300 split's anchors, full 1,000 questions).
PUBLISHED: dict[str, dict[str, tuple[float | None, float]]] = {
    "MuSiQue": {"BM25": (32.3, 41.2), "Contriever": (34.8, 46.6), "ColBERTv2": (37.9, 49.2),
                "HippoRAG (ColBERTv2)": (40.9, 51.9),
                "HippoRAG 2 (NV-Embed-v2 7B + Llama-3.3-70B)": (None, 74.7)},
    "2Wiki": {"BM25": (55.3, 65.3), "Contriever": (46.6, 57.5), "ColBERTv2": (59.2, 68.2),
              "NV-Embed-v2 (7B)": (67.1, 76.5), "HippoRAG (GPT-3.5 triples, Contriever)": (71.5, 89.5),
              "HippoRAG 2 (NV-Embed-v2 7B + Llama-3.3-70B)": (76.2, 90.4)},
    "HotpotQA": {"BM25": (55.4, 72.2), "Contriever": (57.2, 75.5), "ColBERTv2": (64.7, 79.3),
                 "HippoRAG (ColBERTv2)": (60.5, 77.7),
                 "HippoRAG 2 (NV-Embed-v2 7B + Llama-3.3-70B)": (None, 96.3)},
}


PROJECT = Path(__file__).resolve().parent.parent
_ABSOLUTE = re.compile(r"(?<![\w.~])/(?!/)[^\s,`'\"]+")


def project_relative(text: str) -> str:
    """Absolute paths in `text` (dataset files, a command line) as paths relative to the project:
    `/work/shared/datasets/x.json` → `../shared/datasets/x.json`; a report never names a machine's layout."""
    return _ABSOLUTE.sub(lambda m: os.path.relpath(m.group(0), PROJECT), text)


SERIES_COLOURS = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8", "#98df8a", "#ffbb78", "#c5b0d5", "#f7b6d2",
]
SERIES_MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H", "1"]


def series_styles(names: list[str]) -> dict[str, dict[str, str]]:
    """One colour and one marker per system, the same in every plot of a run (12-16 series stay
    distinguishable: no colour or marker repeats within the first 16)."""
    return {n: {"color": SERIES_COLOURS[i % len(SERIES_COLOURS)], "marker": SERIES_MARKERS[i % len(SERIES_MARKERS)]}
            for i, n in enumerate(names)}


def published_key(dataset: str) -> str | None:
    d = dataset.lower()
    if "musique" in d:
        return "MuSiQue"
    if "2wiki" in d:
        return "2Wiki"
    if "hotpot" in d:
        return "HotpotQA"
    return None


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _ok(ds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in ds["systems"].items() if s.get("status") == "ok"}


def metric_columns(ds: dict[str, Any]) -> list[str]:
    ks = ds["ks"]
    cols = [f"recall@{k}" for k in ks] + [f"all_recall@{k}" for k in (2, 5) if k in ks]
    return cols + [f"ndcg@{ds['ndcg_k']}", "mrr"]


def _nest_headings(text: str, top: int) -> str:
    """Shift markdown headings (outside code fences) so the file's highest one becomes level `top`."""
    lines, fence, levels = text.splitlines(), False, []
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            levels.append(len(line) - len(line.lstrip("#")))
    if not levels:
        return text
    shift, out, fence = top - min(levels), [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            n = len(line) - len(line.lstrip("#"))
            line = "#" * min(6, max(1, n + shift)) + line[n:]
        out.append(line)
    return "\n".join(out)


def _short(m: str) -> str:
    return m.replace("all_recall@", "AR@").replace("recall@", "R@").replace("ndcg@", "nDCG@").replace("mrr", "MRR")


# --------------------------------------------------------------------------- plots
def make_plots(results: dict[str, Any], plots_dir: Path) -> dict[str, list[Path]]:
    """recall@k curves per dataset, query latency CDF per dataset, ablation bars; returns paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    for old in plots_dir.glob("*.png"):  # the directory holds one run's plots: no stale images from older runs
        old.unlink()
    made: dict[str, list[Path]] = {"recall": [], "latency": [], "ablation": []}
    names: list[str] = []
    for ds in results["datasets"].values():
        names += [s for s in _ok(ds) if s not in names]
    style = series_styles(names)
    for name, ds in results["datasets"].items():
        ok = _ok(ds)
        if not ok:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for sname, s in ok.items():
            ks = [k for k in ds["ks"] if f"recall@{k}" in s["metrics"]]
            ax.plot(ks, [s["metrics"][f"recall@{k}"] for k in ks], **style[sname],
                    linestyle="-" if s["family"] != "baseline" else "--", label=sname)
        ax.set_xscale("log")
        ax.set_xticks(ds["ks"], [str(k) for k in ds["ks"]])
        ax.set_xlabel("k")
        ax.set_ylabel("recall@k")
        ax.set_title(f"{name}: recall@k ({ds['n_scored']} questions)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        p = plots_dir / f"recall_{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        made["recall"].append(p)

        fig, ax = plt.subplots(figsize=(6, 4))
        for sname, s in ok.items():
            lat = sorted(s["query"].get("latencies_ms") or [])
            if lat:
                ax.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], color=style[sname]["color"],
                        marker=style[sname]["marker"], markevery=max(1, len(lat) // 8), label=sname)
        ax.set_xscale("log")
        ax.set_xlabel("single-query latency (ms, log)")
        ax.set_ylabel("fraction of queries")
        ax.set_title(f"{name}: query latency CDF")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        p = plots_dir / f"latency_{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        made["latency"].append(p)

    rows = []
    for name, ds in results["datasets"].items():
        ok = _ok(ds)
        metric = ds["headline"][0] if ds["headline"] else "recall@5"
        metric = "recall@5" if "recall@5" in ds["headline"] else metric
        bars = [(s, ok[s]["metrics"].get(metric)) for s in ok if ok[s]["family"] in ("hippograph", "ablation")]
        if bars:
            rows.append((name, metric, bars))
    if rows:
        fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 4), squeeze=False)
        for ax, (name, metric, bars) in zip(axes[0], rows):
            drawn = ax.bar(range(len(bars)), [v for _, v in bars], color=[style[b]["color"] for b, _ in bars])
            ax.bar_label(drawn, fmt="%.3f", fontsize=7)
            ax.set_xticks(range(len(bars)), [b for b, _ in bars], rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{name}: {metric}")
            ax.set_ylim(0.0, max(1.0, max(v for _, v in bars) * 1.08))  # zero-based: bar heights compare honestly
        fig.tight_layout()
        p = plots_dir / "ablations.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        made["ablation"].append(p)
    return made


# -------------------------------------------------------------------------- markdown
def render(results: dict[str, Any], plots: dict[str, list[Path]] | None, report_path: Path,
           components_dir: Path | None) -> str:
    """The RESULTS.md text."""
    m = results["machine"]
    L: list[str] = ["# hippograph — evaluation results", ""]
    L += ["Generated by the eval harness (`eval/`); do not edit by hand — re-run the command below.", ""]
    L += [f"- Command: `{project_relative(results.get('command') or 'python -m eval run')}`",
          f"- Date: {results['started']} (run took {results['seconds'] / 60:.1f} min, "
          f"process peak RSS {results.get('peak_rss_mb', '–')} MB)",
          f"- Git commit: `{results['git']['commit']}`" + (" (with uncommitted changes)" if results["git"].get("dirty") else ""),
          f"- Machine: {m['cores']} usable cores ({m['cpu_count']} logical), {m['cpu']}, {m['ram_gb']} GB RAM, "
          f"{m['os']}, Python {m['python']}"
          + (f"; load average (1 min) {results['load_avg_start'][0]:.1f} at start, "
             f"{results['load_avg_end'][0]:.1f} at end — above {m['cores']} means other processes shared the "
             "CPU and every timing below is inflated" if results.get("load_avg_end") else ""),
          f"- Libraries: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
          f"- Embedder: `{results['embedder']}` (engine config `embedder={results['engine_config'].get('embedder')}`"
          + (f", compute precision {results['embedding_precision']}" if results.get("embedding_precision") else "")
          + "), "
          f"same passages (engine chunker, `chunk_words={results['engine_config'].get('chunk_words')}`), "
          "same embeddings and same queries for every system.",
          ]
    if results.get("quick"):
        L += ["- **Quick mode**: tiny slices for smoke testing; these numbers mean nothing about quality."]
    L += ["", "Metrics: recall@k = |top-k ∩ gold| / |gold| averaged over questions (HippoRAG's definition; "
          "passages are mapped to their source document and deduplicated first); AR@k (all-recall) = share "
          "of questions with every gold document in the top k; nDCG@10 with linear gains; MRR over the top 20 "
          "(top 100 for BEIR). Latency = one query at a time incl. query embedding (first "
          f"{results.get('latency_queries')} questions); QPS = all questions through the batched path.", ""]

    # summary
    L += ["## Summary", ""]
    names = list(results["datasets"])
    all_sys: list[str] = []
    for ds in results["datasets"].values():
        all_sys += [s for s in ds["systems"] if s not in all_sys]
    header = ["system"] + [f"{n} {_short(h)}" for n in names for h in results["datasets"][n]["headline"]]
    rows = []
    for s in all_sys:
        row = [s]
        for n in names:
            ds = results["datasets"][n]
            st = ds["systems"].get(s, {})
            for h in ds["headline"]:
                row.append(_f(st["metrics"].get(h)) if st.get("status") == "ok" else "–")
        rows.append(row)
    L += _table(header, rows) + [""]
    desc = {}
    for ds in results["datasets"].values():
        for s, st in ds["systems"].items():
            desc.setdefault(s, st.get("description", ""))
    L += ["Systems: " + "; ".join(f"**{s}** — {d}" for s, d in desc.items()) + ".", ""]
    missing = [(n, s, st) for n, ds in results["datasets"].items() for s, st in ds["systems"].items()
               if st.get("status") != "ok"]
    if missing:
        L += ["Not run:", ""] + [f"- {n} / {s}: {st['status']} — {st.get('reason', '')}" for n, s, st in missing] + [""]

    # per dataset
    for n, ds in results["datasets"].items():
        ok = _ok(ds)
        L += [f"## {n}", "",
              f"{ds['n_docs']} documents" + (f" → {ds['n_passages']} passages" if ds.get("n_passages") else "")
              + f", {ds['n_scored']} scored questions"
              + (f" (categories {', '.join(ds['exclude_categories'])} excluded)" if ds["exclude_categories"] else "")
              + f". Source: `{project_relative(ds['source'])}`.", ""]
        if not ok:
            L += ["No system completed on this dataset.", ""]
            continue
        cols = metric_columns(ds)
        L += _table(["system"] + [_short(c) for c in cols],
                    [[s] + [_f(st["metrics"].get(c)) for c in cols] for s, st in ok.items()]) + [""]
        pk = published_key(n)
        if pk:
            L += [f"Published anchors beside ours — HippoRAG NeurIPS 2024 Table 2 and HippoRAG 2, {pk}, "
                  f"recall@2 / recall@5 (%). Published rows: **{PUBLISHED_LABEL}**; not directly comparable.", ""]
            pub = [[meth, PUBLISHED_LABEL, _f(r2, 1), _f(r5, 1)] for meth, (r2, r5) in PUBLISHED[pk].items()]
            ours = [[s, f"this run, {ds['n_scored']} questions", _f(100 * st['metrics']['recall@2'], 1),
                     _f(100 * st['metrics']['recall@5'], 1)] for s, st in ok.items()
                    if "recall@2" in st["metrics"] and "recall@5" in st["metrics"]]
            L += _table(["method", "source", "R@2", "R@5"], pub + ours) + [""]
        for level in ds["levels"]:
            L += [f"{level.capitalize()}-level recall (a hit counts for its {level}):", ""]
            lcols = [f"{level}/recall@{k}" for k in ds["ks"]]
            L += _table(["system"] + [_short(c.split('/')[1]) for c in lcols],
                        [[s] + [_f(st["metrics"].get(c)) for c in lcols] for s, st in ok.items()]) + [""]
        cats = sorted({c for st in ok.values() for c in st.get("by_category", {})})
        if cats:
            cn = ds.get("category_names") or {}
            label = {c: f"{c} {cn[c]}" if c in cn else str(c) for c in cats}
            per = (["recall@2"] if "recall@2" in ds["headline"] else []) + ["recall@5", "recall@10"] \
                + [f"{lv}/recall@5" for lv in ds["levels"]]
            for metric in per:
                if not any(metric in st["by_category"].get(c, {}) for st in ok.values() for c in cats):
                    continue
                L += [f"{_short(metric)} by category (n = "
                      + ", ".join(f"{label[c]}: {next(iter(ok.values()))['by_category'].get(c, {}).get('n', 0)}" for c in cats)
                      + "):", ""]
                L += _table(["system"] + [label[c] for c in cats],
                            [[s] + [_f(st["by_category"].get(c, {}).get(metric)) for c in cats] for s, st in ok.items()])
                L += [""]

    # ablations
    abl = []
    for n, ds in results["datasets"].items():
        ok = _ok(ds)
        base = ok.get("hippograph")
        if not base:
            continue
        for s, st in ok.items():
            if st["family"] == "ablation" or s == "hg_ppr":
                row = [n, s] + [f"{_f(st['metrics'].get(h))} ({(st['metrics'].get(h, 0) - base['metrics'].get(h, 0)) * 100:+.1f})"
                                for h in ds["headline"][:2]]
                abl.append(row)
    if abl:
        L += ["## Ablations", "", "Value (points vs hippograph defaults) for each dataset's two headline metrics "
              "(R@2/R@5 for multi-hop, nDCG@10/R@10 for SciFact, R@5/R@10 for LoCoMo).", ""]
        L += _table(["dataset", "system", "headline 1", "headline 2"], abl) + [""]

    # speed and cost
    L += ["## Speed, memory, size", "",
          "Index = wall clock to build (for baselines: chunking is shared and listed separately; dense = embedding "
          "+ index; `cached` = reused from eval/cache, time is the original build's; `shared` = the same index as the "
          "system above it — hippograph's query-time ablations reuse one index, only hg_openie builds its own). RSS = peak resident memory "
          "of the eval process while indexing / querying (Δ = growth during that phase). Measured on "
          f"{m['cores']} cores.", ""]
    for n, ds in results["datasets"].items():
        ok = _ok(ds)
        if not ok:
            continue
        rows = []
        for s, st in ok.items():
            ix, q = st["index"], st["query"]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in ix.get("stages", {}).items()
                               if not ix.get("extra", {}).get("shared") or k == "warm_up")
            extra = ix.get("extra", {})
            note = " (shared)" if extra.get("shared") else " (cached)" if ix.get("cached") else ""
            if not note and extra.get("embedding_cache_new_vectors") is not None:
                note = f" (embedding cache: {extra['embedding_cache_new_vectors']:,} new vectors)"
            rows.append([s, f"{ix['seconds']:.1f}" + note, stages or "–",
                         _f(ix["size_bytes"] / 2**20, 1) if ix.get("size_bytes") else "–",
                         f"{ix['rss']['peak_mb']:.0f} (Δ{ix['rss']['delta_mb']:.0f})",
                         _f(q["latency_ms"]["p50"], 1), _f(q["latency_ms"]["p95"], 1), _f(q.get("qps"), 1),
                         f"{q['rss']['peak_mb']:.0f}"])
        L += [f"### {n}", ""]
        L += _table(["system", "index s", "stages (s)", "size MB", "index RSS MB", "p50 ms", "p95 ms", "batched QPS",
                     "query RSS MB"], rows) + [""]

    if plots:
        L += ["## Plots", ""]
        rel = lambda p: Path(p).resolve().relative_to(report_path.resolve().parent).as_posix() \
            if Path(p).resolve().is_relative_to(report_path.resolve().parent) else str(p)
        for p in plots.get("recall", []) + plots.get("latency", []) + plots.get("ablation", []):
            L += [f"![{Path(p).stem}]({rel(p)})", ""]

    # component benchmarks written by other scripts
    if components_dir is not None and components_dir.is_dir():
        parts = sorted(p for p in components_dir.glob("*.md") if p.is_file())
        if parts:
            L += ["## Component benchmarks", "",
                  "Written by the component benchmark scripts (`eval/bench_*.py`, `eval/check_*.py`); "
                  "copied here from `eval/results/*.md`.", ""]
            for p in parts:
                text = p.read_text(encoding="utf-8").strip()
                text = _nest_headings(text, 3)
                # relative image links in a fragment point next to it (eval/results/): re-anchor them
                rel = os.path.relpath(components_dir, report_path.parent)
                if rel and rel != ".":
                    text = re.sub(r"\]\((?!https?:|/)([^)]+\.png)\)", lambda m: f"]({rel}/{m.group(1)})", text)
                L += [f"<!-- {p.name} -->", text, ""]
    return "\n".join(L).rstrip() + "\n"


def generate(results: dict[str, Any], report_path: Path, plots_dir: Path | None,
             components_dir: Path | None) -> Path:
    """Write plots and the markdown report; returns the report path."""
    plots = make_plots(results, plots_dir) if plots_dir is not None else None
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render(results, plots, report_path, components_dir), encoding="utf-8")
    logger.info("wrote %s", report_path)
    return report_path


def console_summary(results: dict[str, Any]) -> str:
    """A compact text table of every dataset's headline metrics and latency (for the CLI)."""
    lines = []
    for n, ds in results["datasets"].items():
        lines.append(f"{n} ({ds['n_scored']} q, {ds['n_docs']} docs)")
        for s, st in ds["systems"].items():
            if st.get("status") != "ok":
                lines.append(f"  {s:16s} {st.get('status')}: {st.get('reason', '')[:100]}")
                continue
            mets = "  ".join(f"{_short(h)} {st['metrics'].get(h, float('nan')):.3f}" for h in ds["headline"])
            lines.append(f"  {s:16s} {mets}  p50 {st['query']['latency_ms']['p50']:.1f} ms  "
                         f"index {st['index']['seconds']:.1f} s")
    lines.append(f"total {results['seconds'] / 60:.1f} min")
    return "\n".join(lines)
