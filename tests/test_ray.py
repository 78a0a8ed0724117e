"""The Ray executor on a real local Ray instance (2 CPUs): the index written through Ray equals
the local one, and a shard-building worker killed mid-build is retried without losing or
duplicating a shard."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hippograph import Config, HippoGraph
from hippograph.errors import ConfigError
from hippograph.indexers import shards
from hippograph.indexers.loaders import iter_documents
from hippograph.storage import IndexDir

from .conftest import DATA
from .test_shards import ONE_SHARD, _assert_same_index

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'hippograph[ray]'); Ray executor untested")
pytestmark = pytest.mark.ray

RAY_SHARDS = ONE_SHARD.replace(shard_passages=10, executor="ray", ray_concurrency=2)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (the executor uses it instead of starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_index(sample_index) -> HippoGraph:
    return HippoGraph.open(sample_index)


def _questions(sample_questions) -> list[str]:
    return [q["question"] for q in sample_questions[:10]]


def test_ray_build_equals_local_build(local_ray, local_index, tmp_path, sample_questions):
    built = HippoGraph.build(DATA / "corpus", tmp_path / "ray", RAY_SHARDS)
    n = built.stats()["passages"]
    assert n > 3 * RAY_SHARDS.shard_passages  # really several shards, spread over two actors
    assert not (tmp_path / "ray" / ".build").exists(), "shards are removed once the build is committed"
    assert "executor" not in built.manifest.config, "where a write ran is not part of the index"
    _assert_same_index(local_index, built, _questions(sample_questions))


def test_killed_worker_loses_and_duplicates_no_shard(local_ray, local_index, tmp_path, sample_questions, monkeypatch):
    """The first actor to extract its second shard SIGKILLs its own process mid-build (once, by a
    marker file): Ray restarts the actor and retries the shard; the index is unchanged."""
    marker = tmp_path / "killed"
    pids = tmp_path / "pids"
    pids.mkdir()

    def extract_then_die_once(passages):
        mine = pids / str(os.getpid())
        calls = int(mine.read_text()) + 1 if mine.exists() else 1
        mine.write_text(str(calls))
        if calls == 2:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return shards.default_extractor(Config())(passages)  # extraction settings of ONE_SHARD

    from hippograph import api

    monkeypatch.setattr(api, "_extract_fn", lambda config, openie, show_progress: extract_then_die_once)
    built = HippoGraph.build(DATA / "corpus", tmp_path / "ray", RAY_SHARDS)
    assert marker.exists(), "no worker was killed: the test did not exercise a retry"
    killed = marker.read_text()
    calls = {p.name: int(p.read_text()) for p in pids.iterdir()}
    assert calls[killed] == 2, "the killed process did not come back"
    n_shards = sum(1 for _ in shards.group_documents(iter_documents(DATA / "corpus", RAY_SHARDS), RAY_SHARDS))
    assert sum(calls.values()) == n_shards + 1, "each shard extracted once, plus the one attempt that was killed"
    assert built.stats()["passages"] == local_index.stats()["passages"]
    _assert_same_index(local_index, built, _questions(sample_questions))


def test_failing_shard_is_a_one_line_error(local_ray, tmp_path, monkeypatch):
    """An error inside a shard stops the write with one line (nothing committed, nothing merged)."""
    from hippograph import api
    from hippograph.errors import HippoGraphError

    def fails(passages):
        raise RuntimeError("extractor exploded")

    monkeypatch.setattr(api, "_extract_fn", lambda config, openie, show_progress: fails)
    docs = [{"id": "a", "title": "A", "text": "Ana Ruiz founded Lumen in Porto."}]
    with pytest.raises(HippoGraphError, match=r"^ray executor: building shards failed .*extractor exploded") as err:
        HippoGraph.build(docs, tmp_path / "bad", RAY_SHARDS)
    assert "\n" not in str(err.value)
    assert not IndexDir(tmp_path / "bad").exists(), "nothing was committed"


def test_unknown_executor_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="executor='spark'"):
        HippoGraph.build([{"id": "a", "text": "Ana Ruiz founded Lumen."}], tmp_path / "x", ONE_SHARD, executor="spark")


def test_add_to_an_open_index_runs_on_ray(local_ray, tmp_path, monkeypatch):
    """`HippoGraph.open(dir, executor='ray').add(...)` builds its shard on Ray (the driver's own
    `build_shard` is disabled here) and writes what a local add writes."""
    from .test_shards import DOCS

    first, more = DOCS[:3], DOCS[3:]
    local = HippoGraph.build(first, tmp_path / "local", ONE_SHARD)
    local.add(more)
    on_ray = HippoGraph.build(first, tmp_path / "ray", ONE_SHARD)

    def not_here(*args, **kwargs):
        raise AssertionError("a shard was built in the driver, not on Ray")

    monkeypatch.setattr(shards, "build_shard", not_here)
    report = HippoGraph.open(tmp_path / "ray", executor="ray").add(more)
    assert report.shards == {"built": 1}
    _assert_same_index(HippoGraph.open(tmp_path / "local"), HippoGraph.open(tmp_path / "ray"), ["Who founded Firm 4?"])


def test_cli_index_executor_ray(local_ray, tmp_path, capsys):
    """`hippograph index … --executor ray` (in-process, on the module's Ray instance) builds the index;
    the local build of the same documents has the same tables."""
    import json

    from hippograph.cli import main

    from .test_shards import DOCS

    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    assert main(["index", str(src), "--index", str(tmp_path / "ray"), "--embedder", "tfidf",
                 "--executor", "ray", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["action"] == "built" and summary["documents"] == len(DOCS)
    local = HippoGraph.build(src, tmp_path / "local", ONE_SHARD)
    _assert_same_index(local, HippoGraph.open(tmp_path / "ray"), ["Who founded Firm 2?"])
