"""Peak memory and time of the synonymy stage on a built index's entities, as a build and an add run it.

    python eval/bench_synonymy_memory.py INDEX_DIR [--checkout PATH ...] [--add-fraction 0.01] [--out FILE]

For each checkout (default: this one) and each scenario, a fresh process of that checkout's
`.venv/bin/python` imports its hippograph and runs what its `Merge.link_synonyms` runs on the index's live generation: embedding
synonyms new-vs-all over the stored (int8, memory-mapped) entity vectors, MinHash signatures of
the new names and LSH banding over every signature. Scenarios: `scratch` (every entity new, as a
build) and `add` (the last `--add-fraction` of the entities new, the others' signatures read from
the index, as an `add`). Reported: wall seconds, the process's peak RSS (ru_maxrss) and its RSS
after imports, edges found. Edges must agree between checkouts (pairs; scores to 1e-6).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sqlite3, sys, time
from pathlib import Path
import numpy as np
from hippograph.config import Config
from hippograph.format import embedding_path, load_array, open_embeddings
from hippograph.indexers import merge
from hippograph.indexers.graph_builder import lsh_synonyms, minhash_signatures, stored_signatures, synonymy_eligible
from hippograph.indexers.synonymy import synonym_edges

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

gen, scenario, frac = Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
c = Config()
base_rss = rss_mb()
t0 = time.perf_counter()
conn = sqlite3.connect(f"file:{gen / 'meta.sqlite'}?mode=ro", uri=True)
n = conn.execute("SELECT count(*) FROM entities").fetchone()[0]
e0 = 0 if scenario == "scratch" else int(n * (1 - frac))
new_ids = np.arange(e0, n, dtype=np.int64)
ents = open_embeddings(embedding_path(gen, "entities"))
streamed = hasattr(merge, "SIGNATURE_CHUNK")  # this checkout's merge streams names and signatures
if streamed:
    names_iter = (r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx"))
    eligible = np.fromiter((synonymy_eligible(x, c.synonymy_min_chars) for x in names_iter), dtype=bool, count=n)
    edges = synonym_edges(ents, None, new_ids, threshold=c.synonymy_threshold, max_neighbors=c.synonymy_max_neighbors,
                          min_chars=c.synonymy_min_chars, eligible=eligible)
else:
    names = [r[0] for r in conn.execute("SELECT name FROM entities ORDER BY idx")]
    edges = synonym_edges(ents, names, new_ids, threshold=c.synonymy_threshold, max_neighbors=c.synonymy_max_neighbors,
                          min_chars=c.synonymy_min_chars)
    eligible = np.fromiter((synonymy_eligible(x, c.synonymy_min_chars) for x in names), dtype=bool, count=n)
t_emb = time.perf_counter() - t0
# as IndexWriter._load_minhash reads them (an index of format 1 stored all 32 bits)
# (an index written since the band keys stores no signatures: they are computed from the names, untimed)
mh = gen / "graph" / "minhash.npy"
if e0 and mh.is_file():
    old = stored_signatures(load_array(mh)[:e0])
elif e0:
    t_sig = time.perf_counter()
    old_names = [r[0] for r in conn.execute("SELECT name FROM entities WHERE idx < ? ORDER BY idx", (e0,))]
    old = stored_signatures(minhash_signatures(old_names, eligible[:e0], c.minhash_num_perm))
    del old_names
    t0 += time.perf_counter() - t_sig
else:
    old = None
if streamed:
    sig = np.empty((n, c.minhash_num_perm), dtype=np.uint8)
    if e0:
        sig[:e0] = old
    cur = conn.execute("SELECT name FROM entities WHERE idx >= ? ORDER BY idx", (e0,))
    a = e0
    while True:
        part = [r[0] for r in cur.fetchmany(merge.SIGNATURE_CHUNK)]
        if not part:
            break
        sig[a:a + len(part)] = stored_signatures(minhash_signatures(part, eligible[a:a + len(part)], c.minhash_num_perm))
        a += len(part)
else:
    fresh = stored_signatures(minhash_signatures(names[e0:], eligible[e0:], c.minhash_num_perm))
    sig = fresh if old is None else np.vstack([old, fresh])
edges += lsh_synonyms(sig, eligible, new_ids, threshold=c.minhash_threshold, existing={(e.a, e.b) for e in edges})
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "embedding_seconds": t_emb, "peak_mb": peak, "base_mb": base_rss,
                  "entities": n, "new": len(new_ids),
                  "edges": [[e.a, e.b, e.score, e.kind] for e in edges]}))
"""


def live_generation(index: Path) -> Path:
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    return index / manifest["generation"]


def commit_of(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--checkout", type=Path, nargs="*", default=[ROOT])
    ap.add_argument("--add-fraction", type=float, default=0.01)
    ap.add_argument("--scenarios", default="add,scratch")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "synonymy_memory.md")
    args = ap.parse_args(argv)
    gen = live_generation(args.index)
    rows, edges = [], {}
    for scenario in args.scenarios.split(","):
        for checkout in args.checkout:
            load = os.getloadavg()[0]
            python = checkout / ".venv" / "bin" / "python"  # that checkout's own install of hippograph
            proc = subprocess.run([str(python if python.exists() else sys.executable), "-c", CHILD, str(checkout), str(gen),
                                   scenario, str(args.add_fraction)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            key = (scenario, str(checkout))
            edges[key] = {(a, b, k): s for a, b, s, k in r.pop("edges")}
            r.update(scenario=scenario, checkout=str(checkout), commit=commit_of(checkout), load=load,
                     n_edges=len(edges[key]))
            rows.append(r)
            print({k: v for k, v in r.items()}, flush=True)
    agree = []
    for scenario in args.scenarios.split(","):
        ref = edges[(scenario, str(args.checkout[0]))]
        for checkout in args.checkout[1:]:
            other = edges[(scenario, str(checkout))]
            same_pairs = set(ref) == set(other)
            worst = max((abs(ref[k] - other[k]) for k in set(ref) & set(other)), default=0.0)
            agree.append(f"{scenario}: {commit_of(args.checkout[0])} vs {commit_of(checkout)}: "
                         f"{'same pairs' if same_pairs else f'{len(set(ref) ^ set(other))} pairs differ'} "
                         f"(of {len(ref):,}), largest score difference {worst:.1e}")
    cmd = "python eval/bench_synonymy_memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["## Synonymy stage: peak memory and time (`eval/bench_synonymy_memory.py`)", "",
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · `{cmd.strip()}` · index generation `{gen}` · "
             f"{os.cpu_count()} cores · one fresh process per row, run one after another", "",
             "| scenario | commit | entities | new | seconds (embedding part) | peak RSS MB | RSS after imports MB | edges | load |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['commit']} | {r['entities']:,} | {r['new']:,} | {r['seconds']:.1f} "
                     f"({r['embedding_seconds']:.1f}) | {r['peak_mb']:,.0f} | {r['base_mb']:,.0f} | {r['n_edges']:,} | "
                     f"{r['load']:.1f} |")
    lines += [""] + [f"- {a}" for a in agree] + [""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
