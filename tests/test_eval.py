"""Eval harness: metrics against hand-computed values, every loader format, the runner and
report on a fixed ranking, and the `--quick` command end to end on a MuSiQue slice."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eval import datasets as D
from eval import metrics as M
from eval import report as R
from eval.datasets import Benchmark, MetricConfig, Query
from eval.runner import RunOptions, run
from eval.systems import IndexInfo, System, select_systems

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
LOG2_3 = math.log2(3)


# ----------------------------------------------------------------------------- metrics
def test_recall_all_recall_mrr_hand_computed():
    ranked = ["a", "b", "c", "d", "e"]
    gold = ["b", "e", "z"]  # z is never retrieved
    assert M.recall_at_k(ranked, gold, 1) == 0.0
    assert M.recall_at_k(ranked, gold, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(ranked, gold, 5) == pytest.approx(2 / 3)
    assert M.recall_at_k(ranked, gold, 20) == pytest.approx(2 / 3)  # k beyond the list
    assert M.all_recall_at_k(ranked, gold, 5) == 0.0
    assert M.all_recall_at_k(ranked, ["a", "b"], 2) == 1.0
    assert M.all_recall_at_k(ranked, ["a", "c"], 2) == 0.0
    assert M.mrr(ranked, gold) == 0.5
    assert M.mrr(ranked, ["q"]) == 0.0
    with pytest.raises(ValueError):
        M.recall_at_k(ranked, [], 5)


def test_ndcg_binary_and_graded_hand_computed():
    # binary: hits at ranks 2 and 5 of 3 relevant → (1/log2 3 + 1/log2 6) / (1 + 1/log2 3 + 1/2)
    assert M.ndcg_at_k(["a", "b", "c", "d", "e"], {"b": 1, "e": 1, "z": 1}, 10) == pytest.approx(0.4776237, abs=1e-6)
    # graded (linear gain): c (1) at rank 1, a (2) at rank 3 → (1 + 2/2) / (2 + 1/log2 3)
    assert M.ndcg_at_k(["c", "x", "a"], {"a": 2, "c": 1}, 10) == pytest.approx(2 / (2 + 1 / LOG2_3))
    # cut-off: relevant doc at rank 3 is invisible at k=2
    assert M.ndcg_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0
    assert M.ndcg_at_k(["a"], {"a": 3}, 10) == 1.0


def test_dedupe_keeps_first_rank():
    assert M.dedupe(["d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]


def _tiny_bench() -> Benchmark:
    corpus = [{"id": f"d{i}", "title": f"T{i}", "text": f"text {i}", "metadata": {}} for i in range(6)]
    queries = [
        Query("q1", "one?", ["d0", "d1"], category="x"),
        Query("q2", "two?", ["d2"], category="y"),
        Query("q3", "three?", ["d3"], category="adv"),  # excluded from averages
        Query("q4", "no gold", []),  # skipped entirely
    ]
    levels = {"session": {"d0": "s0", "d1": "s0", "d2": "s1", "d3": "s1", "d4": "s2", "d5": "s2"}}
    return Benchmark("tiny", corpus, queries,
                     MetricConfig(ks=(1, 2, 5), exclude_categories=("adv",), levels=levels))


RANKINGS = {"q1": ["d1", "d4", "d0"], "q2": ["d5", "d4", "d3", "d2"], "q3": ["d3"], "q4": ["d0"]}


def test_evaluate_averages_categories_levels():
    records, agg = M.evaluate(_tiny_bench(), RANKINGS)
    assert [r["qid"] for r in records] == ["q1", "q2", "q3"]
    assert [r["scored"] for r in records] == [True, True, False]
    assert agg["n"] == 2
    mean = agg["mean"]
    # q1: R@1 1/2, R@2 1/2, R@5 1 ; q2: 0, 0, 1
    assert mean["recall@1"] == pytest.approx(0.25)
    assert mean["recall@2"] == pytest.approx(0.25)
    assert mean["recall@5"] == pytest.approx(1.0)
    assert mean["all_recall@2"] == 0.0 and mean["all_recall@5"] == 1.0
    assert mean["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    # sessions: q1 ranked s0,s2 gold s0 → 1 at every k; q2 ranked s2,s1 gold s1 → R@1 0, R@2 1
    assert mean["session/recall@1"] == pytest.approx(0.5)
    assert mean["session/recall@2"] == pytest.approx(1.0)
    q2_ndcg = 1 / math.log2(5)  # d2 at rank 4, one relevant
    q1_ndcg = (1 + 1 / 2) / (1 + 1 / LOG2_3)  # gold at ranks 1 and 3 of 2 relevant
    assert mean["ndcg@10"] == pytest.approx((q1_ndcg + q2_ndcg) / 2)
    assert agg["by_category"]["x"]["recall@1"] == 0.5 and agg["by_category"]["y"]["n"] == 1
    assert "adv" not in agg["by_category"]


# ---------------------------------------------------------------------------- loaders
def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_musique_format_gold_by_title_and_text(tmp_path):
    corpus = [{"title": "A", "text": "alpha one"}, {"title": "A", "text": "alpha two"}, {"title": "B", "text": "beta"}]
    qs = [{"id": "2hop__1", "question": "q?", "question_decomposition": [{}, {}],
           "paragraphs": [{"idx": 0, "title": "A", "paragraph_text": "alpha  two", "is_supporting": True},
                          {"idx": 1, "title": "A", "paragraph_text": "alpha one", "is_supporting": False},
                          {"idx": 2, "title": "B", "paragraph_text": "beta", "is_supporting": True}]}]
    b = D.load_hipporag(_write(tmp_path / "x_corpus.json", corpus), _write(tmp_path / "x.json", qs))
    assert [r["id"] for r in b.corpus] == ["0", "1", "2"]
    assert b.queries[0].gold == ["1", "2"]  # same title "A": the text decides
    assert b.queries[0].category == "2hop"


def test_2wiki_hotpot_format_supporting_facts(tmp_path):
    # 2WikiMultiHopQA in HippoRAG's format: supporting_facts [[title, sent]], context [[title, [sents]]]
    corpus = [{"title": "Ann Lee", "text": "Ann Lee was born in Leeds."},
              {"title": "Ann Lee", "text": "Ann Lee is a film. It was made in 1990."},
              {"title": "Leeds", "text": "Leeds is a city."}]
    qs = [{"_id": "w1", "type": "compositional", "question": "Where was the director born?",
           "supporting_facts": [["Ann Lee", 1], ["Leeds", 0], ["Ann Lee", 0]],
           "context": [["Ann Lee", ["Ann Lee is a film.", " It was made in 1990."]], ["Leeds", ["Leeds is a city."]]]}]
    b = D.load_hipporag(_write(tmp_path / "2wiki_corpus.json", corpus), _write(tmp_path / "2wiki.json", qs))
    q = b.queries[0]
    assert (q.id, q.category, q.gold) == ("w1", "compositional", ["1", "2"])


def test_resolved_gold_passage_idx_format(tmp_path):
    # the 2wiki_dev300 split: gold = corpus list positions, category = type
    corpus = [{"title": "Gaby", "text": "Gaby is a film directed by Luis Mandoki."},
              {"title": "Other", "text": "Unrelated."},
              {"title": "Luis Mandoki", "text": "Luis Mandoki was born in Mexico City."}]
    qs = [{"_id": "w1", "type": "compositional", "question": "Where was the director of Gaby born?",
           "gold_passage_idx": [0, 2]}]
    b = D.load_hipporag(_write(tmp_path / "w_corpus.json", corpus), _write(tmp_path / "w.json", qs))
    assert (b.queries[0].id, b.queries[0].category, b.queries[0].gold) == ("w1", "compositional", ["0", "2"])
    _write(tmp_path / "bad.json", [{"question": "?", "gold_passage_idx": [0, 3]}])
    with pytest.raises(D.DatasetError, match=r"bad.json: record 0 'gold_passage_idx'.*0\.\.2"):
        D.load_hipporag(tmp_path / "w_corpus.json", tmp_path / "bad.json")


def test_hipporag_bad_record_names_file(tmp_path):
    _write(tmp_path / "c_corpus.json", [{"title": "A", "text": "a"}])
    _write(tmp_path / "q.json", [{"question": "?", "answer": "x"}])
    with pytest.raises(D.DatasetError, match="q.json: record 0"):
        D.load_hipporag_dir(tmp_path)


def test_beir_loader(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": f"t{i}", "text": f"x {i}"}) for i in ("10", "11", "12")) + "\n")
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": f"query {i}"}) for i in ("1", "2", "3")) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t10\t2\n1\t12\t1\n3\t11\t0\n")
    b = D.load_beir(tmp_path)
    assert [q.id for q in b.queries] == ["1"]  # query 2 has no qrels, query 3 only a 0 grade
    assert b.queries[0].grades == {"10": 2.0, "12": 1.0}
    assert 100 in b.metrics.ks and b.metrics.headline[0] == "ndcg@10"


def test_locomo_loader(tmp_path):
    sample = {"sample_id": "c1", "conversation": {
        "speaker_a": "Ann", "speaker_b": "Bob", "session_1_date_time": "1 May 2023",
        "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "Hi"},
                      {"speaker": "Bob", "dia_id": "D1:2", "text": "Look", "blip_caption": "a dog"}],
        "session_2_date_time": "2 May 2023",
        "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "Bye"}]},
        "qa": [{"question": "q1", "answer": "a", "evidence": ["D1:2; D2:1"], "category": 1},
               {"question": "q2", "adversarial_answer": "a", "evidence": ["D1:1"], "category": 5},
               {"question": "q3", "answer": "a", "evidence": ["D:2:1", "D9:9"], "category": 4}]}
    b = D.load_locomo(_write(tmp_path / "locomo.json", [sample]))
    assert [r["id"] for r in b.corpus] == ["c1:D1:1", "c1:D1:2", "c1:D2:1"]
    assert b.corpus[1]["text"] == "Bob: Look [shares a dog]"
    assert b.corpus[1]["title"] == "c1 session 1 (1 May 2023)"
    assert b.corpus[2]["metadata"]["session"] == 2
    assert [q.gold for q in b.queries] == [["c1:D1:2", "c1:D2:1"], ["c1:D1:1"], ["c1:D2:1"]]
    assert [q.id for q in b.scored_queries()] == ["c1:q0", "c1:q2"]  # category 5 excluded
    assert b.metrics.levels["session"]["c1:D2:1"] == "c1:session_2"


def test_custom_loader_titles_ids_and_errors(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "title": "Paris", "text": "Paris is in France."},
        {"title": "Rome", "text": "Rome is in Italy."}]) + "\n")
    q = tmp_path / "qs.jsonl"
    q.write_text(json.dumps({"question": "Where is Rome?", "gold": ["Rome", "a"]}) + "\n")
    b = D.load_custom(corpus, q)
    assert b.queries[0].gold == ["1", "a"]
    q.write_text(json.dumps({"question": "?", "gold": ["a"]}) + "\n" + json.dumps({"question": "?", "gold": ["Oslo"]}))
    with pytest.raises(D.DatasetError, match=r"qs.jsonl:2: gold 'Oslo'"):
        D.load_custom(corpus, q)
    q.write_text("{not json\n")
    with pytest.raises(D.DatasetError, match=r"qs.jsonl:1: not valid JSON"):
        D.load_custom(corpus, q)


def test_slice_keeps_gold_and_distractors():
    b = _tiny_bench()
    s = D.slice_benchmark(b, n_questions=1, n_distractors=2, seed=1)
    ids = {r["id"] for r in s.corpus}
    assert {"d0", "d1"} <= ids and len(ids) == 4
    assert [q.id for q in s.queries] == ["q1"]
    assert set(s.metrics.levels["session"]) == ids


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not mounted")
def test_shared_datasets_load_with_documented_counts():
    mus = D.load_dataset("musique_train100", SHARED)
    assert (len(mus.corpus), len(mus.queries)) == (1890, 100)
    assert sum(len(q.gold) for q in mus.queries) == 237  # README: 237/237 gold present
    hot = D.load_dataset("hotpotqa_train100", SHARED)
    assert (len(hot.corpus), sum(len(q.gold) for q in hot.queries)) == (994, 200)
    loc = D.load_dataset("locomo", SHARED)
    assert len(loc.queries) == 999 and len(loc.corpus) == 2760
    assert all(q.category != "5" for q in loc.scored_queries())
    wiki = D.load_dataset("2wiki_dev300", SHARED)
    assert (len(wiki.corpus), len(wiki.queries)) == (6119, 300)
    cats = [q.category for q in wiki.queries]  # README: compositional 113, comparison 78, ...
    assert [cats.count(c) for c in ("compositional", "comparison", "bridge_comparison", "inference")] == [113, 78, 77, 32]


# --------------------------------------------------------------- runner + report
class FixedSystem(System):
    """Returns hand-written rankings, so the aggregated metrics are known in advance."""

    name, description = "fixed", "fixed rankings (test)"

    def index(self, bench, ctx):
        self.by_q = {q.question: RANKINGS[q.id] for q in bench.queries}
        return IndexInfo(seconds=0.5, size_bytes=2048)

    def search(self, questions, k):
        return [self.by_q[q][:k] for q in questions]


def test_runner_and_report_on_fixed_rankings(tmp_path):
    comp = tmp_path / "components"
    comp.mkdir()
    (comp / "b_ann.md").write_text("# ANN bench\n\nrecall 0.93\n")
    (comp / "a_extraction.md").write_text("# Extraction\n\nF1 0.5\n")
    opts = RunOptions(systems=[FixedSystem()], out_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                      embedder="tfidf", benchmarks=[_tiny_bench()], progress=False, command="python -m eval run --test")
    res = run(opts)
    st = res["datasets"]["tiny"]["systems"]["fixed"]
    assert st["status"] == "ok" and st["n"] == 2
    assert st["metrics"]["recall@1"] == pytest.approx(0.25) and st["metrics"]["recall@5"] == 1.0
    lines = [json.loads(x) for x in Path(st["per_question"]).read_text().splitlines()]
    assert [(x["qid"], x["recall@2"], x["retrieved"]) for x in lines] == [
        ("q1", 0.5, ["d1", "d4", "d0"]), ("q2", 0.0, ["d5", "d4", "d3", "d2"]), ("q3", 1.0, ["d3"])]
    assert json.loads((tmp_path / "out" / "latest.json").read_text())["datasets"]["tiny"]["systems"]["fixed"]["n"] == 2
    report = tmp_path / "RESULTS.md"
    R.generate(res, report, tmp_path / "plots", comp)
    text = report.read_text()
    assert "python -m eval run --test" in text and "| fixed | 0.250 | 0.250 | 1.000 |" in text
    assert text.index("## Component benchmarks") < text.index("\n### Extraction") < text.index("\n### ANN bench")
    assert (tmp_path / "plots" / "recall_tiny.png").stat().st_size > 1000
    assert "latency_tiny.png" in text
    by_cat = text[text.index("R@2 by category"):]  # per-category recall at the headline k (x: q1, y: q2)
    assert "| system | x | y |\n|---|---|---|\n| fixed | 0.500 | 0.000 |" in by_cat


def test_published_anchors_are_labelled():
    assert R.published_key("musique_train100") == "MuSiQue" and R.published_key("scifact") is None
    assert "1,000-question" in R.PUBLISHED_LABEL
    assert R.published_key("2wiki_dev300") == "2Wiki" and len(R.PUBLISHED["2Wiki"]) == 6  # the shared README's anchors


def test_select_systems_groups_and_errors():
    assert [s.name for s in select_systems("baselines")] == ["rank_bm25", "bm25s", "dense_flat", "dense_spann",
                                                             "hybrid_rrf"]
    with pytest.raises(ValueError, match="unknown system"):
        select_systems("bm25s,nope")


# ---------------------------------------------------------------- quick, end to end
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not mounted")
def test_quick_command_end_to_end(tmp_path):
    """`python -m eval run --quick`: MuSiQue slice, TF-IDF, baselines + hippograph defaults."""
    from eval.__main__ import main

    out = tmp_path / "results"
    rc = main(["run", "--quick", "--out", str(out), "--cache", str(tmp_path / "cache"), "--data-root", str(SHARED),
               "--systems", "rank_bm25,bm25s,dense_flat,hybrid_rrf,hippograph", "--latency-queries", "3",
               "--no-progress"])
    assert rc == 0
    res = json.loads((out / "runs" / "latest_quick.json").read_text())
    ds = res["datasets"]["musique_train100"]
    assert ds["n_scored"] == 10
    raw = json.loads((SHARED / "musique_train100" / "musique_train.json").read_text())[:10]
    gold_sets = [{(p["title"], p["paragraph_text"]) for p in r["paragraphs"] if p["is_supporting"]} for r in raw]
    assert ds["n_docs"] == 100 + len(set().union(*gold_sets))  # corpus = gold ∪ 100 distractors
    for name, st in ds["systems"].items():
        assert st["status"] == "ok", (name, st.get("reason"))
        lines = [json.loads(x) for x in Path(st["per_question"]).read_text().splitlines()]
        assert [len(x["gold"]) for x in lines] == [len(g) for g in gold_sets]
        for k in (1, 2, 5, 10, 20):  # every per-question value recomputed from the ranked ids
            for x in lines:
                assert x[f"recall@{k}"] == len(set(x["retrieved"][:k]) & set(x["gold"])) / len(x["gold"])
            assert st["metrics"][f"recall@{k}"] == pytest.approx(sum(x[f"recall@{k}"] for x in lines) / 10)
        assert all(len(x["retrieved"]) == len(set(x["retrieved"])) for x in lines)  # doc ids deduplicated
        assert st["query"]["latency_ms"]["n"] == 3
    # lexical baselines on the same passages with the same tokenizer retrieve the same gold at depth 20
    assert ds["systems"]["rank_bm25"]["metrics"]["recall@20"] > 0.5
    assert (out / "runs" / "RESULTS_quick.md").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not mounted")
def test_dense_minilm_real_embeddings_and_cache(tmp_path):
    """Real MiniLM embeddings on a small MuSiQue slice; the second run reads the embedding cache."""
    bench = D.slice_benchmark(D.load_dataset("musique_train100", SHARED), 5, 30)
    opts = RunOptions(systems=select_systems("dense_flat"), out_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                      embedder="minilm", benchmarks=[bench], progress=False, latency_queries=2)
    first = run(opts)["datasets"]["musique_train100"]["systems"]["dense_flat"]
    assert first["status"] == "ok", first.get("reason")
    assert first["index"]["cached"] is False and first["metrics"]["recall@5"] > 0.5
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1
    second = run(opts)["datasets"]["musique_train100"]["systems"]["dense_flat"]
    assert second["index"]["cached"] is True
    assert second["metrics"] == pytest.approx(first["metrics"])


def test_bench_query_on_the_sample_index(sample_index, tmp_path, capsys):
    """eval/bench_query.py runs on any index with a questions file and reports every mode and stage."""
    from eval import bench_query

    out = tmp_path / "query.md"
    questions = Path(__file__).resolve().parents[1] / "data" / "questions.jsonl"
    assert bench_query.main([str(sample_index), "--questions", str(questions), "--queries", "4", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    for row in ("| `hybrid` |", "| `ppr` |", "| `dense` |", "| `bm25` |", "| PPR |", "| second-hop bridge |",
                "| spaCy query mentions |", "| 64 |"):
        assert row in text, row
    shares = [float(line.rsplit("|", 2)[-2].strip().rstrip("%")) for line in text.splitlines()
              if line.startswith("| ") and line.rstrip().endswith("% |")]
    assert 95 <= sum(shares) <= 105  # exclusive stage times add up to the whole query


def test_bench_query_stage_split_restores_the_retriever(sample_index):
    from eval.bench_query import stage_split
    from hippograph import HippoGraph

    hg = HippoGraph.open(sample_index)
    before = hg.retrieve("Who founded Kessel Shipworks?", top_k=3)
    split, total = stage_split(hg, ["Who founded Kessel Shipworks?", "Where is Kesselby?"])
    assert total > 0 and split["PPR"] > 0 and split["second-hop bridge"] > 0
    assert not {"search", "_bridge", "_vector_search", "_seeds"} & set(vars(hg.retriever))
    assert hg.retriever.embed.__name__ != "timed"
    after = hg.retrieve("Who founded Kessel Shipworks?", top_k=3)
    assert [(h.passage_id, h.score) for h in after] == [(h.passage_id, h.score) for h in before]


def test_dataset_specs_keep_the_comma_of_a_custom_spec():
    from eval.__main__ import split_dataset_specs

    assert split_dataset_specs("musique_train100,custom:c.json,q.jsonl,scifact") == [
        "musique_train100", "custom:c.json,q.jsonl", "scifact"]
    assert split_dataset_specs("a,b") == ["a", "b"]


def test_a_run_written_elsewhere_leaves_the_repository_report_alone(tmp_path):
    from eval.__main__ import EVAL_DIR, default_report_path

    assert default_report_path(EVAL_DIR / "results", quick=False) == EVAL_DIR / "RESULTS.md"
    assert default_report_path(tmp_path, quick=False) == tmp_path / "RESULTS.md"
    assert default_report_path(tmp_path, quick=True) == tmp_path / "runs" / "RESULTS_quick.md"


def test_bench_disk_reports_what_the_new_layouts_save(tmp_path, capsys):
    """eval/bench_disk.py on a small index with SPANN granularities: per-file bytes add up to the
    total it reports, and its version-4 / signature "before" is larger than now."""
    import re

    from eval.bench_disk import file_groups, live_generation, main
    from hippograph import Config, HippoGraph

    index = tmp_path / "idx"
    from .conftest import DATA

    HippoGraph.build(DATA / "corpus" / "people", index,
                     Config(embedder="tfidf", spann_min_vectors=20)).close()
    out = tmp_path / "disk.md"
    assert main([str(index), "--out", str(out)]) == 0
    text = out.read_text()
    total = sum(file_groups(live_generation(index)).values())
    n = int(re.search(r"([\d,]+) passages", text).group(1).replace(",", ""))
    assert f"{total / n / 1e3:.2f} KB per passage" in text
    assert "| MinHash |" in text and "HNSW" not in text  # few heads: flat head indexes
    found = re.search(r"Before those layouts: ([\d.]+) KB per passage; now ([\d.]+)\.$", text, re.M)
    before, now = map(float, found.groups())
    assert before > now


def test_set_overrides_reach_the_engine_config():
    from eval.__main__ import parse_overrides
    from eval.runner import engine_config
    from hippograph.errors import ConfigError

    overrides = parse_overrides(["synonymy_threshold=0.9", "use_synonymy=false", "mode=ppr"])
    assert overrides == {"synonymy_threshold": 0.9, "use_synonymy": False, "mode": "ppr"}
    cfg = engine_config("tfidf", overrides=overrides)
    assert (cfg.synonymy_threshold, cfg.use_synonymy, cfg.mode, cfg.embedder) == (0.9, False, "ppr", "tfidf")
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["synonymy_threshold"])
    with pytest.raises(ConfigError):
        engine_config("tfidf", overrides={"no_such_field": 1})
