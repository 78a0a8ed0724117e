"""Docs that run: every output block in README.md and docs/*.md is what its example prints today."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("docs_regen", ROOT / "docs" / "regen.py")
regen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(regen)


def test_markers_pair_runs_with_outputs():
    page = "\n".join([
        "<!-- docs: run q -->", "```bash", "hippograph query my-index x", "```", "",
        "<!-- docs: output q -->", "```text", "old", "```",
        "```bash", "curl -s localhost:8000/health   # {\"status\": \"ok\"}", "```",
    ])
    found = regen.blocks(page)
    assert [(b["kind"], b["name"], b["lang"], b["body"]) for b in found] == [
        ("run", "q", "bash", "hippograph query my-index x"), ("output", "q", "text", "old")]
    assert regen.unmarked_output(page) == ['curl -s localhost:8000/health   # {"status": "ok"}']
    for doc in regen.PAGES:  # no page shows output outside a generated block
        assert regen.unmarked_output(doc.read_text(encoding="utf-8")) == [], doc


def test_check_tolerates_only_timings_and_last_decimals():
    assert regen.same('"took_ms": 41.2, "score": 1.0811', '"took_ms": 7.9, "score": 1.0812')
    assert not regen.same('"score": 1.0811', '"score": 1.0911')
    assert not regen.same('1.4000  Kesselby', '1.4000  Kessel Shipworks')


@pytest.mark.slow
def test_docs_output_blocks_are_current():
    """Builds the sample index as the docs say, runs every example (CLI, three frameworks, HTTP
    against a real server) and compares with the checked-in output blocks."""
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "regen.py"), "--check"],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-6000:]
