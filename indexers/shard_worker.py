"""Shard stages in a worker process: spaCy and the embedding model live in a child, not the writer.

    writer (this process)                         worker (python -m hippograph.indexers.shard_worker)
    ShardWorker.build(spec) ── JSON request ────► shards.build_shard(...)
         merge.known(gran, …) ◄── "known" ───────┤  (which entities / facts the index already holds)
         progress.report.timings ◄── "stage" ────┤  (stage timings for the build report)
         ◄── "done" / "error" ───────────────────┘

Why: torch, sentence-transformers and spaCy hold about 0.75 GB that no `del` gives back (the
libraries' own allocations, not the model objects). In the writer they stay through the merge
stages, where its memory peaks (graph, vectors); in a worker they leave when the last shard is
built. The worker computes exactly what the writer would (same `build_shard`, same embedder
settings, same batches), so the index is the same bit for bit, and a shard is finished on disk
(``done.json`` last) before the writer merges it, so a killed worker loses nothing.

The worker is a fresh interpreter (`subprocess`), not a fork (the writer may already run torch
or server threads) nor a multiprocessing spawn (which re-runs the user's ``__main__``). Requests
and replies are JSON lines over its stdin / stdout (no pickles, as nowhere else in hippograph);
its stderr is the writer's (progress bars, logs).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

import numpy as np

from hippograph import errors
from hippograph.config import Config
from hippograph.embedders import Embedder, SentenceTransformerEmbedder
from hippograph.errors import HippoGraphError
from hippograph.types import Document

from . import shards
from .report import BuildReport, Progress

logger = logging.getLogger(__name__)

def wanted(config: Config, embedder: Embedder, extract: shards.Extract | None) -> bool:
    """Whether this write builds its shards in a worker (`Config.shard_process`).

    'auto' does when the worker can re-create everything the shard stages use — spaCy extraction
    and an embedder it can make from settings or files — and the writer has not loaded the
    embedding model itself (an open index that answered queries keeps its model: a second copy
    in a worker would add memory, not save it)."""
    if config.shard_process == "inline" or extract is not None:
        return False
    if config.shard_process == "worker":
        return True
    return isinstance(embedder, SentenceTransformerEmbedder) and not embedder.loaded and runs_python(sys.executable)


def runs_python(executable: str | None) -> bool:
    """Whether `executable` is a Python interpreter we can start the worker with: not a frozen
    application or an embedding host (uWSGI, a GUI app), whose `sys.executable` is the host."""
    if not executable or getattr(sys, "frozen", False):
        return False
    name = Path(executable).name.lower()
    return name.startswith(("python", "pypy"))


class ShardWorkerError(HippoGraphError):
    """The worker process failed or exited without finishing a shard."""


class ShardWorker:
    """The writer's handle on one worker process; `build` runs one shard there (context manager)."""

    def __init__(self, config: Config, embedder: Embedder, build_dir: Path, progress: Progress, *,
                 fresh_build: bool = False, first_documents: int = 0):
        """`fresh_build`: nothing to add to, so the worker's spaCy pool starts for any shard of two
        batches (an add waits for `POOL_START_BATCHES`, minding an add's memory), and at once when the
        first shard's `first_documents` alone make two batches."""
        self.progress = progress
        env = dict(os.environ)
        # the worker imports hippograph from wherever this process did (a source checkout too)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        # -W: when the worker is killed, its spaCy pool's resource tracker would warn about the
        # pool's semaphores; the writer's one-line error is what the user needs
        self._proc = subprocess.Popen([sys.executable, "-W", "ignore::UserWarning:multiprocessing.resource_tracker",
                                       "-m", "hippograph.indexers.shard_worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin, self._proc.stdout
        self.replied = False
        """Whether the worker has answered anything yet (one that never did could not start)."""
        hippo = logging.getLogger("hippograph")
        pool = {"start_batches": 2, "start_now": first_documents >= 2 * config.spacy_batch_size} if fresh_build else {}
        self._send({"config": config.to_dict(), "embedder": _portable_embedder(embedder, Path(build_dir)),
                    "show": progress.show, "log_level": hippo.getEffectiveLevel(), "pool": pool})

    def build(self, spec: shards.ShardSpec, known: shards.Known | None) -> None:
        """Build `spec`'s shard in the worker, answering its questions about known entities / facts."""
        self._send({"index": spec.index, "key": spec.key, "path": str(spec.path), "known": known is not None,
                    "documents": [dataclasses.asdict(d) for d in spec.documents]})
        while True:
            reply = self._receive(spec)
            kind = reply["kind"]
            if kind == "known":
                assert known is not None
                query = shards.KnownQuery(reply["entities"], [tuple(f) for f in reply["facts"]])
                self._send({"known": known(reply["gran"], query).astype(int).tolist()})
            elif kind == "stage":
                self.progress.record(reply["name"], reply["seconds"])
            elif kind == "error":
                logger.debug("shard worker traceback:\n%s", reply["traceback"])
                raise _error(reply)
            elif kind == "done":
                return
            else:
                raise ShardWorkerError(f"shard worker: unexpected reply {kind!r} while building shard {spec.index}")

    @property
    def returncode(self) -> int | None:
        """The worker's exit code once it has exited, else None."""
        return self._proc.poll()

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        try:
            self._to.close()  # end of requests: the worker returns
        except OSError:
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._from.close()

    def __enter__(self) -> "ShardWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self._proc.poll() is None:
            self._proc.kill()  # interrupted mid-shard: do not wait for it to finish
        self.close()

    def _send(self, message: dict) -> None:
        try:
            _write(self._to, message)
        except (BrokenPipeError, OSError) as exc:
            raise self._died(None) from exc

    def _receive(self, spec: shards.ShardSpec) -> dict:
        line = self._from.readline()
        if not line:
            raise self._died(spec)
        self.replied = True
        return json.loads(line)

    def _died(self, spec: shards.ShardSpec | None) -> ShardWorkerError:
        code = self._proc.wait()
        where = f" while building shard {spec.index} ({spec.path})" if spec is not None else ""
        return ShardWorkerError(f"shard worker process exited with code {code}{where}; "
                                f"run the same write again to resume from the finished shards")


def _write(stream: IO[bytes], message: dict) -> None:
    """One protocol message: a JSON line."""
    stream.write(json.dumps(message).encode("utf-8") + b"\n")
    stream.flush()


def _error(reply: dict) -> Exception:
    """The writer's own exception for a worker's error: the same hippograph error class, an
    OSError (full disk, permissions) as that OSError, anything else as a `ShardWorkerError`."""
    type_name, message = reply["type"], reply["message"]
    cls = getattr(errors, type_name, None)
    if isinstance(cls, type) and issubclass(cls, HippoGraphError):
        return cls(message)
    if type_name in OS_ERRORS:
        if reply.get("errno") is not None:
            return OS_ERRORS[type_name](reply["errno"], reply["strerror"], reply.get("filename"))
        return OS_ERRORS[type_name](message)
    return ShardWorkerError(f"shard worker: {type_name}: {message}")


OS_ERRORS: dict[str, type[OSError]] = {cls.__name__: cls for cls in (
    OSError, PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)}


def _portable_embedder(embedder: Embedder, build_dir: Path) -> tuple[str, Any]:
    """How the worker re-creates `embedder`: from its settings (sentence-transformers) or from its
    saved files (a fitted TF-IDF, `shards.ship_fitted_embedder`)."""
    if isinstance(embedder, SentenceTransformerEmbedder):
        return "settings", embedder.settings()
    shipped = shards.ship_fitted_embedder(embedder, build_dir)
    if shipped is None:
        raise HippoGraphError(f"shard_process='worker': cannot hand a {type(embedder).__name__} to a worker "
                              f"process; use shard_process='inline'")
    return "saved", (embedder.spec(), shipped)


def _make_embedder(how: tuple[str, Any], config: Config) -> Embedder:
    kind, data = how
    if kind == "settings":
        return SentenceTransformerEmbedder(**data)
    spec, path = data
    return shards.load_shipped_embedder(spec, path, config)


# ---- the worker side ---------------------------------------------------------------------------
class _RemoteProgress(Progress):
    """Stage timings sent to the writer instead of kept here (bars, if shown, are drawn here)."""

    def __init__(self, out: IO[bytes], show: bool):
        super().__init__(BuildReport(), show=show)
        self._out = out

    def record(self, name: str, seconds: float) -> None:
        _write(self._out, {"kind": "stage", "name": name, "seconds": seconds})


def serve(requests: IO[bytes], out: IO[bytes]) -> None:
    """Build the shards the writer asks for until it closes our stdin."""
    from hippograph import threads

    def read() -> dict | None:
        line = requests.readline()
        return json.loads(line) if line else None

    init = read()
    if init is None:
        return
    logging.basicConfig(level=init["log_level"], format="%(levelname)s %(name)s: %(message)s")
    progress = _RemoteProgress(out, init["show"])
    failed: dict | None = None
    extractor = None
    try:
        config = Config.from_dict(init["config"])
        threads.set_limit(config.threads, config.adaptive_threads)
        # spaCy on every available CPU (n_process 0 = auto), one pool of spawned processes for all shards.
        # Imported here, not at the top: a spawned process re-imports this module as its __main__,
        # and should not load spaCy (and the torch that thinc pulls in) before its initializer.
        from .extraction import POOL_START_BATCHES, TripleExtractor

        pool = init.get("pool", {})
        extractor = TripleExtractor(config, spawned_pool=True,
                                    pool_start_batches=pool.get("start_batches", POOL_START_BATCHES))
        started = pool.get("start_now") and extractor.start_pool()
        embedder = _make_embedder(init["embedder"], config)
        if started:  # the model loads while the pool extracts the first shard, not after it
            threading.Thread(target=_preload, args=(embedder,), name="hippograph-embedder-load", daemon=True).start()
    except Exception as exc:  # reported with the first shard, as the writer's own error
        failed = _failure(exc)

    def ask(gran: str, t: Any) -> np.ndarray:
        """`shards.Known` answered by the writer's merge."""
        _write(out, {"kind": "known", "gran": gran, "entities": list(t.entities),
                     "facts": [[int(s), str(p), int(o)] for s, p, o in t.facts]})
        answer = read()
        if answer is None:
            raise EOFError("the writer closed the pipe")
        return np.asarray(answer["known"], dtype=bool)

    try:
        while (request := read()) is not None:
            if failed is not None:
                _write(out, failed)
                continue
            try:
                documents = [Document(**d) for d in request["documents"]]
                shards.build_shard(documents, config, Path(request["path"]), embedder=embedder, key=request["key"],
                                   extract=extractor.extract, progress=progress,
                                   known=ask if request["known"] else None)
            except Exception as exc:  # handed to the writer, which raises it as its own
                _write(out, _failure(exc))
                continue
            _write(out, {"kind": "done"})
    finally:
        if extractor is not None:
            extractor.close()
        progress.close()


def _preload(embedder: Embedder) -> None:
    """Load a model embedder's weights ahead of its first `encode`; a failure is left for that call to raise."""
    load = getattr(embedder, "load_model", None)
    if load is None:
        return
    try:
        load()
    except Exception:  # noqa: BLE001 — encode loads again and raises it as the shard's own error
        logger.debug("preloading the embedder failed", exc_info=True)


def _failure(exc: Exception) -> dict:
    """An error reply; an OSError keeps its errno and file (a full disk stays a full disk)."""
    out = {"kind": "error", "type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    if isinstance(exc, OSError):
        out.update(errno=exc.errno, strerror=exc.strerror,
                   filename=None if exc.filename is None else os.fsdecode(exc.filename))
    return out


def main() -> None:
    # the protocol owns the real stdout; anything printed by libraries goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin.buffer, out)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the writer reports it
        sys.exit(130)
    except BrokenPipeError:  # the writer went away
        sys.exit(1)


if __name__ == "__main__":
    main()
