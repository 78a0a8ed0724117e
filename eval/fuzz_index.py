"""Byte-mutation fuzzing of an index directory: open / query / check must end in success or
IndexCorruptError, never another exception and never a signal (issue #15).

    python -m eval.fuzz_index --mutations 2000 --seed 1 [--index DIR | --spann-min-vectors 20] [--json]

Each trial picks a random file of the index (manifest, SQLite, .npy, JSON, vector files),
damages it (1–8 random bytes XOR-ed with a random non-zero value, or a truncation), then
opens the index, runs one query in each mode (hybrid, ppr, dense, bm25), lists the documents,
and runs `hippograph check`; the file is restored afterwards. Trials run in a child process
so a crash (a signal) is recorded against its mutation and the run goes on with a fresh
child and a fresh copy of the index.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

MODES = ("hybrid", "ppr", "dense", "bm25")
QUERY = "Where was the founder of Kessel Shipworks born?"


def build_small_index(path: Path, spann_min_vectors: int | None = None) -> Path:
    """The bundled `people` corpus with the zero-model TF-IDF embedder (a few seconds); with
    `spann_min_vectors` (e.g. 20) its sentences, facts and entities get SPANN indexes (posting
    lists of ids over the int8 embeddings) while its 8 passages keep a flat one."""
    from hippograph import Config, HippoGraph

    root = Path(__file__).resolve().parents[1]
    extra = {} if spann_min_vectors is None else {"spann_min_vectors": spann_min_vectors}
    HippoGraph.build(root / "data" / "corpus" / "people", path, Config(embedder="tfidf", **extra)).close()
    return path


def vector_kinds(index: Path) -> dict[str, str]:
    """Granularity → 'flat' / 'spann' of an index (from its manifest), for the record."""
    manifest = json.loads((index / "manifest.json").read_text())
    return {g: v.get("kind") for g, v in manifest.get("lifecycle", {}).get("vectors", {}).items()}


def index_files(index: Path) -> list[str]:
    return sorted(str(p.relative_to(index)) for p in index.rglob("*") if p.is_file() and p.name != ".lock")


def mutation(rng: random.Random, files: list[str], sizes: dict[str, int]) -> dict:
    """One damage recipe: which file, and either byte flips (offset, xor) or a truncation."""
    rel = rng.choice(files)
    size = sizes[rel]
    if size == 0 or rng.random() < 0.1:
        return {"file": rel, "truncate": rng.randrange(size) if size else 0}
    return {"file": rel, "flips": [(rng.randrange(size), rng.randrange(1, 256)) for _ in range(rng.randint(1, 8))]}


def apply(index: Path, m: dict) -> bytes:
    """Damage the file as `m` says; return its original bytes (to restore)."""
    path = index / m["file"]
    original = path.read_bytes()
    if "truncate" in m:
        data = original[: m["truncate"]]
    else:
        buf = bytearray(original)
        for off, x in m["flips"]:
            buf[off] ^= x
        data = bytes(buf)
    path.write_bytes(data)
    return original


def trial(index: Path) -> tuple[str, str]:
    """(outcome, detail): outcome 'ok', 'corrupt' (IndexCorruptError) or 'BAD' (anything else)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from hippograph import HippoGraph
    from hippograph.cli import main as cli
    from hippograph.errors import IndexCorruptError

    outcome, detail = "ok", ""
    try:
        hg = HippoGraph.open(index)
        try:
            for mode in MODES:
                hg.retrieve(QUERY, top_k=5, mode=mode)
            hg.documents()
        finally:
            hg.close()
    except IndexCorruptError as exc:
        outcome, detail = "corrupt", str(exc).splitlines()[0][:200]
    except BaseException as exc:  # noqa: BLE001 - the point is to catch every other failure
        return "BAD", f"{type(exc).__name__}: {exc}"[:300] + "\n" + traceback.format_exc()[-1500:]
    err = io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = cli(["check", str(index)])
    except BaseException as exc:  # noqa: BLE001
        return "BAD", f"check raised {type(exc).__name__}: {exc}"[:300] + "\n" + traceback.format_exc()[-1500:]
    if "Traceback" in err.getvalue():
        return "BAD", f"check printed a traceback: {err.getvalue()[-500:]}"
    return outcome, detail + ("" if code else " | check: ok")


