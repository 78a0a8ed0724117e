"""Turn files, folders and Python dicts into `Document`s.

Why this module is defensive: an index is built from whatever a user's folder holds, so
one bad file (binary, wrong encoding, malformed JSON, too big) must never stop the run.
Such files are skipped with a `logging` WARNING that names the file and the reason, and
are recorded in a `LoadReport` the CLI can summarise. Only a source path that the user
named explicitly and that does not exist raises (`SourceError`).

Formats (by suffix): .txt, .md/.markdown (markup stripped), .rst/.rst.txt (reStructuredText,
markup stripped), .html/.htm (visible text),
.json (array of records, or an object holding one), .jsonl (one record per line, e.g.
BEIR `corpus.jsonl`), .pdf (needs the optional `pypdf`, ``pip install hippograph[pdf]``); any
of them but .pdf also gzip-compressed (``notes.md.gz``, at most `max_file_bytes` decompressed).

Document ids are stable across runs: a record's own id field when present, else derived
from the file's path relative to the folder given (``notes/a.md``; ``corpus.json#3`` for
the 4th record of a JSON file, ``corpus.jsonl#<0-based line number>`` for JSONL), and
``content_hash(title, text)`` for Python dicts without an ``id``.
"""
from __future__ import annotations

import html as html_lib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Union

from hippograph.config import Config
from hippograph.errors import SourceError
from hippograph.types import Document, content_hash

logger = logging.getLogger(__name__)

SourceLike = Union[str, "os.PathLike[str]", Mapping[str, Any], Document]

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
PDF_SUFFIXES = {".pdf"}
RST_SUFFIXES = {".rst", ".rest"}
"""reStructuredText; ``.rst.txt`` (Sphinx's copies of sources in ``_sources/``) counts too."""
SUPPORTED_SUFFIXES = (TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | PDF_SUFFIXES
                      | RST_SUFFIXES)
"""Also read: any of these followed by ``.gz`` (decompressed, see `read_gzip`)."""

RECORD_LIST_KEYS = ("docs", "documents", "data", "corpus", "records", "passages", "items", "rows")
"""Keys searched (in order) for the list of records when a .json file holds an object."""

BINARY_SNIFF_BYTES = 8192
MAX_RECORD_WARNINGS_PER_FILE = 5
"""Per-record problems of one file are logged individually up to this many, then summarised."""


@dataclass
class LoadReport:
    """What a load did: files read, documents produced, and what was skipped and why."""

    files_read: int = 0
    documents: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path or path#index, reason) for every skipped file or record."""
    ignored: list[str] = field(default_factory=list)
    """Files in a folder walk with an unsupported suffix (logged at DEBUG only)."""

    def summary(self) -> str:
        """One line for the CLI, e.g. ``12 files, 340 documents, 2 skipped``."""
        text = f"{self.files_read} files read, {self.documents} documents, {len(self.skipped)} skipped"
        if self.ignored:
            text += f", {len(self.ignored)} unsupported files ignored"
        return text


class _SkipFile(Exception):
    """A file cannot be used; the message is the reason."""


# ---------------------------------------------------------------------------- public API


def iter_documents(
    sources: SourceLike | Iterable[SourceLike],
    config: Config | None = None,
    *,
    report: LoadReport | None = None,
) -> Iterator[Document]:
    """Yield documents from a folder/file path, or an iterable mixing paths, dicts and Documents.

    Pass a `LoadReport` as ``report`` to collect counts and skip reasons while streaming.
    Raises `SourceError` for an explicitly named path that does not exist (paths in a
    list/tuple are all checked before anything is read).
    """
    loader = _Loader(config or Config(), report if report is not None else LoadReport())
    yield from loader.run(sources)


def load_documents(
    sources: SourceLike | Iterable[SourceLike], config: Config | None = None
) -> tuple[list[Document], LoadReport]:
    """Load everything into a list, and return it with the `LoadReport` of the run."""
    report = LoadReport()
    docs = list(iter_documents(sources, config, report=report))
    return docs, report


# ---------------------------------------------------------------------------- loader


