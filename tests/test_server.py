"""HTTP service: the real `hippograph serve` (uvicorn) in a subprocess on a loopback port, called with httpx.

Two servers start in parallel once per module: a default one (read-only, no token) on the
sample index, and one with `--allow-writes` and a token (from $HIPPOGRAPH_TOKEN) on a copy.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import DATA, ROOT

TOKEN = "s3cret-token"
Q1 = "In which town was the founder of Kessel Shipworks born?"
STARTUP_TIMEOUT = 120


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(index: Path, log: Path, *args: str, env: dict | None = None) -> Server:
    port = _free_port()
    cmd = [sys.executable, "-m", "hippograph.cli", "serve", str(index), "--port", str(port), *args]
    fh = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    fh.close()
    return Server(proc, f"http://127.0.0.1:{port}", log)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not ready after {STARTUP_TIMEOUT} s:\n{server.output()}")


@pytest.fixture(scope="module")
def servers(sample_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    writable = tmp / "writable-index"
    shutil.copytree(sample_index, writable)  # never write to the shared session index
    ro = _start(sample_index, tmp / "ro.log")
    rw = _start(writable, tmp / "rw.log", "--allow-writes", env={"HIPPOGRAPH_TOKEN": TOKEN})
    try:
        _wait_ready(ro)
        _wait_ready(rw)
        yield {"ro": ro, "rw": rw}
    finally:
        for s in (ro, rw):
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(10)


@pytest.fixture(scope="module")
def ro(servers) -> Server:
    return servers["ro"]


@pytest.fixture(scope="module")
def rw(servers) -> Server:
    return servers["rw"]


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [json.loads(line)["question"] for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------- read-only server
def test_retrieve_happy_path_matches_library(ro, sample_index):
    from hippograph import HippoGraph

    r = httpx.post(ro.url + "/retrieve", json={"query": Q1, "top_k": 5, "explain": True}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["query"], body["top_k"], body["mode"]) == (Q1, 5, "hybrid")
    with HippoGraph.open(sample_index) as hg:
        expected = hg.retrieve(Q1, 5)
    assert [h["passage_id"] for h in body["hits"]] == [h.passage_id for h in expected]
    assert [h["score"] for h in body["hits"]] == pytest.approx([h.score for h in expected])
    assert {"Kessel Shipworks", "Aldous Brannock"} <= {h["title"] for h in body["hits"]}
    first, lib = body["hits"][0], expected[0]
    assert (first["doc_id"], first["text"], first["source"], first["span"]) == (
        lib.doc_id, lib.text, lib.source, list(lib.span))
    assert {"seeds", "scores", "router"} <= set(first["explanation"])

    health = httpx.get(ro.url + "/health").json()
    assert health["status"] == "ok" and health["passages"] > 0 and health["writes_enabled"] is False
    stats = httpx.get(ro.url + "/stats").json()
    assert stats["passages"] == health["passages"] and stats["generation"] == health["generation"]
    docs = httpx.get(ro.url + "/documents", params={"limit": 3}).json()
    assert docs["total"] == stats["documents"] and len(docs["documents"]) == 3


def test_batch_equals_single_queries(ro, questions):
    qs = questions[:4]
    r = httpx.post(ro.url + "/retrieve/batch", json={"queries": qs, "top_k": 3, "mode": "bm25"}, timeout=60)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["query"] for x in results] == qs
    for q, res in zip(qs, results):
        single = httpx.post(ro.url + "/retrieve", json={"query": q, "top_k": 3, "mode": "bm25"}, timeout=60).json()
        assert [h["passage_id"] for h in res["hits"]] == [h["passage_id"] for h in single["hits"]]


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"query": ""}, "query", "at least 1 character"),
        ({"query": "  \n\t "}, "query", "blank"),
        ({"query": "x" * 4097}, "query", "at most 4096"),
        ({"query": "ok", "top_k": 0}, "top_k", "greater than or equal to 1"),
        ({"query": "ok", "top_k": 101}, "top_k", "less than or equal to 100"),
        ({"query": "ok", "top_k": "5"}, "top_k", "valid integer"),
        ({"query": "ok", "mode": "vector"}, "mode", "'hybrid', 'ppr', 'dense' or 'bm25'"),
        ({"query": "ok", "topk": 5}, "topk", "Extra inputs are not permitted"),
        ({"top_k": 5}, "query", "Field required"),
    ],
)
def test_validation_errors_are_clear_4xx(ro, body, field, words):
    r = httpx.post(ro.url + "/retrieve", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"].startswith(f"{field}: ") and words in err["message"]
    assert any(e["loc"][-1] == field for e in err["detail"])


def test_metadata_filters(ro, sample_index):
    from hippograph import HippoGraph

    flt = {"operator": "AND", "conditions": [{"field": "doc_id", "operator": "in", "value": ["places/Kesselby.txt",
                                                                                             "people/Edda_Marrow.md"]}]}
    lib = HippoGraph.open(sample_index)
    r = httpx.post(ro.url + "/retrieve", json={"query": Q1, "top_k": 5, "filters": flt}, timeout=60)
    assert r.status_code == 200, r.text
    assert [h["passage_id"] for h in r.json()["hits"]] == [h.passage_id for h in lib.retrieve(Q1, 5, filters=flt)]
    assert {h["doc_id"] for h in r.json()["hits"]} == {"places/Kesselby.txt", "people/Edda_Marrow.md"}
    people = {"doc_id": {"$prefix": "people/"}}
    b = httpx.post(ro.url + "/retrieve/batch", json={"queries": [Q1, "Who built the Meriden Star?"], "top_k": 3,
                                                     "filters": people}, timeout=60)
    assert b.status_code == 200, b.text
    assert [[h["passage_id"] for h in res["hits"]] for res in b.json()["results"]] == [
        [h.passage_id for h in hits] for hits in lib.retrieve_many([Q1, "Who built the Meriden Star?"], 3, filters=people)]
    bad = httpx.post(ro.url + "/retrieve", json={"query": Q1, "filters": {"year": {"$foo": 1}}}, timeout=30)
    assert bad.status_code == 422
    assert bad.json()["message"] == ("filters: filters.year.$foo: unknown operator '$foo'; expected one of "
                                     "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $prefix, $glob, $exists")
    lib.close()


def test_malformed_and_oversize_requests(ro):
    bad_json = httpx.post(ro.url + "/retrieve", content=b'{"query": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and "invalid JSON" in bad_json.json()["message"]
    empty_batch = httpx.post(ro.url + "/retrieve/batch", json={"queries": []})
    assert empty_batch.status_code == 422 and "queries" in empty_batch.json()["message"]
    big_batch = httpx.post(ro.url + "/retrieve/batch", json={"queries": ["q"] * 65})
    assert big_batch.status_code == 422 and "at most 64" in big_batch.json()["message"]

    huge = json.dumps({"query": "x" * (2 << 20)}).encode()
    r = httpx.post(ro.url + "/retrieve", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    def chunks():  # no Content-Length: the server must count streamed bytes
        for _ in range(40):
            yield b"x" * 65536

    r = httpx.post(ro.url + "/retrieve", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.get(ro.url + "/retrieve").status_code == 405


def test_read_only_by_default(ro):
    r = httpx.post(ro.url + "/documents", json={"documents": [{"id": "n1", "text": "Some new text."}]})
    assert r.status_code == 403 and "--allow-writes" in r.json()["detail"]
    r = httpx.delete(ro.url + "/documents/places/Kesselby.txt")
    assert r.status_code == 403 and "--allow-writes" in r.json()["detail"]


def test_concurrent_requests_all_correct(ro, questions):
    qs = [questions[i % len(questions)] for i in range(200)]
    reference = {}
    with httpx.Client(base_url=ro.url, timeout=120) as c:
        for q in dict.fromkeys(qs):
            reference[q] = [h["passage_id"] for h in c.post("/retrieve", json={"query": q, "top_k": 5}).json()["hits"]]
    local = threading.local()

    def call(q: str):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=ro.url, timeout=120)
        r = local.client.post("/retrieve", json={"query": q, "top_k": 5})
        return q, r.status_code, [h["passage_id"] for h in r.json().get("hits", [])]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, qs))
    assert len(results) == 200
    wrong = [(q, status) for q, status, ids in results if status != 200 or ids != reference[q]]
    assert not wrong, wrong[:5]


def test_openapi_served_and_checked_in_spec_are_current(ro):
    from hippograph.server import openapi_json

    checked_in = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == openapi_json(), "docs/openapi.json is stale: run python eval/gen_openapi.py"
    served = httpx.get(ro.url + "/openapi.json").json()
    assert served == json.loads(checked_in)
    assert {"/retrieve", "/retrieve/batch", "/health", "/stats", "/documents", "/documents/{doc_id}"} <= set(served["paths"])


def test_schemathesis_finds_no_server_errors(ro, tmp_path):
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "run", ro.url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "5",
           "--seed", "7", "--generation-database", "none", "--no-color", "--request-timeout", "30"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "passed" in out.stdout and "Server error" not in out.stdout


# ---------------------------------------------------------------------------- writable server with token
def test_bearer_token(rw):
    body = {"query": Q1, "top_k": 2}
    assert httpx.post(rw.url + "/retrieve", json=body).status_code == 401
    wrong = httpx.post(rw.url + "/retrieve", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in wrong.json()["detail"]
    ok = httpx.post(rw.url + "/retrieve", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 2
    assert httpx.get(rw.url + "/stats").status_code == 401
    assert httpx.get(rw.url + "/health").status_code == 200  # liveness probes need no token


def test_add_documents_then_retrieve_finds_them(rw):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = httpx.get(rw.url + "/health").json()["generation"]
    doc = {
        "id": "memo-quill",
        "title": "Quillmarsh Lighthouse",
        "text": "The Quillmarsh Lighthouse was designed by Oriel Fenwick in 1899. "
        "It stands on the northern cape of Tamsey and guards the Corran estuary.",
        "metadata": {"author": "test"},
    }
    r = httpx.post(rw.url + "/documents", json={"documents": [doc]}, headers=auth, timeout=120)
    assert r.status_code == 200, r.text
    added = r.json()
    assert added["added"]["documents"] == 1 and added["generation"] != before

    q = {"query": "Who designed the Quillmarsh Lighthouse?", "top_k": 3}
    hits = httpx.post(rw.url + "/retrieve", json=q, headers=auth, timeout=60).json()["hits"]
    assert hits[0]["doc_id"] == "memo-quill" and hits[0]["metadata"]["author"] == "test"

    again = httpx.post(rw.url + "/documents", json={"documents": [doc]}, headers=auth, timeout=120).json()
    assert again["added"].get("documents", 0) == 0 and again["skipped_documents"] == ["memo-quill"]
    invalid = httpx.post(rw.url + "/documents", json={"documents": [{"id": "x", "text": " "}]}, headers=auth)
    assert invalid.status_code == 422 and "text is blank" in invalid.json()["message"]


def test_delete_document(rw):
    from hippograph import HippoGraph

    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.delete(rw.url + "/documents/places/Kesselby.txt", headers=auth, timeout=120)
    if not hasattr(HippoGraph, "delete"):  # deletion lands with the index-lifecycle issue
        assert r.status_code == 501 and "not implemented" in r.json()["detail"]
        return
    assert r.status_code == 200, r.text
    ids = {d["id"] for d in httpx.get(rw.url + "/documents", params={"limit": 1000}, headers=auth).json()["documents"]}
    assert "places/Kesselby.txt" not in ids
    assert httpx.delete(rw.url + "/documents/places/Kesselby.txt", headers=auth).status_code == 404


def test_sigterm_finishes_in_flight_request_and_exits_zero(rw, questions):
    """Graceful shutdown: a request already being served completes, then the process exits 0."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    box = {}

    def slow_request():
        body = {"queries": questions[:25], "top_k": 10, "explain": True}
        try:
            box["response"] = httpx.post(rw.url + "/retrieve/batch", json=body, headers=auth, timeout=120)
        except httpx.HTTPError as exc:  # pragma: no cover - reported by the assertion below
            box["error"] = exc

    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(0.5)
    rw.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = rw.proc.wait(timeout=30)
    t.join(30)
    assert rc == 0, rw.output()
    assert time.monotonic() - t0 < 30
    assert "error" not in box, box.get("error")
    assert box["response"].status_code == 200 and len(box["response"].json()["results"]) == 25
    assert "Shutting down" in rw.output()


