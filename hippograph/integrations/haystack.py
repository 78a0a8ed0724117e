"""Haystack component: hippograph as a retriever in a Haystack 2.x / 3.x `Pipeline`.

    from haystack import Pipeline
    from hippograph.integrations.haystack import HippoGraphRetriever
    pipe = Pipeline()
    pipe.add_component("retriever", HippoGraphRetriever("my-index", top_k=5))
    pipe.run({"retriever": {"query": "Where was the founder of Kessel Shipworks born?"}})

The index is opened in `warm_up()` (which `Pipeline` calls before the first run; a bare `run`
warms up itself), so building or deserialising a pipeline loads nothing.
`run(query, top_k=None, filters=None) -> {"documents": [Document, ...]}`; `filters` is a Haystack
filter dict (``{"field": "meta.year", "operator": ">=", "value": 2020}``, AND/OR/NOT with
"conditions") or hippograph's own form (docs/filters.md); given to `run` it replaces the
component's `filters` for that call (Haystack's default filter policy). Each `Document` has the
passage id as `id`, the passage text as `content`, the fused score as `score`, and meta
passage_id, doc_id, title, source, span, score (plus `explanation` with `explain=True`).
Needs `pip install 'hippograph[haystack]'`.
"""
# No `from __future__ import annotations`: Haystack reads run()'s annotations at class creation.
import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from . import RetrieveOptions, check_filters, check_overrides, hit_metadata, require

require("haystack", "haystack", "Haystack")

from haystack import Document, component, default_from_dict, default_to_dict  # noqa: E402

if TYPE_CHECKING:
    from ..api import HippoGraph

__all__ = ["HippoGraphRetriever"]


@component
class HippoGraphRetriever:
    """Retrieve passages from a hippograph index as Haystack `Document`s.

    `index`: an open `HippoGraph` or an index directory (opened by `warm_up`). `top_k` / `mode` /
    `explain` default to the index config; `config_overrides` are query-time `Config` fields
    applied to every query (checked here); `filters` is the default metadata filter. Serialises
    (`to_dict`) with the index's absolute path, so a pipeline saved here loads from any working directory.
    """

    def __init__(
        self,
        index: "Union[HippoGraph, str, Path]",
        top_k: Optional[int] = None,
        mode: Optional[str] = None,
        explain: bool = False,
        config_overrides: Optional[Mapping[str, Any]] = None,
        filters: Optional[dict[str, Any]] = None,
    ) -> None:
        from ..api import HippoGraph

        if not isinstance(index, (HippoGraph, str, Path)):
            raise TypeError(f"index must be a HippoGraph or an index directory path, got {type(index).__name__}")
        self._settings = (top_k, mode, explain, dict(check_overrides(None, top_k, mode, config_overrides)),
                          check_filters(filters))
        self._index = index if isinstance(index, HippoGraph) else os.path.abspath(os.fspath(index))
        self._opts: Optional[RetrieveOptions] = None
        self._lock = threading.Lock()
        if isinstance(index, HippoGraph):
            self.warm_up()

    def warm_up(self) -> None:
        """Open the index (once). Haystack calls this before a pipeline's first run."""
        with self._lock:
            if self._opts is None:
                self._opts = RetrieveOptions(self._index, *self._settings)

    @property
    def hippograph(self) -> "HippoGraph":
        self.warm_up()
        return self._opts.hg

    def to_dict(self) -> dict[str, Any]:
        """Serialise for `Pipeline.to_dict` / YAML (the index is stored by absolute path)."""
        top_k, mode, explain, overrides, filters = self._settings
        index = self._index if isinstance(self._index, str) else os.path.abspath(self._index.dir.root)
        return default_to_dict(self, index=index, top_k=top_k, mode=mode, explain=explain,
                               config_overrides=dict(overrides), filters=filters)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HippoGraphRetriever":
        return default_from_dict(cls, data)

    def _documents(self, query: str, top_k: Optional[int], filters: Optional[dict[str, Any]] = None) -> list[Document]:
        self.warm_up()
        hits = self._opts.retrieve(query, top_k, filters)
        return [
            Document(id=h.passage_id, content=h.text, meta=hit_metadata(h, explain=self._opts.explain), score=h.score)
            for h in hits
        ]

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, top_k: Optional[int] = None, filters: Optional[dict[str, Any]] = None
    ) -> dict[str, list[Document]]:
        """Top passages for `query` (`top_k` / `filters` replace the component's defaults for this call)."""
        return {"documents": self._documents(query, top_k, filters)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, top_k: Optional[int] = None, filters: Optional[dict[str, Any]] = None
    ) -> dict[str, list[Document]]:
        """Async variant for `AsyncPipeline`: retrieval runs in a worker thread."""
        return {"documents": await asyncio.to_thread(self._documents, query, top_k, filters)}