class _Loader:
    def __init__(self, config: Config, report: LoadReport) -> None:
        self.config = config
        self.report = report
        self.seen_ids: set[str] = set()
        self._include = [_compile_glob(p) for p in config.include]
        self._exclude = [_compile_glob(p) for p in config.exclude]

    # -- orchestration -----------------------------------------------------------
    def run(self, sources: Any) -> Iterator[Document]:
        if isinstance(sources, (str, os.PathLike, Mapping, Document)):
            items: Iterable[Any] = [sources]
        else:
            items = sources
        if isinstance(items, (list, tuple)):  # fail fast on a typo before reading anything
            for item in items:
                if isinstance(item, (str, os.PathLike)) and not os.path.lexists(item):
                    raise SourceError(f"{item}: no such file or directory")
        for index, item in enumerate(items):
            if isinstance(item, Document):
                yield from self._emit(item)
            elif isinstance(item, Mapping):
                doc = self._from_mapping(item, index)
                if doc is not None:
                    yield from self._emit(doc)
            elif isinstance(item, (str, os.PathLike)):
                yield from self._from_path(Path(item))
            else:
                raise TypeError(
                    f"unsupported source #{index} of type {type(item).__name__}: "
                    "expected a path, a dict with a 'text' key, or a Document"
                )

    def _emit(self, doc: Document) -> Iterator[Document]:
        if doc.id in self.seen_ids:
            self._skip(doc.source, f"duplicate document id {doc.id!r} (the first one is kept)")
            return
        self.seen_ids.add(doc.id)
        self.report.documents += 1
        yield doc

    def _skip(self, where: str, reason: str, *, log: bool = True) -> None:
        self.report.skipped.append((where, reason))
        if log:
            logger.warning("%s: skipped: %s", where, reason)

    # -- paths ----------------------------------------------------------------------
    def _from_path(self, path: Path) -> Iterator[Document]:
        if not os.path.lexists(path):
            raise SourceError(f"{path}: no such file or directory")
        if path.is_dir():
            yield from self._walk(path)
        elif path.is_file():
            yield from self._read_file(path, path.name, explicit=True)
        elif path.is_symlink():
            self._skip(str(path), "broken or looping symlink")
        else:
            raise SourceError(f"{path}: not a regular file or directory")

    def _walk(self, root: Path) -> Iterator[Document]:
        """Recursive, sorted, hidden-free walk that never leaves `root` through symlinks."""
        try:
            real_root = root.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise SourceError(f"{root}: cannot open folder ({exc})") from exc
        visited_dirs: set[Path] = {real_root}
        visited_files: set[Path] = set()
        # Depth-first with an explicit stack; children are pushed in reverse so they pop sorted.
        pending: list[Any] = [("dir", root, "")]
        while pending:
            kind, path, rel = pending.pop()
            if kind == "file":
                yield from self._read_file(path, rel, explicit=False, real_root=real_root)
                continue
            try:
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self._skip(str(path), f"cannot list folder ({exc.strerror or exc})")
                continue
            children: list[Any] = []
            for entry in entries:
                if entry.name.startswith("."):
                    logger.debug("%s: hidden, skipped", entry.path)
                    continue
                child = Path(entry.path)
                child_rel = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    try:
                        target = child.resolve(strict=True)
                    except (OSError, RuntimeError):
                        self._skip(str(child), "broken or looping symlink")
                        continue
                    if target != real_root and real_root not in target.parents:
                        self._skip(str(child), f"symlink points outside the source folder ({target})")
                        continue
                else:
                    target = None
                try:
                    is_dir = entry.is_dir()  # follows symlinks
                    is_file = entry.is_file()
                except OSError as exc:
                    self._skip(str(child), f"cannot stat ({exc.strerror or exc})")
                    continue
                if is_dir:
                    if self._excluded_dir(child_rel):
                        logger.debug("%s: excluded folder", child)
                        continue
                    if _is_index_dir(child):
                        logger.info("%s: a hippograph index folder; not read as documents", child)
                        continue
                    real = target if target is not None else child.resolve()
                    if real in visited_dirs:
                        logger.debug("%s: folder already visited (symlink cycle or alias), skipped", child)
                        continue
                    visited_dirs.add(real)
                    children.append(("dir", child, child_rel))
                elif is_file:
                    if not self._selected(child_rel):
                        logger.debug("%s: not selected by include/exclude", child)
                        continue
                    real = target if target is not None else child.resolve()
                    if real in visited_files:
                        logger.debug("%s: same file already read through another path, skipped", child)
                        continue
                    visited_files.add(real)
                    children.append(("file", child, child_rel))
            pending.extend(reversed(children))

    def _selected(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if not any(_glob_match(g, rel, name) for g in self._include):
            return False
        return not any(_glob_match(g, rel, name) for g in self._exclude)

    def _excluded_dir(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(_glob_match(g, rel, name) or _glob_match(g, rel + "/", name) for g in self._exclude)

    # -- one file -----------------------------------------------------------------------
    def _read_file(
        self, path: Path, rel: str, *, explicit: bool, real_root: Path | None = None
    ) -> Iterator[Document]:
        named = Path(file_format_name(path.name))  # h13b: "x.rst.txt" → x.rst, "x.md.gz" → x.md
        suffix = named.suffix.lower()
        compressed = path.name.lower().endswith(GZIP_SUFFIX)
        if suffix not in SUPPORTED_SUFFIXES and not explicit:
            logger.debug("%s: unsupported file type %r, ignored", path, suffix or "(none)")
            self.report.ignored.append(str(path))
            return
        source = os.path.abspath(path)
        try:
            size = path.stat().st_size
            if size > self.config.max_file_bytes:
                raise _SkipFile(f"file is {size} bytes, over max_file_bytes={self.config.max_file_bytes}")
            if suffix in PDF_SUFFIXES:
                if compressed:
                    raise _SkipFile("compressed PDF files are not read (decompress it first)")
                docs = self._pdf(path, rel, source)
            elif suffix in JSONL_SUFFIXES:
                docs = self._jsonl(path, rel, source, raw=read_gzip(path, self.config.max_file_bytes) if compressed else None)
            else:
                data = read_gzip(path, self.config.max_file_bytes) if compressed else path.read_bytes()
                text = self._decode(data, str(path))
                if suffix in JSON_SUFFIXES:
                    docs = self._json(text, path, rel, source)
                elif suffix in MARKDOWN_SUFFIXES:
                    title, body, meta = markdown_to_text(text)
                    docs = [self._file_doc(rel, title or title_from_stem(named), body, source, meta)]
                elif suffix in HTML_SUFFIXES:
                    title, body = html_to_text(text)
                    docs = [self._file_doc(rel, title or title_from_stem(named), body, source)]
                elif suffix in RST_SUFFIXES:
                    title, body = rst_to_text(text)
                    docs = [self._file_doc(rel, title or title_from_stem(named), body, source)]
                else:
                    docs = [self._file_doc(rel, title_from_stem(named), text, source)]
        except _SkipFile as exc:
            self._skip(str(path), str(exc))
            return
        except OSError as exc:
            self._skip(str(path), f"cannot read ({exc.strerror or exc})")
            return
        except (RecursionError, MemoryError) as exc:
            self._skip(str(path), f"too deeply nested or too large to parse ({type(exc).__name__})")
            return
        except Exception as exc:  # noqa: BLE001 - one unparsable file must never stop the run
            self._skip(str(path), f"cannot parse ({type(exc).__name__}: {exc})")
            return
        self.report.files_read += 1
        for doc in docs:
            if doc is None:
                continue
            yield from self._emit(doc)

    def _file_doc(
        self, rel: str, title: str, text: str, source: str, meta: dict[str, Any] | None = None
    ) -> Document:
        if not text.strip():
            raise _SkipFile("empty or whitespace-only (no text)")
        return Document(id=rel, title=title.strip(), text=text, source=source, metadata=dict(meta or {}))

    def _decode(self, data: bytes, where: str = "") -> str:
        """The decoding policy: UTF-16 when the data starts with its byte-order mark, else strict
        UTF-8 (a UTF-8 BOM is dropped), else the first of `fallback_encodings` that decodes it —
        with a warning naming the file (`where`), since a guessed encoding may garble text. NUL
        bytes mean binary. `fallback_encodings=[]` skips every file that is not UTF-8/UTF-16."""
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                return _normalize_newlines(data.decode("utf-16"))
            except UnicodeDecodeError:
                raise _SkipFile("binary file (invalid UTF-16 despite a byte-order mark)") from None
        if b"\x00" in data[:BINARY_SNIFF_BYTES]:
            raise _SkipFile("binary file (NUL bytes in the first 8 KB)")
        nul = data.find(b"\x00")
        if nul >= 0:
            raise _SkipFile(f"binary or corrupted file (NUL byte at offset {nul})")
        encodings = ["utf-8-sig"] + [e for e in self.config.fallback_encodings if e.lower() not in ("utf-8-sig",)]
        for enc in encodings:
            try:
                text = data.decode(enc)
            except (UnicodeDecodeError, LookupError):
                continue
            if enc != "utf-8-sig":
                logger.warning("%s: not valid UTF-8; decoded as %s (check the text, or convert the file to UTF-8)",
                               where or "input", enc)
            return _normalize_newlines(text)
        tried = ", ".join(["utf-8", *self.config.fallback_encodings])
        raise _SkipFile(f"binary or undecodable file (tried {tried})")

    # -- structured formats ----------------------------------------------------------------
    def _json(self, text: str, path: Path, rel: str, source: str) -> list[Document | None]:
        if not text.strip():
            raise _SkipFile("empty or whitespace-only (no text)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _SkipFile(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise _SkipFile("JSON nested too deeply to read") from None
        except ValueError as exc:  # e.g. an integer with more than 4300 digits
            raise _SkipFile(f"unreadable JSON value ({exc})") from None
        records = _records_of(data, self.config)
        if records is None:
            raise _SkipFile(
                "JSON holds no list of records (expected an array of objects, or an object with "
                f"a list under one of {', '.join(RECORD_LIST_KEYS)})"
            )
        problems = _ProblemLog(self, str(path))
        docs = [self._record(rec, i, rel, source, problems, where=f"record {i}") for i, rec in enumerate(records)]
        problems.finish()
        return docs

    def _jsonl(self, path: Path, rel: str, source: str, raw: bytes | None = None) -> list[Document | None]:
        """Records of a JSONL file (`raw`: its already decompressed bytes, for ``.jsonl.gz``)."""
        docs: list[Document | None] = []
        problems = _ProblemLog(self, str(path))
        with (io.BytesIO(raw) if raw is not None else path.open("rb")) as fh:
            head = fh.read(BINARY_SNIFF_BYTES)
            if b"\x00" in head:
                raise _SkipFile("binary file (NUL bytes in the first 8 KB)")
            fh.seek(0)
            for lineno, raw in enumerate(fh):
                if not raw.strip():
                    continue
                try:
                    line = self._decode(raw, f"{path} (line {lineno + 1})")
                    rec = json.loads(line)
                except _SkipFile as exc:
                    problems.add(f"line {lineno + 1}", str(exc))
                    continue
                except json.JSONDecodeError as exc:
                    problems.add(f"line {lineno + 1}", f"malformed JSON ({exc.msg} at column {exc.colno})")
                    continue
                except RecursionError:
                    problems.add(f"line {lineno + 1}", "JSON nested too deeply to read")
                    continue
                except ValueError as exc:  # e.g. an integer with more than 4300 digits
                    problems.add(f"line {lineno + 1}", f"unreadable JSON value ({exc})")
                    continue
                docs.append(self._record(rec, lineno, rel, source, problems, where=f"line {lineno + 1}"))
        problems.finish()
        if not docs and not problems.count:
            raise _SkipFile("empty or whitespace-only (no records)")
        return docs

    def _record(
        self, rec: Any, index: int, rel: str, source: str, problems: "_ProblemLog", *, where: str
    ) -> Document | None:
        if not isinstance(rec, dict):
            problems.add(where, f"record is a {type(rec).__name__}, not an object")
            return None
        cfg = self.config
        text_key, text = _first_field(rec, cfg.text_fields)
        if text_key is None:
            problems.add(where, f"no text field (looked for {', '.join(cfg.text_fields)})")
            return None
        text = _as_text(text)
        if text is None:
            problems.add(where, f"text field {text_key!r} is not a string")
            return None
        text = _clean_text(_normalize_newlines(text))
        if not text.strip():
            problems.add(where, "empty or whitespace-only text")
            return None
        title_key, title = _first_field(rec, cfg.title_fields)
        id_key, rec_id = _first_field(rec, cfg.id_fields)
        used = {text_key, title_key, id_key}
        metadata, dropped = _bounded_metadata(_extra_fields(rec, used))
        if dropped:
            problems.add(where, f"metadata field(s) {', '.join(dropped)} dropped (nested deeper than "
                                f"{MAX_METADATA_DEPTH} or larger than {MAX_METADATA_BYTES} bytes)")
        return Document(
            id=_clean_text(str(rec_id)) if id_key is not None else f"{rel}#{index}",
            title=_clean_text(str(title)).strip() if title_key is not None else "",
            text=text,
            source=f"{source}#{index}",
            metadata=metadata,
        )

    def _from_mapping(self, item: Mapping[str, Any], index: int) -> Document | None:
        """A dict from Python: {id?, title?, text, metadata?, source?} (extra keys → metadata)."""
        cfg = self.config
        rec = dict(item)
        where = f"source #{index}" + (f" (id {rec['id']!r})" if rec.get("id") is not None else "")
        text_key, text = _first_field(rec, ["text", *cfg.text_fields])
        text = _as_text(text) if text_key is not None else None
        if text is None:
            self._skip(where, "dict has no string 'text'")
            return None
        text = _clean_text(text)
        if not text.strip():
            self._skip(where, "empty or whitespace-only text")
            return None
        title_key, title = _first_field(rec, ["title", *cfg.title_fields])
        title = _clean_text(str(title)).strip() if title_key is not None else ""
        id_key, doc_id = _first_field(rec, ["id", *cfg.id_fields])
        doc_id = _clean_text(str(doc_id)) if id_key is not None else content_hash(title, text)
        src = rec.get("source")
        metadata, dropped = _bounded_metadata(_extra_fields(rec, {text_key, title_key, id_key, "source"}))
        if dropped:
            logger.warning("%s: metadata field(s) %s dropped (nested deeper than %d or larger than %d bytes)",
                           where, ", ".join(dropped), MAX_METADATA_DEPTH, MAX_METADATA_BYTES)
        return Document(id=doc_id, title=title, text=text, source=str(src) if src else doc_id, metadata=metadata)

    def _pdf(self, path: Path, rel: str, source: str) -> list[Document | None]:
        try:
            import pypdf
        except ImportError:
            raise _SkipFile("PDF support needs pypdf: pip install 'hippograph[pdf]'") from None
        try:
            reader = pypdf.PdfReader(str(path))
            if reader.is_encrypted:
                try:
                    reader.decrypt("")
                except Exception:  # noqa: BLE001 - any failure means we cannot read it
                    raise _SkipFile("encrypted PDF") from None
            pages = [(page.extract_text() or "") for page in reader.pages]
            meta_title = None
            try:
                if reader.metadata is not None:
                    meta_title = reader.metadata.title
            except Exception:  # noqa: BLE001 - broken metadata is not fatal
                meta_title = None
        except _SkipFile:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf raises many types on malformed files
            raise _SkipFile(f"cannot parse PDF ({type(exc).__name__}: {exc})") from None
        text = "\n\n".join(_normalize_newlines(p).strip() for p in pages if p and p.strip())
        if not text.strip():
            raise _SkipFile("PDF has no extractable text (scanned images?)")
        title = meta_title.strip() if isinstance(meta_title, str) and meta_title.strip() else title_from_stem(path)
        return [self._file_doc(rel, title, text, source, {"pages": len(pages)})]


def _is_index_dir(path: Path) -> bool:
    """A hippograph index directory (manifest + generations) inside a source folder is not content."""
    try:
        return (path / "manifest.json").is_file() and any(p.name.startswith("gen-") for p in path.iterdir())
    except OSError:
        return False


def title_from_stem(path: Path) -> str:
    """A file's fallback title: its stem with '_' as spaces ("Kessel_Shipworks.txt" → "Kessel Shipworks")."""
    return " ".join(path.stem.replace("_", " ").split()) or path.stem


class _ProblemLog:
    """Per-record problems of one file: logged individually up to a cap, then summarised."""

    def __init__(self, loader: _Loader, path: str) -> None:
        self.loader = loader
        self.path = path
        self.count = 0

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        self.loader._skip(f"{self.path} ({where})", reason, log=self.count <= MAX_RECORD_WARNINGS_PER_FILE)

    def finish(self) -> None:
        if self.count > MAX_RECORD_WARNINGS_PER_FILE:
            logger.warning(
                "%s: %d records skipped in total (%d more not shown)",
                self.path, self.count, self.count - MAX_RECORD_WARNINGS_PER_FILE,
            )


# ---------------------------------------------------------------------------- record helpers


def _first_field(rec: Mapping[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        if key in rec and rec[key] is not None:
            return key, rec[key]
    return None, None


def _as_text(value: Any) -> str | None:
    """A string, or a list of strings (e.g. HotpotQA sentences) joined by spaces."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(v.strip() for v in value)
    return None


MAX_METADATA_DEPTH = 32
"""Metadata values nested deeper than this are dropped (they would break JSON encoding later)."""
MAX_METADATA_BYTES = 64 * 1024
"""Metadata values whose JSON is larger than this are dropped (metadata is copied to every passage)."""
_CONTROL = {c: None for c in range(32) if chr(c) not in "\t\n\r\f\v"} | {0x7F: None}


def _clean_text(text: str) -> str:
    """Drop NUL and other C0 control characters (never meaningful text; NUL breaks C tools)."""
    return text.translate(_CONTROL) if _CONTROL_RE.search(text) else text


_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


def _json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON-like value, counted without recursion and capped at limit + 1."""
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list, tuple)):
            depth = max(depth, d)
            if depth > limit:
                return depth
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return depth


def _bounded_metadata(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Metadata without values too deep or too large to store safely; returns (kept, dropped keys)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in meta.items():
        if isinstance(value, (dict, list, tuple)):
            if _json_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
                dropped.append(str(key))
                continue
            try:
                size = len(json.dumps(value, default=str))
            except (ValueError, TypeError, RecursionError):
                dropped.append(str(key))
                continue
            if size > MAX_METADATA_BYTES:
                dropped.append(str(key))
                continue
        elif isinstance(value, str) and len(value) > MAX_METADATA_BYTES:
            dropped.append(str(key))
            continue
        kept[str(key)] = value
    return kept, dropped


def _extra_fields(rec: Mapping[str, Any], used: set[Any]) -> dict[str, Any]:
    """Unused fields of a record; a nested 'metadata' object is merged in flat."""
    extras = {k: v for k, v in rec.items() if k not in used and k != "metadata"}
    nested = rec.get("metadata")
    if isinstance(nested, Mapping):
        merged = dict(nested)
        merged.update(extras)
        return merged
    if nested is not None and "metadata" not in used:
        extras["metadata"] = nested
    return extras


def _records_of(data: Any, config: Config) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in RECORD_LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        if any(data.get(k) is not None for k in config.text_fields):
            return [data]  # a single record
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1:
            return lists[0]
    return None


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------- globs


def _compile_glob(pattern: str) -> tuple[re.Pattern[str], bool]:
    """Glob → regex over '/'-separated relative paths. `**` spans folders, `*` does not.

    Returns (regex, basename_only): a pattern without '/' (e.g. ``*.md``) also matches a
    file's name at any depth, like .gitignore.
    """
    pat = pattern.strip().replace(os.sep, "/").lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        elif pat[i] == "[":
            j = pat.find("]", i + 2)
            if j == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pat[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return re.compile("".join(out) + r"\Z"), "/" not in pat


def _glob_match(glob: tuple[re.Pattern[str], bool], rel: str, name: str) -> bool:
    regex, basename_too = glob
    return bool(regex.match(rel)) or (basename_too and bool(regex.match(name)))


# ---------------------------------------------------------------------------- markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1 = re.compile(r"^ {0,3}=+[ \t]*$")
_SETEXT_H2 = re.compile(r"^ {0,3}-+[ \t]*$")
_HRULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BLOCKQUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S+.*$")
_TABLE_SEP = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_HTML_COMMENT_OPEN = "<!--"
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# Inline patterns never let a repetition run over the delimiter that starts another match
# ("[", "(", "<", "**", "~~"): otherwise an unclosed delimiter repeated along a long line
# makes every occurrence rescan the rest of the line (quadratic; a 32 KB line of "**a " took 22 s).
_IMAGE = re.compile(r"!\[([^\]\[\n]*)\](?:\([^()\n]*\)|\[[^\]\[\n]*\])")
_LINK = re.compile(r"\[([^\]\[\n]+)\](?:\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\]\[\n]*\])")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^<>\s]+|mailto:[^<>\s]+|[^<>\s@]+@[^<>\s]+)>")
_STRONG = re.compile(r"\*\*(?=\S)((?:[^*\n]|\*(?!\*))+?)(?<=\S)\*\*|__(?=\S)((?:[^_\n]|_(?!_))+?)(?<=\S)__")
_STRIKE = re.compile(r"~~(?=\S)((?:[^~\n]|~(?!~))+?)(?<=\S)~~")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDER = re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w_])")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_ESC_BASE = 0xF0000  # supplementary private use area: placeholders for escaped characters


def markdown_to_text(text: str) -> tuple[str, str, dict[str, Any]]:
    """Strip Markdown markup to plain text: returns (title, text, front-matter metadata).

    Headings, emphasis, links (`[t](u)` → t), images (alt text), inline HTML and list /
    quote markers are removed; code blocks keep their content as text. The first level-1
    heading (ATX ``#`` or setext ``===``) or a front-matter ``title:`` becomes the title.
    """
    text = _normalize_newlines(text)
    meta: dict[str, Any] = {}
    title = ""
    fm = _FRONT_MATTER.match(text)
    if fm:
        for line in fm.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and not key.startswith((" ", "\t", "-")):
                value = value.strip().strip("'\"")
                if key.strip().lower() == "title":
                    title = value
                elif value:
                    meta[key.strip()] = value
        text = text[fm.end():]
    text = _strip_html_comments(text)
    text = _ESCAPE.sub(lambda m: chr(_ESC_BASE + ord(m.group(1))), text)

    out: list[str] = []
    fence: str | None = None

    def block_break() -> None:
        if out and out[-1] != "":
            out.append("")

    for line in text.split("\n"):
        if fence is not None:
            m = _FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
                block_break()
            else:
                out.append(line)
            continue
        m = _FENCE.match(line)
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            block_break()
            continue
        if _REF_DEF.match(line) or (_TABLE_SEP.match(line) and "|" in line):
            continue
        if out and out[-1] != "" and (_SETEXT_H1.match(line) or _SETEXT_H2.match(line)):
            # underline of a setext heading: the previous line is the heading
            heading = out.pop()
            if _SETEXT_H1.match(line) and not title:
                title = heading.strip()
            block_break()
            out.extend([heading, ""])
            continue
        if _HRULE.match(line):
            block_break()
            continue
        m = _ATX.match(line)
        if m:
            heading = _inline(m.group(2) or "").strip()
            if len(m.group(1)) == 1 and heading and not title:
                title = heading
            block_break()
            if heading:
                out.extend([heading, ""])
            continue
        line = _BLOCKQUOTE.sub("", line)
        line = _LIST_ITEM.sub("", line)
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            line = "; ".join(cell.strip() for cell in stripped[1:-1].split("|"))
        out.append(_inline(line).rstrip())

    body = "\n".join(out)
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    body = _unescape_md(body)
    return _unescape_md(title), body, meta


def _strip_html_comments(text: str) -> str:
    """Remove ``<!-- … -->`` comments in one linear pass (an unclosed one is left as text)."""
    out: list[str] = []
    pos = 0
    while True:
        start = text.find(_HTML_COMMENT_OPEN, pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        end = text.find("-->", start + 4)
        if end < 0:  # unclosed: left as text, like a regex that finds no match
            out.append(text[start:])
            return "".join(out)
        pos = end + 3


def _inline(line: str) -> str:
    """Inline Markdown → text, leaving `code spans` verbatim (without their backticks)."""
    parts: list[str] = []
    pos = 0
    for m in _INLINE_CODE.finditer(line):
        parts.append(_inline_plain(line[pos : m.start()]))
        parts.append(m.group(2).strip() if m.group(2).strip() else m.group(2))
        pos = m.end()
    parts.append(_inline_plain(line[pos:]))
    return "".join(parts)


def _inline_plain(s: str) -> str:
    s = _IMAGE.sub(r"\1", s)
    s = _LINK.sub(r"\1", s)
    s = _AUTOLINK.sub(lambda m: m.group(1).removeprefix("mailto:"), s)
    s = _HTML_TAG.sub("", s)
    for _ in range(2):  # nested emphasis, e.g. ***x***
        s = _STRONG.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), s)
        s = _STRIKE.sub(r"\1", s)
        s = _EM_STAR.sub(r"\1", s)
        s = _EM_UNDER.sub(r"\1", s)
    return html_lib.unescape(s)


