"""HTTP service: serve one hippograph index over a small JSON API (FastAPI + uvicorn).

    hippograph serve my-index [--host 127.0.0.1] [--port 8000] [--workers N] [--allow-writes] [--token T]

Endpoints: ``POST /retrieve``, ``POST /retrieve/batch``, ``GET /health``, ``GET /stats``,
``GET /documents``, ``GET /neighbourhood``, and (only with ``--allow-writes``) ``POST /documents`` and
``DELETE /documents/{doc_id}``. The OpenAPI spec is served at ``/openapi.json`` and
checked in as ``docs/openapi.json`` (regenerate: ``python -m hippograph.server --openapi docs/openapi.json``).
A read-only web page using that API is served at ``/`` and Swagger UI at ``/docs`` (both offline:
`hippograph.web`).

Safety defaults: binds to loopback, read-only, request bodies capped, every request
validated (clear 4xx messages). A bearer token (``--token`` or ``$HIPPOGRAPH_TOKEN``)
protects every endpoint except ``/health`` and the spec; binding beyond loopback with
writes enabled requires one.

Concurrency: queries run in parallel worker threads against one shared `HippoGraph`
per process; a write builds the new generation with a separate writer while queries go
on, then swaps the reader to it under an exclusive lock. Every request first checks
(one ``stat``) whether the index's manifest changed, so other workers (``--workers N``)
and other processes (``hippograph index`` on the same directory) are picked up.

This module imports only the standard library at import time (the CLI imports it);
FastAPI, uvicorn and pydantic are imported when an app is built.
"""
# No `from __future__ import annotations`: pydantic models are defined inside functions.
import argparse
import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "create_app", "serve", "openapi_spec", "add_serve_parser", "cmd_serve", "ServerSettings",
    "MAX_QUERY_CHARS", "MAX_TOP_K", "MAX_BATCH", "MAX_DOCUMENTS_PER_REQUEST",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_ENV = "HIPPOGRAPH_TOKEN"
SETTINGS_ENV = "HIPPOGRAPH_SERVER_SETTINGS"
"""How `--workers N` hands the settings to uvicorn's worker processes."""

# API limits: part of the contract (they appear in the OpenAPI spec).
MAX_QUERY_CHARS = 4096
MAX_TOP_K = 100
MAX_BATCH = 64
MAX_DOCUMENTS_PER_REQUEST = 1000
MAX_DOCUMENT_CHARS = 10_000_000
MAX_ID_CHARS = 512
MAX_METADATA_DEPTH = 32
MAX_WORD_CHARS = 100_000
"""A document whose text has a run of more characters than this without whitespace is refused
(422): no natural-language text has one (the library would index it with the word left out of
triple extraction; over HTTP the client is told instead)."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host header names a loopback-bound server accepts by default (DNS-rebinding protection)."""

MODES = ("hybrid", "ppr", "dense", "bm25")
_EXTRA_HINT = "the HTTP server needs FastAPI and uvicorn: pip install 'hippograph[server]'"


@dataclasses.dataclass
class ServerSettings:
    """Everything `create_app` needs besides the index; JSON-serialisable (passed to worker processes)."""

    index_dir: str
    allow_writes: bool = False
    token: Optional[str] = None
    max_request_bytes: int = 1 << 20
    """Body cap of every request except POST /documents (413 beyond)."""
    max_write_bytes: int = 32 << 20
    """Body cap of POST /documents."""
    config_overrides: dict = dataclasses.field(default_factory=dict)
    """Query-time Config fields applied to every query (e.g. {"damping": 0.3})."""
    warm_up: bool = True
    """Run one query at startup so the spaCy model and embedder load before the first request."""
    allowed_hosts: Optional[list] = None
    """Host header names accepted (port ignored); None accepts any. `serve` on a loopback address
    defaults to LOOPBACK_HOSTS plus `--allowed-host` names, so a web page on another domain
    that resolves to 127.0.0.1 (DNS rebinding) cannot talk to the server."""


