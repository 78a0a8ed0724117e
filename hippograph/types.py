"""Records passed between the indexer, the storage and the retriever."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_hash(*parts: str, length: int = 16) -> str:
    """Stable hex id from text parts (sha1, truncated): identical content → identical id."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


@dataclass
class Document:
    """One source document: a file, or one record of a JSON/JSONL file, or a Python dict."""

    id: str
    title: str
    text: str
    source: str
    """File path (for records: `path#index`) or the id given at ingest."""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Passage:
    """A retrievable chunk of a document; `span` locates it in `Document.text`."""

    id: str
    doc_id: str
    title: str
    text: str
    source: str
    span: tuple[int, int]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Triple:
    """A subject–predicate–object fact with provenance (passage and sentence)."""

    subject: str
    predicate: str
    object: str
    passage_id: str
    sentence: str = ""

    def text(self) -> str:
        """The fact as a short sentence, used for fact embeddings and BM25."""
        return f"{self.subject} {self.predicate} {self.object}"


@dataclass
class Extraction:
    """What triple extraction produced for one passage."""

    passage_id: str
    entities: list[str]
    """Normalised entity phrases mentioned in the passage."""
    triples: list[Triple]
    sentences: list[tuple[int, int]] = field(default_factory=list)
    """Sentence character spans within the passage text."""


@dataclass
class Hit:
    """One retrieved passage, with provenance and (when asked) an explanation."""

    passage_id: str
    doc_id: str
    title: str
    text: str
    score: float
    source: str
    span: tuple[int, int]
    metadata: dict[str, Any] = field(default_factory=dict)
    explanation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passage_id": self.passage_id,
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "score": float(self.score),
            "source": self.source,
            "span": list(self.span),
            "metadata": self.metadata,
            "explanation": self.explanation,
        }