def _unescape_md(s: str) -> str:
    return re.sub(r"[\U000F0000-\U000F00FF]", lambda m: chr(ord(m.group(0)) - _ESC_BASE), s)


# ---------------------------------------------------------------------------- html

_HTML_DROP = ("script", "style", "head", "noscript", "template", "svg", "nav", "iframe", "object", "canvas")
_HTML_BLOCK = (
    "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr",
    "figure", "figcaption", "form", "fieldset", "address", "details", "summary", "hr", "caption",
)
_HTML_PARAGRAPH = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "section", "article", "hr")


def html_to_text(markup: str) -> tuple[str, str]:
    """Visible text of an HTML page: returns (title, text).

    Drops script/style/head/nav and similar non-content elements (and anything marked
    ``hidden``); block elements become line breaks, paragraphs and headings blank lines,
    so the chunker sees the page's structure. The tree is walked with an explicit stack
    (no recursion, no tree edits), so deeply nested or huge pages cost linear time.
    """
    from bs4 import BeautifulSoup, CData, NavigableString, Tag

    soup = BeautifulSoup(_defuse_html(markup), "html.parser")
    title = ""
    if soup.title is not None:
        title = " ".join(soup.title.get_text(" ").split())
    parts: list[str] = []
    stack: list[Any] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if isinstance(node, _Separator):
                parts.append(str(node))
            elif type(node) in (NavigableString, CData):  # not comments, doctypes, declarations
                parts.append(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _HTML_DROP or node.has_attr("hidden"):
            continue
        if name == "br":
            parts.append("\n")
            continue
        after = None
        if name in _HTML_BLOCK:
            sep = "\n\n" if name in _HTML_PARAGRAPH else "\n"
            parts.append(sep)
            after = sep
        elif name in ("td", "th"):
            after = " "
        if after is not None:
            stack.append(_Separator(after))
        stack.extend(reversed(node.contents))
    raw = "".join(parts)
    lines = [" ".join(line.split()) for line in raw.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return title, text


class _Separator(str):
    """Text emitted when the walk leaves a block element (a marker on the walk's stack)."""


def _defuse_html(markup: str) -> str:
    """Escape every ``<`` after the last ``>``: such a tag can never close, and Python's HTML
    parser rescans the rest of the page for each one (quadratic on ``<a <a <a …``)."""
    last = markup.rfind(">")
    tail = markup[last + 1:]
    if "<" not in tail:
        return markup
    return markup[: last + 1] + tail.replace("<", "&lt;")


# ---- reStructuredText and gzip (h13b) -------------------------------------------------------
GZIP_SUFFIX = ".gz"
"""``name.<format>.gz`` is decompressed (at most `Config.max_file_bytes`) and read as ``<format>``."""

_RST_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s+(.*))?$")
_RST_DIRECTIVE = re.compile(r"^([\w:.+-]+)::(?:\s+(.*))?$")
_RST_FOOTNOTE = re.compile(r"^\[(?:#?[\w-]*|\*)\]\s*(.*)$")
_RST_OPTION = re.compile(r"^\s*:[\w][\w .-]*:(?:\s.*)?$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")
_RST_SIMPLE_TABLE = re.compile(r"^\s*=+(?:\s+=+)+\s*$|^\s*-+(?:\s+-+)+\s*$")
_RST_GRID_BORDER = re.compile(r"^\s*\+(?:[-=:]+\+)+\s*$")
_RST_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+\u2022]|#\.|\d{1,9}[.)]|\(\d{1,9}\)|[a-zA-Z][.)])\s+")
_RST_FIELD = re.compile(r"^(\s*):([^:`\s][^:`]*):(?=\s|$)")
_RST_ROLE = re.compile(r"(?::[\w.+-]+(?::[\w.+-]+)*:)?`([^`]+)`(?::[\w.+-]+:)?(?:__?)?")
_RST_LITERAL = re.compile(r"``(.+?)``")
_RST_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_RST_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_RST_SUBST = re.compile(r"\|([^|\s][^|]*?)\|(?:__?)?")
_RST_FOOTNOTE_REF = re.compile(r"\s?\[(?:#?[\w-]*|\*)\]_")
_RST_NAMED_REF = re.compile(r"\b([A-Za-z][\w-]*)__?(?=[\s.,;:!?)\]]|$)")
_RST_ESCAPE = re.compile(r"\\(.)")

