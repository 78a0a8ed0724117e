"""Metadata filters: one canonical dict form, parsed into a small expression tree and evaluated
into a boolean passage mask over a columnar cache of the passages table (docs/filters.md).

Canonical form (Mongo-like, as LangChain vector stores take it):

    {"year": 2020}                                   equality (a list value matches if any element does)
    {"year": {"$gte": 2015, "$lt": 2021}}            ranges on numbers, ISO dates ("2021-03-01") or strings
    {"lang": {"$in": ["en", "de"]}}                  $in / $nin, $eq / $ne
    {"source": {"$glob": "papers/*.pdf"}}            $glob (fnmatch, case-sensitive) and $prefix on strings
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}; several keys in one dict are ANDed
    {"reviewed": {"$exists": true}}

Fields: `doc_id`, `source`, `passage_id` and `title` are the passage's own columns; any other name,
or `meta.NAME` / `metadata.NAME` (needed for a metadata key called e.g. "source"), is a metadata
key, dotted for nested objects. Haystack's form (``{"operator": "AND", "conditions": [{"field":
"meta.year", "operator": ">=", "value": 2020}]}``) is accepted as well and translated; there
`id` and `meta.doc_id` / `meta.source` / `meta.title` / `meta.passage_id` name the passage's own
fields, as the Haystack adapter's Documents show them.

A passage held by several documents (identical text) matches when any of its documents does.
Masks are cached per filter; columns per field, built with SQLite's JSON functions.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import math
import operator
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hippograph.errors import ConfigError

__all__ = ["FilterError", "PassageFilter", "FilterIndex", "FilterView", "parse_filters", "parse_cli_filter", "BUILTIN_FIELDS"]

BUILTIN_FIELDS = ("doc_id", "source", "passage_id", "title")
"""Passage columns a filter can name directly; every other field name is a metadata key."""

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$prefix", "$glob", "$exists")
RANGES = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
HAYSTACK_OPS = {"==": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte", "in": "$in",
                "not in": "$nin"}
MAX_DEPTH = 32
MAX_IN_VALUES = 10_000
MASK_CACHE_SIZE = 64


class FilterError(ConfigError, ValueError):
    """A malformed filter; the message is one line naming the part that is wrong."""


Scalar = (str, int, float, bool)


# ---------------------------------------------------------------------------- parsing
def parse_filters(filters: Any) -> tuple | None:
    """The expression tree of a filter dict (canonical or Haystack form); None for no filter.

    Nodes: ("and", (child, ...)), ("or", (child, ...)), ("not", child), ("cmp", field, op, value).
    Raises FilterError with a one-line message for anything malformed."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise FilterError(f"filters must be a JSON object (dict), got {type(filters).__name__}")
    if not filters:
        return None
    if "operator" in filters and ("conditions" in filters or "field" in filters):
        return _haystack(filters, "filters", 0)
    return _mongo(filters, "filters", 0)