# ---------------------------------------------------------------------------- service
class _RWLock:
    """Many readers or one writer; waiting writers block new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Service:
    """One open index shared by the request threads of a process."""

    def __init__(self, hg: Any, settings: ServerSettings, *, owns_index: bool = True) -> None:
        self.hg = hg
        self.owns_index = owns_index
        self.settings = settings
        self.overrides = dict(settings.config_overrides)
        hg.config.replace(**self.overrides)  # unknown option names fail at startup
        self.lock = _RWLock()
        self.write_mutex = threading.Lock()
        self._manifest_key = self._manifest_stat()
        self.degraded: Optional[str] = None
        """Why the live generation could not be opened (the last good one is being served), or None."""

    def _manifest_stat(self) -> Optional[tuple]:
        try:
            st = os.stat(self.hg.dir.manifest_path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def maybe_refresh(self) -> None:
        """Switch to a newer generation if another writer committed one (cheap: one stat)."""
        key = self._manifest_stat()
        if key is None or key == self._manifest_key:
            return
        with self.lock.write():
            if self._manifest_stat() == self._manifest_key:
                return
            try:
                self.hg.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving the generation that works
                self._manifest_key = key  # retried when the manifest changes again
                self.degraded = _redact(f"cannot open the live generation ({exc}); serving "
                                        f"{self.hg.manifest.generation}", self.hg.dir.root)
                logger.error("%s", self.degraded)
                return
            self._manifest_key = key
            self.degraded = None
            logger.info("switched to %s", self.hg.manifest.generation)

    def retrieve_many(self, queries: list, top_k: Optional[int], mode: Optional[str], explain: bool,
                      filters: Optional[dict] = None):
        """Hits per query plus the effective top_k, mode and generation; bad input raises ValueError."""
        self.maybe_refresh()
        with self.lock.read():
            k = self.hg.config.top_k if top_k is None else top_k
            results = self.hg.retrieve_many(queries, k, mode=mode, explain=explain, filters=filters, **self.overrides)
            return results, k, mode or self.hg.config.mode, self.hg.manifest.generation

    def read(self, fn):
        self.maybe_refresh()
        with self.lock.read():
            return fn(self.hg)

    def write(self, fn):
        """Run `fn(writer)` on a separate HippoGraph so queries continue, then switch readers to the result."""
        from .api import HippoGraph

        with self.write_mutex:
            writer = HippoGraph.open(self.hg.dir.root)
            try:
                result = fn(writer)
            finally:
                writer.close()
        self.maybe_refresh()
        return result

    def warm_up(self) -> None:
        t0 = time.perf_counter()
        try:
            self.hg.retrieve("warm up the models", 1, **self.overrides)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up must not stop the server
            logger.warning("warm-up query failed (%s); models will load on the first request", exc)
            return
        logger.info("warm-up took %.2f s", time.perf_counter() - t0)


def _redact(text: str, root: Any) -> str:
    """`text` without absolute paths: the index's own become relative to it, any other is hidden."""
    import re

    for base in {os.path.realpath(str(root)), os.path.abspath(str(root))}:
        text = text.replace(base + os.sep, "").replace(base, ".")
    return re.sub(r"(?<![\w.~])/[^\s:'\",)]+", "<path>", text)


