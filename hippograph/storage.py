"""On-disk index directory: manifest, generations, atomic commit, writer lock, checksums.

Layout::

    index/
      manifest.json        format, version, generation dir, config, counts, checksums
      gen-000001/          one immutable generation: meta.sqlite, graph/, vectors/, lexical/, embedder/
      .lock                writer lock (fcntl)

A write builds a complete new generation directory next to the current one, fsyncs it,
then atomically replaces ``manifest.json`` to point at it. Readers only ever follow the
manifest, so they see the old or the new state, never a mix. A directory without a
manifest (e.g. a build killed before its commit) is reported as an incomplete index.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import validate
from .errors import IndexCorruptError, IndexLockedError, IndexNotFoundError
from .format import FORMAT_VERSION, fsync_dir as _fsync_dir, iter_chunks, write_json_atomic

logger = logging.getLogger(__name__)

FORMAT_NAME = "hippograph-index"
MANIFEST = "manifest.json"
LOCK = ".lock"
GEN_PREFIX = "gen-"
TMP_PREFIX = ".tmp-gen-"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    return sha256_range(path, 0, None, chunk)


def sha256_range(path: Path, start: int, end: int | None, chunk: int = 1 << 20) -> str:
    """Hex sha256 of bytes [start, end) of a file (to its end when ``end`` is None)."""
    h = hashlib.sha256()
    for block in iter_chunks(path, start, end, chunk):
        h.update(block)
    return h.hexdigest()


def copy_verified(src: Path, dst: Path, expected: str | None, chunk: int = 1 << 20) -> None:
    """Copy a base generation's file into a new generation, hashing it on the way (one read, 1 MB
    blocks stay in cache): a file that no longer matches its whole-file manifest checksum `expected`
    (None: not listed) is not carried on under a fresh checksum; IndexCorruptError names it and the
    partial copy is removed."""
    if expected is None:
        verify_base_file(src, expected)
    h = hashlib.sha256()
    try:
        with open(dst, "wb") as out:
            for block in iter_chunks(src, chunk=chunk):
                h.update(block)
                out.write(block)
        verify_base_file(src, expected, h.hexdigest())
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def verify_base_file(path: Path, expected: str | None, actual: str | None = None) -> None:
    """A base generation's file a write carries into a new generation under a fresh checksum (copied, grown
    or renumbered), checked against its whole-file manifest checksum (`checksum_problem`) first: one
    IndexCorruptError line naming it instead of damage carried on unseen."""
    problem = checksum_problem(path, expected, actual)
    if problem is not None:
        carried = "an unverified file" if expected is None else "the damage"
        raise IndexCorruptError(f"{problem}; the write would carry {carried} into a new generation")


def checksum_problem(path: Path, expected: str | None, actual: str | None = None) -> str | None:
    """What is wrong with `path` against its whole-file manifest checksum `expected` (one line naming it),
    or None; `actual` is its sha256 where the caller hashed it already."""
    if expected is None:
        return f"{path}: not listed in the manifest's checksums"
    if actual is None:
        if not path.is_file():
            return f"{path}: missing"
        actual = sha256_file(path)
    return None if actual == expected else f"{path}: checksum mismatch (expected {expected[:12]}…, found {actual[:12]}…)"


SEGMENTS = "segments:"
"""Checksum prefix of an append-only file: ``segments:start-end:sha256,…`` covers bytes [0, end)."""


def format_segments(segments: list[tuple[int, int, str]]) -> str:
    return SEGMENTS + ",".join(f"{a}-{b}:{h}" for a, b, h in segments)


def parse_segments(value: str) -> list[tuple[int, int, str]] | None:
    """The segments of an append-only checksum, or None for a whole-file checksum."""
    if not value.startswith(SEGMENTS):
        return None
    out = []
    for part in filter(None, value[len(SEGMENTS):].split(",")):
        span, _, digest = part.partition(":")
        a, _, b = span.partition("-")
        out.append((int(a), int(b), digest))
    return out


@dataclass
class Manifest:
    """The index's table of contents; `generation` names the live generation directory."""

    generation: str
    config: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    embedder: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    lifecycle: dict[str, Any] = field(default_factory=dict)
    """Writer bookkeeping carried from generation to generation (vector-index state)."""
    created: str = ""
    updated: str = ""
    hippograph_version: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise IndexCorruptError(f"{path}: not a hippograph manifest (foreign directory?)")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise IndexCorruptError(f"{path}: manifest has no valid format_version")
        if version > FORMAT_VERSION:
            raise IndexCorruptError(
                f"{path}: index format version {version} is newer than this hippograph supports "
                f"({FORMAT_VERSION}); upgrade hippograph"
            )
        known = set(cls.__dataclass_fields__)
        missing = {"generation", "config"} - set(data)
        if missing:
            raise IndexCorruptError(f"{path}: manifest lacks {', '.join(sorted(missing))}")
        validate.check_manifest(path, data)
        return cls(**{k: v for k, v in data.items() if k in known})


