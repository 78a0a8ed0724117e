"""Benchmark loaders: every supported format becomes one `Benchmark` (corpus + queries + gold).

Formats (any size): HippoRAG / MuSiQue (`paragraphs[].is_supporting`), HotpotQA and
2WikiMultiHopQA (`supporting_facts` titles, `context`), records with resolved corpus indices
(`gold_passage_idx`, the 2wiki_dev300 split), BEIR (corpus.jsonl, queries.jsonl,
qrels/<split>.tsv), LoCoMo (one corpus record per dialogue turn) and a user's own
corpus file plus a JSONL of `{question, gold: [titles or ids]}`.

Corpus records are plain dicts `{"id", "title", "text", "metadata"}` — exactly what
`HippoGraph.build` accepts — so every system indexes the same documents.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "datasets"
"""`../shared/datasets/` relative to the project root; override with $HIPPOGRAPH_DATASETS."""

DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10, 20)


class DatasetError(ValueError):
    """A benchmark file is missing or malformed; the message names the file and the problem."""


@dataclass
class Query:
    """One benchmark question with its gold document ids (and graded relevance if known)."""

    id: str
    question: str
    gold: list[str]
    category: str | None = None
    grades: dict[str, float] | None = None
    """Graded relevance per gold id (BEIR qrels); None = binary (every gold id has grade 1)."""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricConfig:
    """Which metrics a benchmark reports and how."""

    ks: tuple[int, ...] = DEFAULT_KS
    ndcg_k: int = 10
    exclude_categories: tuple[str, ...] = ()
    """Questions of these categories are listed per question but left out of the averages."""
    levels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra evaluation units: level name → {doc id → unit id} (LoCoMo: turn → session)."""
    category_names: dict[str, str] = field(default_factory=dict)
    """Readable names of categories for the report."""
    headline: tuple[str, ...] = ("recall@2", "recall@5")
    """Metrics shown first in the report."""