def _redact_all(obj: Any, root: Any) -> Any:
    """`_redact` applied to every string in a JSON-able value."""
    if isinstance(obj, str):
        return _redact(obj, root)
    if isinstance(obj, dict):
        return {k: _redact_all(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact_all(v, root) for v in obj]
    return obj


def _check_id(value: Optional[str]) -> Optional[str]:
    if value is not None and any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError("id contains NUL, control or surrogate characters; send ids of printable characters")
    return value


def _check_depth(value: dict) -> dict:
    """Refuse metadata nested deeper than MAX_METADATA_DEPTH (it would be dropped, not stored)."""
    stack = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        children = obj.values() if isinstance(obj, dict) else obj
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return value


def _check_words(value: str) -> str:
    import re

    m = re.search(r"\S{%d,}" % (MAX_WORD_CHARS + 1), value)
    if m:
        end = re.compile(r"\s").search(value, m.start())
        n = (end.start() if end else len(value)) - m.start()
        raise ValueError(f"text has a run of {n} characters without whitespace at offset {m.start()} "
                         f"(the limit is {MAX_WORD_CHARS}); split it or leave it out")
    return value


def _finite(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _hit_json(hit: Any) -> dict:
    d = hit.to_dict()
    d["score"] = d["score"] if math.isfinite(d["score"]) else 0.0
    d["metadata"] = _finite(d["metadata"] or {})
    d["explanation"] = _finite(d["explanation"]) if d["explanation"] is not None else None
    return d


# ---------------------------------------------------------------------------- schemas
def _check_text(value: str, what: str) -> str:
    if not value.replace("\x00", " ").strip():
        raise ValueError(f"{what} is blank (empty or only whitespace)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (contains a lone surrogate)") from None
    return value


def _check_filters(value: Optional[dict]) -> Optional[dict]:
    """Reject a malformed filter at validation (422) with the parser's one-line message."""
    from .retrievers.filters import FilterError, parse_filters

    try:
        parse_filters(value)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    return value


@functools.lru_cache(maxsize=1)
def _schemas() -> Any:
    """Request/response models (built on first use so that importing this module needs no pydantic)."""
    from types import SimpleNamespace
    from typing import Annotated, Literal

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field

    Query = Annotated[
        str,
        Field(min_length=1, max_length=MAX_QUERY_CHARS, description=f"The question (1–{MAX_QUERY_CHARS} chars)."),
        AfterValidator(lambda v: _check_text(v, "query")),
    ]
    TopK = Annotated[
        Optional[int],
        Field(ge=1, le=MAX_TOP_K, strict=True, description=f"Passages to return (1–{MAX_TOP_K}); default: index config."),
    ]
    Mode = Annotated[
        Optional[Literal["hybrid", "ppr", "dense", "bm25"]],
        Field(description="Retrieval mode; default: index config (hybrid)."),
    ]
    Explain = Annotated[bool, Field(strict=True, description="Include why each passage was returned.")]
    Filters = Annotated[
        Optional[dict[str, Any]],
        Field(description='Metadata filter (docs/filters.md): {"year": {"$gte": 2020}, "source": {"$glob": "papers/*"}}, '
                          '$in/$nin/$ne/$prefix/$exists, $and/$or/$not; Haystack filter dicts are accepted too. '
                          "The top_k are the best passages that match."),
        AfterValidator(_check_filters),
    ]

    class RetrieveRequest(BaseModel):
        """One query."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"query": "Where was the founder of Kessel Shipworks born?", "top_k": 5},
                                             {"query": "Who founded the Meriden Courier?", "top_k": 3,
                                              "filters": {"source": {"$glob": "*people/*"}}}]},
        )
        query: Query
        top_k: TopK = None
        mode: Mode = None
        explain: Explain = False
        filters: Filters = None

    class BatchRetrieveRequest(BaseModel):
        """Several queries answered as one batch (embeddings and PPR computed together)."""

        model_config = ConfigDict(extra="forbid")
        queries: list[Query] = Field(min_length=1, max_length=MAX_BATCH, description=f"1–{MAX_BATCH} queries.")
        top_k: TopK = None
        mode: Mode = None
        explain: Explain = False
        filters: Filters = None

    class HitOut(BaseModel):
        """One retrieved passage with provenance."""

        passage_id: str
        doc_id: str
        title: str
        text: str
        score: float
        source: str
        span: list[int] = Field(min_length=2, max_length=2, description="[start, end) offsets in the document text.")
        metadata: dict[str, Any]
        explanation: Optional[dict[str, Any]] = None

    class QueryHits(BaseModel):
        query: str
        hits: list[HitOut]

    class RetrieveResponse(BaseModel):
        query: str
        mode: str
        top_k: int
        generation: str = Field(description="Index generation that answered.")
        took_ms: float
        hits: list[HitOut]

    class BatchRetrieveResponse(BaseModel):
        mode: str
        top_k: int
        generation: str
        took_ms: float
        results: list[QueryHits] = Field(description="One entry per query, in request order.")

    class Health(BaseModel):
        status: Literal["ok", "degraded"] = Field(
            description="'degraded': the live generation cannot be opened; the last good one is served.")
        reason: Optional[str] = Field(None, description="Why the server is degraded (paths relative to the index).")
        version: str
        generation: str = Field(description="Generation being served.")
        passages: int
        writes_enabled: bool

    class DocumentIn(BaseModel):
        """A document to index; `id` defaults to a content hash, extra info goes in `metadata`."""

        model_config = ConfigDict(extra="forbid")
        id: Annotated[Optional[str], Field(None, min_length=1, max_length=MAX_ID_CHARS, description=(
            "Document id (printable characters; no NUL or control characters)")), AfterValidator(_check_id)] = None
        title: str = Field("", max_length=2000)
        text: Annotated[str, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS, description=(
            f"1–{MAX_DOCUMENT_CHARS} characters, no run of more than {MAX_WORD_CHARS} without whitespace.")),
            AfterValidator(lambda v: _check_words(_check_text(v, "text")))]
        metadata: Annotated[dict[str, Any], Field(
            default_factory=dict, description=f"JSON object, nested at most {MAX_METADATA_DEPTH} levels."),
            AfterValidator(_check_depth)]

    class AddDocumentsRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"documents": [
                {"id": "memo-7", "title": "Memo", "text": "Aldous Brannock founded Kessel Shipworks."}]}]},
        )
        documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)

    class AddDocumentsResponse(BaseModel):
        added: dict[str, int] = Field(description="Rows added per table (documents, passages, entities, …).")
        skipped_documents: list[str] = Field(
            description="Ids not indexed: already in the index, or repeated within this request (the first is used).")
        generation: str
        took_ms: float

    class DeleteResponse(BaseModel):
        deleted: str
        removed: dict[str, int] = Field(description="Rows removed per table (passages, facts, entities, …).")
        generation: str
        took_ms: float

    class DocumentInfo(BaseModel):
        id: str
        title: str
        source: str
        content_hash: str
        metadata: dict[str, Any]

    class DocumentList(BaseModel):
        total: int
        offset: int
        limit: int
        documents: list[DocumentInfo]

    class GraphNode(BaseModel):
        """An entity (`name`, `passages` = how many mention it) or a passage (`passage_id`, `doc_id`, `title`;
        `text` for the centre passage only)."""

        id: str = Field(description="`entity:<name>` or `passage:<passage_id>`.")
        kind: Literal["entity", "passage"]
        label: str
        name: Optional[str] = None
        passages: Optional[int] = None
        passage_id: Optional[str] = None
        doc_id: Optional[str] = None
        title: Optional[str] = None
        text: Optional[str] = None

    class GraphEdge(BaseModel):
        """fact: subject → object, `label` = predicate, `text` = the fact; mention: entity → passage;
        synonym: entity ↔ entity, `weight` = similarity."""

        id: str
        source: str
        target: str
        kind: Literal["fact", "mention", "synonym"]
        label: str
        weight: float
        text: Optional[str] = None

    class Neighbourhood(BaseModel):
        centre: str = Field(description="Node id of the entity or passage asked for.")
        nodes: list[GraphNode] = Field(description="The centre first, then at most `limit` neighbours.")
        edges: list[GraphEdge]
        truncated: bool = Field(description="True when neighbours or edges were left out by the cap.")
        limit: int
        generation: str

    class ErrorOut(BaseModel):
        detail: Any = Field(description="What was wrong (a message, or a list of field errors for 422).")
        message: Optional[str] = Field(None, description="One-line summary (validation errors).")

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type) and issubclass(v, BaseModel)})


# ---------------------------------------------------------------------------- middleware
class _BodyLimit:
    """Pure ASGI middleware: 413 for bodies over the cap (declared or streamed), 400 for a bad Content-Length."""

    def __init__(self, app: Any, max_bytes: int, max_write_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_write_bytes = max_write_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_write_bytes if scope["path"] == "/documents" else self.max_bytes
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await _send_json(send, 400, {"detail": "invalid Content-Length header"})
        if length is not None:
            if length > limit:
                return await _send_json(send, 413, _too_large(length, limit))
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): buffer up to the cap, then replay.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            size += len(message.get("body", b""))
            if size > limit:
                return await _send_json(send, 413, _too_large(size, limit))
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await self.app(scope, _replay([body], receive), send)


class _Guard:
    """Pure ASGI middleware, outermost: refuses a Host header outside `allowed_hosts` (400) and,
    when the server has a token, a request with a body (POST/PUT/PATCH/DELETE) that lacks it
    (401) — before a single byte of the body is read. GET routes check the token as before."""

    BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")

    def __init__(self, app: Any, token: Optional[str], allowed_hosts: Optional[Sequence[str]]) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts} if allowed_hosts is not None else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        if self.allowed is not None:
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                return await _send_json(send, 400, {"detail": f"unexpected Host header {host!r:.100}; this server "
                                                              "answers only for its allowed host names (--allowed-host)"})
        if self.token is not None and scope.get("method") in self.BODY_METHODS:
            given = headers.get(b"authorization", b"")
            scheme, _, cred = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(cred.strip(), self.token):
                return await _send_json(send, 401, {"detail": "missing or wrong bearer token"},
                                        [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name part of a Host header ('[::1]:8000' → '::1', 'Example.org:80' → 'example.org')."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _too_large(size: int, limit: int) -> dict:
    return {"detail": f"request body too large ({size} bytes; the limit is {limit} bytes)"}


def _replay(messages: list, then: Any = None) -> Any:
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _send_json(send: Any, status: int, payload: dict, extra_headers: Sequence = ()) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *extra_headers],
    })
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------- app
def create_app(
    index: Any,
    *,
    allow_writes: bool = False,
    token: Optional[str] = None,
    max_request_bytes: int = 1 << 20,
    max_write_bytes: int = 32 << 20,
    config_overrides: Optional[dict] = None,
    warm_up: bool = True,
    allowed_hosts: Optional[Sequence[str]] = None,
) -> Any:
    """A FastAPI app serving the index at `index` (a directory, or an open `HippoGraph`).

    Read-only unless `allow_writes`; with `token`, every endpoint except /health and the
    spec needs ``Authorization: Bearer <token>``. `config_overrides` are query-time Config
    fields applied to every query. `allowed_hosts`: Host header names accepted (None: any).
    """
    from .integrations import open_index

    try:
        import fastapi  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{_EXTRA_HINT} ({exc})") from exc
    from .api import HippoGraph

    hg = open_index(index)
    settings = ServerSettings(
        index_dir=str(hg.dir.root), allow_writes=allow_writes, token=token or None,
        max_request_bytes=max_request_bytes, max_write_bytes=max_write_bytes,
        config_overrides=dict(config_overrides or {}), warm_up=warm_up,
        allowed_hosts=list(allowed_hosts) if allowed_hosts is not None else None,
    )
    return _build_app(_Service(hg, settings, owns_index=not isinstance(index, HippoGraph)), settings)


def openapi_spec() -> dict:
    """The OpenAPI document of the API (no index needed); what docs/openapi.json holds."""
    app = _build_app(None, ServerSettings(index_dir=""))
    return app.openapi()


def _build_app(service: Optional[_Service], settings: ServerSettings) -> Any:
    from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query as QueryParam, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    from . import __version__, web
    from . import neighbourhood as nbh
    from .errors import HippoGraphError, IndexLockedError

    S = _schemas()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if service is not None:
            if settings.warm_up:
                service.warm_up()
            c = service.hg.manifest.counts
            logger.info(
                "serving %s (%s, %s passages; writes %s; token %s)", settings.index_dir,
                service.hg.manifest.generation, c.get("passages"), "enabled" if settings.allow_writes else "disabled",
                "required" if settings.token else "not required",
            )
        yield
        if service is not None and service.owns_index:
            service.hg.close()

    app = FastAPI(
        title="hippograph",
        version=__version__,
        summary="Graph-based multi-hop retrieval (PPR over a spaCy knowledge graph + vector search), no LLM.",
        description=(
            "Serves one hippograph index. Read-only unless the server was started with `--allow-writes`. "
            "When the server has a token, send `Authorization: Bearer <token>` (not needed for `/health`). "
            f"Limits: query ≤ {MAX_QUERY_CHARS} chars, top_k ≤ {MAX_TOP_K}, batch ≤ {MAX_BATCH} queries, "
            f"≤ {MAX_DOCUMENTS_PER_REQUEST} documents per POST /documents; oversize bodies get 413."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by hippograph.web from vendored assets
    )
    app.add_middleware(_BodyLimit, max_bytes=settings.max_request_bytes, max_write_bytes=settings.max_write_bytes)
    app.add_middleware(_Guard, token=settings.token, allowed_hosts=settings.allowed_hosts)  # outermost: runs first
    bearer = HTTPBearer(auto_error=False, description="Required when the server was started with a token.")

    def authorize(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if not settings.token:
            return
        if credentials is None or not hmac.compare_digest(
            credentials.credentials.encode("utf-8", "surrogatepass"), settings.token.encode("utf-8")
        ):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def svc() -> _Service:
        if service is None:  # only the spec-generation app has no index
            raise HTTPException(503, "no index loaded")
        return service

    def writes_allowed() -> None:
        if not settings.allow_writes:
            raise HTTPException(403, "writes are disabled: start the server with --allow-writes to add or delete documents")

    err = {"model": S.ErrorOut}
    common = {401: {**err, "description": "Missing or wrong bearer token"},
              413: {**err, "description": "Request body too large"},
              422: {**err, "description": "Invalid request (see `detail` / `message`)"}}
    auth = [Depends(authorize)]

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")).removeprefix("Value error, "),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        parts = []
        for e in errors[:5]:
            if e["type"] == "json_invalid":
                parts.append(f"body: invalid JSON ({e['msg']} at character {e['loc'][-1]})")
            else:
                parts.append(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}")
        summary = "; ".join(parts)
        return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors, "message": summary}))

    @app.exception_handler(HippoGraphError)
    async def _hippograph_error(request: Request, exc: HippoGraphError) -> JSONResponse:
        status = 409 if isinstance(exc, IndexLockedError) else 503
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=status, content={"detail": _redact(str(exc), settings.index_dir)})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal server error; see the server log"})

    def _run_query(fn):  # noqa: ANN001, ANN202
        try:
            return fn()
        except (ValueError, TypeError) as exc:  # HippoGraph.retrieve's documented bad-input errors
            raise HTTPException(400, str(exc)) from exc

    @app.get("/health", response_model=S.Health, tags=["service"], summary="Liveness and index generation")
    def health() -> dict:
        s = svc()
        s.maybe_refresh()  # reads the live manifest: a write by another process shows at once
        m = s.hg.manifest
        return {"status": "degraded" if s.degraded else "ok", "reason": s.degraded, "version": __version__,
                "generation": m.generation, "passages": int(m.counts.get("passages", 0)),
                "writes_enabled": settings.allow_writes}

    @app.get("/stats", response_model=dict[str, Any], tags=["service"], dependencies=auth, responses=common,
             summary="Index counts, timings and identity")
    def stats() -> dict:
        return _redact_all(_finite(svc().read(lambda hg: hg.stats())), settings.index_dir)

    @app.post("/retrieve", response_model=S.RetrieveResponse, tags=["retrieval"], dependencies=auth,
              responses={**common, 400: err}, summary="Top passages for one query")
    def retrieve(req: S.RetrieveRequest) -> dict:
        t0 = time.perf_counter()
        results, k, mode, gen = _run_query(
            lambda: svc().retrieve_many([req.query], req.top_k, req.mode, req.explain, req.filters))
        return {"query": req.query, "mode": mode, "top_k": k, "generation": gen,
                "took_ms": round((time.perf_counter() - t0) * 1000, 3), "hits": [_hit_json(h) for h in results[0]]}

    @app.post("/retrieve/batch", response_model=S.BatchRetrieveResponse, tags=["retrieval"], dependencies=auth,
              responses={**common, 400: err}, summary="Top passages for several queries, computed as one batch")
    def retrieve_batch(req: S.BatchRetrieveRequest) -> dict:
        t0 = time.perf_counter()
        results, k, mode, gen = _run_query(
            lambda: svc().retrieve_many(list(req.queries), req.top_k, req.mode, req.explain, req.filters))
        return {"mode": mode, "top_k": k, "generation": gen, "took_ms": round((time.perf_counter() - t0) * 1000, 3),
                "results": [{"query": q, "hits": [_hit_json(h) for h in hits]} for q, hits in zip(req.queries, results)]}

    @app.get("/documents", response_model=S.DocumentList, tags=["documents"], dependencies=auth, responses=common,
             summary="List indexed documents (paged)")
    def list_documents(
        offset: int = QueryParam(0, ge=0, le=10**9), limit: int = QueryParam(100, ge=1, le=1000)
    ) -> dict:
        docs = svc().read(lambda hg: hg.documents())
        return {"total": len(docs), "offset": offset, "limit": limit, "documents": _finite(docs[offset:offset + limit])}

    @app.post("/documents", response_model=S.AddDocumentsResponse, tags=["documents"],
              dependencies=[*auth, Depends(writes_allowed)],
              responses={**common, 403: {**err, "description": "Server is read-only (no --allow-writes)"},
                         409: {**err, "description": "Another process is writing to the index"}},
              summary="Add documents (needs --allow-writes); ids already present are skipped")
    def add_documents(req: S.AddDocumentsRequest) -> dict:
        t0 = time.perf_counter()
        seen: set = set()
        repeated: list = []
        docs = []
        for d in req.documents:
            if d.id is not None and d.id in seen:
                repeated.append(d.id)  # reported, not silently dropped
                continue
            seen.add(d.id)
            docs.append({"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata} if d.id is not None
                        else {"title": d.title, "text": d.text, "metadata": d.metadata})
        report = svc().write(lambda writer: writer.add(docs))
        gen = svc().read(lambda hg: hg.manifest.generation)
        return {"added": {k: int(v) for k, v in report.added.items()},
                "skipped_documents": list(report.skipped_documents) + repeated,
                "generation": gen, "took_ms": round((time.perf_counter() - t0) * 1000, 3)}

    @app.delete("/documents/{doc_id:path}", response_model=S.DeleteResponse, tags=["documents"],
                dependencies=[*auth, Depends(writes_allowed)],
                responses={**common, 403: {**err, "description": "Server is read-only (no --allow-writes)"},
                           404: {**err, "description": "No document with this id"},
                           409: {**err, "description": "Another process is writing to the index"},
                           501: {**err, "description": "This hippograph version cannot delete documents"}},
                summary="Delete one document (needs --allow-writes)")
    def delete_document(doc_id: str = PathParam(..., min_length=1, max_length=MAX_ID_CHARS)) -> dict:
        s = svc()
        if not hasattr(s.hg, "delete"):
            raise HTTPException(501, "deleting documents is not implemented in this hippograph version")
        if doc_id not in {d["id"] for d in s.read(lambda hg: hg.documents())}:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        t0 = time.perf_counter()
        report = s.write(lambda writer: writer.delete([doc_id]))
        if doc_id in (getattr(report, "missing_documents", None) or []):  # deleted by someone else meanwhile
            raise HTTPException(404, f"no document with id {doc_id!r}")
        gen = s.read(lambda hg: hg.manifest.generation)
        removed = {k: int(v) for k, v in (getattr(report, "deleted", None) or {}).items()}
        return {"deleted": doc_id, "removed": removed, "generation": gen,
                "took_ms": round((time.perf_counter() - t0) * 1000, 3)}

    @app.get("/neighbourhood", response_model=S.Neighbourhood, tags=["graph"], dependencies=auth,
             responses={**common, 404: {**err, "description": "No such entity or passage in the index"}},
             summary="Nodes and typed edges around one entity or passage (capped)")
    def get_neighbourhood(
        entity: Optional[str] = QueryParam(None, min_length=1, max_length=MAX_QUERY_CHARS,
                                           description="Entity name (as in an explanation, lower-cased)."),
        passage: Optional[str] = QueryParam(None, min_length=1, max_length=MAX_ID_CHARS, description="Passage id."),
        limit: int = QueryParam(nbh.DEFAULT_LIMIT, ge=1, le=nbh.MAX_LIMIT,
                                description=f"At most this many neighbours (edges: {nbh.EDGES_PER_NODE} × limit)."),
    ) -> dict:
        if (entity is None) == (passage is None):
            raise HTTPException(422, "give exactly one of the query parameters entity or passage")
        try:
            return svc().read(lambda hg: nbh.neighbourhood(hg.snapshot, entity=entity, passage=passage, limit=limit))
        except nbh.NotInIndex as exc:
            raise HTTPException(404, str(exc)) from exc

    web.mount(app)
    return app


def _app_from_env() -> Any:
    """uvicorn factory for `--workers N`: each worker process builds its app from $HIPPOGRAPH_SERVER_SETTINGS."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set; start workers through `hippograph serve`")
    s = ServerSettings(**json.loads(raw))
    return create_app(
        s.index_dir, allow_writes=s.allow_writes, token=s.token, max_request_bytes=s.max_request_bytes,
        max_write_bytes=s.max_write_bytes, config_overrides=s.config_overrides, warm_up=s.warm_up,
        allowed_hosts=s.allowed_hosts,
    )


# ---------------------------------------------------------------------------- running
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    index_dir: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    allow_writes: bool = False,
    token: Optional[str] = None,
    access_log: bool = False,
    timeout_graceful_shutdown: float = 10.0,
    config_overrides: Optional[dict] = None,
    max_request_bytes: int = 1 << 20,
    max_write_bytes: int = 32 << 20,
    allowed_hosts: Optional[Sequence[str]] = None,
) -> int:
    """Run the server until SIGINT/SIGTERM, then finish in-flight requests and return 0.

    `token` falls back to $HIPPOGRAPH_TOKEN. Refuses to expose writes beyond loopback
    without a token (ValueError); warns when exposing reads without one. Bound to loopback,
    it answers only Host headers in LOOPBACK_HOSTS + `allowed_hosts` (DNS-rebinding
    protection); bound elsewhere, only `allowed_hosts` when given, else any.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"{_EXTRA_HINT} ({exc})") from exc
    if workers < 1:
        raise ValueError(f"--workers must be ≥ 1, got {workers}")
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {port}")
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    if not _is_loopback(host) and not token:
        if allow_writes:
            raise ValueError(
                f"refusing to accept writes on non-loopback address {host} without a token; "
                f"pass --token or set ${TOKEN_ENV}"
            )
        logger.warning("serving on %s without a token: anyone who can reach it can query the index", host)

    if _is_loopback(host):
        allowed_hosts = [*LOOPBACK_HOSTS, *(allowed_hosts or [])]
    settings = ServerSettings(
        index_dir=str(index_dir), allow_writes=allow_writes, token=token, max_request_bytes=max_request_bytes,
        max_write_bytes=max_write_bytes, config_overrides=dict(config_overrides or {}),
        allowed_hosts=list(allowed_hosts) if allowed_hosts is not None else None,
    )
    common = dict(host=host, port=port, log_level="info", access_log=access_log,
                  timeout_graceful_shutdown=timeout_graceful_shutdown, lifespan="on")
    # After a graceful shutdown uvicorn re-raises the signal it caught; a no-op handler
    # lets us return normally (exit status 0) instead of dying by that signal.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: logger.info("received signal %d after shutdown", signum))

    if workers == 1:
        app = create_app(
            index_dir, allow_writes=allow_writes, token=token, max_request_bytes=max_request_bytes,
            max_write_bytes=max_write_bytes, config_overrides=config_overrides, allowed_hosts=settings.allowed_hosts,
        )
        server = uvicorn.Server(uvicorn.Config(app, **common))
        server.run()
        return 0 if server.started else 1

    from .api import HippoGraph

    with HippoGraph.open(index_dir) as hg:  # fail fast (clear error) before forking workers
        hg.config.replace(**settings.config_overrides)
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    uvicorn.run("hippograph.server:_app_from_env", factory=True, workers=workers, **common)
    return 0


# ---------------------------------------------------------------------------- CLI
def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `serve DIR [--host] [--port] [--workers N] [--allow-writes] [--token T]` to the hippograph CLI."""
    p = subparsers.add_parser("serve", help="serve an index over HTTP (needs hippograph[server])")
    p.add_argument("index", metavar="DIR")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--allow-writes", action="store_true", help="enable POST /documents and DELETE /documents/{id}")
    p.add_argument("--token", default=None, help=f"require this bearer token (default: ${TOKEN_ENV} if set)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--allowed-host", action="append", metavar="NAME", dest="allowed_hosts",
                   help="also answer requests whose Host header is NAME (repeatable; on loopback only "
                        "localhost, 127.0.0.1 and ::1 are answered by default)")
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    """Entry point of `hippograph serve`."""
    from .errors import HippoGraphError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise HippoGraphError(f"{_EXTRA_HINT} ({exc})") from exc
    return serve(
        args.index, host=args.host, port=args.port, workers=args.workers, allow_writes=args.allow_writes,
        token=args.token, access_log=args.access_log, allowed_hosts=getattr(args, "allowed_hosts", None),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m hippograph.server --openapi [FILE]`: write (or print) the OpenAPI spec."""
    p = argparse.ArgumentParser(prog="python -m hippograph.server", description=main.__doc__)
    p.add_argument("--openapi", nargs="?", const="-", metavar="FILE", required=True,
                   help="write the OpenAPI JSON to FILE (default: stdout)")
    args = p.parse_args(argv)
    text = openapi_json()
    if args.openapi == "-":
        sys.stdout.write(text)
    else:
        Path(args.openapi).write_text(text, encoding="utf-8")
    return 0


def openapi_json() -> str:
    """The spec as the exact text checked in as docs/openapi.json."""
    return json.dumps(openapi_spec(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
