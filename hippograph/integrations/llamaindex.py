"""LlamaIndex retriever: hippograph as a `llama_index.core` `BaseRetriever`.

    from llama_index.core.query_engine import RetrieverQueryEngine
    from hippograph.integrations.llamaindex import HippoGraphRetriever
    retriever = HippoGraphRetriever("my-index", top_k=5)
    nodes = retriever.retrieve("Where was the founder of Kessel Shipworks born?")
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

Returns `NodeWithScore`s whose `TextNode` has the passage id as its (stable) node id,
the passage text, the document id as its source node (`node.ref_doc_id`), and metadata
passage_id, doc_id, title, source, span, score (plus `explanation` with `explain=True`).
Only `title` is shown to the LLM and the embedder; the rest is provenance.
`filters=MetadataFilters(...)` restricts retrieval like a LlamaIndex vector retriever's filters
(keys doc_id / source / passage_id / title are the passage's own fields, others its metadata).
Needs `pip install 'hippograph[llamaindex]'`.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from . import RetrieveOptions, hit_metadata, require

require("llama_index.core", "llamaindex", "LlamaIndex")

from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

if TYPE_CHECKING:
    from ..api import HippoGraph
    from ..types import Hit

__all__ = ["HippoGraphRetriever", "hit_to_node", "metadata_filters_to_dict"]

_VISIBLE_KEYS = {"title"}
"""Metadata keys LlamaIndex may put into LLM prompts and embedding text; others are provenance only."""


_OPS = {
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte", FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in", FilterOperator.CONTAINS: "$eq",  # a list field matches if any element does
}


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def metadata_filters_to_dict(filters: MetadataFilters) -> dict[str, Any]:
    """LlamaIndex `MetadataFilters` as a hippograph filter dict (docs/filters.md). ANY / CONTAINS use
    hippograph's any-element match on list fields, ALL one equality per value, TEXT_MATCH a substring
    glob, IS_EMPTY "missing or null"; TEXT_MATCH_INSENSITIVE raises ValueError."""
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(metadata_filters_to_dict(f))
            continue
        op = FilterOperator(f.operator)
        if op in _OPS:
            parts.append({f.key: {_OPS[op]: f.value}})
        elif op == FilterOperator.ALL:
            values = f.value if isinstance(f.value, list) else [f.value]
            parts.append({"$and": [{f.key: {"$eq": v}} for v in values]})
        elif op == FilterOperator.TEXT_MATCH:
            parts.append({f.key: {"$glob": f"*{_glob_escape(str(f.value))}*"}})
        elif op == FilterOperator.IS_EMPTY:
            parts.append({f.key: {"$eq": None}})
        else:
            raise ValueError(f"MetadataFilter on {f.key!r}: operator {op.value!r} is not supported by hippograph")
    if not parts:
        return {}
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$and": parts}}
    return parts[0] if len(parts) == 1 else {f"${condition.value}": parts}


def hit_to_node(hit: "Hit", *, explain: bool = False) -> NodeWithScore:
    """One hippograph `Hit` as a scored LlamaIndex `TextNode`."""
    meta = hit_metadata(hit, explain=explain)
    hidden = [k for k in meta if k not in _VISIBLE_KEYS]
    node = TextNode(
        id_=hit.passage_id,
        text=hit.text,
        metadata=meta,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=hidden,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
        start_char_idx=int(hit.span[0]),
        end_char_idx=int(hit.span[1]),
    )
    return NodeWithScore(node=node, score=float(hit.score))


class HippoGraphRetriever(BaseRetriever):
    """Retrieve passages from a hippograph index as LlamaIndex nodes.

    `index`: an open `HippoGraph` or an index directory. `top_k` / `mode` / `explain`
    default to the index config; `config_overrides` are query-time `Config` fields
    applied to every query; `filters` (`MetadataFilters`, or a hippograph filter dict) restricts
    every query to the passages it matches.
    """

    def __init__(
        self,
        index: "HippoGraph | str | Path",
        top_k: int | None = None,
        mode: str | None = None,
        explain: bool = False,
        config_overrides: Mapping[str, Any] | None = None,
        *,
        filters: "MetadataFilters | Mapping[str, Any] | None" = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if isinstance(filters, MetadataFilters):
            filters = metadata_filters_to_dict(filters)
        self._opts = RetrieveOptions(index, top_k, mode, explain, config_overrides, filters)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def hippograph(self) -> "HippoGraph":
        return self._opts.hg

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._opts.retrieve(query_bundle.query_str)
        return [hit_to_node(h, explain=self._opts.explain) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Retrieval is CPU-bound: run it in a worker thread so the event loop stays responsive.
        return await asyncio.to_thread(self._retrieve, query_bundle)
