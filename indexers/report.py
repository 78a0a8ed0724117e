"""What a write did (`BuildReport`) and how it shows its stages while it runs (`Progress`).

Every stage of the write path has a name (chunk, extract, embed passages / sentences /
facts / entities, merge, synonymy, graph, vectors, BM25); `Progress` times each one into
the report and, when asked, shows one tqdm bar per stage with its count and rate (quiet by
default: the API passes ``show_progress=False`` unless the caller asks).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What one build / add / update / delete / sync did: rows added and removed, documents
    by outcome, vector-index maintenance, and seconds per stage."""

    added: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    skipped_documents: list[str] = field(default_factory=list)
    added_documents: list[str] = field(default_factory=list)
    updated_documents: list[str] = field(default_factory=list)
    deleted_documents: list[str] = field(default_factory=list)
    unchanged_documents: int = 0
    missing_documents: list[str] = field(default_factory=list)
    """Ids asked to be deleted that the index did not hold."""
    renamed_documents: list[tuple[str, str]] = field(default_factory=list)
    """(old id, new id): same source file and content under a new id; relabelled, not re-indexed."""
    compacted: list[str] = field(default_factory=list)
    """Maintenance done on the vector indexes, e.g. ``"sentences: compacted"``."""
    shards: dict[str, int] = field(default_factory=dict)
    """Shards of this write: ``built`` now, ``reused`` from an interrupted run."""
    generation: str = ""
    derived: dict[str, str] = field(default_factory=dict)
    """How the derived parts were written from the tables: ``graph`` "grown" (from the base graph and
    this write's added rows), "updated" (a delete taken out of the base graph, then any adds grown) or
    "built" (from every row); ``bm25`` "updated" (new passages read) or "built"."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added_documents or self.updated_documents or self.deleted_documents or self.compacted
                    or self.renamed_documents)

    def count(self, kind: str, table: str, n: int) -> None:
        """Add `n` to ``added[table]`` or ``deleted[table]`` (kind = "added" | "deleted")."""
        target = self.added if kind == "added" else self.deleted
        target[table] = target.get(table, 0) + int(n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": dict(self.added), "deleted": dict(self.deleted),
            "added_documents": list(self.added_documents), "updated_documents": list(self.updated_documents),
            "deleted_documents": list(self.deleted_documents), "unchanged_documents": self.unchanged_documents,
            "skipped_documents": list(self.skipped_documents), "missing_documents": list(self.missing_documents),
            "renamed_documents": [list(pair) for pair in self.renamed_documents],
            "compacted": list(self.compacted), "shards": dict(self.shards), "generation": self.generation,
            "derived": dict(self.derived), "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


class Progress:
    """Per-stage timings (into `report.timings`) and, with `show`, one named tqdm bar per stage.

    A stage may be entered many times (once per shard); its bar and its time accumulate.
    """

    def __init__(self, report: BuildReport, *, show: bool = False):
        self.report = report
        self.show = show
        self._bars: dict[str, Any] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block of work under a stage name."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - t0)

    def record(self, name: str, seconds: float) -> None:
        """Add `seconds` to stage `name`'s time (a stage timed elsewhere, e.g. in a worker process)."""
        self.report.timings[name] = self.report.timings.get(name, 0.0) + seconds

    def advance(self, name: str, n: int, unit: str = "item") -> None:
        """Count `n` more units done in stage `name` (shown as a bar with count and rate)."""
        if not self.show or n <= 0:
            return
        bar = self._bars.get(name)
        if bar is None:
            from tqdm.auto import tqdm

            bar = self._bars[name] = tqdm(desc=name, unit=unit, dynamic_ncols=True, leave=True)
        bar.update(n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