def _depth(where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: filter nested deeper than {MAX_DEPTH} levels")


def _mongo(obj: Any, where: str, depth: int) -> tuple:
    _depth(where, depth)
    if not isinstance(obj, Mapping) or not obj:
        raise FilterError(f"{where}: expected a non-empty object, got {json.dumps(obj, default=str)[:80]}")
    parts = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise FilterError(f"{where}: keys must be strings, got {key!r}")
        at = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{at}: expected a non-empty list of filters")
            kids = tuple(_mongo(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value))
            parts.append((key[1:], kids))
        elif key == "$not":
            parts.append(("not", _mongo(value, at, depth + 1)))
        elif key.startswith("$"):
            raise FilterError(f"{at}: unknown operator {key!r} (expected $and, $or, $not or a field name)")
        else:
            parts.extend(_field_conditions(key, value, at))
    return parts[0] if len(parts) == 1 else ("and", tuple(parts))


def _field_conditions(field: str, value: Any, where: str) -> list[tuple]:
    field = _check_field(field, where)
    if isinstance(value, Mapping) and value and all(isinstance(k, str) and k.startswith("$") for k in value):
        return [_comparison(field, op, v, f"{where}.{op}") for op, v in value.items()]
    if isinstance(value, Mapping):
        raise FilterError(f"{where}: expected a value or an object of operators ({', '.join(COMPARISONS)})")
    return [_comparison(field, "$eq", value, where)]


def _check_field(field: str, where: str) -> str:
    name = field
    for prefix in ("meta.", "metadata."):
        if field.startswith(prefix):
            name = field[len(prefix):]
            break
    else:
        if field in BUILTIN_FIELDS:
            return field
    parts = name.split(".")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise FilterError(f"{where}: field name is not valid Unicode") from None
    if not name or any(not p for p in parts) or '"' in name:
        raise FilterError(f"{where}: bad field name {field!r}")
    return "meta." + name


def _comparison(field: str, op: str, value: Any, where: str) -> tuple:
    if op not in COMPARISONS:
        raise FilterError(f"{where}: unknown operator {op!r}; expected one of {', '.join(COMPARISONS)}")
    if op in ("$in", "$nin"):
        if not isinstance(value, list) or not value:
            raise FilterError(f"{where}: expected a non-empty list of values")
        if len(value) > MAX_IN_VALUES:
            raise FilterError(f"{where}: more than {MAX_IN_VALUES} values")
        for v in value:
            _scalar(v, where)
        return ("cmp", field, op, tuple(value))
    if op == "$exists":
        if not isinstance(value, bool):
            raise FilterError(f"{where}: expected true or false")
        return ("cmp", field, op, value)
    if op in ("$prefix", "$glob"):
        if not isinstance(value, str):
            raise FilterError(f"{where}: expected a string pattern, got {type(value).__name__}")
        return ("cmp", field, op, value)
    if op in RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise FilterError(f"{where}: expected a number or a (date) string, got {json.dumps(value, default=str)[:40]}")
        _scalar(value, where)
        return ("cmp", field, op, value)
    if value is not None:  # $eq / $ne; None means "missing or null"
        _scalar(value, where)
    return ("cmp", field, op, value)


def _scalar(v: Any, where: str) -> None:
    if not isinstance(v, Scalar):
        raise FilterError(f"{where}: expected a string, number or boolean, got {json.dumps(v, default=str)[:40]}")
    if isinstance(v, float) and not math.isfinite(v):
        raise FilterError(f"{where}: {v} is not a finite number")


def _haystack(obj: Any, where: str, depth: int) -> tuple:
    _depth(where, depth)
    if not isinstance(obj, Mapping):
        raise FilterError(f"{where}: expected an object with 'operator', got {type(obj).__name__}")
    op = obj.get("operator")
    if "conditions" in obj:
        conds = obj["conditions"]
        if op not in ("AND", "OR", "NOT"):
            raise FilterError(f"{where}.operator: expected AND, OR or NOT with 'conditions', got {op!r}")
        if not isinstance(conds, list) or not conds:
            raise FilterError(f"{where}.conditions: expected a non-empty list")
        kids = tuple(_haystack(c, f"{where}.conditions[{i}]", depth + 1) for i, c in enumerate(conds))
        if op == "NOT":  # Haystack: NOT(AND(conditions))
            return ("not", kids[0] if len(kids) == 1 else ("and", kids))
        return (op.lower(), kids) if len(kids) > 1 else kids[0]
    if "field" not in obj or "value" not in obj:
        raise FilterError(f"{where}: a condition needs 'field', 'operator' and 'value' (or 'operator' and 'conditions')")
    if op not in HAYSTACK_OPS:
        raise FilterError(f"{where}.operator: unknown comparison {op!r}; expected one of {', '.join(HAYSTACK_OPS)}")
    field = obj["field"]
    if not isinstance(field, str):
        raise FilterError(f"{where}.field: expected a string")
    # the Haystack adapter's Document has the passage id as `id` and doc_id/source/title/passage_id in meta
    field = "passage_id" if field == "id" else field
    if field.startswith("meta.") and field[len("meta."):] in BUILTIN_FIELDS:
        field = field[len("meta."):]
    return _comparison(_check_field(field, f"{where}.field"), HAYSTACK_OPS[op], obj["value"], f"{where}.value")


_CLI_RE = re.compile(r"^\s*([^=!<>~^\s]+)\s*(>=|<=|!=|\^=|~=|=|>|<)\s*(.*?)\s*$", re.S)
_CLI_OPS = {"=": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte", "^=": "$prefix", "~=": "$glob"}


def parse_cli_filter(text: str) -> dict[str, Any]:
    """One `--filter` argument as a canonical filter dict: a JSON object, or `FIELD OP VALUE` with OP one of
    = != > >= < <= ^= (prefix) ~= (glob). A metadata value is read as JSON when it parses (2020, true,
    ["en","de"] → $in), else as a string; doc_id / source / passage_id / title values are always strings."""
    s = text.strip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except ValueError as exc:
            raise FilterError(f"--filter {text!r}: invalid JSON ({exc})") from None
        try:
            parse_filters(obj)
        except FilterError as exc:
            raise FilterError(f"--filter {text!r}: {exc}") from None
        return obj
    m = _CLI_RE.match(s)
    if not m:
        raise FilterError(f"--filter {text!r}: expected FIELD=VALUE (or != > >= < <= ^= ~=) or a JSON object")
    field, op, raw = m.group(1), _CLI_OPS[m.group(2)], m.group(3)
    if raw[:1] in ("=", "<", ">", "!", "~", "^"):
        raise FilterError(f"--filter {text!r}: unknown operator {m.group(2) + raw[:1]!r}; use = != > >= < <= ^= ~=")
    value: Any = raw
    if field not in BUILTIN_FIELDS and op not in ("$prefix", "$glob"):
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if isinstance(value, list):
        op = {"$eq": "$in", "$ne": "$nin"}.get(op, op)
    obj = {field: {op: value}}
    try:
        parse_filters(obj)
    except FilterError as exc:
        raise FilterError(f"--filter {text!r}: {str(exc).split(': ', 1)[-1]}") from None
    return obj


def merge_filters(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Several filters that must all hold, as one filter dict (None for none)."""
    if not items:
        return None
    return items[0] if len(items) == 1 else {"$and": list(items)}


def filter_key(tree: tuple) -> str:
    """Canonical text of a parsed filter (cache key; equal filters written differently share it when
    they parse to the same tree)."""
    return json.dumps(tree, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class PassageFilter:
    """A filter evaluated on one snapshot: its cache key and the boolean mask over passage rows."""

    key: str
    mask: np.ndarray

    @property
    def count(self) -> int:
        return int(self.mask.sum())


# ---------------------------------------------------------------------------- evaluation
def parse_date(s: str) -> float | None:
    """Seconds since the epoch (UTC; a naive time is read as UTC) of an ISO-8601 date or date-time string,
    or None. Plain years ("2020") are not dates: compare them as numbers."""
    if len(s) < 8 or not s[:4].isdigit() or s[4] != "-":
        return None
    try:
        d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


class _Column:
    """Every value of one field, flattened: `rows[i]` is the row holding value i (a list contributes one
    value per element), with typed views: number (NaN if not a number), bool (-1 if not a bool),
    string code into `strings` (-1 if not a string). JSON null appears only in `rows` (exists)."""

    def __init__(self, rows: np.ndarray, values: list[Any]):
        self.rows = np.asarray(rows, dtype=np.int64)
        n = len(values)
        self.num = np.full(n, np.nan)
        self.boolv = np.full(n, -1, dtype=np.int8)
        self.code = np.full(n, -1, dtype=np.int64)
        self.strings: list[str] = []
        self.code_of: dict[str, int] = {}
        for i, v in enumerate(values):
            if isinstance(v, bool):
                self.boolv[i] = int(v)
            elif isinstance(v, (int, float)):
                self.num[i] = float(v)
            elif isinstance(v, str):
                c = self.code_of.get(v)
                if c is None:
                    c = self.code_of[v] = len(self.strings)
                    self.strings.append(v)
                self.code[i] = c
        self._dates: np.ndarray | None = None

    def dates(self) -> np.ndarray:
        """Per value: its ISO date as epoch seconds (NaN when not a date string); parsed once per distinct string."""
        if self._dates is None:
            per_string = np.array([np.nan if (t := parse_date(s)) is None else t for s in self.strings] + [np.nan])
            self._dates = per_string[self.code]  # code -1 → the trailing NaN
        return self._dates

    def by_string(self, test) -> np.ndarray:  # noqa: ANN001 - a str → bool predicate
        """Value mask: string values whose text passes `test` (evaluated once per distinct string)."""
        ok = np.array([bool(test(s)) for s in self.strings] + [False], dtype=bool)
        return ok[self.code]


class FilterIndex:
    """Evaluates parsed filters on one index snapshot. Rows are the passages (row i = passage i)
    followed by the extra owners of shared passages; columns are built per field on first use."""

    def __init__(self, snapshot: Any):
        self.snap = snapshot
        self._lock = threading.Lock()  # column building
        self._cache_lock = threading.Lock()  # the mask LRU (server threads share one index)
        self._columns: dict[str, _Column] = {}
        self._masks: OrderedDict[str, PassageFilter] = OrderedDict()
        n = snapshot.n_passages
        owners = self._query("SELECT rowid, passage_idx, doc_id, source FROM passage_owners ORDER BY rowid", owners=True)
        self.owner_rowids = np.array([r[0] for r in owners], dtype=np.int64)
        self.row_passage = np.concatenate([np.arange(n, dtype=np.int64),
                                           np.array([r[1] for r in owners], dtype=np.int64)])
        self._owner_doc = [r[2] for r in owners]
        self._owner_source = [r[3] for r in owners]
        self.n_rows = len(self.row_passage)

    def _query(self, sql: str, params: tuple = (), *, owners: bool = False) -> list[tuple]:
        if owners and not self.snap.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='passage_owners'").fetchone():
            return []  # indexes written before shared passages were recorded
        cur = self.snap.conn.cursor()
        cur.row_factory = None
        return cur.execute(sql, params).fetchall()

    # ---- columns -------------------------------------------------------------------------
    def column(self, field: str) -> _Column:
        col = self._columns.get(field)
        if col is None:
            with self._lock:
                col = self._columns.get(field) or self._build_column(field)
                self._columns[field] = col
        return col

    def _build_column(self, field: str) -> _Column:
        snap, n = self.snap, self.snap.n_passages
        owner_rows = n + np.arange(len(self.owner_rowids), dtype=np.int64)
        if field in BUILTIN_FIELDS:
            if field == "source":
                own = [r[0] for r in self._query("SELECT source FROM passages ORDER BY idx")]
                extra = self._owner_source
            elif field == "doc_id":
                own, extra = list(snap.passage_doc_ids), self._owner_doc
            else:
                own = list(snap.passage_ids if field == "passage_id" else snap.passage_titles)
                extra = [own[p] for p in self.row_passage[n:]]
            return _Column(np.concatenate([np.arange(n, dtype=np.int64), owner_rows]), own + list(extra))
        path = "$" + "".join(f'."{p}"' for p in field[len("meta."):].split("."))
        scalar = "j.type NOT IN ('object', 'array') AND json_type({src}, ?) != 'object'"
        rows = self._query(
            "SELECT p.idx, j.value, j.type FROM passages p, json_each(p.metadata, ?) j "
            f"WHERE json_valid(p.metadata) AND {scalar.format(src='p.metadata')}", (path, path))
        if len(self.owner_rowids):
            extra = self._query(
                "SELECT o.rowid, j.value, j.type FROM passage_owners o JOIN documents d ON d.id = o.doc_id, "
                f"json_each(d.metadata, ?) j WHERE json_valid(d.metadata) AND {scalar.format(src='d.metadata')}",
                (path, path), owners=True)
            pos = np.searchsorted(self.owner_rowids, np.array([r[0] for r in extra], dtype=np.int64))
            rows += [(n + int(i), r[1], r[2]) for i, r in zip(pos, extra)]
        values = [bool(v) if t in ("true", "false") else v for _, v, t in rows]
        return _Column(np.array([r[0] for r in rows], dtype=np.int64), values)

    # ---- evaluation ------------------------------------------------------------------------
    def passage_filter(self, filters: Any) -> PassageFilter | None:
        """The cached mask of a filter dict (None when `filters` is empty)."""
        tree = parse_filters(filters)
        if tree is None:
            return None
        key = filter_key(tree)
        with self._cache_lock:
            hit = self._masks.get(key)
            if hit is not None:
                self._masks.move_to_end(key)
                return hit
        rows = self._eval(tree)
        mask = np.zeros(self.snap.n_passages, dtype=bool)
        mask[self.row_passage[rows]] = True
        out = PassageFilter(key, mask)
        with self._cache_lock:
            self._masks[key] = out
            while len(self._masks) > MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return out

    def _eval(self, node: tuple) -> np.ndarray:
        kind = node[0]
        if kind == "and":
            out = self._eval(node[1][0])
            for child in node[1][1:]:
                out &= self._eval(child)
            return out
        if kind == "or":
            out = self._eval(node[1][0])
            for child in node[1][1:]:
                out |= self._eval(child)
            return out
        if kind == "not":
            return ~self._eval(node[1])
        _, field, op, value = node
        if op in ("$ne", "$nin"):  # any value of the row equal → excluded; rows without the field match
            return ~self._eval(("cmp", field, {"$ne": "$eq", "$nin": "$in"}[op], value))
        col = self.column(field)
        out = np.zeros(self.n_rows, dtype=bool)
        if op == "$exists":
            out[col.rows] = True
            return out if value else ~out
        if op == "$eq" and value is None:  # missing or null
            nonnull = (col.boolv >= 0) | ~np.isnan(col.num) | (col.code >= 0)
            out[col.rows[nonnull]] = True
            return ~out
        out[col.rows[self._values(col, op, value)]] = True
        return out

    @staticmethod
    def _values(col: _Column, op: str, value: Any) -> np.ndarray:
        """Mask over the column's values that satisfy one comparison."""
        if op in ("$eq", "$in"):
            values = value if op == "$in" else (value,)
            strs = [col.code_of[v] for v in values if isinstance(v, str) and v in col.code_of]
            nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            bools = [int(v) for v in values if isinstance(v, bool)]
            ok = np.isin(col.code, strs) if strs else np.zeros(len(col.rows), dtype=bool)
            if nums:
                ok |= np.isin(col.num, nums)
            if bools:
                ok |= np.isin(col.boolv, bools)
            return ok
        if op == "$prefix":
            return col.by_string(lambda s: s.startswith(value))
        if op == "$glob":
            return col.by_string(lambda s: fnmatch.fnmatchcase(s, value))
        cmp = RANGES[op]
        if not isinstance(value, str):
            with np.errstate(invalid="ignore"):
                return cmp(col.num, float(value))
        date = parse_date(value)
        if date is not None:
            with np.errstate(invalid="ignore"):
                return cmp(col.dates(), date)
        return col.by_string(lambda s: cmp(s, value))


# ---------------------------------------------------------------------------- engine view
WIDEN_SAFETY = 1.5
"""A filtered vector search asks for k · WIDEN_SAFETY / (fraction of units kept) candidates."""
WIDEN_MAX_LISTS = 4
"""…and probes at most this many times more SPANN posting lists than an unfiltered one."""


class FilterView:
    """A passage mask seen from every granularity the engine searches: a unit is kept when at least
    one passage it maps to is kept; graph nodes are the kept entities, then the kept passages."""

    def __init__(self, snapshot: Any, passages: np.ndarray):
        self.snap = snapshot
        self.passages = passages
        self.rows = np.flatnonzero(passages)
        self._units: dict[str, np.ndarray] = {"passages": passages}

    @classmethod
    def of(cls, snapshot: Any, mask: np.ndarray) -> "FilterView":
        return cls(snapshot, np.asarray(mask, dtype=bool))

    def units(self, gran: str) -> np.ndarray:
        """Boolean mask over the units of a granularity."""
        m = self._units.get(gran)
        if m is None:
            snap, p = self.snap, self.passages.astype(np.float64)
            if gran == "sentences":
                m = self.passages[snap.sentence_passage]
            elif gran == "facts":
                m = (snap.fact_passages @ p) > 0
            elif gran == "entities":
                m = (snap.entity_passages @ p) > 0
            elif gran == "documents":
                m = (snap.document_view[1] @ p) > 0
            else:
                raise ValueError(f"unknown granularity {gran!r}")
            self._units[gran] = m = np.asarray(m, dtype=bool).ravel()
        return m

    @property
    def entities(self) -> np.ndarray:
        return self.units("entities")

    @property
    def nodes(self) -> np.ndarray:
        m = self._units.get("nodes")
        if m is None:
            m = self._units["nodes"] = np.concatenate([self.entities, self.passages])
        return m

    def vector_mask(self, gran: str, index: Any) -> np.ndarray | None:
        """The kept units as a mask over `index`'s vector ids, for an index whose search takes
        `allowed` (SPANN: it then reads only kept entries); None for one that does not (flat)."""
        if not getattr(index, "accepts_allowed", False):
            return None
        key = f"vectors:{gran}"
        m = self._units.get(key)
        if m is None:
            units = self.units(gran)
            vid2row = getattr(index, "vid2row", None)
            if vid2row is None:
                m = units
            else:
                ok = (vid2row >= 0) & (vid2row < units.size)
                m = np.zeros(len(vid2row), dtype=bool)
                m[ok] = units[vid2row[ok]]
            self._units[key] = m
        return m

    def widen(self, gran: str, k: int, n_units: int, max_lists: int) -> tuple[int, int]:
        """(candidates, posting lists) to ask a vector index for so that about k kept units come back."""
        kept = int(self.units(gran).sum())
        if kept == 0:
            return 1, max_lists
        grow = n_units / kept
        return min(n_units, math.ceil(k * WIDEN_SAFETY * grow)), math.ceil(max_lists * min(grow, WIDEN_MAX_LISTS))

    def keep_units(self, gran: str, scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Drop candidates of excluded units, keeping order; at most k per row, padded with id -1."""
        mask = self.units(gran)
        ok = (ids >= 0) & mask[np.maximum(ids, 0)]
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(ids, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        ids[~np.take_along_axis(ok, order, axis=1)] = -1
        return scores, ids