RST_SKIP_DIRECTIVES = frozenset({
    "toctree", "include", "literalinclude", "raw", "tabularcolumns", "cssclass", "class", "contents",
    "sectnum", "highlight", "image", "index", "meta", "math", "default-role", "role", "c:namespace",
    "kernel-doc", "kernel-include", "kernel-abi", "kernel-feat", "kernel-render", "graphviz",
})
"""Directives whose argument and body are not prose (file paths, markup for other renderers)."""
RST_RAW_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "parsed-literal", "literal"})
"""Directives whose body is kept verbatim (like a Markdown code block); their argument is a language."""
RST_NO_ARGUMENT = RST_RAW_DIRECTIVES | frozenset({"figure", "kernel-figure", "only", "ifconfig", "list-table",
                                                  "flat-table", "csv-table", "table"})


def rst_to_text(text: str) -> tuple[str, str]:
    """Strip reStructuredText markup to plain text: returns (title, text).

    Section adornments, comments, targets, substitution definitions, directive options and
    non-prose directives (toctree, include, image, raw, kernel-doc, …) are dropped; admonitions
    and other directives keep their text; literal blocks (``::``) and code-block bodies keep
    their content verbatim; roles (``:ref:`text <target>```), links, emphasis and inline
    literals keep their text. The first section heading becomes the title.
    """
    lines = _normalize_newlines(text).split("\n")
    out: list[str] = []
    title = _rst_block(lines, out)
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in out)).strip()
    return title, body


