"""LangChain retriever: hippograph as a `langchain_core` `BaseRetriever` (sync and async).

    from hippograph.integrations.langchain import HippoGraphRetriever
    retriever = HippoGraphRetriever(index="my-index", top_k=5)
    chain = retriever | (lambda docs: "\\n\\n".join(d.page_content for d in docs))
    chain.invoke("Where was the founder of Kessel Shipworks born?")

Metadata filters as LangChain vector-store retrievers take them: ``search_kwargs={"filter":
{"year": {"$gte": 2020}}}`` (hippograph's Mongo-like form, docs/filters.md; "k" there sets top_k),
or per call ``retriever.invoke(query, filter={...})``.
Each `Document` has the passage text as `page_content` and metadata passage_id, doc_id,
title, source, span, score (plus `explanation` with `explain=True`).
Needs `pip install 'hippograph[langchain]'`.
"""
from __future__ import annotations

import asyncio
from typing import Any

from . import RetrieveOptions, hit_metadata, require

require("langchain_core", "langchain", "LangChain")

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import Field, PrivateAttr  # noqa: E402

__all__ = ["HippoGraphRetriever"]


class HippoGraphRetriever(BaseRetriever):
    """Retrieve passages from a hippograph index as LangChain `Document`s.

    `index`: an open `HippoGraph` or an index directory. `top_k` / `mode` / `explain`
    default to the index config; `config_overrides` are query-time `Config` fields
    (e.g. ``{"damping": 0.3}``) applied to every query. `invoke(query, top_k=3)`
    overrides `top_k` for one call. `search_kwargs` takes "filter" (a metadata filter) and "k";
    `invoke(query, filter={...})` replaces the filter for one call.
    """

    index: Any
    """The open HippoGraph (a path given here is opened on construction)."""
    top_k: int | None = None
    mode: str | None = None
    explain: bool = False
    config_overrides: dict[str, Any] = Field(default_factory=dict)
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    _opts: RetrieveOptions = PrivateAttr()

    def __init__(self, index: Any = None, **data: Any) -> None:
        if index is not None:
            data["index"] = index
        super().__init__(**data)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        unknown = sorted(set(self.search_kwargs) - {"filter", "k"})
        if unknown:
            raise ValueError(f"search_kwargs: unknown key(s) {', '.join(map(repr, unknown))}; expected 'filter' and/or 'k'")
        top_k = self.search_kwargs.get("k", self.top_k)
        self._opts = RetrieveOptions(
            self.index, top_k, self.mode, self.explain, self.config_overrides, self.search_kwargs.get("filter"))
        self.index = self._opts.hg

    def _to_documents(self, query: str, top_k: int | None, filter: dict[str, Any] | None = None) -> list[Document]:
        hits = self._opts.retrieve(query, top_k, filter)
        return [
            Document(page_content=h.text, metadata=hit_metadata(h, explain=self.explain), id=h.passage_id)
            for h in hits
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, top_k: int | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name for it
    ) -> list[Document]:
        return self._to_documents(query, top_k, filter)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, top_k: int | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name for it
    ) -> list[Document]:
        # Retrieval is CPU-bound: run it in a worker thread so the event loop stays responsive.
        return await asyncio.to_thread(self._to_documents, query, top_k, filter)
