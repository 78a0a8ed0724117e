"""Packaging promises: Python 3.10 reads TOML configs through tomli; eval-only libraries stay out of the runtime."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from hippograph import Config

ROOT = Path(__file__).resolve().parents[1]


def test_toml_config_loads_without_tomllib(tmp_path, monkeypatch):
    """On Python 3.10 there is no tomllib: Config.from_file falls back to tomli."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('top_k = 7\nembedder = "tfidf"\n', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # what Python 3.10 sees
    loaded = Config.from_file(cfg)
    assert loaded.top_k == 7 and loaded.embedder == "tfidf"


def test_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"])
    assert "rank-bm25" not in runtime  # used only by eval
    assert any(d.startswith("rank-bm25") for d in project["optional-dependencies"]["eval"])
    assert any(d.startswith("rank-bm25") for d in project["optional-dependencies"]["dev"])
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in project["dependencies"])
    assert project["requires-python"] == ">=3.10"