class IndexDir:
    """Access to an index directory: read the manifest, open generations, commit new ones."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- reading ----------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> Manifest:
        """Load and validate the manifest; clear errors for missing / foreign / corrupt dirs."""
        if not self.root.exists():
            raise IndexNotFoundError(f"{self.root}: no such index directory")
        if not self.root.is_dir():
            raise IndexNotFoundError(f"{self.root}: not a directory")
        if not self.manifest_path.is_file():
            if any(p.name.startswith((GEN_PREFIX, TMP_PREFIX)) for p in self.root.iterdir()):
                raise IndexCorruptError(
                    f"{self.root}: incomplete index (no {MANIFEST}; a build was interrupted). "
                    "Rebuild it with `hippograph index ... --index DIR --overwrite`."
                )
            raise IndexNotFoundError(f"{self.root}: not a hippograph index (no {MANIFEST})")
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"{self.manifest_path}: unreadable manifest ({exc})") from exc
        manifest = Manifest.from_dict(data, self.manifest_path)
        gen = self.root / manifest.generation
        if "/" in manifest.generation or not manifest.generation.startswith(GEN_PREFIX) or not gen.is_dir():
            raise IndexCorruptError(f"{self.root}: manifest points at missing generation {manifest.generation!r}")
        validate.check_tree_confined(self.root, gen)
        return manifest

    def generation_path(self, manifest: Manifest) -> Path:
        return self.root / manifest.generation

    def verify(self, manifest: Manifest | None = None) -> list[str]:
        """Re-hash every file named in the manifest; return a list of problems (empty = healthy)."""
        manifest = manifest or self.read_manifest()
        gen = self.generation_path(manifest)
        problems: list[str] = []
        for rel, expected in sorted(manifest.checksums.items()):
            try:
                path = validate.confined(self.root, f"{manifest.generation}/{validate.check_relative(gen, rel, 'checksum entry')}")
            except IndexCorruptError as exc:
                problems.append(str(exc))
                continue
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            try:
                segments = parse_segments(expected)
            except ValueError:
                problems.append(f"{path}: unreadable checksum entry in the manifest")
                continue
            if segments is not None:  # append-only file: bytes past the last segment are not ours
                size = path.stat().st_size
                for a, b, digest in segments:
                    if size < b:
                        problems.append(f"{path}: truncated ({size} bytes, manifest covers {b})")
                        break
                    actual = sha256_range(path, a, b)
                    if actual != digest:
                        problems.append(
                            f"{path}: checksum mismatch in bytes {a}..{b} (expected {digest[:12]}…, found {actual[:12]}…)"
                        )
                continue
            problem = checksum_problem(path, expected)
            if problem is not None:
                problems.append(problem)
        listed = set(manifest.checksums)
        for path in sorted(gen.rglob("*")):
            if path.is_file() and str(path.relative_to(gen)) not in listed:
                problems.append(f"{path}: file not listed in the manifest")
        return problems

    # ---- writing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive, non-blocking writer lock; a second writer gets IndexLockedError."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / LOCK
        fh = open(lock_path, "a+")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    raise IndexLockedError(
                        f"{self.root}: another process (pid {holder}) is writing to this index; try again later"
                    ) from exc
                raise
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield
        finally:
            fh.close()

    def new_generation(self) -> Path:
        """Create an empty temporary generation directory to be filled and then committed."""
        self.root.mkdir(parents=True, exist_ok=True)
        n = 1
        for p in self.root.iterdir():
            for prefix in (GEN_PREFIX, TMP_PREFIX):
                if p.name.startswith(prefix) and p.name[len(prefix):].isdigit():
                    n = max(n, int(p.name[len(prefix):]) + 1)
        tmp = self.root / f"{TMP_PREFIX}{n:06d}"
        tmp.mkdir()
        return tmp

    def commit(
        self,
        tmp_gen: Path,
        manifest: Manifest,
        *,
        previous: Manifest | None = None,
        append_only: dict[str, int] | None = None,
    ) -> Manifest:
        """Checksum + fsync the generation, rename it live, switch the manifest atomically.

        Files hard-linked unchanged from the `previous` generation (same inode) keep their
        recorded checksum instead of being re-hashed: an add to a large index links most
        of its files and only the new ones cost I/O. `append_only` names files (relative
        path → bytes this generation uses) that later generations may extend in place
        (SPANN posting files); they get per-segment checksums of that prefix, and a file
        shared with the previous generation only has its new bytes hashed.
        """
        final_name = GEN_PREFIX + tmp_gen.name[len(TMP_PREFIX):]
        prev_dir = self.root / previous.generation if previous is not None and previous.generation else None
        try:
            live_before: str | None = self.read_manifest().generation
        except (IndexNotFoundError, IndexCorruptError):
            live_before = None
        checksums: dict[str, str] = {}
        reused = 0
        for path in sorted(tmp_gen.rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(tmp_gen))
            if append_only and rel in append_only:
                checksums[rel] = self._segment_checksum(path, rel, append_only[rel], previous, prev_dir)
                continue
            if prev_dir is not None and rel in previous.checksums:  # type: ignore[union-attr]
                try:
                    same = os.path.samefile(path, prev_dir / rel)
                except OSError:
                    same = False
                if same:
                    checksums[rel] = previous.checksums[rel]  # type: ignore[union-attr]
                    reused += 1
                    continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            checksums[rel] = sha256_file(path)
        for d in sorted({p.parent for p in tmp_gen.rglob("*")} | {tmp_gen}):
            _fsync_dir(d)
        final = self.root / final_name
        os.replace(tmp_gen, final)
        _fsync_dir(self.root)
        manifest.generation = final_name
        manifest.checksums = checksums
        manifest.updated = _now()
        manifest.created = manifest.created or manifest.updated
        from . import __version__

        manifest.hippograph_version = __version__
        write_json_atomic(self.manifest_path, manifest.to_dict())
        logger.debug("committed %s (%d files, %d unchanged from the previous generation)", final_name, len(checksums), reused)
        self.collect_garbage(keep=final_name, previous=live_before)
        return manifest

    @staticmethod
    def _segment_checksum(path: Path, rel: str, n_bytes: int, previous: Manifest | None, prev_dir: Path | None) -> str:
        segments: list[tuple[int, int, str]] = []
        if previous is not None and prev_dir is not None and rel in previous.checksums:
            try:
                same = os.path.samefile(path, prev_dir / rel)
            except OSError:
                same = False
            old = parse_segments(previous.checksums[rel]) if same else None
            if old and old[-1][1] <= n_bytes:
                segments = list(old)
        start = segments[-1][1] if segments else 0
        if n_bytes > start:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            segments.append((start, n_bytes, sha256_range(path, start, n_bytes)))
        return format_segments(segments)

    def collect_garbage(self, keep: str, *, previous: str | None = None, keep_previous: bool = True) -> list[Path]:
        """Remove abandoned temp generations and every generation but `keep` and the previous one.

        The previous live generation (`previous`, else the newest one older than `keep`) is
        kept unless `keep_previous=False`, so a reader that read the manifest a moment ago
        can still open it; open snapshots hold their files open, so removing a generation
        never breaks a reader that already opened it. Returns the removed paths.
        """
        gens = sorted(p for p in self.root.iterdir() if p.name.startswith(GEN_PREFIX) and p.is_dir())
        keepers = {keep}
        if keep_previous:
            prev = previous if previous and previous != keep else max((p.name for p in gens if p.name < keep), default=None)
            if prev:
                keepers.add(prev)
        stale = [p for p in gens if p.name not in keepers]
        stale += [p for p in self.root.iterdir() if p.name.startswith(TMP_PREFIX)]
        stale += [p for p in self.root.iterdir() if p.name.startswith(f".{MANIFEST}.tmp-")]
        removed = []
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed.append(path)
        return removed


def connect_sqlite(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open meta.sqlite; read-only connections use `immutable=1` (generations never change)."""
    if readonly:
        if not path.is_file():
            raise IndexCorruptError(f"{path}: missing metadata database")
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


def checkpoint_and_close(conn: sqlite3.Connection) -> None:
    """Fold the WAL into the main file so a committed generation is a single self-contained file."""
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
