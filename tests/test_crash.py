"""Crash safety and concurrency: SIGKILL during add/update/delete, readers' snapshots, second writer.

The kill test forks writer processes from a "zygote" subprocess that has imported
hippograph and loaded spaCy but never run OpenMP code (forking a process that has used
faiss/OpenMP threads can hang the child), so every writer starts in milliseconds and the
test can kill many of them at random points within its time budget.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hippograph import Config, HippoGraph
from hippograph.tables import document_hash
from hippograph.errors import IndexLockedError
from hippograph.storage import IndexDir
from hippograph.types import Document

BASE = [
    {"id": "orvik", "title": "Orvik", "text": "Orvik is an island in the Halvenne Archipelago. Its lighthouse was built in 1871."},
    {"id": "kessel", "title": "Kessel Shipworks", "text": "Kessel Shipworks was founded by Aldous Brannock in Kesselby. It built the SS Gannet."},
    {"id": "drumlow", "title": "University of Drumlow", "text": "The University of Drumlow was founded in 1822. Mirela Osk taught astronomy there."},
    {"id": "meriden", "title": "Port Meriden", "text": "Port Meriden is the largest harbour of Halvenne. The Meriden Courier is printed there. Ferries sail to Orvik and Tamsey."},
    {"id": "corran", "title": "River Corran", "text": "The River Corran flows through Kesselby and Drumlow. Its delta feeds the Hollin Bay. Salmon return to it every autumn."},
    {"id": "festival", "title": "Lantern Tide Festival", "text": "The Lantern Tide Festival is held in Hollin Bay each October. Edda Marrow founded it in 1903. Tide lamps float on the bay."},
    {"id": "gannet", "title": "SS Gannet", "text": "The SS Gannet was a steamship built by Kessel Shipworks. Captain Jorun Tesk sailed her to Ostrel. She sank in 1921."},
]
EXTRA = [
    {"id": "vantry", "title": "Vantry Glassworks", "text": "Vantry Glassworks was founded by Cassia Lune on Tamsey. It makes lenses for lighthouses."},
    {"id": "wren", "title": "Wren relay", "text": "The Wren relay was invented by Isaak Wren in Port Meriden. It carried telegraph signals."},
]
CHANGED = [dict(d, text=d["text"] + " It was renamed in 1950.") for d in EXTRA]

KILLS = int(os.environ.get("HG_CRASH_KILLS", "30"))
# a tiny SPANN threshold puts sentences, facts and entities in SPANN indexes, so the kills also
# hit SpannIndex.add / remove / compact on posting files shared (append-only) between generations
CONFIG = Config(embedder="tfidf", spann_min_vectors=10)
BUDGET_S = float(os.environ.get("HG_CRASH_BUDGET_S", "45"))

ZYGOTE = textwrap.dedent(
    """
    import json, os, random, signal, sys, time
    from hippograph import Config, HippoGraph
    from hippograph.indexers.extraction import TripleExtractor

    import datasketch, hippograph.indexers.graph_builder, hippograph.indexers.spann, hippograph.retrievers.engine
    import hippograph.retrievers.lexical, hippograph.indexers.loaders, hippograph.indexers.chunking  # noqa: F401
    import sklearn.feature_extraction.text, scipy.sparse  # noqa: F401  (TF-IDF encode imports them lazily)
    TripleExtractor(Config()).nlp  # load spaCy (and every module a write needs) once, before forking
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed writers are reaped automatically
    spec = json.loads(sys.argv[1])
    extra_ids = [d["id"] for d in spec["extra"]]

    def writer_loop(seed):
        rnd = random.Random(seed)
        hg = HippoGraph.open(spec["path"])
        while True:
            present = {d["id"] for d in hg.documents()}
            if not present & set(extra_ids):
                hg.add(spec["extra"])
            elif rnd.random() < 0.5:
                hg.delete(extra_ids)
            else:
                hashes = {d["id"]: d["content_hash"] for d in hg.documents()}
                hg.update(spec["changed"] if hashes[extra_ids[0]] == spec["extra_hash"] else spec["extra"])
            with open(spec["ops"], "a") as fh:
                fh.write(f"op {time.time()}\\n")

    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "fork":
            break
        pid = os.fork()
        if pid == 0:
            try:
                writer_loop(os.getpid())
            finally:
                os._exit(1)
        print(pid, flush=True)
    """
)


def _state(path: Path) -> tuple[str, int]:
    """Open the index after a kill and check it holds exactly one of the allowed states."""
    hg = HippoGraph.open(path)
    try:
        docs = {d["id"]: d["content_hash"] for d in hg.documents()}
        base_ids = {d["id"] for d in BASE}
        extra_ids = {d["id"] for d in EXTRA}
        assert set(docs) in (base_ids, base_ids | extra_ids), sorted(docs)
        if set(docs) == base_ids:
            state = "base"
        else:
            versions = {
                "original": {d["id"]: _hash(d) for d in EXTRA},
                "changed": {d["id"]: _hash(d) for d in CHANGED},
            }
            current = {i: docs[i] for i in extra_ids}
            state = next((name for name, v in versions.items() if v == current), None)
            assert state is not None, f"a mix of document versions: {current}"
        assert hg.dir.verify() == []
        stats = hg.stats()
        assert stats["passages"] == hg.snapshot.n_passages and stats["documents"] == len(docs)
        assert hg.retrieve("Who founded Kessel Shipworks?", top_k=2)[0].doc_id == "kessel"
        return state, len(docs)
    finally:
        hg.close()


def _hash(d: dict) -> str:
    return document_hash(Document(d["id"], d["title"], d["text"], d["id"]))


def test_sigkill_during_writes_leaves_old_or_new_state(tmp_path):
    path = tmp_path / "idx"
    HippoGraph.build(BASE, path, CONFIG).close()
    ops = tmp_path / "ops.log"
    spec = {"path": str(path), "extra": EXTRA, "changed": CHANGED, "extra_hash": _hash(EXTRA[0]), "ops": str(ops)}
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )
    rnd = random.Random(1234)
    seen_states: dict[str, int] = {}
    kills = mid_write = 0
    t_start = None
    try:
        assert zygote.stdout.readline().strip() == "ready"
        t_start = time.monotonic()
        while kills < KILLS and time.monotonic() - t_start < BUDGET_S:
            zygote.stdin.write("fork\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rnd.uniform(0.05, 2.0))
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):  # wait until the kernel has torn it down (lock released)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.01)
            kills += 1
            if any(p.name.startswith(".tmp-gen-") for p in path.iterdir()):
                mid_write += 1  # killed while a new generation was being written
            state, _ = _state(path)
            seen_states[state] = seen_states.get(state, 0) + 1
    finally:
        zygote.stdin.close()
        zygote.wait(60)  # a zygote leaving a loaded machine can take more than 10 s (seen at load 5)
    committed = len(ops.read_text().splitlines()) if ops.exists() else 0
    elapsed = time.monotonic() - (t_start or time.monotonic())
    summary = {"kills": kills, "killed_mid_write": mid_write, "ops_committed": committed,
               "states": seen_states, "seconds": round(elapsed, 1)}
    print("crash test:", json.dumps(summary))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert kills >= min(KILLS, 10), summary
    assert committed >= 1, f"no write ever committed between kills: {summary}"
    assert mid_write >= 1, f"no kill landed inside a write: {summary}"
    # after all the kills a normal writer still works and cleans up abandoned generations
    hg = HippoGraph.open(path)
    hg.compact()
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp-gen-")]
    assert hg.dir.verify() == []


def test_reader_keeps_its_snapshot_until_refresh(tmp_path):
    path = tmp_path / "idx"
    writer = HippoGraph.build(BASE, path, CONFIG)
    reader = HippoGraph.open(path)
    questions = ["Who founded Kessel Shipworks?", "Where is Orvik?", "Who invented the Wren relay?"]
    before = [[(h.passage_id, round(h.score, 6)) for h in hits] for hits in reader.retrieve_many(questions, top_k=3)]
    old_gen = path / reader.manifest.generation

    writer.add(EXTRA)
    writer.update(CHANGED)  # second commit: the reader's generation is garbage-collected
    assert not old_gen.exists(), "the reader's generation should have been removed by now"
    after = [[(h.passage_id, round(h.score, 6)) for h in hits] for hits in reader.retrieve_many(questions, top_k=3)]
    assert after == before
    assert {d["id"] for d in reader.documents()} == {d["id"] for d in BASE}
    assert reader.retrieve("Who invented the Wren relay?", top_k=5, mode="bm25")[0].doc_id != "wren"

    reader.refresh()
    assert {d["id"] for d in reader.documents()} == {d["id"] for d in BASE + EXTRA}
    hit = reader.retrieve("Who invented the Wren relay?", top_k=1)[0]
    assert hit.doc_id == "wren" and "renamed in 1950" in hit.text


HOLDER = textwrap.dedent(
    """
    import sys, time
    from hippograph.storage import IndexDir
    with IndexDir(sys.argv[1]).writer_lock():
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_second_writer_gets_clear_error_through_the_api(tmp_path):
    path = tmp_path / "idx"
    hg = HippoGraph.build(BASE, path, Config(embedder="tfidf"))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for attempt in (lambda: hg.add(EXTRA), lambda: hg.delete(["orvik"]), lambda: hg.update(CHANGED),
                        lambda: hg.compact(),
                        lambda: HippoGraph.build(BASE, path, Config(embedder="tfidf"), overwrite=True)):
            with pytest.raises(IndexLockedError, match=rf"another process \(pid {holder.pid}\) is writing"):
                attempt()
        # readers are not blocked by a writer
        assert HippoGraph.open(path).retrieve("Where is Orvik?", top_k=1)[0].doc_id == "orvik"
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert hg.add(EXTRA).added_documents == ["vantry", "wren"]
    assert IndexDir(path).verify() == []
