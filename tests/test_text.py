"""Text predicates: bare dates and numbers never serve as second-hop bridges."""
from __future__ import annotations

import pytest

from hippograph import HippoGraph
from hippograph.text import is_bare_date_or_number


@pytest.mark.parametrize("name, bare", [
    ("1873", True), ("12 march 1873", True), ("march 1873", True), ("1870s", True), ("24 000", True),
    ("three", True), ("300 bc", True), ("march", False), ("may", False), ("kessel shipworks", False),
    ("1873 fire", False), ("21st century", False), ("apollo 11", False), ("", False),
])
def test_is_bare_date_or_number(name, bare):
    assert is_bare_date_or_number(name) is bare


def test_bridges_skip_bare_dates(sample_index, sample_questions):
    """The sample corpus is full of years shared by several passages ("founded in 1873"); none
    of them may appear as a bridge in an explanation."""
    hg = HippoGraph.open(sample_index)
    snap = hg.snapshot
    counts = snap.entity_passage_counts
    shared_dates = {snap.entities[e] for e in range(snap.n_entities)
                    if counts[e] >= 2 and is_bare_date_or_number(snap.entities[e])}
    assert shared_dates  # the test has something to exclude
    dated_first_hops, second_hops = 0, 0
    for q in sample_questions:
        res = hg.retriever.search([q["question"]], hg.config, "hybrid")[0]
        if res.bridge is None:
            continue
        top_names = {snap.entities[e] for e in snap.passage_entities[res.bridge.first_hop].indices}
        dated_first_hops += bool(top_names & shared_dates)
        assert not {snap.entities[e] for e in res.bridge.bridges} & shared_dates
        for h in hg.retrieve(q["question"], top_k=5, explain=True):
            hop = h.explanation.get("bridge") or {}
            if hop.get("role") == "second hop":
                second_hops += 1
                assert not [e for e in hop["about"] + hop["via"] if is_bare_date_or_number(e)], hop
    assert dated_first_hops > 0 and second_hops > 0