@dataclass
class Benchmark:
    """A retrieval benchmark: corpus records, queries with gold doc ids, metric settings."""

    name: str
    corpus: list[dict[str, Any]]
    queries: list[Query]
    metrics: MetricConfig = field(default_factory=MetricConfig)
    source: str = ""
    """Where it was loaded from (for the report)."""

    def corpus_hash(self) -> str:
        """Stable hash of the corpus content (ids, titles, texts, metadata), for caches."""
        h = hashlib.sha256()
        for rec in self.corpus:
            h.update(json.dumps([rec["id"], rec["title"], rec["text"], rec.get("metadata", {})],
                                sort_keys=True, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()[:16]

    def scored_queries(self) -> list[Query]:
        """Queries that count in the averages (gold not empty, category not excluded)."""
        excl = set(self.metrics.exclude_categories)
        return [q for q in self.queries if q.gold and q.category not in excl]


# ----------------------------------------------------------------------------- helpers
def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            out.append(rec)
    return out


def _read_records(path: Path) -> list[dict[str, Any]]:
    """A JSON list of objects, a JSON {id: object} mapping, or JSONL."""
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    data = _read_json(path)
    if isinstance(data, dict):
        recs = []
        for key, val in data.items():
            if not isinstance(val, dict):
                raise DatasetError(f"{path}: mapping values must be objects (key {key!r})")
            recs.append({"id": str(key), **val})
        return recs
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a list of objects")
    return data


def _norm_text(s: str) -> str:
    return " ".join(s.split())


def load_corpus_file(path: str | Path) -> list[dict[str, Any]]:
    """Corpus records from a JSON/JSONL file; id = `_id`/`id`/`idx` if present, else the list index."""
    path = Path(path)
    corpus = []
    for i, rec in enumerate(_read_records(path)):
        text = rec.get("text", rec.get("paragraph_text", rec.get("contents")))
        if not isinstance(text, str):
            raise DatasetError(f"{path}: record {i} has no 'text' string")
        rid = next((rec[k] for k in ("_id", "id", "doc_id") if k in rec and rec[k] is not None), i)
        meta = dict(rec.get("metadata") or {})
        corpus.append({"id": str(rid), "title": str(rec.get("title") or ""), "text": text, "metadata": meta})
    ids = [r["id"] for r in corpus]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise DatasetError(f"{path}: duplicate document id {dup!r}")
    return corpus


# ------------------------------------------------------------------ HippoRAG family
def load_hipporag(corpus_path: str | Path, questions_path: str | Path, name: str | None = None) -> Benchmark:
    """MuSiQue / HotpotQA / 2WikiMultiHopQA in HippoRAG's layout (corpus list + question records).

    Gold: MuSiQue records (`paragraphs`) → supporting paragraphs matched by title + text;
    HotpotQA / 2Wiki records (`supporting_facts`) → distinct supporting titles (ties between
    same-title passages broken by the record's `context` text); records with `gold_passage_idx`
    (2wiki_dev300) → those corpus list positions. Category = `type` where the record has one.
    """
    corpus_path, questions_path = Path(corpus_path), Path(questions_path)
    corpus = load_corpus_file(corpus_path)
    records = _read_records(questions_path)
    by_title_text: dict[tuple[str, str], str] = {}
    by_title: dict[str, list[str]] = {}
    for rec in corpus:
        by_title_text.setdefault((rec["title"], _norm_text(rec["text"])), rec["id"])
        by_title.setdefault(rec["title"], []).append(rec["id"])
    text_of = {rec["id"]: _norm_text(rec["text"]) for rec in corpus}

    queries: list[Query] = []
    missing = 0
    for i, rec in enumerate(records):
        qid = str(rec.get("id", rec.get("_id", i)))
        question = rec.get("question")
        if not isinstance(question, str):
            raise DatasetError(f"{questions_path}: record {i} has no 'question' string")
        gold: list[str] = []
        if "paragraphs" in rec:
            for p in rec["paragraphs"]:
                if not p.get("is_supporting"):
                    continue
                title, text = p.get("title", ""), _norm_text(p.get("paragraph_text", p.get("text", "")))
                doc = by_title_text.get((title, text))
                if doc is None and len(by_title.get(title, [])) == 1:
                    doc = by_title[title][0]
                if doc is None:
                    missing += 1
                elif doc not in gold:
                    gold.append(doc)
            category = f"{len(rec['question_decomposition'])}hop" if rec.get("question_decomposition") else None
        elif "gold_passage_idx" in rec:
            idxs = rec["gold_passage_idx"]
            if not isinstance(idxs, list) or not all(isinstance(x, int) and 0 <= x < len(corpus) for x in idxs):
                raise DatasetError(f"{questions_path}: record {i} 'gold_passage_idx' must be a list of corpus "
                                   f"positions in 0..{len(corpus) - 1}")
            gold = list(dict.fromkeys(corpus[x]["id"] for x in idxs))
            category = rec.get("type")
        elif "supporting_facts" in rec:
            context = {}
            for item in rec.get("context") or []:
                if isinstance(item, (list, tuple)) and len(item) == 2:
                    sents = item[1]
                    context[item[0]] = _norm_text("".join(sents) if isinstance(sents, list) else str(sents))
            for fact in rec["supporting_facts"]:
                title = fact[0] if isinstance(fact, (list, tuple)) else fact.get("title")
                cands = by_title.get(title, [])
                if not cands:
                    missing += 1
                    continue
                doc = cands[0]
                if len(cands) > 1 and title in context:
                    doc = next((c for c in cands if text_of[c] == context[title]), cands[0])
                if doc not in gold:
                    gold.append(doc)
            category = rec.get("type")
        else:
            raise DatasetError(f"{questions_path}: record {i} has none of 'paragraphs' (MuSiQue), "
                               "'gold_passage_idx' (2wiki_dev300) or 'supporting_facts' (HotpotQA/2Wiki)")
        queries.append(Query(id=qid, question=question, gold=gold, category=category,
                             metadata={"answer": rec.get("answer")}))
    if missing:
        logger.warning("%s: %d gold passage(s) not found in %s", questions_path, missing, corpus_path)
    return Benchmark(name=name or questions_path.parent.name, corpus=corpus, queries=queries,
                     source=f"{corpus_path}, {questions_path}")


def load_hipporag_dir(path: str | Path, name: str | None = None) -> Benchmark:
    """A directory holding `*corpus*.json` and one question file (HippoRAG data layout)."""
    path = Path(path)
    corpora = sorted(p for p in path.glob("*.json") if "corpus" in p.name)
    questions = sorted(p for p in path.glob("*.json")
                       if "corpus" not in p.name and not p.name.startswith("openie"))
    if len(corpora) != 1 or len(questions) != 1:
        raise DatasetError(f"{path}: expected exactly one *corpus*.json and one question .json file, "
                           f"found corpora={[p.name for p in corpora]} questions={[p.name for p in questions]}")
    return load_hipporag(corpora[0], questions[0], name=name or path.name)


# ------------------------------------------------------------------------------ BEIR
def load_beir(path: str | Path, split: str = "test", name: str | None = None) -> Benchmark:
    """BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv; only queries with qrels."""
    path = Path(path)
    corpus = load_corpus_file(path / "corpus.jsonl")
    ids = {r["id"] for r in corpus}
    qtext = {str(r["_id"]): r.get("text", "") for r in _read_jsonl(path / "queries.jsonl")}
    qrels_path = path / "qrels" / f"{split}.tsv"
    grades: dict[str, dict[str, float]] = {}
    try:
        fh = open(qrels_path, encoding="utf-8", newline="")
    except FileNotFoundError as exc:
        raise DatasetError(f"{qrels_path}: file not found") from exc
    with fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (lineno == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # header
            if len(row) < 3:
                raise DatasetError(f"{qrels_path}:{lineno}: expected query-id, corpus-id, score")
            qid, did, score = row[0], row[1], float(row[2])
            if score <= 0:
                continue
            if did not in ids:
                logger.warning("%s:%d: corpus id %s not in corpus.jsonl; ignored", qrels_path, lineno, did)
                continue
            grades.setdefault(qid, {})[did] = score
    queries = []
    for qid, g in grades.items():
        if qid not in qtext:
            raise DatasetError(f"{qrels_path}: query id {qid} not in queries.jsonl")
        queries.append(Query(id=qid, question=qtext[qid], gold=list(g), grades=g))
    metrics = MetricConfig(ks=(1, 2, 5, 10, 20, 100), headline=("ndcg@10", "recall@10", "recall@100"))
    return Benchmark(name=name or path.name, corpus=corpus, queries=queries, metrics=metrics, source=str(path))


# ---------------------------------------------------------------------------- LoCoMo
LOCOMO_CATEGORIES = {"1": "multi-hop", "2": "temporal", "3": "open-domain", "4": "single-hop", "5": "adversarial"}
_DIA = re.compile(r"D:?(\d+):(\d+)")


def load_locomo(path: str | Path, name: str | None = None) -> Benchmark:
    """LoCoMo: one corpus record per dialogue turn, gold = evidence turns.

    Turn ids are `<sample_id>:<dia_id>` (dia ids repeat across conversations); all
    conversations share one corpus. Category 5 (adversarial) is excluded from the
    averages. A "session" level maps each turn to `<sample_id>:session_<N>`.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of LoCoMo samples")
    corpus: list[dict[str, Any]] = []
    session_of: dict[str, str] = {}
    queries: list[Query] = []
    bad = 0
    for si, sample in enumerate(data):
        if not isinstance(sample, dict) or "conversation" not in sample or "qa" not in sample:
            raise DatasetError(f"{path}: sample {si} lacks 'conversation' or 'qa'")
        sid = str(sample.get("sample_id", f"sample-{si}"))
        conv = sample["conversation"]
        sessions = sorted((int(k.split("_")[1]), v) for k, v in conv.items()
                          if re.fullmatch(r"session_\d+", k) and isinstance(v, list))
        for n, turns in sessions:
            date = conv.get(f"session_{n}_date_time", "")
            session_id = f"{sid}:session_{n}"
            for turn in turns:
                doc_id = f"{sid}:{turn['dia_id']}"
                text = f"{turn.get('speaker', '')}: {turn.get('text', '')}"
                if turn.get("blip_caption"):
                    text += f" [shares {turn['blip_caption']}]"
                title = f"{sid} session {n}" + (f" ({date})" if date else "")
                corpus.append({"id": doc_id, "title": title, "text": text,
                               "metadata": {"sample_id": sid, "session": n, "date": date,
                                            "speaker": turn.get("speaker", ""), "dia_id": turn["dia_id"]}})
                session_of[doc_id] = session_id
        for qi, qa in enumerate(sample["qa"]):
            gold: list[str] = []
            for ev in qa.get("evidence") or []:
                found = _DIA.findall(str(ev))
                if not found:
                    bad += 1
                for s, t in found:
                    did = f"{sid}:D{s}:{t}"
                    if did in session_of and did not in gold:
                        gold.append(did)
                    elif did not in session_of:
                        bad += 1
            queries.append(Query(id=f"{sid}:q{qi}", question=str(qa["question"]), gold=gold,
                                 category=str(qa.get("category")),
                                 metadata={"sample_id": sid, "answer": qa.get("answer", qa.get("adversarial_answer"))}))
    if bad:
        logger.warning("%s: %d evidence reference(s) did not resolve to a turn; dropped", path, bad)
    metrics = MetricConfig(exclude_categories=("5",), levels={"session": session_of},
                           category_names=LOCOMO_CATEGORIES, headline=("recall@5", "recall@10"))
    return Benchmark(name=name or "locomo", corpus=corpus, queries=queries, metrics=metrics, source=str(path))


# ------------------------------------------------------------------------ user's own
def load_custom(corpus_path: str | Path, questions_path: str | Path, name: str | None = None) -> Benchmark:
    """A corpus file (JSON/JSONL records with title/text, optional id) + JSONL `{question, gold}`.

    Each gold entry is a document id, else a title (every document with that title counts).
    """
    corpus_path, questions_path = Path(corpus_path), Path(questions_path)
    corpus = load_corpus_file(corpus_path)
    ids = {r["id"] for r in corpus}
    by_title: dict[str, list[str]] = {}
    for r in corpus:
        by_title.setdefault(r["title"], []).append(r["id"])
    queries = []
    for lineno, rec in enumerate(_read_jsonl(questions_path), 1):
        question, gold_raw = rec.get("question"), rec.get("gold")
        if not isinstance(question, str) or not isinstance(gold_raw, list):
            raise DatasetError(f"{questions_path}:{lineno}: need 'question' (string) and 'gold' (list)")
        gold: list[str] = []
        for g in gold_raw:
            g = str(g)
            matches = [g] if g in ids else by_title.get(g, [])
            if not matches:
                raise DatasetError(f"{questions_path}:{lineno}: gold {g!r} is neither a document id "
                                   f"nor a title in {corpus_path}")
            gold.extend(m for m in matches if m not in gold)
        queries.append(Query(id=str(rec.get("id", lineno)), question=question, gold=gold,
                             category=None if rec.get("category") is None else str(rec["category"])))
    return Benchmark(name=name or questions_path.stem, corpus=corpus, queries=queries,
                     source=f"{corpus_path}, {questions_path}")


# -------------------------------------------------------------------------- registry
def data_root() -> Path:
    return Path(os.environ.get("HIPPOGRAPH_DATASETS", DEFAULT_DATA_ROOT))


def load_path(path: str | Path, name: str | None = None) -> Benchmark:
    """Detect the format of a directory or file and load it."""
    path = Path(path)
    if path.is_dir():
        if (path / "corpus.jsonl").exists() and (path / "qrels").is_dir():
            return load_beir(path, name=name)
        locomo = sorted(path.glob("locomo*.json"))
        if locomo:
            return load_locomo(locomo[0], name=name or path.name)
        return load_hipporag_dir(path, name=name)
    if path.is_file():
        return load_locomo(path, name=name)
    raise DatasetError(f"{path}: no such dataset directory or file")


def load_dataset(spec: str, root: str | Path | None = None) -> Benchmark:
    """Load by name (a directory under the data root, e.g. `musique_train100`) or by path.

    `custom:CORPUS,QUESTIONS` loads a user's own corpus + question JSONL.
    """
    if spec.startswith("custom:"):
        corpus, _, questions = spec[len("custom:"):].partition(",")
        if not questions:
            raise DatasetError(f"{spec!r}: expected custom:CORPUS_FILE,QUESTIONS_JSONL")
        return load_custom(corpus, questions)
    p = Path(spec)
    if p.exists():
        return load_path(p)
    root = Path(root) if root is not None else data_root()
    cand = root / spec
    if not cand.exists():
        avail = sorted(x.name for x in root.iterdir() if x.is_dir()) if root.is_dir() else []
        raise DatasetError(f"dataset {spec!r} not found under {root} (available: {', '.join(avail) or 'none'})")
    return load_path(cand, name=spec)


def openie_path(bench: Benchmark, root: str | Path | None = None) -> Path | None:
    """HippoRAG's GPT-3.5 OpenIE file for this benchmark, if one is shipped next to it."""
    root = Path(root) if root is not None else data_root()
    d = root / bench.name
    files = sorted(d.glob("openie_*.json")) if d.is_dir() else []
    return files[0] if files else None


# ---------------------------------------------------------------------------- slicing
def slice_benchmark(bench: Benchmark, n_questions: int, n_distractors: int, seed: int = 0) -> Benchmark:
    """A small benchmark: the first `n_questions` scored questions, their gold docs and
    `n_distractors` other documents chosen at random (seeded); corpus order preserved."""
    queries = bench.scored_queries()[:n_questions]
    gold = {g for q in queries for g in q.gold}
    others = [r["id"] for r in bench.corpus if r["id"] not in gold]
    rng = random.Random(seed)
    keep = gold | set(rng.sample(others, min(n_distractors, len(others))))
    corpus = [r for r in bench.corpus if r["id"] in keep]
    levels = {lv: {d: u for d, u in m.items() if d in keep} for lv, m in bench.metrics.levels.items()}
    return replace(bench, corpus=corpus, queries=queries, metrics=replace(bench.metrics, levels=levels))


def iter_sources(bench: Benchmark) -> Iterable[dict[str, Any]]:
    """Corpus records as `HippoGraph.build` sources (copies, so the engine cannot mutate ours)."""
    for rec in bench.corpus:
        yield {"id": rec["id"], "title": rec["title"], "text": rec["text"], "metadata": dict(rec.get("metadata", {}))}
