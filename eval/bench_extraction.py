"""Benchmark spaCy triple extraction against HippoRAG's GPT-3.5 OpenIE on the MuSiQue sample.

Passages: the 1,890 records of musique_train_corpus.json, Passage.text = the corpus
"text" and Passage.title = "title" (what the indexer builds: the chunker keeps these
≈80-word records whole and the title travels separately). The GPT file is only read to
score the output, never during extraction.

Metrics (normalised strings, `hippograph.text.normalize_entity`, per passage, micro-averaged):
* entity recall / precision, exact match of normalised strings;
* relaxed entity recall / precision: one normalised string contains the other on word
  boundaries ("carl rogers" ~ "psychologist carl rogers") — reported separately;
* triple argument-pair recall: GPT triples whose {subject, object} pair we also link
  (exact and relaxed), i.e. whether the graph gets the same edge;
* triples and entities per passage; throughput (wall time of `extract`, model already
  loaded, worker start-up included) with n_process=1 and n_process=--jobs.

    python eval/bench_extraction.py                   # full run, writes eval/results/extraction.md
    python eval/bench_extraction.py --limit 200 --out /tmp/x.md
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hippograph.config import Config
from hippograph.indexers.extraction import TripleExtractor, load_openie
from hippograph.text import normalize_entity
from hippograph.types import Extraction, Passage

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "datasets" / "musique_train100"
CORPUS = "musique_train_corpus.json"
OPENIE = "openie_musique_train_gpt-3.5-turbo-1106.json"


@dataclass
class Quality:
    ent_recall: float
    ent_precision: float
    ent_recall_relaxed: float
    ent_precision_relaxed: float
    pair_recall: float
    pair_recall_relaxed: float
    triples_per_passage: float
    entities_per_passage: float
    gold_entities_per_passage: float
    gold_triples_per_passage: float


def load_passages(data: Path, limit: int | None) -> list[Passage]:
    records = json.loads((data / CORPUS).read_text(encoding="utf-8"))
    if limit:
        records = records[:limit]
    return [
        Passage(id=str(i), doc_id=str(i), title=r["title"], text=r["text"], source=f"{CORPUS}#{i}",
                span=(0, len(r["text"])))
        for i, r in enumerate(records)
    ]


def _contains(a: str, b: str) -> bool:
    """Word-boundary containment either way."""
    a2, b2 = f" {a} ", f" {b} "
    return a2 in b2 or b2 in a2


def _relaxed_hits(src: set[str], other: set[str]) -> int:
    return sum(1 for s in src if s in other or any(_contains(s, o) for o in other))


def score(ours: list[Extraction], gold: list[Extraction], gold_raw_entities: list[set[str]]) -> Quality:
    tp = n_pred = n_gold = 0
    rel_r = rel_p = 0
    pairs_gold = pairs_hit = pairs_hit_relaxed = 0
    n_triples = 0
    for mine, ref, gents in zip(ours, gold, gold_raw_entities):
        pred = set(mine.entities)
        tp += len(pred & gents)
        n_pred += len(pred)
        n_gold += len(gents)
        rel_r += _relaxed_hits(gents, pred)
        rel_p += _relaxed_hits(pred, gents)
        n_triples += len(mine.triples)
        my_pairs = {frozenset((t.subject, t.object)) for t in mine.triples}
        ref_pairs = {frozenset((t.subject, t.object)) for t in ref.triples}
        for pair in ref_pairs:
            pairs_gold += 1
            if pair in my_pairs:
                pairs_hit += 1
                pairs_hit_relaxed += 1
                continue
            a, b = (tuple(pair) * 2)[:2]
            if any(
                (_contains(a, x) and _contains(b, y)) or (_contains(a, y) and _contains(b, x))
                for x, y in ((tuple(p) * 2)[:2] for p in my_pairs)
            ):
                pairs_hit_relaxed += 1
    n = max(1, len(ours))
    return Quality(
        ent_recall=tp / max(1, n_gold),
        ent_precision=tp / max(1, n_pred),
        ent_recall_relaxed=rel_r / max(1, n_gold),
        ent_precision_relaxed=rel_p / max(1, n_pred),
        pair_recall=pairs_hit / max(1, pairs_gold),
        pair_recall_relaxed=pairs_hit_relaxed / max(1, pairs_gold),
        triples_per_passage=n_triples / n,
        entities_per_passage=n_pred / n,
        gold_entities_per_passage=n_gold / n,
        gold_triples_per_passage=sum(len(g.triples) for g in gold) / n,
    )


def gold_entities(data: Path, passages: list[Passage]) -> tuple[list[Extraction], list[set[str]]]:
    """GPT extractions mapped to passages, and the GPT `extracted_entities` lists (normalised)."""
    gold = load_openie(data / OPENIE, passages)
    raw = json.loads((data / OPENIE).read_text(encoding="utf-8"))["docs"]
    by_key = {(d["title"], d["text"]): d for d in raw}
    ents = []
    for p in passages:
        d = by_key.get((p.title, p.text))
        names = d["extracted_entities"] if d else []
        ents.append({e for e in (normalize_entity(x) for x in names if isinstance(x, str)) if e})
    return gold, ents


@dataclass
class Timing:
    wall: float
    cpu: float
    """CPU seconds of this process and its (reaped) children."""


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[list[Extraction], Timing]:
    c0, t0 = _cpu(), time.perf_counter()
    out = fn()
    return out, Timing(time.perf_counter() - t0, _cpu() - c0)


def lemmatizer_cost(extractor: TripleExtractor, passages: list[Passage]) -> tuple[float, float]:
    """CPU ms per passage of nlp.pipe with the lemmatizer run vs disabled (single process)."""
    nlp = extractor.nlp
    texts = [p.text for p in passages]
    out = []
    for pipes in (("lemmatizer",), ()):
        enabled = [p for p in pipes if p in nlp.component_names and p not in nlp.pipe_names]
        for name in enabled:
            nlp.enable_pipe(name)
        try:
            c0 = time.process_time()
            for _ in nlp.pipe(texts, batch_size=extractor.config.spacy_batch_size):
                pass
            out.append(1000 * (time.process_time() - c0) / max(1, len(texts)))
        finally:
            for name in enabled:
                nlp.disable_pipe(name)
    return out[0], out[1]


def spacy_native_parallel(extractor: TripleExtractor, passages: list[Passage], jobs: int) -> list[Extraction]:
    """The alternative design: spaCy's own nlp.pipe(n_process=jobs), rules in the parent."""
    docs = extractor.nlp.pipe((p.text for p in passages), batch_size=extractor.config.spacy_batch_size, n_process=jobs)
    return [extractor.extract_doc(doc, p) for doc, p in zip(docs, passages)]


