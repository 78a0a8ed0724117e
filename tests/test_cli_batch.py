"""`hippograph query --questions FILE`: one index for the whole file, answers equal per-query retrieve."""
from __future__ import annotations

import json

import pytest

from hippograph import HippoGraph
from hippograph.cli import main as cli_main


def _hits(answer: dict) -> list[tuple[str, float]]:
    return [(h["passage_id"], round(h["score"], 9)) for h in answer["hits"]]


def test_batch_file_equals_per_query_retrieve(sample_index, sample_questions, tmp_path, capsys):
    questions = sample_questions[:12]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"id": q["id"], "question": q["question"]}) + "\n" for q in questions) + "\n")
    out = tmp_path / "answers.jsonl"
    assert cli_main(["query", str(sample_index), "--questions", str(qfile), "--out", str(out), "-k", "4",
                     "--mode", "hybrid", "--quiet"]) == 0
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [a["id"] for a in answers] == [q["id"] for q in questions]
    with HippoGraph.open(sample_index) as hg:
        for q, a in zip(questions, answers):
            single = hg.retrieve(q["question"], top_k=4, mode="hybrid")
            assert a["query"] == q["question"] and a["mode"] == "hybrid" and a["took_ms"] >= 0
            assert _hits(a) == [(h.passage_id, round(h.score, 9)) for h in single]
            assert a["hits"][0] == json.loads(json.dumps(single[0].to_dict(), default=str))

    # a .txt file, answers on stdout
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(q["question"] for q in questions[:3]) + "\n\n", encoding="utf-8")
    capsys.readouterr()
    assert cli_main(["query", str(sample_index), "--questions", str(txt), "-k", "2", "--mode", "bm25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("id" not in json.loads(line) for line in lines)
    assert [_hits(json.loads(line)) for line in lines] == [_hits(a) for a in (
        {"hits": [h.to_dict() for h in hits]}
        for hits in HippoGraph.open(sample_index).retrieve_many([q["question"] for q in questions[:3]], 2, mode="bm25"))]


@pytest.mark.parametrize("content, where", [
    ('{"question": "fine"}\n{oops\n', "q.jsonl:2: not valid JSON"),
    ('{"question": "fine"}\n\n{"text": 7}\n', "q.jsonl:3: the question must be a string"),
    ('{"id": "a"}\n', "q.jsonl:1: no question"),
    ('"   "\n', "q.jsonl:1: empty question"),
    ("", "no questions in the file"),
])
def test_bad_question_lines_are_one_line_errors(sample_index, tmp_path, capsys, content, where):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(content, encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    assert cli_main(["query", str(sample_index), "--questions", str(qfile), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and where in err and "Traceback" not in err
    assert not out.exists()  # validated before any answer is written


def test_query_json_has_mode_and_took_ms(sample_index, capsys):
    assert cli_main(["query", str(sample_index), "Who founded Kessel Shipworks?", "--json", "-k", "2"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["mode"] == "hybrid" and answer["took_ms"] > 0 and len(answer["hits"]) == 2
    assert cli_main(["query", str(sample_index)]) == 1
    assert "--questions" in capsys.readouterr().err