def _rst_block(lines: list[str], out: list[str]) -> str:
    """Convert `lines` (one nesting level) into `out`; returns the first heading seen."""
    title = ""

    def block_break() -> None:
        if out and out[-1] != "":
            out.append("")

    def heading(text_: str) -> None:
        nonlocal title
        text_ = _rst_inline(text_.strip())
        if text_ and not title:
            title = text_
        block_break()
        if text_:
            out.extend([text_, ""])

    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            block_break()
            i += 1
            continue
        m = _RST_EXPLICIT.match(line)
        if m:
            indent = len(m.group(1))
            body, i = _rst_indented(lines, i + 1, indent)
            rest = (m.group(2) or "").strip()
            d = _RST_DIRECTIVE.match(rest)
            if d:
                name, arg = d.group(1).lower(), (d.group(2) or "").strip()
                if name in RST_SKIP_DIRECTIVES:
                    continue
                while body and _RST_OPTION.match(body[0]):  # directive options come first
                    body = body[1:]
                block_break()
                if arg and name not in RST_NO_ARGUMENT:
                    out.append(_rst_inline(arg))
                if name in RST_RAW_DIRECTIVES:
                    out.extend(_dedent(body))
                else:
                    inner_title = _rst_block(_dedent(body), out)
                    title = title or inner_title
                block_break()
                continue
            f = _RST_FOOTNOTE.match(rest)
            if f and not rest.startswith("[["):  # footnote / citation: keep its text
                block_break()
                out.append(_rst_inline(f.group(1)))
                _rst_block(_dedent(body), out)
            # anything else is a comment, a hyperlink target or a substitution definition
            continue
        if _RST_ADORNMENT.match(stripped):
            nxt = lines[i + 1].strip() if i + 1 < n else ""
            after = lines[i + 2].strip() if i + 2 < n else ""
            if nxt and not _RST_ADORNMENT.match(nxt) and after[:1] == stripped[:1] and _RST_ADORNMENT.match(after):
                heading(nxt)  # overline + title + underline
                i += 3
                continue
            if i > 0 and lines[i - 1].strip() and out and out[-1] != "" and len(stripped) >= 2:
                heading(out.pop())  # underline: the line before is the title
                i += 1
                continue
            block_break()  # a transition (horizontal rule)
            i += 1
            continue
        if _RST_SIMPLE_TABLE.match(line) or _RST_GRID_BORDER.match(line):
            if _RST_SIMPLE_TABLE.match(line) and (i == 0 or not lines[i - 1].strip()):
                block_break()  # the top border of a table starts a block
            i += 1
            continue
        if stripped.endswith("::") and not _RST_EXPLICIT.match(line):
            lead = stripped[:-2].rstrip()
            if lead:
                out.append(_rst_inline(lead + (":" if not stripped[:-2].endswith(" ") else "")))
            indent = len(line) - len(line.lstrip())
            literal, i = _rst_indented(lines, i + 1, indent)
            block_break()
            out.extend(_dedent(literal))
            block_break()
            continue
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            cells = [c.strip() for c in stripped[1:-1].split("|")]
            out.append("; ".join(_rst_inline(c) for c in cells if c))
        elif stripped.startswith("| ") or stripped == "|":  # line block
            out.append(_rst_inline(stripped[2:]))
        else:
            line = _RST_LIST_ITEM.sub(r"\1", line)
            line = _RST_FIELD.sub(r"\1\2:", line)
            out.append(_rst_inline(line.strip()))
        i += 1
    return title


