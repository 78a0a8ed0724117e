"""Deleting documents inside SQLite (`indexers.delete`) gives exactly `CorpusTables.without_documents`."""
from __future__ import annotations

import random

import numpy as np
import pytest

from hippograph.indexers.delete import delete_documents
from hippograph.tables import CorpusTables, DocumentRow
from hippograph.types import Passage


def _random_tables(seed: int) -> CorpusTables:
    """Random but well-formed tables: shared passages with further owners, facts, synonyms."""
    rnd = random.Random(seed)
    t = CorpusTables()
    n_docs = 12
    for d in range(n_docs):
        t.documents.append(DocumentRow(f"d{d}", f"Doc {d}", f"src/{d}.txt", f"h{d}", {"n": d}))
    t.entities = [f"entity {i}" for i in range(40)]
    for d in range(n_docs):
        for k in range(rnd.randint(1, 3)):
            p_idx = len(t.passages)
            t.passages.append(Passage(id=f"p{d}-{k}", doc_id=f"d{d}", title=f"Doc {d}", text=f"text {d} {k}",
                                      source=f"src/{d}.txt", span=(0, 9), metadata={"n": d}))
            for s in range(rnd.randint(1, 3)):
                t.sentences.append((p_idx, s, s + 1))
            for e in sorted(rnd.sample(range(len(t.entities)), 4)):
                t.mentions.append((e, p_idx))
    for _ in range(30):
        s, o = rnd.sample(range(len(t.entities)), 2)
        t.facts.append((s, rnd.choice(["founded", "near", "owns"]), o))
    for f in range(len(t.facts)):
        for p in rnd.sample(range(len(t.passages)), rnd.randint(1, 2)):
            t.fact_passages.append((f, p, *((f % 5, f % 5 + 3) if f % 3 else (None, None))))
    # make every entity used somewhere, as the writer guarantees
    used = {e for e, _ in t.mentions} | {x for s, _, o in t.facts for x in (s, o)}
    for e in range(len(t.entities)):
        if e not in used:
            t.mentions.append((e, rnd.randrange(len(t.passages))))
    for _ in range(25):
        a, b = sorted(rnd.sample(range(len(t.entities)), 2))
        t.synonyms.append((a, b, round(rnd.uniform(0.8, 1.0), 4), rnd.choice(["embedding", "minhash"])))
    for p in rnd.sample(range(len(t.passages)), 6):  # further owners of shared passages
        for d in rnd.sample(range(n_docs), 2):
            if t.passages[p].doc_id != f"d{d}":
                t.passage_owners.append((p, f"d{d}", f"src/{d}.txt", 1, 5))
    return t


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sql_delete_equals_tables_delete(tmp_path, seed):
    tables = _random_tables(seed)
    src = tmp_path / "meta.sqlite"
    tables.save(src)
    rnd = random.Random(100 + seed)
    shared = tables.passage_owners[0]
    first_owner, heir = tables.passages[shared[0]].doc_id, shared[1]
    others = [d.id for d in tables.documents if d.id not in (first_owner, heir)]
    doomed = [first_owner] + rnd.sample(others, 3) + ["no-such-doc"]

    expected, expected_maps = tables.without_documents(doomed)
    maps, before, after = delete_documents(src, tmp_path / "new.sqlite", doomed)
    got = CorpusTables.load(tmp_path / "new.sqlite")

    handed = expected.passages[int(np.flatnonzero(expected_maps.keep["passages"] == shared[0])[0])]
    assert handed.doc_id == heir, "the case covers a passage handed over to a further owner"
    for name in ("documents", "passages", "sentences", "entities", "mentions", "facts", "fact_passages",
                 "synonyms", "passage_owners"):
        rows = [[tuple(r) if isinstance(r, (list, tuple)) else r for r in getattr(t, name)] for t in (got, expected)]
        if name in ("mentions", "synonyms"):  # sets: no insertion order (WITHOUT ROWID), they load sorted
            rows = [sorted(r) for r in rows]
        if name == "fact_passages":  # stored by passage, each passage's rows in their order (format 7)
            rows = [sorted(r, key=lambda row: row[1]) for r in rows]
        assert rows[0] == rows[1], name
    for table, keep in expected_maps.keep.items():
        assert np.array_equal(maps.keep[table], keep), table
    assert maps.old_counts == expected_maps.old_counts
    assert before["documents"] == len(tables.documents) and after["documents"] == len(expected.documents)
