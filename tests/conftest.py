"""Shared fixtures: a sample index built once per session (TF-IDF embedder + real spaCy model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def sample_questions() -> list[dict]:
    lines = (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The bundled corpus indexed with the zero-model embedder (fast) and the real spaCy model."""
    from hippograph import Config, HippoGraph

    path = tmp_path_factory.mktemp("idx") / "sample"
    HippoGraph.build(DATA / "corpus", path, Config(embedder="tfidf"))
    return path


def process_running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (Linux /proc)."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def record_checksum(index: Path, rel: str = "meta.sqlite") -> None:
    """Record a crafted file's checksum in the manifest, as the writer of that layout (or a buggy
    tool) would have: a write verifies the base's meta.sqlite against it before copying it."""
    from hippograph.storage import sha256_file

    manifest = json.loads((index / "manifest.json").read_text())
    manifest["checksums"][rel] = sha256_file(index / manifest["generation"] / rel)
    (index / "manifest.json").write_text(json.dumps(manifest))
