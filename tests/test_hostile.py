"""Hostile and damaged inputs (issue #15): every case ends in one clear error naming the file or
option, never a traceback, a crash, a read outside the index, or a model loaded from a path an
index names.

Damaged-index cases tamper with a copy of a small TF-IDF index and (where the issue says "with
the manifest checksum updated") re-record the checksums, so only structural validation can
catch them; `hippograph check` must then report the file too.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hippograph import Config, HippoGraph
from hippograph.cli import main as cli
from hippograph.errors import ConfigError, IndexCorruptError
from hippograph.storage import sha256_file

from .conftest import DATA


@pytest.fixture(scope="module")
def base_index(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "idx"
    HippoGraph.build(DATA / "corpus" / "people", path, Config(embedder="tfidf"))
    return path


@pytest.fixture()
def index(base_index, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(base_index, copy)
    return copy


def _manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text())


def _gen(index: Path) -> Path:
    return index / _manifest(index)["generation"]


def _write_manifest(index: Path, data: dict) -> None:
    (index / "manifest.json").write_text(json.dumps(data))


def _rechecksum(index: Path) -> None:
    """Record the tampered files' checksums, as an attacker (or a buggy tool) would."""
    m = _manifest(index)
    gen = index / m["generation"]
    m["checksums"] = {k: sha256_file(gen / k) for k in m["checksums"]}
    _write_manifest(index, m)


