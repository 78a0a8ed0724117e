"""Lifecycle planning: what an add / update / sync must do, from document keys alone.

A sync reads its sources twice: once for keys (id, content hash, source: no text kept),
planned here against the index's documents table, and once more to stream only the new
and changed documents through the write path (`replayable` keeps a one-shot iterator
readable twice by holding it in a list).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from hippograph.tables import document_hash
from hippograph.types import Document

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocKey:
    """What planning needs of a loaded document (its text is not kept)."""

    id: str
    content_hash: str
    source: str
    title: str = ""
    metadata: Any = None

    @classmethod
    def of(cls, doc: Document) -> "DocKey":
        return cls(doc.id, document_hash(doc), doc.source, doc.title, doc.metadata)

    def as_document(self) -> Document:
        """A text-less stand-in used to relabel an indexed document (id, title, source, metadata)."""
        return Document(id=self.id, title=self.title, text="", source=self.source, metadata=dict(self.metadata or {}))


@dataclass
class Plan:
    """The changes a sync makes: ids to index (new, then changed), to delete, to relabel."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    doomed: list[str] = field(default_factory=list)
    renames: dict[str, DocKey] = field(default_factory=dict)
    """old id → the loaded document that is the same file and content under a new id."""

    @property
    def empty(self) -> bool:
        return not (self.new or self.changed or self.doomed or self.renames)

    def to_index(self) -> set[str]:
        return set(self.new) | set(self.changed)


def path_sources(sources: Any) -> list[str]:
    """Absolute paths named in `sources` (the roots a sync may delete documents under)."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else (sources if isinstance(sources, (list, tuple)) else [])
    return [os.path.abspath(s) for s in items if isinstance(s, (str, os.PathLike))]


def under(source: str, roots: Sequence[str]) -> bool:
    """Is a document's source (a path, or ``path#record``) inside one of `roots`? String test only:
    sources are never opened, so a hostile ``source`` field cannot make a sync touch other files."""
    candidates = {source, source.rsplit("#", 1)[0]}
    for root in roots:
        for c in candidates:
            if c == root or c.startswith(root.rstrip(os.sep) + os.sep):
                return True
    return False


def plan_sync(
    loaded: Sequence[DocKey],
    indexed: Iterable[tuple[str, str, str]],
    *,
    roots: Sequence[str] = (),
    unreadable: Sequence[str] = (),
) -> Plan:
    """Split `loaded` against the `indexed` (id, content hash, source) rows.

    New ids are indexed, changed content re-indexed; with `roots`, indexed documents whose
    source lies under a root but that were not loaded are deleted, except those whose file
    could not be read this time (`unreadable`). A "new" document with the source and content
    of one being deleted is that document under a new id: it is relabelled, not re-indexed.
    """
    rows = list(indexed)
    known = {doc_id: h for doc_id, h, _ in rows}
    plan = Plan()
    for key in loaded:
        h = known.get(key.id)
        if h is None:
            plan.new.append(key.id)
        elif h != key.content_hash:
            plan.changed.append(key.id)
        else:
            plan.unchanged += 1
    loaded_ids = {k.id for k in loaded}
    for doc_id, _, source in rows:
        if doc_id in loaded_ids or not roots or not under(source, roots):
            continue
        if under(source, unreadable):
            logger.warning("%s: kept document %s (its file could not be read this time)", source, doc_id)
            continue
        plan.doomed.append(doc_id)
    if plan.doomed and plan.new:
        doomed = set(plan.doomed)
        by_key = {(source, h): doc_id for doc_id, h, source in rows if doc_id in doomed}
        keys = {k.id: k for k in loaded}
        for new_id in list(plan.new):
            k = keys[new_id]
            old = by_key.pop((k.source, k.content_hash), None)
            if old is not None:
                plan.renames[old] = k
        relabelled = {k.id for k in plan.renames.values()}
        plan.new = [i for i in plan.new if i not in relabelled]
        plan.doomed = [i for i in plan.doomed if i not in plan.renames]
    return plan


def replayable(sources: Any) -> Any:
    """`sources` in a form that can be read twice (a one-shot iterator is held in a list)."""
    if isinstance(sources, Iterator):
        return list(sources)
    return sources


def only(documents: Iterable[Document], ids: set[str]) -> Iterator[Document]:
    """The documents whose id is in `ids`, in stream order."""
    return (d for d in documents if d.id in ids)
