"""Shard stages in a worker process (indexers/shard_worker.py): the same files as building them in
the writer, the writer's `known` answers reach the worker, and a worker that dies is one line and
a write that resumes."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import pytest

from hippograph import Config, HippoGraph
from hippograph.embedders import SentenceTransformerEmbedder, TfidfEmbedder
from hippograph.errors import HippoGraphError
from hippograph.indexers import shard_worker
from hippograph.indexers.loaders import iter_documents
from hippograph.indexers.shard_worker import ShardWorker, ShardWorkerError
from hippograph.threads import available_cpus

from .conftest import DATA, process_running

SHARDS = Config(embedder="tfidf", shard_passages=6)


def _files(hg: HippoGraph) -> dict[str, str]:
    """sha256 of every file of the live generation: the index byte for byte, but for the times
    JSON headers record."""
    gen = hg.dir.generation_path(hg.manifest)
    out = {}
    for p in sorted(gen.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "header.json":
                header = {k: v for k, v in json.loads(data).items() if k not in ("created", "updated")}
                data = json.dumps(header, sort_keys=True).encode()
            out[str(p.relative_to(gen))] = hashlib.sha256(data).hexdigest()
    return out


def _build_then_add(path: Path, config: Config) -> HippoGraph:
    docs = list(iter_documents(DATA / "corpus", config))
    cut = len(docs) * 2 // 3
    HippoGraph.build(docs[:cut], path, config)
    hg = HippoGraph.open(path, shard_process=config.shard_process)  # where a write runs is not stored
    hg.add(docs[cut:])  # skips the entities and facts the index holds: asks the writer (`known`)
    return hg


def test_worker_writes_the_same_files_as_the_writer(tmp_path, monkeypatch):
    inline = _build_then_add(tmp_path / "inline", SHARDS.replace(shard_process="inline"))
    started: list[int] = []
    original = ShardWorker.__init__

    def counting(self, *a, **k):
        original(self, *a, **k)
        started.append(self._proc.pid)

    monkeypatch.setattr(ShardWorker, "__init__", counting)
    worker = _build_then_add(tmp_path / "worker", SHARDS.replace(shard_process="worker"))
    assert len(started) == 2, "one worker process per write (build, add)"
    assert worker.stats()["passages"] == inline.stats()["passages"] > 4 * SHARDS.shard_passages
    assert _files(worker) == _files(inline)
    timings = worker.stats()["timings"]
    assert timings["extract"] > 0 and timings["embed passages"] > 0, "the worker's stage timings reach the report"
    assert not (tmp_path / "worker" / ".build").exists()


# spaCy batches of one passage and one shard of the whole sample (45 passages ≥ POOL_START_BATCHES):
# big enough for the worker to start its pool of spaCy processes (n_process 0 = auto)
POOLED = SHARDS.replace(spacy_batch_size=1, shard_passages=1000)


def test_the_workers_spacy_pool_writes_the_same_files(tmp_path, caplog, capfd):
    inline = HippoGraph.build(DATA / "corpus", tmp_path / "inline", POOLED.replace(shard_process="inline"))
    caplog.set_level(logging.INFO, logger="hippograph")  # the worker logs at the writer's level, to its stderr
    worker = HippoGraph.build(DATA / "corpus", tmp_path / "worker", POOLED.replace(shard_process="worker"))
    assert _files(worker) == _files(inline)
    started = capfd.readouterr().err.count(f"starting {available_cpus()} spaCy processes")
    assert started == (1 if available_cpus() > 1 else 0), "one pool for the write, in the worker only"


def test_auto_uses_a_worker_only_where_it_saves_memory():
    auto = Config()
    tfidf = TfidfEmbedder(64)
    assert not shard_worker.wanted(auto, tfidf, None)  # TF-IDF: nothing heavy to move out
    assert shard_worker.wanted(auto.replace(shard_process="worker"), tfidf, None)
    model = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert shard_worker.wanted(auto, model, None)  # the model is not loaded here: load it in the worker
    assert not shard_worker.wanted(auto.replace(shard_process="inline"), model, None)
    assert not shard_worker.wanted(auto, model, lambda ps: [])  # a custom extractor runs where it was given
    model._model = object()  # an open index that answered queries holds its model: keep using it
    assert not shard_worker.wanted(auto, model, None)


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def test_a_killed_worker_is_one_line_and_the_write_resumes(tmp_path, monkeypatch, capfd):
    # shard 0 (40 passages) starts the worker's pool of spaCy processes; the worker dies in shard 1
    config = POOLED.replace(shard_process="worker", shard_passages=40)
    original = ShardWorker.build
    calls: list[int] = []
    orphans: set[int] = set()

    def kill_on_second(self, spec, known):
        calls.append(spec.index)
        if len(calls) == 2:
            orphans.update(_children(self._proc.pid))
            self._proc.kill()
        return original(self, spec, known)

    monkeypatch.setattr(ShardWorker, "build", kill_on_second)
    with pytest.raises(ShardWorkerError) as err:
        HippoGraph.build(DATA / "corpus", tmp_path / "idx", config)
    message = str(err.value)
    assert "\n" not in message and "exited with code -9 while building shard 1" in message
    assert "run the same write again" in message
    if Path("/proc/self/stat").exists() and available_cpus() > 1:
        assert orphans, "the worker had started its spaCy processes"
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in orphans) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [pid for pid in orphans if process_running(pid)]
        assert not alive, "the killed worker's spaCy processes exit with it"
        assert "leaked semaphore" not in capfd.readouterr().err
    calls.clear()
    monkeypatch.setattr(ShardWorker, "build", lambda self, spec, known: (calls.append(spec.index), original(self, spec, known)))
    resumed = HippoGraph.build(DATA / "corpus", tmp_path / "idx", config)
    assert calls == [1], "the finished shard was reused, the killed one rebuilt"
    scratch = HippoGraph.build(DATA / "corpus", tmp_path / "scratch", config.replace(shard_process="inline"))
    assert _files(resumed) == _files(scratch)


def test_an_error_in_the_worker_is_the_writers_one_line_error(tmp_path, monkeypatch):
    """The worker cannot load its embedder: the write fails with that error, not a traceback."""
    monkeypatch.setattr(shard_worker, "_portable_embedder",
                        lambda embedder, build_dir: ("saved", (embedder.spec(), str(tmp_path / "missing"))))
    with pytest.raises(HippoGraphError) as err:
        HippoGraph.build(DATA / "corpus", tmp_path / "idx", SHARDS.replace(shard_process="worker"))
    assert "missing" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_real_models_in_the_worker_write_the_same_files(tmp_path):
    """spaCy and MiniLM (bfloat16 where the CPU has it) in the worker: the same bytes as in the writer."""
    config = Config(embedder="sentence-transformers", shard_passages=8)
    inline = _build_then_add(tmp_path / "inline", config.replace(shard_process="inline"))
    worker = _build_then_add(tmp_path / "worker", config)  # 'auto': the writer never loaded MiniLM
    assert not worker.embedder.loaded, "the writer did not load the model"
    assert _files(worker) == _files(inline)


def test_a_full_disk_in_the_worker_stays_an_oserror_with_its_errno():
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", "/idx/.build/shard-000001/embeddings/facts.npy")
    exc = shard_worker._error(json.loads(json.dumps(shard_worker._failure(full))))
    assert type(exc) is OSError and exc.errno == errno.ENOSPC
    assert str(exc) == str(full)
    assert isinstance(shard_worker._error({"type": "IndexWriteError", "message": "x: cannot write"}), HippoGraphError)
    other = shard_worker._error({"type": "ZeroDivisionError", "message": "division by zero"})
    assert isinstance(other, ShardWorkerError) and "ZeroDivisionError" in str(other)


def test_auto_needs_a_python_interpreter_to_start_the_worker():
    assert shard_worker.runs_python("/usr/bin/python3.11") and shard_worker.runs_python("C:/Python311/python.exe")
    assert not shard_worker.runs_python("/usr/bin/uwsgi")  # an embedding host: -m would start the host
    assert not shard_worker.runs_python("") and not shard_worker.runs_python(None)


def test_auto_builds_in_process_when_the_worker_cannot_start(tmp_path, monkeypatch, caplog):
    """A worker that exits before answering (an interpreter that cannot import hippograph) is no
    reason to fail a write under 'auto': the shards are built here, with one warning."""
    import logging

    # as if the embedder were a model 'auto' moves out (TF-IDF keeps this test fast)
    monkeypatch.setattr(shard_worker, "wanted", lambda config, embedder, extract: config.shard_process != "inline")
    real_popen = shard_worker.subprocess.Popen

    def broken_interpreter(cmd, **kw):
        return real_popen([cmd[0], "-c", "import sys; sys.exit(3)"], **kw)

    monkeypatch.setattr(shard_worker.subprocess, "Popen", broken_interpreter)
    with caplog.at_level(logging.WARNING, logger="hippograph.indexers.pipeline"):
        built = HippoGraph.build(DATA / "corpus", tmp_path / "auto", SHARDS)  # shard_process='auto'
    assert "could not start (exit code 3)" in caplog.text
    scratch = HippoGraph.build(DATA / "corpus", tmp_path / "inline", SHARDS.replace(shard_process="inline"))
    assert _files(built) == _files(scratch)
    with pytest.raises(ShardWorkerError, match="exited with code 3"):  # asked for explicitly: an error
        HippoGraph.build(DATA / "corpus", tmp_path / "worker", SHARDS.replace(shard_process="worker"))


@pytest.mark.skipif(available_cpus() < 2, reason="a pool of spaCy processes needs 2 CPUs")
def test_a_fresh_build_starts_the_spacy_pool_where_an_add_of_the_same_size_does_not(tmp_path, caplog, capfd):
    # batches of 4 passages: each write below has 2 to 31 batches, under POOL_START_BATCHES
    config = SHARDS.replace(spacy_batch_size=4, shard_passages=1000, shard_process="worker")
    docs = list(iter_documents(DATA / "corpus", config))
    caplog.set_level(logging.INFO, logger="hippograph")  # the worker logs at the writer's level, to its stderr
    built = HippoGraph.build(docs[:20], tmp_path / "idx", config)
    started = f"starting {available_cpus()} spaCy processes"
    assert 8 <= built.stats()["passages"] < 4 * 32
    assert capfd.readouterr().err.count(started) == 1, "a fresh build of 2+ batches extracts on every CPU"
    hg = HippoGraph.open(tmp_path / "idx", shard_process="worker")
    report = hg.add(docs[20:])
    assert 8 <= report.added["passages"] < 4 * 32
    assert capfd.readouterr().err.count(started) == 0, "an add waits for POOL_START_BATCHES (its memory target)"
