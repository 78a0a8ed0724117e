"""The `hippograph` command: JSON output, readable output, errors with non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import DATA


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "hippograph.cli", *args], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def test_index_query_info_check(tmp_path):
    idx = tmp_path / "idx"
    out = json.loads(run("index", str(DATA / "corpus"), "--index", str(idx), "--embedder", "tfidf", "--json").stdout)
    assert out["action"] == "built" and out["documents"] == 37 and out["triples"] > 0

    q = json.loads(run("query", str(idx), "Where is Kessel Shipworks headquartered?", "--json", "-k", "3").stdout)
    assert q["query"].startswith("Where is Kessel")
    assert len(q["hits"]) == 3
    assert {"passage_id", "doc_id", "title", "text", "score", "source", "span", "metadata", "explanation"} <= set(q["hits"][0])

    table = run("query", str(idx), "Who built the SS Gannet?", "--explain").stdout
    assert "seeds:" in table and "score" in table
    assert "first hop" in table  # the second-hop step's role of hit 1

    info = json.loads(run("info", str(idx), "--json", "--triples", "3").stdout)
    assert info["documents"] == 37 and len(info["triples_sample"]) == 3
    assert "ok" in run("check", str(idx)).stdout

    # re-running index on an existing index adds only new documents
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "Pellow_Mill.txt").write_text("Pellow Mill\n\nPellow Mill is a sailcloth mill in Kesselby.\n")
    again = json.loads(run("index", str(extra), "--index", str(idx), "--json").stdout)
    assert again["action"] == "added" and again["added"]["documents"] == 1 and again["documents"] == 38

    # damage is reported by `check` with a non-zero exit
    gen = idx / json.loads((idx / "manifest.json").read_text())["generation"]
    (gen / "graph" / "pair_weights.npy").write_bytes(b"garbage")
    bad = run("check", str(idx), check=False)
    assert bad.returncode == 1 and "pair_weights.npy" in bad.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("info", "/nonexistent/index"), "no such index directory"),
        (("query", "/nonexistent/index", "q"), "no such index directory"),
        (("index", "/nonexistent/docs", "--index", "/tmp/never"), "/nonexistent/docs: no such file or directory"),
    ],
)
def test_errors_exit_non_zero_with_message(args, message):
    proc = run(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_files_are_skipped_with_warning(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("Good\n\nOrvik is an island in the Halvenne Archipelago.\n")
    (src / "broken.json").write_bytes((DATA / "bad" / "broken.json").read_bytes())
    (src / "blob.bin.txt").write_bytes(b"\x00\x01\x02binary\x00")
    proc = run("index", str(src), "--index", str(tmp_path / "idx"), "--embedder", "tfidf", "--json")
    assert json.loads(proc.stdout)["documents"] == 1
    assert "broken.json" in proc.stderr and "blob.bin.txt" in proc.stderr


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"chunk_words": 100, "no_such_option": 1}')
    proc = run("index", str(DATA / "corpus"), "--index", str(tmp_path / "i"), "--config", str(cfg), check=False)
    assert proc.returncode == 1 and "no_such_option" in proc.stderr and str(cfg) in proc.stderr