def _rst_indented(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The block of lines after `start` indented deeper than `indent` (blank lines inside kept)."""
    i, block = start, []
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
        i += 1
    while block and not block[-1].strip():
        block.pop()
    return block, i


def _dedent(block: list[str]) -> list[str]:
    widths = [len(line) - len(line.lstrip()) for line in block if line.strip()]
    cut = min(widths) if widths else 0
    return [line[cut:] for line in block]


def _rst_inline(s: str) -> str:
    if not s:
        return s
    s = _RST_LITERAL.sub(lambda m: m.group(1), s)
    s = _RST_FOOTNOTE_REF.sub("", s)

    def role(m: re.Match[str]) -> str:
        inner = m.group(1)
        link = re.match(r"^(.*?)\s*<([^<>]+)>$", inner, re.S)
        if link and link.group(1).strip():
            inner = link.group(1)
        elif link:
            inner = link.group(2)
        return inner.lstrip("~!")

    s = _RST_ROLE.sub(role, s)
    s = _RST_STRONG.sub(r"\1", s)
    s = _RST_EM.sub(r"\1", s)
    s = _RST_SUBST.sub(r"\1", s)
    s = _RST_NAMED_REF.sub(r"\1", s)
    return _RST_ESCAPE.sub(r"\1", s)


def is_rst(name: str) -> bool:
    """A reStructuredText file name: ``x.rst``, ``x.rest`` or Sphinx's ``x.rst.txt``."""
    lower = name.lower()
    return any(lower.endswith(s) or lower.endswith(s + ".txt") for s in RST_SUFFIXES)


def file_format_name(name: str) -> str:
    """The name a file is read as: without ``.gz``, and ``.rst.txt`` as ``.rst``."""
    lower = name.lower()
    if lower.endswith(GZIP_SUFFIX):
        name, lower = name[: -len(GZIP_SUFFIX)], lower[: -len(GZIP_SUFFIX)]
    if lower.endswith(".txt") and is_rst(lower):
        name = name[:-4]
    return name


def read_gzip(path: Path, max_bytes: int) -> bytes:
    """Decompress a gzip file, refusing more than `max_bytes` of output (gzip bombs)."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _SkipFile(f"corrupt gzip file ({exc})") from None
    if len(data) > max_bytes:
        raise _SkipFile(f"decompresses to over max_file_bytes={max_bytes} bytes")
    return data