def quality_row(name: str, q: Quality) -> str:
    return (
        f"| {name} | {q.ent_recall:.3f} | {q.ent_precision:.3f} | {q.ent_recall_relaxed:.3f} | "
        f"{q.ent_precision_relaxed:.3f} | {q.pair_recall:.3f} | {q.pair_recall_relaxed:.3f} | "
        f"{q.triples_per_passage:.2f} | {q.entities_per_passage:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N passages")
    ap.add_argument("--jobs", type=int, default=2, help="n_process of the parallel run (default 2)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="musique_train100 directory")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "eval" / "results" / "extraction.md",
                    help="markdown report path ('-' = stdout only)")
    ap.add_argument("--no-ablations", action="store_true", help="skip the pronoun/title ablation runs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    for f in (CORPUS, OPENIE):
        if not (args.data / f).is_file():
            print(f"error: {args.data / f} not found (pass --data)", file=sys.stderr)
            return 2
    passages = load_passages(args.data, args.limit)
    gold, gents = gold_entities(args.data, passages)

    # ---- throughput (and the default-config extraction used for quality)
    load_before = os.getloadavg()[0]
    ext1 = TripleExtractor(Config(n_process=1))
    ext1.extract(passages[:32])  # warm-up: lazy lemmatizer tables, first-call allocations
    out1, t1 = timed(lambda: ext1.extract(passages))
    extn = TripleExtractor(Config(n_process=args.jobs))
    outn, tn = timed(lambda: extn.extract(passages))
    outs, ts = timed(lambda: spacy_native_parallel(ext1, passages, args.jobs))
    lem_on, lem_off = lemmatizer_cost(ext1, passages[:400])
    load_after = os.getloadavg()[0]
    same = [(e.entities, e.triples) for e in out1] == [(e.entities, e.triples) for e in outn]

    q_default = score(out1, gold, gents)
    rows = [quality_row("default (pronouns→title, title linked)", q_default)]
    if not args.no_ablations:
        ext_np = TripleExtractor(Config(n_process=1), resolve_pronouns=False)
        rows.append(quality_row("no pronoun/title resolution", score(ext_np.extract(passages), gold, gents)))
        ext_nt = TripleExtractor(Config(n_process=1, link_title=False))
        rows.append(quality_row("title not linked as entity", score(ext_nt.extract(passages), gold, gents)))
        ext_cc = TripleExtractor(Config(n_process=1), common_noun_chunks=True)
        rows.append(quality_row("+ all common-noun chunks as entities", score(ext_cc.extract(passages), gold, gents)))
        rows.append(quality_row("GPT-3.5 OpenIE itself (entities = listed + triple args)", score(gold, gold, gents)))

    n = len(passages)
    cmd = "python eval/bench_extraction.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    report = f"""## Triple extraction (spaCy rules vs GPT-3.5 OpenIE)

Measured {_dt.date.today().isoformat()} on {os.cpu_count()} cores ({platform.processor() or platform.machine()}),
Python {platform.python_version()}, spaCy model `{ext1.model_name}`.
Command: `{cmd}`

Corpus: MuSiQue train sample, {n} passages (Passage.text = corpus `text`, title separate).
Reference: HippoRAG's GPT-3.5-turbo-1106 OpenIE of the same passages
({q_default.gold_entities_per_passage:.2f} listed entities and {q_default.gold_triples_per_passage:.2f} well-formed triples per passage).

### Quality (micro-averaged over passages; normalised strings)

Entity P/R compare our per-passage entity list with GPT's `extracted_entities`.
"relaxed" = one normalised string contains the other on word boundaries (labelled, not the headline).
Pair recall = share of GPT triples whose {{subject, object}} pair is also one of our triples' pairs.

| run | entity R | entity P | entity R (relaxed) | entity P (relaxed) | pair R | pair R (relaxed) | triples/passage | entities/passage |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

### Throughput (wall time of `TripleExtractor.extract`, model loaded, worker start-up included)

Load average (1 min) before / after the timed runs: {load_before:.1f} / {load_after:.1f}
(other jobs share this machine; "CPU-bound estimate" = passages / (CPU seconds / processes),
i.e. the rate on otherwise idle cores).

| run | wall s | passages/s (wall) | CPU s | passages/s (CPU-bound estimate) |
|---|---|---|---|---|
| n_process=1 | {t1.wall:.1f} | {n / t1.wall:.1f} | {t1.cpu:.1f} | {n / t1.cpu:.1f} |
| n_process={args.jobs} (pool: parse + rules in workers) | {tn.wall:.1f} | {n / tn.wall:.1f} | {tn.cpu:.1f} | {n * args.jobs / tn.cpu:.1f} |
| spaCy `nlp.pipe(n_process={args.jobs})`, rules in parent (not used) | {ts.wall:.1f} | {n / ts.wall:.1f} | {ts.cpu:.1f} | — |

Parallel output identical to n_process=1: {"yes" if same else "NO"}.

Lemmatizer: parsing costs {lem_on:.1f} CPU ms/passage with spaCy's lemmatizer run and
{lem_off:.1f} without it ({min(n, 400)} passages, one process). It is loaded but not run;
the rules lemmatise only predicate verbs on demand (`rule_lemmatize`).

Targets (issue): entity recall ≥ 0.70 → {q_default.ent_recall:.3f}; triples/passage ≥ 6 →
{q_default.triples_per_passage:.2f}; ≥ 80 passages/s with 2 processes → {n / tn.wall:.1f} (wall),
{n * args.jobs / tn.cpu:.1f} (CPU-bound estimate).

### Notes
- Entity list = title (+ title without its "(qualifier)") + named entities (CARDINAL and
  ORDINAL dropped; coordinated names and date ranges also split into parts) + capitalised
  adjectives + noun chunks holding a proper noun + every triple argument. Plain
  common-noun chunks are left out (the "+ all common-noun chunks" row shows the trade);
  common nouns that are triple arguments stay, which is most of the precision gap:
  GPT-3.5's own triple arguments reach only the precision in its row against its list.
- Title resolution ("no pronoun/title resolution" row is the ablation): he/she/it/they/
  his/its…, "the <kind>" (kind from the title qualifier or "T is a <kind>"), a bare
  surname, and the implicit owner of "The editor is X" map to the passage title.
- Passive voice keeps the surface direction, as GPT-3.5 OpenIE does:
  "C was founded by A" → (c, founded by, a).
- n_process > 1 uses a process pool whose workers parse *and* apply the rules, returning
  only small Extraction records; spaCy's own `nlp.pipe(n_process=…)` returns whole Docs
  and leaves the rules to the parent (third timing row).
"""
    print(report)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