def _check(index: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(["check", str(index)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _query_all_modes(index: Path) -> None:
    hg = HippoGraph.open(index)
    for mode in ("hybrid", "ppr", "dense", "bm25"):
        hg.retrieve("Who founded Kessel Shipworks?", top_k=3, mode=mode)


# ---- 1. out-of-range graph indices: a segfault before ---------------------------------------------
@pytest.mark.parametrize("value", [10**6, -5])
def test_out_of_range_graph_indices_are_refused(index, capsys, value):
    path = _gen(index) / "graph" / "upper_indices.npy"
    arr = np.load(path)
    arr[len(arr) // 2] = value
    np.save(path, arr)
    _rechecksum(index)
    # run in a subprocess: before the fix this was a segmentation fault (exit 139)
    code = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from hippograph import HippoGraph
            from hippograph.errors import IndexCorruptError
            try:
                hg = HippoGraph.open({str(index)!r})
                for mode in ("hybrid", "ppr"):
                    hg.retrieve("Who founded Kessel Shipworks?", mode=mode)
            except IndexCorruptError as exc:
                assert "upper_indices.npy" in str(exc), exc
                raise SystemExit(3)
        """)], capture_output=True, text=True, timeout=300)
    assert code.returncode == 3, code.stderr
    status, out = _check(index, capsys)
    assert status == 1 and "indices.npy" in out and "Traceback" not in out


@pytest.mark.parametrize("damage, match", [
    ("non_monotone", "upper_indptr.npy: graph adjacency indptr is not monotone"),
    ("indptr_end", "upper_indptr.npy"),
    ("below_diagonal", "upper_indices.npy: graph adjacency holds an entry on or below the diagonal"),
    ("weights_nan", "pair_weights.npy: entity-pair edge weights holds NaN"),
    ("kinds_short", "pair_kinds.npy: entity-pair edge kinds has"),
    ("kinds_mention", "pair_kinds.npy: entity-pair edge kinds must be"),
])
def test_graph_array_damage_names_the_file(index, damage, match):
    g = _gen(index) / "graph"
    if damage == "non_monotone":
        a = np.load(g / "upper_indptr.npy")
        a[1], a[2] = a[2] + 1, a[1]
        np.save(g / "upper_indptr.npy", a)
    elif damage == "indptr_end":
        a = np.load(g / "upper_indptr.npy")
        a[-1] += 7
        np.save(g / "upper_indptr.npy", a)
    elif damage == "below_diagonal":
        a, ptr = np.load(g / "upper_indices.npy"), np.load(g / "upper_indptr.npy")
        row = int(np.flatnonzero(np.diff(ptr))[-1])  # the last row with entries
        a[ptr[row]] = row
        np.save(g / "upper_indices.npy", a)
    elif damage == "weights_nan":
        a = np.load(g / "pair_weights.npy")
        a[0] = np.nan
        np.save(g / "pair_weights.npy", a)
    elif damage == "kinds_short":
        np.save(g / "pair_kinds.npy", np.load(g / "pair_kinds.npy")[:-1])
    else:
        np.save(g / "pair_kinds.npy", np.ones_like(np.load(g / "pair_kinds.npy")))
    with pytest.raises(IndexCorruptError, match=match):
        HippoGraph.open(index)


# ---- 3. tracebacks from damaged files ----------------------------------------------------------------
def test_zero_byte_npy(index, capsys):
    (_gen(index) / "graph" / "pair_weights.npy").write_bytes(b"")
    with pytest.raises(IndexCorruptError, match="pair_weights.npy"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "pair_weights.npy" in out


def test_npy_header_claiming_a_trillion_rows_is_refused_before_allocation(index, capsys):
    path = _gen(index) / "graph" / "pair_weights.npy"
    arr = np.load(path)
    with open(path, "wb") as fh:  # a valid header claiming 10^12 rows, then the real (small) data
        np.lib.format.write_array_header_1_0(fh, {"descr": arr.dtype.str, "fortran_order": False,
                                                  "shape": (10**12,)})
        fh.write(arr.tobytes())
    _rechecksum(index)
    with pytest.raises(IndexCorruptError, match=r"pair_weights.npy: header says \(1000000000000,\)"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "pair_weights.npy" in out


def test_bm25_meta_with_absurd_num_docs(index, capsys):
    path = _gen(index) / "lexical" / "passages" / "bm25_meta.json"
    meta = json.loads(path.read_text())
    meta["num_docs"] = 10**15
    path.write_text(json.dumps(meta))
    _rechecksum(index)
    with pytest.raises(IndexCorruptError, match="bm25_meta.json: BM25 metadata field 'num_docs'"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "bm25_meta.json" in out  # `check` said "ok" before


@pytest.mark.parametrize("field, value", [
    ("generation", 3), ("checksums", ["a"]), ("config", ["top_k"]), ("embedder", ["tfidf"]),
    ("counts", {"passages": "many"}), ("timings", []), ("format_version", "1"),
])
def test_manifest_with_wrong_types(index, capsys, field, value):
    m = _manifest(index)
    m[field] = value
    _write_manifest(index, m)
    with pytest.raises(IndexCorruptError, match=f"manifest.json: .*{field}"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "manifest.json" in out and "Traceback" not in out


def test_passage_metadata_that_is_not_json(index):
    import sqlite3

    db = _gen(index) / "meta.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE passages SET metadata = '{not json'")
        conn.execute("UPDATE documents SET metadata = '{not json'")
    conn.close()
    hg = HippoGraph.open(index)
    with pytest.raises(IndexCorruptError, match="meta.sqlite: passage row .* damaged"):
        hg.retrieve("Who founded Kessel Shipworks?")
    with pytest.raises(IndexCorruptError, match="meta.sqlite: metadata of document"):
        hg.documents()


def test_table_row_numbers_out_of_range(index):
    import sqlite3

    with sqlite3.connect(_gen(index) / "meta.sqlite") as conn:
        conn.execute("UPDATE facts SET subject_idx = 999999 WHERE idx = 0")
    conn.close()
    with pytest.raises(IndexCorruptError, match="meta.sqlite: facts.subject_idx holds values outside"):
        HippoGraph.open(index)


@pytest.mark.parametrize("mode", ["hybrid", "ppr", "dense", "bm25"])
def test_lone_surrogate_query(base_index, mode):
    hits = HippoGraph.open(base_index).retrieve("Who founded \ud800 Kessel Shipworks?", top_k=3, mode=mode)
    assert len(hits) <= 3


# ---- config --------------------------------------------------------------------------------------------
def test_config_file_with_wrong_types_is_refused_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"top_k": "5", "damping": "high"}))
    code = cli(["index", str(DATA / "corpus" / "people"), "--index", str(tmp_path / "idx"), "--config", str(cfg),
                "--embedder", "tfidf", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "cfg.json: config option top_k must be an integer, got '5'" in err
    assert not (tmp_path / "idx" / "manifest.json").exists()  # nothing written


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": "5"}, "config option top_k must be an integer, got '5'"),
    ({"damping": "high"}, "config option damping must be a finite number, got 'high'"),
    ({"damping": 1.5}, "config option damping must be a number in 0..1"),
    ({"mode": "magic"}, "config option mode must be one of"),
    ({"include": "*.md"}, "config option include must be a list of strings"),
    ({"chunk_words": 0}, "config option chunk_words must be an integer ≥ 1"),
    ({"use_ppr": "yes"}, "config option use_ppr must be true or false"),
    ({"fixed_weights": {"passages": "x"}}, "config option fixed_weights must be an object of finite numbers"),
    ({"fallback_encodings": ["no-such-codec"]}, "fallback_encodings must be a list of known text encodings"),
])
def test_config_is_validated_from_python(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)
    with pytest.raises(ConfigError, match=message):
        Config().replace(**kwargs)


def test_every_config_option_is_type_checked():
    """Generic over Config's fields: a value of the wrong JSON type is refused for every option."""
    from dataclasses import fields

    for f in fields(Config):
        default = getattr(Config(), f.name)
        wrong = {"a": 1} if not isinstance(default, dict) else ["a"]
        with pytest.raises(ConfigError, match=f"config option {f.name} must be"):
            Config(**{f.name: wrong})


def test_query_overrides_are_validated(base_index):
    hg = HippoGraph.open(base_index)
    with pytest.raises(ConfigError, match="damping"):
        hg.retrieve("Kessel", damping="high")
    with pytest.raises(ConfigError, match="damping"):
        HippoGraph.open(base_index, damping="high")


def test_old_manifest_with_bad_config_value_names_the_default(index, capsys):
    m = _manifest(index)
    m["config"]["top_k"] = "5"
    _write_manifest(index, m)
    with pytest.raises(IndexCorruptError, match=r"manifest.json: config option top_k must be an integer, got '5'; "
                                                r"the default is 10"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "the default is 10" in out


# ---- 4. confinement ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["/etc/passwd", "../../x", "graph/../../../etc/passwd"])
def test_checksum_keys_outside_the_generation_are_never_opened(index, capsys, key):
    m = _manifest(index)
    m["checksums"][key] = "0" * 64
    _write_manifest(index, m)
    with pytest.raises(IndexCorruptError, match="outside the index directory"):
        HippoGraph.open(index)
    status, out = _check(index, capsys)
    assert status == 1 and "outside the index directory" in out


def test_generation_or_file_symlinked_outside_is_refused(index, tmp_path):
    outside = tmp_path / "elsewhere"
    gen = _gen(index)
    shutil.copytree(gen, outside)
    weights = gen / "graph" / "pair_weights.npy"
    weights.unlink()
    weights.symlink_to(outside / "graph" / "pair_weights.npy")
    with pytest.raises(IndexCorruptError, match="pair_weights.npy: symlink leads outside the index directory"):
        HippoGraph.open(index)
    shutil.rmtree(gen)
    gen.symlink_to(outside, target_is_directory=True)
    with pytest.raises(IndexCorruptError, match="generation directory resolves outside the index directory"):
        HippoGraph.open(index)


def test_models_named_by_path_in_an_index_are_never_loaded(index, tmp_path, caplog):
    trap = tmp_path / "trap_model"
    trap.mkdir()
    (trap / "modules.json").write_text("this would be read if the model were loaded")
    (trap / "config.json").write_text("{}")
    (trap / "pytorch_model.bin").write_bytes(b"\x80\x04 pickled payload")
    m = _manifest(index)
    m["config"]["spacy_model"] = str(trap)
    m["embedder"] = {"backend": "sentence-transformers", "model": str(trap), "path": str(trap),
                     "dim": m["embedder"]["dim"]}  # the stored vectors' dimension: consistent, as crafted
    _write_manifest(index, m)
    before = {p.name: p.stat().st_atime_ns for p in trap.iterdir()}
    with caplog.at_level(logging.WARNING):
        hg = HippoGraph.open(index)
    assert hg.config.spacy_model == Config().spacy_model and "not a package name" in caplog.text
    with pytest.raises(IndexCorruptError, match="names its embedding model by path"):
        hg.retrieve("Who founded Kessel Shipworks?", mode="dense")
    assert {p.name: p.stat().st_atime_ns for p in trap.iterdir()} == before


# ---- fuzz: random byte damage anywhere in an index -------------------------------------------------------
def test_random_byte_damage_ends_in_success_or_index_corrupt_error():
    """200 mutations (HG_FUZZ_MUTATIONS for more) of random bytes of every file of a small format-v2
    index (int8 embeddings; SPANN posting lists of ids for sentences, facts and entities, a flat index
    for passages); each trial opens, queries in all modes, lists documents and runs `check` in a child
    process (a signal would be recorded as a bad outcome). The ≥ 2,000-mutation runs: eval/results/fuzz.md."""
    n = int(os.environ.get("HG_FUZZ_MUTATIONS", "200"))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "eval.fuzz_index", "--mutations", str(n), "--seed", "15",
                           "--spann-min-vectors", "20", "--json"],
                          cwd=root, capture_output=True, text=True, timeout=1200,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    summary = json.loads(proc.stdout)
    assert summary["bad"] == [], summary["bad"][:3]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sum(summary["counts"].values()) == n and summary["counts"].get("corrupt", 0) > n // 4
    assert summary["vectors"] == {"passages": "flat", "sentences": "spann", "facts": "spann", "entities": "spann"}
    # `check` hashes every file: it finds every damage except edits of the manifest that keep it valid
    assert set(summary["check_said_ok_files"]) <= {"manifest.json"}


# ---- 2. extraction: one overlong token must not abort a write ---------------------------------------------
def test_overlong_token_is_left_out_of_extraction_and_named(tmp_path, capsys, caplog):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.txt").write_text("Aldous Brannock founded Kessel Shipworks. " + "x" * 1_100_000 + " The end.")
    (src / "fine.txt").write_text("Orvik is an island near Kesselby. Mara Quell was born in Orvik.")
    with caplog.at_level(logging.WARNING):
        code = cli(["index", str(src), "--index", str(tmp_path / "idx"), "--embedder", "tfidf", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "blob.txt" in caplog.text and "longer than" in caplog.text
    hg = HippoGraph.open(tmp_path / "idx")
    assert {d["id"] for d in hg.documents()} == {"blob.txt", "fine.txt"}
    assert "Kessel Shipworks" in " ".join(hg.snapshot.entities).title() or hg.stats()["facts"] > 0
    assert hg.retrieve("Where was Mara Quell born?", top_k=1)[0].doc_id == "fine.txt"


# ---- write path: a full disk ends in one line, the old state kept ------------------------------------------
_LIMITED_CLI = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from hippograph.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _limited_cli(limit: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _LIMITED_CLI, str(limit), *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))


def test_file_size_limit_during_a_build_is_one_line_and_leaves_nothing(tmp_path):
    idx = tmp_path / "idx"
    proc = _limited_cli(20_000, "index", str(DATA / "corpus" / "people"), "--index", str(idx),
                        "--embedder", "tfidf", "-q")
    err = proc.stderr.strip()
    assert proc.returncode == 1 and err.count("\n") == 0, err
    assert "Traceback" not in err and str(idx) in err and "nothing was committed" in err
    assert not (idx / "manifest.json").exists() and not [p for p in idx.iterdir() if "gen-" in p.name]


@pytest.mark.parametrize("headroom", [0, 40_000])
def test_file_size_limit_during_an_update_keeps_the_old_generation(index, tmp_path, headroom):
    before = _manifest(index)
    biggest = max(p.stat().st_size for p in index.rglob("*") if p.is_file())
    more = tmp_path / "more"
    shutil.copytree(DATA / "corpus" / "places", more)
    proc = _limited_cli(biggest + headroom, "index", str(DATA / "corpus" / "people"), str(more), "--index", str(index),
                        "-q")
    err = proc.stderr.strip()
    assert proc.returncode == 1 and err.count("\n") == 0, err
    assert "Traceback" not in err and str(index) in err and "the index is unchanged" in err
    assert _manifest(index) == before
    hg = HippoGraph.open(index)
    assert hg.dir.verify() == [] and hg.retrieve("Who founded Kessel Shipworks?", top_k=1)


# ---- 6. decoding policy ----------------------------------------------------------------------------------------
def test_decoding_policy_warns_for_every_fallback(tmp_path, caplog):
    from hippograph.indexers.loaders import load_documents

    (tmp_path / "utf8.txt").write_text("Caf\u00e9 Orvik.", encoding="utf-8")
    (tmp_path / "bom8.txt").write_bytes("\ufeffCaf\u00e9 Kesselby.".encode("utf-8"))
    (tmp_path / "bom16.txt").write_text("Caf\u00e9 Drumlow.", encoding="utf-16")
    (tmp_path / "cp1252.txt").write_bytes("Caf\u00e9 \u201cquoted\u201d.".encode("cp1252"))
    (tmp_path / "lines.jsonl").write_bytes(b'{"id": "a", "text": "fine"}\n' + '{"id": "b", "text": "Caf\u00e9"}'.encode("latin-1") + b"\n")
    with caplog.at_level(logging.WARNING):
        docs, report = load_documents(tmp_path, Config())
    texts = {d.id: d.text for d in docs}
    assert texts["utf8.txt"] == "Caf\u00e9 Orvik." and texts["bom8.txt"] == "Caf\u00e9 Kesselby."
    assert texts["bom16.txt"] == "Caf\u00e9 Drumlow." and texts["cp1252.txt"] == "Caf\u00e9 \u201cquoted\u201d."
    assert texts["b"] == "Caf\u00e9"
    warned = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(warned) == 2
    assert any("cp1252.txt: not valid UTF-8; decoded as cp1252" in w for w in warned)
    assert any("lines.jsonl (line 2): not valid UTF-8" in w for w in warned)
    # with no fallbacks, the non-UTF-8 files are skipped, named
    docs, report = load_documents(tmp_path, Config(fallback_encodings=[]))
    assert "cp1252.txt" not in {d.id for d in docs}
    assert any(w.endswith("cp1252.txt") and "undecodable" in r for w, r in report.skipped)


# ---- 5. server ---------------------------------------------------------------------------------------------------
def _client(index: Path, **kw):
    from fastapi.testclient import TestClient

    from hippograph.server import create_app

    return TestClient(create_app(index, warm_up=False, **kw))


def test_server_serves_the_last_good_generation_and_says_degraded(index):
    with _client(index, allow_writes=True) as client:
        first = client.post("/retrieve", json={"query": "Who founded Kessel Shipworks?"}).json()
        writer = HippoGraph.open(index)  # another process's write: a new generation …
        writer.add([{"id": "new", "title": "New", "text": "Mara Quell sailed from Orvik to Drumlow."}])
        writer.close()
        path = _gen(index) / "graph" / "upper_indices.npy"  # … that is damaged before the server opens it
        arr = np.load(path)
        arr[0] = 10**6
        np.save(path, arr)
        r = client.post("/retrieve", json={"query": "Who founded Kessel Shipworks?"})
        assert r.status_code == 200 and r.json()["generation"] == first["generation"]
        assert [h["passage_id"] for h in r.json()["hits"]] == [h["passage_id"] for h in first["hits"]]
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["generation"] == first["generation"]
        assert "indices.npy" in health["reason"] and str(index) not in json.dumps(health)
        assert "/" + _gen(index).name + "/graph/indices.npy" not in health["reason"]  # relative, not absolute


def test_health_reads_the_live_manifest(index):
    with _client(index) as client:
        before = client.get("/health").json()["generation"]
        writer = HippoGraph.open(index)
        writer.add([{"id": "new", "title": "New", "text": "Mara Quell sailed from Orvik to Drumlow."}])
        live = writer.manifest.generation
        writer.close()
        health = client.get("/health").json()
        assert health["generation"] == live != before and health["status"] == "ok" and health["reason"] is None


def test_no_absolute_paths_in_responses(index):
    from hippograph.storage import IndexDir

    with _client(index, allow_writes=True) as client:
        stats = client.get("/stats").text
        assert str(index) not in stats and str(index.resolve()) not in stats
        with IndexDir(index).writer_lock():  # another writer holds the index: 409 naming no server path
            r = client.post("/documents", json={"documents": [{"id": "x", "text": "Orvik is an island."}]})
        assert r.status_code == 409 and str(index) not in r.text and "another process" in r.text


def test_authentication_happens_before_the_body_is_read(index):
    import asyncio

    from hippograph.server import create_app

    app = create_app(index, warm_up=False, allow_writes=True, token="s3cret")
    reads, sent = [], []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * (1 << 20), "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/documents", "raw_path": b"/documents", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", str(30 << 20).encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 401 and reads == []  # 30 MB announced, not one byte read


def test_unexpected_host_header_is_refused(index):
    from hippograph.server import LOOPBACK_HOSTS

    with _client(index, allowed_hosts=[*LOOPBACK_HOSTS, "search.internal"]) as client:
        assert client.get("/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
        assert client.get("/health", headers={"Host": "[::1]:8000"}).status_code == 200
        assert client.get("/health", headers={"Host": "search.internal"}).status_code == 200
        r = client.post("/retrieve", json={"query": "Kessel"}, headers={"Host": "evil.example"})
        assert r.status_code == 400 and "unexpected Host header" in r.json()["detail"]


@pytest.mark.parametrize("document, where", [
    ({"id": "a\x00b", "text": "Orvik is an island."}, "id"),
    ({"id": "a\x1bb", "text": "Orvik is an island."}, "id"),
    ({"id": "deep", "text": "Orvik is an island.", "metadata": json.loads('{"a": ' * 33 + "1" + "}" * 33)}, "metadata"),
    ({"id": "blob", "text": "Orvik. " + "x" * 100_001}, "text"),
])
def test_changed_or_dropped_inputs_are_refused_with_422(index, document, where):
    with _client(index, allow_writes=True) as client:
        r = client.post("/documents", json={"documents": [document]})
        assert r.status_code == 422, r.text
        assert f"documents.0.{where}" in r.json()["message"]
        ok = {"a": {"b": [1, 2, {"c": 3}]}}
        r = client.post("/documents", json={"documents": [{"id": "fine", "text": "Orvik is an island.", "metadata": ok}]})
        assert r.status_code == 200 and r.json()["skipped_documents"] == []


def test_duplicate_ids_in_one_request_are_listed(index):
    with _client(index, allow_writes=True) as client:
        docs = [{"id": "dup", "text": "Orvik is an island."}, {"id": "dup", "text": "Kesselby is a town."},
                {"id": "other", "text": "Drumlow has a university."}]
        body = client.post("/documents", json={"documents": docs}).json()
        assert body["skipped_documents"] == ["dup"] and body["added"]["documents"] == 2


def test_real_server_on_loopback_refuses_foreign_host_by_default(index, tmp_path):
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "hippograph.cli", "serve", str(index), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        assert r.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "localhost:1"}).status_code == 200
        evil = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "evil.example"})
        assert evil.status_code == 400 and "unexpected Host header" in evil.text
    finally:
        proc.send_signal(2)
        proc.wait(timeout=30)
        log.close()


# ---- format v2: embeddings with int8 scales, SPANN posting lists of ids, MinHash sketches -----------------------
# A v2 index whose sentences, facts and entities are SPANN indexes (posting lists hold vector ids only; the
# vectors are read from the generation's int8 embeddings). Damage is crafted with every checksum re-recorded —
# the SPANN headers' CRCs and the manifest's — so only structural validation can catch it.
@pytest.fixture(scope="module")
def spann_base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_v2") / "idx"
    HippoGraph.build(DATA / "corpus" / "people", path, Config(embedder="tfidf", spann_min_vectors=20)).close()
    return path


@pytest.fixture()
def spann_index(spann_base, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(spann_base, copy)
    return copy


def _reseal(index: Path) -> None:
    """Re-record every checksum a tool could: the SPANN headers' file sizes and CRCs (posting segments
    included), then the manifest's sha256 (per segment for the append-only posting files)."""
    import zlib

    from hippograph.storage import sha256_range

    gen = _gen(index)
    for hdr in gen.glob("vectors/*/header.json"):
        h = json.loads(hdr.read_text())
        for rec in h["files"].values():
            if isinstance(rec, dict) and "name" in rec:
                data = (hdr.parent / rec["name"]).read_bytes()
                rec["bytes"], rec["crc32"] = len(data), zlib.crc32(data) & 0xFFFFFFFF
            elif isinstance(rec, dict) and "ref" in rec:  # a flat index over the generation's embeddings
                rec["bytes"] = (hdr.parent / rec["ref"]).stat().st_size
        post = h.get("postings")
        if post and set(post) & {"ids", "vectors", "sketches"} == {"ids"}:  # ids-only posting lists
            data = (hdr.parent / post["ids"]).read_bytes()[: 8 * post["n_entries"]]
            post["segments"] = [[post["n_entries"], zlib.crc32(data) & 0xFFFFFFFF]]
        hdr.write_text(json.dumps(h))
    m = _manifest(index)
    for rel, value in m["checksums"].items():
        size = (gen / rel).stat().st_size
        m["checksums"][rel] = (f"segments:0-{size}:{sha256_range(gen / rel, 0, size)}" if value.startswith("segments:")
                               else sha256_file(gen / rel))
    _write_manifest(index, m)


def _assert_refused(index: Path, capsys, name: str, message: str = "") -> None:
    """Open + every query mode ends in one IndexCorruptError line naming `name`; `check` names it too."""
    with pytest.raises(IndexCorruptError) as err:
        _query_all_modes(index)
    text = str(err.value)
    assert name in text and message in text and "\n" not in text, text
    status, out = _check(index, capsys)
    assert status == 1 and name in out and "Traceback" not in out, out


def _edit_npy(path: Path, fn) -> None:
    np.save(path, fn(np.load(path)))


def _set(a: np.ndarray, i, value) -> np.ndarray:
    a = a.copy()
    a[i] = value
    return a


def test_v2_fixture_is_what_these_tests_assume(spann_base, capsys):
    hg = HippoGraph.open(spann_base)
    kinds = {g: v["kind"] for g, v in hg.manifest.lifecycle["vectors"].items()}
    assert kinds == {"passages": "flat", "sentences": "spann", "facts": "spann", "entities": "spann"}
    assert hg.manifest.format_version >= 2 and hg.config.embedding_storage == "int8"  # v2 files and later
    header = json.loads((_gen(spann_base) / "vectors" / "facts" / "header.json").read_text())
    post = header["postings"]
    assert "vectors" not in post and post["ids"].endswith(".i32") and post["id_bytes"] == 4  # int32 ids only
    _query_all_modes(spann_base)
    assert _check(spann_base, capsys)[0] == 0


@pytest.mark.parametrize("gran, value", [("sentences", 10**6), ("facts", -5), ("entities", "rows")])
def test_spann_posting_ids_outside_the_embeddings_are_refused_on_open(spann_index, capsys, gran, value):
    """Before: an out-of-range id read as a zero vector and a negative one was dropped, silently."""
    gen = _gen(spann_index)
    path = next((gen / "vectors" / gran).glob("postings.*.i32"))
    ids = np.fromfile(path, dtype=np.int32)
    rows = len(np.load(gen / "embeddings" / f"{gran}.npy", mmap_mode="r"))
    _set(ids, len(ids) // 2, rows if value == "rows" else value).tofile(path)
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name, "posting")


def test_spann_posting_ids_are_bounded_by_the_vector_id_map_after_a_delete(spann_index, capsys):
    hg = HippoGraph.open(spann_index)
    hg.delete([hg.documents()[0]["id"]])
    hg.close()
    gen = _gen(spann_index)
    vid2row = np.load(gen / "vectors" / "sentences.vid2row.npy")
    assert (vid2row == -1).any()  # ids are no longer row numbers
    _query_all_modes(spann_index)
    path = next((gen / "vectors" / "sentences").glob("postings.*.i32"))
    ids = np.fromfile(path, dtype=np.int32)
    n = json.loads((gen / "vectors" / "sentences" / "header.json").read_text())["postings"]["n_entries"]
    _set(ids, n - 1, len(vid2row)).tofile(path)
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name, "posting")


@pytest.mark.parametrize("gran, damage", [("facts", "nan"), ("sentences", "inf"), ("entities", "negative"),
                                          ("passages", "inf")])
def test_int8_scales_must_be_finite_and_non_negative(spann_index, capsys, gran, damage):
    """Before: a NaN scale ended a query in a ValueError traceback from the fusion step."""
    path = _gen(spann_index) / "embeddings" / f"{gran}.scale.npy"
    _edit_npy(path, lambda a: -a if damage == "negative" else _set(a, slice(None), np.nan if damage == "nan" else np.inf))
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name, "scale")


@pytest.mark.parametrize("gran, change", [("sentences", -10), ("entities", 5), ("facts", -1)])
def test_embeddings_rows_must_match_the_tables(spann_index, capsys, gran, change):
    """Before: sentences and entities embeddings were never counted against the tables."""
    emb = _gen(spann_index) / "embeddings"
    pick = (lambda a: a[:change]) if change < 0 else (lambda a: np.concatenate([a, a[:change]]))
    _edit_npy(emb / f"{gran}.npy", pick)
    _edit_npy(emb / f"{gran}.scale.npy", pick)
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, f"{gran}.npy", "rows")


