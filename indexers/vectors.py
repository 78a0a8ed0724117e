"""The vectors stage: one vector index per granularity, updated in place where that is cheaper.

A generation's vector index is rebuilt from its embeddings (memory-mapped) or, for a SPANN
index, cloned from the previous generation with hard links and updated with `remove`
(tombstones) + `add`. `SpannIndex.add` appends to the posting files in place, past the
bytes any committed generation uses, so the manifest checksums those files per appended
segment (`IndexDir.commit(append_only=...)`) and old generations stay intact. Vector ids
of a SPANN index therefore stop being row numbers after a delete: the generation stores
``vectors/<gran>.vid2row.npy`` and the snapshot translates. Flat indexes (small
granularities) are simply rewritten.

Automatic maintenance per SPANN index: `compact` when tombstones exceed `COMPACT_FRACTION`
or dead posting space exceeds `COMPACT_DEAD_FRACTION`; a full rebuild (re-clustering) when
the index grew by more than `REBUILD_GROWTH` since it was built, or crosses the flat/SPANN
size boundary.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hippograph.config import Config
from hippograph.errors import HippoGraphError
from hippograph.format import (GRANULARITIES, VECTORS_DIR, VID_MAP, Embeddings, clone_tree, embedding_path, load_array,
                              open_embeddings)
from hippograph.tables import RowMaps

from .report import BuildReport

logger = logging.getLogger(__name__)

SPANN_CANDIDATES = 32
"""Nearest heads a vector's closure assignment chooses its lists from (`BuildParams.candidates`). SPTAG's
64 goes with 8 replicas; the engine keeps `spann_replica` (4), and the closure's head search is most of
a build. The kernel docs' 296k fact vectors (MiniLM): 32 instead of 64 built in 105–112 s instead of
147–152 s (CPU −30 %), recall@10 of 300 sentence vectors 0.950 vs 0.952 at 64 lists, 0.874 vs 0.878 at 16;
200k generated vectors (eval/bench_ann.py): 60 vs 85 s, 0.943 vs 0.945."""

COMPACT_FRACTION = 0.2
"""Compact a SPANN index when tombstoned (deleted) vectors exceed this share of its vectors."""
COMPACT_DEAD_FRACTION = 0.5
"""Compact a SPANN index when this share of its posting file is dead space. `SpannIndex.add`
rewrites every list it touches at the end of the file, so a 1 % add leaves ≈20 % dead space;
at 0.5 a steady stream of small adds compacts about every third add."""
REBUILD_GROWTH = 0.5
"""Rebuild (re-cluster) a SPANN index once vectors added since its build exceed this share of its build size."""


class VectorIndexes:
    """Per-granularity vector-index bookkeeping of one write (kind, build size, next vector id,
    tombstones; row → vector id maps) and the writing of the indexes themselves.

    `base` is the generation the write started from (None for a fresh build) and
    `base_rows` its row count per granularity; `state` the manifest's ``lifecycle.vectors``.
    """

    def __init__(self, config: Config, report: BuildReport, base: Path | None = None,
                 state: dict[str, dict[str, Any]] | None = None, base_rows: dict[str, int] | None = None,
                 base_files_ok: Callable[[list[Path], str], bool] | None = None):
        self.config = config
        self.report = report
        self.base = Path(base) if base is not None else None
        self.base_files_ok = base_files_ok
        """Checks base files against the manifest before an update rewrites what it read from them."""
        self.state: dict[str, dict[str, Any]] = {g: dict(v) for g, v in (state or {}).items()}
        self.maintenance: str | None = None
        """None, "compact" (compact every SPANN index with garbage) or "rebuild" (rebuild all vector indexes)."""
        self.append_only: dict[str, int] = {}
        """Files of the written generation that later ones may extend in place → bytes used here."""
        self._row_vids: dict[str, np.ndarray] = {}  # SPANN granularities: row → vector id (-1 = not indexed yet)
        self._removed_vids: dict[str, list[np.ndarray]] = {g: [] for g in GRANULARITIES}
        if self.base is not None:
            self._load_base_state(base_rows or {})

    def _load_base_state(self, base_rows: dict[str, int]) -> None:
        base = self.base
        assert base is not None
        for gran in GRANULARITIES:
            vdir = base / VECTORS_DIR / gran
            n = int(base_rows.get(gran, 0))
            if not (vdir / "header.json").is_file():
                self.state.pop(gran, None)
                continue
            st = self.state.get(gran)
            if st is None:  # index written before lifecycle bookkeeping: ids are row numbers
                try:
                    fmt = json.loads((vdir / "header.json").read_text(encoding="utf-8")).get("format")
                except (OSError, ValueError):
                    continue
                st = {"kind": "spann" if fmt == "hippograph-spann" else "flat", "built": n, "next_vid": n, "tombstones": 0}
                self.state[gran] = st
            if st.get("kind") != "spann":
                continue
            vm = base / VECTORS_DIR / VID_MAP.format(gran=gran)
            if vm.is_file():
                vid2row = load_array(vm)
                row2vid = np.full(n, -1, dtype=np.int64)
                ok = np.flatnonzero(vid2row >= 0)
                rows = vid2row[ok]
                if len(vid2row) != st.get("next_vid") or len(ok) != n or (len(rows) and (rows.max() >= n)):
                    logger.warning("%s: vector id map does not match the tables; the %s index will be rebuilt", vm, gran)
                    self.state.pop(gran, None)
                    continue
                row2vid[rows] = ok
            elif st.get("next_vid") != n:
                logger.warning("%s: vector id map missing; the %s index will be rebuilt", vm, gran)
                self.state.pop(gran, None)
                continue
            else:
                row2vid = np.arange(n, dtype=np.int64)
            self._row_vids[gran] = row2vid

    def lifecycle(self) -> dict[str, Any]:
        """Bookkeeping for the manifest (read back on the next write)."""
        return {"vectors": {g: dict(v) for g, v in self.state.items()}}

    def renumber(self, maps: RowMaps) -> None:
        """Rows were deleted and renumbered: queue the removed rows' vector ids for removal."""
        for gran, row2vid in list(self._row_vids.items()):
            full = np.full(maps.old_counts[gran], -1, dtype=np.int64)
            full[: len(row2vid)] = row2vid
            kept = np.zeros(len(full), dtype=bool)
            kept[maps.keep[gran]] = True
            gone = full[~kept]
            gone = gone[gone >= 0]
            if gone.size:
                self._removed_vids[gran].append(gone)
            self._row_vids[gran] = full[maps.keep[gran]]

    # ---- writing ------------------------------------------------------------------------
    def write(self, out: Path, gen: Path) -> None:
        """Write ``<gen>/vectors/`` from the generation's embeddings, one granularity mapped at a
        time: the pages an index build or update reads leave the process with its map."""
        from .flat import FlatIndex
        from .spann import SpannIndex

        out.mkdir()
        for gran in GRANULARITIES:
            path = embedding_path(gen, gran)
            vecs = open_embeddings(path) if path.is_file() else None
            n = 0 if vecs is None else len(vecs)
            if n == 0:
                self.state.pop(gran, None)
                self._row_vids.pop(gran, None)
                continue
            plan, why = self._plan(gran, n)
            if plan == "update":
                try:
                    self._update_spann(gran, vecs, out / gran)
                except (KeyError, ValueError, OSError, HippoGraphError) as exc:
                    # the previous index does not match its bookkeeping: rebuild from the embeddings
                    logger.warning("%s vector index could not be updated (%s); rebuilding it", gran, exc)
                    shutil.rmtree(out / gran, ignore_errors=True)
                    plan, why = "rebuild", f"update failed: {exc}"
            if plan != "update":
                if n < self.config.spann_min_vectors:
                    # flat: ids + a header referring to the embeddings file; no vector is read or copied
                    FlatIndex.write_shared(out / gran, f"../../embeddings/{gran}.npy", metric="ip")
                    kind = "flat"
                else:
                    SpannIndex.build(
                        vecs,  # read from the embeddings file a block at a time, never all as float32
                        np.arange(n, dtype=np.int64), path=out / gran, metric="ip",
                        # the engine scores whole probed lists; per-entry sketches only pay off when a
                        # search reads posting lists from disk with sketch_frac, so engine indexes skip them
                        sketch_bits=0, replica_count=self.config.spann_replica, candidates=SPANN_CANDIDATES,
                        store_vectors=False,  # posting lists hold ids; vectors stay in the embeddings file
                    )
                    kind = "spann"
                self.state[gran] = {"kind": kind, "built": n, "next_vid": n, "tombstones": 0}
                if kind == "spann":
                    self._row_vids[gran] = np.arange(n, dtype=np.int64)
                else:
                    self._row_vids.pop(gran, None)
                self._removed_vids[gran] = []
                if why:
                    self.report.compacted.append(f"{gran}: rebuilt ({why})")
            self._record_append_only(out / gran)
            row2vid = self._row_vids.get(gran)
            st = self.state[gran]
            if row2vid is not None and not (st["next_vid"] == n and np.array_equal(row2vid, np.arange(n))):
                vid2row = np.full(st["next_vid"], -1, dtype=np.int64)
                vid2row[row2vid] = np.arange(n, dtype=np.int64)
                np.save(out / VID_MAP.format(gran=gran), vid2row, allow_pickle=False)

    def _record_append_only(self, vdir: Path) -> None:
        """Note a SPANN index's posting files (and the bytes this generation uses) as append-only."""
        try:
            header = json.loads((vdir / "header.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        from .spann import FORMAT as SPANN_FORMAT, posting_files

        if header.get("format") != SPANN_FORMAT:
            return
        for name, used in posting_files(header).items():
            self.append_only[f"{VECTORS_DIR}/{vdir.name}/{name}"] = used

    def _plan(self, gran: str, n: int) -> tuple[str, str]:
        """("update" | "rebuild", reason shown in the report when a rebuild is maintenance)."""
        st = self.state.get(gran)
        row2vid = self._row_vids.get(gran)
        spann_min = self.config.spann_min_vectors
        if self.maintenance == "rebuild":
            return "rebuild", "requested" if st else ""
        if self.base is None or st is None or not (self.base / VECTORS_DIR / gran / "header.json").is_file():
            return "rebuild", ""
        if st.get("kind") != "spann":
            return "rebuild", f"flat index reached {n} vectors, now SPANN" if n >= spann_min else ""
        if row2vid is None:
            return "rebuild", "no vector id map"
        if n < spann_min // 2:
            return "rebuild", f"shrank to {n} vectors, now flat"
        n_new = max(0, n - len(row2vid))
        grown = int(st["next_vid"]) + n_new - int(st["built"])
        if grown > REBUILD_GROWTH * int(st["built"]):
            return "rebuild", f"{grown} vectors added since it was built from {st['built']}"
        if not self._base_index_ok(gran):
            return "rebuild", "the previous index's files do not match the manifest"
        return "update", ""

    def _base_index_ok(self, gran: str) -> bool:
        """Whether the base SPANN files an update reads and writes again (heads, lists, header, vector id
        map) match the manifest (posting files are append-only: their old segments keep their checksums)."""
        if self.base_files_ok is None or self.base is None:
            return True
        files = [f for f in sorted((self.base / VECTORS_DIR / gran).iterdir()) if f.is_file()]
        vid_map = self.base / VECTORS_DIR / VID_MAP.format(gran=gran)
        return self.base_files_ok(files + ([vid_map] if vid_map.is_file() else []),
                                  f"the {gran} vector index is rebuilt")

    def _update_spann(self, gran: str, vecs: Embeddings, dst: Path) -> None:
        """Clone the previous generation's SPANN index and apply removals and additions to it."""
        from .spann import SpannIndex, VectorsById

        assert self.base is not None
        src = self.base / VECTORS_DIR / gran
        n = len(vecs)
        st = self.state[gran]
        row2vid = np.full(n, -1, dtype=np.int64)
        old = self._row_vids[gran]
        row2vid[: len(old)] = old
        new_rows = np.flatnonzero(row2vid < 0)
        removed = np.concatenate(self._removed_vids[gran]) if self._removed_vids[gran] else np.zeros(0, np.int64)
        new_vids = int(st["next_vid"]) + np.arange(new_rows.size, dtype=np.int64)
        vid2row = np.full(int(st["next_vid"]) + new_rows.size, -1, dtype=np.int64)  # this generation's rows
        known = row2vid >= 0
        vid2row[row2vid[known]] = np.flatnonzero(known)
        vid2row[new_vids] = new_rows
        # everything hard-linked: SpannIndex.add appends to the posting files in place, past
        # the end every committed generation uses (they are append-only in the manifest)
        clone_tree(src, dst)
        index = SpannIndex.open(dst, vectors=VectorsById.from_map(vecs, vid2row))
        if removed.size:
            index.remove(removed)
            st["tombstones"] = int(st.get("tombstones", 0)) + int(removed.size)
        if new_rows.size:
            vids = new_vids
            index.add(np.asarray(vecs[new_rows], dtype=np.float32), vids)
            row2vid[new_rows] = vids
            st["next_vid"] = int(st["next_vid"]) + int(new_rows.size)
        self._row_vids[gran] = row2vid
        self._removed_vids[gran] = []
        tomb = int(st.get("tombstones", 0)) / max(1, len(index) + int(st.get("tombstones", 0)))
        dead = spann_dead_fraction(index)
        forced = self.maintenance == "compact" and (tomb > 0 or dead > 0)
        if forced or tomb > COMPACT_FRACTION or dead > COMPACT_DEAD_FRACTION:
            index.compact()
            st["tombstones"] = 0
            self.report.compacted.append(
                f"{gran}: compacted ({100 * tomb:.0f} % tombstones, {100 * dead:.0f} % dead posting space)"
            )


def spann_dead_fraction(index: Any) -> float:
    """Share of a SPANN posting file no live list points at (left behind by `add`'s list rewrites)."""
    try:
        header = json.loads((Path(index.path) / "header.json").read_text(encoding="utf-8"))
        n_entries = int(header["postings"]["n_entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    table = index.list_table()
    live = int(table["length"][table["alive"]].sum())
    return max(0.0, 1.0 - live / n_entries) if n_entries else 0.0