def child(index: Path, plan: list[dict], start: int, log: Path) -> None:
    """Run trials plan[start:], appending one JSON line per finished trial to `log`; a line
    `{"i": n, "started": true}` is written before each trial, so a signal is attributable."""
    import logging

    logging.disable(logging.CRITICAL)
    with open(log, "a", encoding="utf-8") as out:
        for i in range(start, len(plan)):
            out.write(json.dumps({"i": i, "started": True}) + "\n")
            out.flush()
            original = apply(index, plan[i])
            try:
                outcome, detail = trial(index)
            finally:
                (index / plan[i]["file"]).write_bytes(original)
            out.write(json.dumps({"i": i, "outcome": outcome, "detail": detail}) + "\n")
            out.flush()


def run(pristine: Path, n: int, seed: int, work: Path) -> dict:
    """Fuzz a copy of `pristine` with `n` mutations; returns counts and every bad case."""
    rng = random.Random(seed)
    files = index_files(pristine)
    sizes = {f: (pristine / f).stat().st_size for f in files}
    plan = [mutation(rng, files, sizes) for _ in range(n)]
    (work / "plan.json").write_text(json.dumps(plan))
    log = work / "trials.jsonl"
    log.write_text("")
    results: dict[int, dict] = {}
    start, t0 = 0, time.perf_counter()
    while start < n:
        index = work / "idx"
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(pristine, index)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        proc = subprocess.run([sys.executable, "-m", "eval.fuzz_index", "--child", str(index), "--plan",
                               str(work / "plan.json"), "--start", str(start), "--log", str(log)],
                              env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        last_started = start
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("started"):
                last_started = rec["i"]
            else:
                results[rec["i"]] = rec
        if proc.returncode == 0 and len(results) >= n:
            break
        if last_started not in results:  # died during this trial: by a signal, or an uncaught error
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            results[last_started] = {"i": last_started, "outcome": "BAD",
                                     "detail": f"child process died ({how}): {proc.stderr[-800:]}"}
        start = last_started + 1
    counts: dict[str, int] = {}
    for rec in results.values():
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    check_ok = sum(1 for r in results.values() if "check: ok" in r.get("detail", ""))
    by_file: dict[str, int] = {}
    for m in plan:
        key = m["file"].split("/", 1)[-1] if m["file"].startswith("gen-") else m["file"]
        by_file[key] = by_file.get(key, 0) + 1
    return {"mutations": n, "seed": seed, "seconds": round(time.perf_counter() - t0, 1), "counts": counts,
            "check_said_ok": check_ok,
            "check_said_ok_files": sorted({plan[i]["file"] for i, r in results.items() if "check: ok" in r.get("detail", "")}),
            "files": by_file,
            "bad": [dict(results[i], mutation=plan[i]) for i in sorted(results) if results[i]["outcome"] == "BAD"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.fuzz_index", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--mutations", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--index", type=Path, help="index to fuzz (default: build the bundled people corpus)")
    p.add_argument("--spann-min-vectors", type=int, default=None,
                   help="when building the default index: Config.spann_min_vectors (20 puts sentences, facts "
                        "and entities in SPANN indexes)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.plan.read_text()), args.start, args.log)
        return 0
    with tempfile.TemporaryDirectory(prefix="hg-fuzz-") as tmp:
        work = Path(tmp)
        pristine = args.index or build_small_index(work / "pristine", args.spann_min_vectors)
        summary = run(pristine, args.mutations, args.seed, work)
        summary["vectors"] = vector_kinds(pristine)
        summary["files_in_index"] = len(index_files(pristine))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"index: {summary['files_in_index']} files, vector indexes {summary['vectors']}")
        print(f"{summary['mutations']} mutations (seed {summary['seed']}) in {summary['seconds']} s: {summary['counts']}; "
              f"check said ok {summary['check_said_ok']} times ({', '.join(summary['check_said_ok_files']) or '-'})")
        for b in summary["bad"]:
            print(f"BAD #{b['i']} {b['mutation']}: {b['detail']}")
    return 1 if summary["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