@pytest.mark.parametrize("gran", ["facts", "passages", "entities"])
def test_embeddings_dimension_must_match_the_index(spann_index, capsys, gran):
    """Before: a matmul ValueError traceback at query time."""
    path = _gen(spann_index) / "embeddings" / f"{gran}.npy"
    _edit_npy(path, lambda a: np.ascontiguousarray(a[:, :-3]))
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name, "dimension")


@pytest.mark.parametrize("damage", ["live_id", "list_overflow", "list_negative", "buckets"])
def test_spann_list_tables_and_live_ids_are_checked(spann_index, capsys, damage):
    d = _gen(spann_index) / "vectors" / "facts"
    one = lambda stem: next(d.glob(f"{stem}.*.npy"))  # noqa: E731
    if damage == "live_id":  # a fresh build's ids 0..n-1 are one run (version 7): id 0 becomes 10**7
        path = one("id_runs")
        _edit_npy(path, lambda a: np.array([[1, a[0, 1]], [10**7, 10**7 + 1]]))
    elif damage == "list_overflow":  # start + length wraps around int64 and passed the old bound check
        path = one("list_start")
        _edit_npy(path, lambda a: _set(a, 0, 2**62))
        _edit_npy(one("list_len"), lambda a: _set(a, 0, 2**62))
    elif damage == "list_negative":
        path = one("list_len")
        _edit_npy(path, lambda a: _set(a, 0, -100))
    else:
        path = one("buckets")
        _edit_npy(path, lambda a: np.full_like(a, 10**6))
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minhash_sketches_of_the_wrong_type_are_refused_before_a_write_reads_them(spann_index, capsys, dtype):
    """Before: `add` died in a TypeError traceback ('bitwise_and' on floats) building its writer."""
    path = _gen(spann_index) / "graph" / "minhash_bands.npy"
    _edit_npy(path, lambda a: a.astype(dtype))
    _reseal(spann_index)
    _assert_refused(spann_index, capsys, path.name)