def test_workers_see_each_others_writes(sample_index, tmp_path, monkeypatch):
    """Two worker apps (as `--workers 2` builds them from the environment) on one index:
    a document added through one is found through the other without a restart."""
    from fastapi.testclient import TestClient

    from hippograph.server import SETTINGS_ENV, _app_from_env

    index = tmp_path / "shared-index"
    shutil.copytree(sample_index, index)
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"index_dir": str(index), "allow_writes": True, "warm_up": False}))
    with TestClient(_app_from_env()) as a, TestClient(_app_from_env()) as b:
        gen = b.get("/health").json()["generation"]
        doc = {"id": "memo-bell", "title": "Harrow Bell", "text": "The Harrow Bell was cast by Petra Vell in 1702."}
        assert a.post("/documents", json={"documents": [doc]}).status_code == 200
        hits = b.post("/retrieve", json={"query": "Who cast the Harrow Bell?", "top_k": 3}).json()["hits"]
        assert hits[0]["doc_id"] == "memo-bell"
        assert b.get("/health").json()["generation"] != gen


def test_refuses_public_writes_without_token(sample_index, capsys, monkeypatch):
    from hippograph.cli import main

    monkeypatch.delenv("HIPPOGRAPH_TOKEN", raising=False)
    rc = main(["serve", str(sample_index), "--host", "0.0.0.0", "--allow-writes"])
    assert rc == 1
    assert "without a token" in capsys.readouterr().err
