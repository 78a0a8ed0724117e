"""Adapters that make hippograph a native retriever in RAG frameworks.

    from hippograph.integrations.langchain import HippoGraphRetriever   # pip install 'hippograph[langchain]'
    from hippograph.integrations.llamaindex import HippoGraphRetriever  # pip install 'hippograph[llamaindex]'
    from hippograph.integrations.haystack import HippoGraphRetriever    # pip install 'hippograph[haystack]'

This package imports no framework: each adapter module imports its own framework when
it is imported, and raises an ImportError naming the extra to install when it is
missing. The helpers here are shared by all three adapters (and the HTTP server).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..api import HippoGraph
    from ..types import Hit

__all__ = ["require", "open_index", "check_overrides", "check_filters", "hit_metadata", "RetrieveOptions"]

MODES = ("hybrid", "ppr", "dense", "bm25")


def require(module: str, extra: str, framework: str) -> ModuleType:
    """Import `module`, or raise an ImportError that names the pip extra providing it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"hippograph's {framework} integration needs the '{module.split('.')[0]}' package "
            f"({exc}); install it with: pip install 'hippograph[{extra}]'"
        ) from exc


def open_index(index: "HippoGraph | str | Path") -> "HippoGraph":
    """Accept an open HippoGraph as is, or open the index directory at `index`."""
    from ..api import HippoGraph

    if isinstance(index, HippoGraph):
        return index
    if isinstance(index, (str, Path)):
        return HippoGraph.open(index)
    raise TypeError(f"index must be a HippoGraph or an index directory path, got {type(index).__name__}")


def check_overrides(
    hg: "HippoGraph | None", top_k: int | None, mode: str | None, overrides: Mapping[str, Any] | None
) -> dict:
    """Validate adapter settings up front so a typo fails at construction, not at the first query
    (`hg=None`: against the default config, for adapters that open the index later)."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    overrides = dict(overrides or {})
    if hg is None:
        from ..config import Config

        Config().replace(**overrides)  # raises ValueError naming unknown options
    else:
        hg.config.replace(**overrides)
    return overrides


def check_filters(filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A metadata filter dict (hippograph's or Haystack's form, docs/filters.md), checked up front:
    a malformed one raises FilterError (a ValueError) at construction, not at the first query."""
    if filters is None:
        return None
    from ..retrievers.filters import parse_filters

    parse_filters(filters)
    return dict(filters)


class RetrieveOptions:
    """What every adapter stores: the open index, default top_k / mode / explain and config overrides."""

    def __init__(
        self,
        index: "HippoGraph | str | Path",
        top_k: int | None = None,
        mode: str | None = None,
        explain: bool = False,
        config_overrides: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        self.hg = open_index(index)
        self.overrides = check_overrides(self.hg, top_k, mode, config_overrides)
        self.top_k = top_k
        self.mode = mode
        self.explain = bool(explain)
        self.filters = check_filters(filters)

    def retrieve(self, query: str, top_k: int | None = None, filters: Mapping[str, Any] | None = None) -> list["Hit"]:
        """Run one query with the stored defaults (`top_k` / `filters` here replace the stored ones)."""
        k = self.top_k if top_k is None else top_k
        flt = self.filters if filters is None else dict(filters)
        return self.hg.retrieve(query, k, mode=self.mode, explain=self.explain, filters=flt, **self.overrides)


def hit_metadata(hit: "Hit", *, explain: bool = False) -> dict[str, Any]:
    """Flat, JSON-serialisable metadata for a framework document.

    The passage's own metadata comes first; hippograph's provenance keys (passage_id,
    doc_id, title, source, span, score and, when asked, explanation) win on a clash.
    """
    meta: dict[str, Any] = dict(hit.metadata or {})
    meta.update(
        passage_id=hit.passage_id,
        doc_id=hit.doc_id,
        title=hit.title,
        source=hit.source,
        span=[int(hit.span[0]), int(hit.span[1])],
        score=float(hit.score),
    )
    if explain and hit.explanation is not None:
        meta["explanation"] = hit.explanation
    return meta