@pytest.fixture(scope="module")
def float_base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_f32") / "idx"
    HippoGraph.build(DATA / "corpus" / "people", path,
                     Config(embedder="tfidf", spann_min_vectors=20, embedding_storage="float32")).close()
    return path


@pytest.mark.parametrize("gran", ["passages", "facts", "sentences", "entities"])
def test_non_finite_float_embeddings_end_in_index_corrupt_error(float_base, tmp_path, gran):
    """float32 / float16 storage has no scales to check on open (its values are read where used): a NaN row
    that a query reads ends in IndexCorruptError naming the file, never a ValueError traceback. A SPANN
    index reads its heads (rows of that file, SPANN header version 6) when the index opens: there."""
    index = tmp_path / "idx"
    shutil.copytree(float_base, index)
    path = _gen(index) / "embeddings" / f"{gran}.npy"
    _edit_npy(path, lambda a: np.full_like(a, np.nan))
    _reseal(index)
    header = json.loads((_gen(index) / "vectors" / gran / "header.json").read_text())
    if "head_ids" in header.get("files", {}):
        with pytest.raises(IndexCorruptError, match=f"{gran}.npy: {gran} embeddings holds NaN") as err:
            HippoGraph.open(index)
        assert "\n" not in str(err.value)
        return
    assert gran == "passages", "the other granularities have SPANN indexes at spann_min_vectors=20"
    hg = HippoGraph.open(index)
    for mode in ("hybrid", "ppr", "dense") if gran == "passages" else ("hybrid", "ppr"):  # dense reads passages only
        with pytest.raises(IndexCorruptError, match=f"{gran}.npy: {gran} embeddings holds NaN"):
            hg.retrieve("Who founded Kessel Shipworks?", top_k=3, mode=mode)
    assert [h.doc_id for h in hg.retrieve("Who founded Kessel Shipworks?", top_k=3, mode="bm25")]  # reads no vectors
