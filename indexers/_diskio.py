"""Atomic, pickle-free file helpers shared by the vector indexes (flat and SPANN).

An index directory holds ``header.json`` plus data files named per generation
(``name.g7.npy``). A writer puts every new file under a fresh name (temp name, fsync,
``os.replace``), then replaces ``header.json`` the same way, then deletes files the new
header no longer names. A reader only follows the header, so it sees either the old
or the new state, never a mix. ``.npy`` files are loaded with ``allow_pickle=False``:
an index directory is data, not code.
"""
from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hippograph.errors import IndexCorruptError, IndexNotFoundError
from hippograph.format import iter_chunks

logger = logging.getLogger(__name__)

HEADER = "header.json"


def crc32_file(path: Path, limit: int | None = None) -> int:
    """CRC-32 of a file (or of its first ``limit`` bytes)."""
    return crc32_range(path, 0, limit)


def crc32_range(path: Path, start: int, end: int | None) -> int:
    """CRC-32 of bytes [start, end) of a file."""
    crc = 0
    for buf in iter_chunks(path, start, end):
        crc = zlib.crc32(buf, crc)
    return crc & 0xFFFFFFFF


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp name next to ``path``, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_npy(dirpath: Path, name: str, arr: np.ndarray) -> dict[str, Any]:
    """Atomically write one array as ``dirpath/name`` (.npy); return its file record."""
    path = dirpath / name
    tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
    arr = np.ascontiguousarray(arr)
    if arr.dtype == object:
        raise TypeError(f"{name}: object arrays are not stored (no pickle)")
    with open(tmp, "wb") as f:
        np.lib.format.write_array(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return file_record(path)


def file_record(path: Path) -> dict[str, Any]:
    """{name, bytes, crc32} of a finished file, for the header."""
    return {"name": path.name, "bytes": path.stat().st_size, "crc32": crc32_file(path)}


def write_header(dirpath: Path, header: dict[str, Any]) -> None:
    """Atomically replace ``header.json`` (the commit point of every write)."""
    data = json.dumps(header, indent=1, sort_keys=True).encode("utf-8")
    write_bytes_atomic(dirpath / HEADER, data)
    fsync_dir(dirpath)


def read_header(dirpath: Path, expected_format: str | tuple[str, ...], max_version: int) -> dict[str, Any]:
    """Read and sanity-check ``header.json``; clear errors for missing/corrupt/foreign dirs."""
    dirpath = Path(dirpath)
    if not dirpath.exists():
        raise IndexNotFoundError(f"{dirpath}: vector index directory does not exist")
    if not dirpath.is_dir():
        raise IndexNotFoundError(f"{dirpath}: not a directory (expected a vector index directory)")
    hpath = dirpath / HEADER
    if not hpath.exists():
        raise IndexNotFoundError(f"{dirpath}: no {HEADER}; this directory holds no hippograph vector index")
    try:
        header = json.loads(hpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{hpath}: header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise IndexCorruptError(f"{hpath}: header is not a JSON object")
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    fmt = header.get("format")
    if fmt not in formats:
        raise IndexCorruptError(f"{hpath}: foreign index format {fmt!r} (expected {' or '.join(formats)})")
    version = header.get("version")
    if not isinstance(version, int):
        raise IndexCorruptError(f"{hpath}: missing or invalid format version {version!r}")
    if version > max_version:
        raise IndexCorruptError(
            f"{hpath}: index format version {version} is newer than this hippograph supports ({max_version})")
    return header


def check_file(dirpath: Path, rec: Any, role: str, *, crc: bool = True) -> Path:
    """Check a header file record (exists, size, CRC); return the path."""
    if not isinstance(rec, dict) or "name" not in rec or "bytes" not in rec:
        raise IndexCorruptError(f"{dirpath / HEADER}: bad file record for {role!r}: {rec!r}")
    name = str(rec["name"])
    if "/" in name or "\\" in name or name.startswith(".."):
        raise IndexCorruptError(f"{dirpath / HEADER}: file name for {role!r} escapes the directory: {name!r}")
    path = dirpath / name
    if not path.exists():
        raise IndexCorruptError(f"{path}: {role} file named in the header is missing")
    size = path.stat().st_size
    if size != int(rec["bytes"]):
        raise IndexCorruptError(f"{path}: {role} file has {size} bytes, header says {rec['bytes']} (truncated or replaced)")
    if crc and "crc32" in rec and crc32_file(path) != int(rec["crc32"]):
        raise IndexCorruptError(f"{path}: {role} file checksum mismatch (corrupted)")
    return path


def load_npy(path: Path, role: str, *, dtype: Any = None, ndim: int | None = None) -> np.ndarray:
    """np.load with allow_pickle=False, turning any failure into IndexCorruptError."""
    from hippograph.validate import load_npy as checked_load

    arr = checked_load(path)  # header checked against the file size before anything is allocated
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise IndexCorruptError(f"{path}: {role} array has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and arr.ndim != ndim:
        raise IndexCorruptError(f"{path}: {role} array has {arr.ndim} dimensions, expected {ndim}")
    return arr


def remove_unreferenced(dirpath: Path, keep: set[str]) -> None:
    """Delete data files of older generations (anything not named in the new header)."""
    for p in dirpath.iterdir():
        if p.name == HEADER or p.name in keep or not p.is_file():
            continue
        if p.name.startswith(".") and ".tmp-" not in p.name:
            continue
        try:
            p.unlink()
        except OSError as exc:  # pragma: no cover - e.g. Windows with an open memmap
            logger.warning("could not remove old index file %s: %s", p, exc)


def prepare_dir(path: Path, fmt: str | tuple[str, ...], overwrite: bool) -> int:
    """Make ``path`` ready for a new index; return the generation to write.

    An empty or missing directory is fine. An existing index of the same family is
    replaced only with ``overwrite=True`` (new files, then the header switch, so a
    reader of the old index is never broken). Any other non-empty directory is refused.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        return 1
    hpath = path / HEADER
    if not hpath.exists():
        raise FileExistsError(f"{path}: directory is not empty and holds no vector index; refusing to overwrite")
    if not overwrite:
        raise FileExistsError(f"{path}: a vector index already exists here (pass overwrite=True to replace it)")
    try:
        old = json.loads(hpath.read_text(encoding="utf-8"))
        formats = (fmt,) if isinstance(fmt, str) else fmt
        if old.get("format") not in formats:
            raise FileExistsError(f"{path}: holds a foreign index ({old.get('format')!r}); refusing to overwrite")
        return int(old.get("generation", 0)) + 1
    except (ValueError, UnicodeDecodeError):
        return 1
