"""The second hop (retrievers/hops.py) on a crafted wiki-style corpus, one question per hop pattern:
compositional (the director of a film), both sides of a comparison (the directors of two films) and
inference through two relations (a father-in-law: spouse, then father). In each, dense retrieval
misses the bridge passage (it shares few words with the question, or a cast member's page shares
more), and the engine must rank it in the top 2 with an explanation that names the bridge entity
and the fact that introduced it. Real spaCy model and real MiniLM embeddings (the user's defaults)."""
from __future__ import annotations

import json

import pytest

from hippograph import Config, HippoGraph
from hippograph.retrievers.engine import hop_summary

pytestmark = pytest.mark.slow

DOCS = [
    # films, each with a director and a cast
    {"id": "harbor", "title": "Harbor Lights",
     "text": "Harbor Lights is a 1962 Danish drama film directed by Edda Morvane. The film stars Pell Arnquist "
             "and Tova Rhyne as two fishermen in Esbjerg."},
    {"id": "orchard", "title": "Quiet Orchard",
     "text": "Quiet Orchard is a 1958 Swedish film directed by Gunnar Ekvold, starring Maja Lindqvist."},
    # the bridges' own pages: they share almost no words with the questions
    {"id": "morvane", "title": "Edda Morvane",
     "text": "Edda Morvane (4 May 1921 – 1990) came from Aarhus. She studied painting in Copenhagen and "
             "married the sculptor Ivar Holt."},
    {"id": "ekvold", "title": "Gunnar Ekvold",
     "text": "Gunnar Ekvold (12 June 1915 – 1979) grew up in Uppsala and worked for the Swedish radio."},
    # cast members: their pages look more like a question about where someone was born
    {"id": "arnquist", "title": "Pell Arnquist",
     "text": "Pell Arnquist was a Danish actor born in Odense in 1930. He often played fishermen and sailors."},
    {"id": "lindqvist", "title": "Maja Lindqvist",
     "text": "Maja Lindqvist was a Swedish actress born in Malmö in 1931."},
    {"id": "rhyne", "title": "Tova Rhyne", "text": "Tova Rhyne was a Danish actress born in 1933 who starred in films."},
    # a royal family: spouse, then father
    {"id": "ysolde", "title": "Ysolde of Varn",
     "text": "Ysolde of Varn (1402 – 1461) was a queen consort of Estmark by her marriage to King Bertram Ashcombe. "
             "She founded the abbey of Lunhall."},
    {"id": "bertram", "title": "Bertram Ashcombe",
     "text": "Bertram Ashcombe (1398 – 1450) was King of Estmark from 1431. He was the son of Aldric Ashcombe "
             "and led the siege of Corvey."},
    {"id": "aldric", "title": "Aldric Ashcombe",
     "text": "Aldric Ashcombe was a nobleman of Estmark who died in 1420."},
    {"id": "lunhall", "title": "Lunhall Abbey",
     "text": "Lunhall Abbey is a former abbey in Estmark, founded by the queen Ysolde of Varn."},
    {"id": "inlaws", "title": "Marriage law of Estmark",
     "text": "In Estmark a queen kept her own lands after her marriage to the king."},
]

COMPOSITIONAL = "Where was the director of film Harbor Lights born?"
COMPARISON = "Which film has the director born later, Harbor Lights or Quiet Orchard?"
INFERENCE = "Who is the father-in-law of Ysolde of Varn?"


@pytest.fixture(scope="module")
def hg(tmp_path_factory):
    root = tmp_path_factory.mktemp("hops")
    src = root / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in DOCS), encoding="utf-8")
    HippoGraph.build(src, root / "index", Config())  # defaults: spaCy + MiniLM
    return HippoGraph.open(root / "index")


def _ids(hits):
    return [h.doc_id for h in hits]


def _second_hop(hit):
    ex = hit.explanation["bridge"]
    assert ex["role"] == "second hop", ex
    return ex


def test_compositional_director_not_cast(hg):
    """The film's page is the first hop; its director's page (not the actor's, which looks more like
    the question) comes second, reached through the fact that names the director."""
    dense = _ids(hg.retrieve(COMPOSITIONAL, top_k=3, mode="dense"))
    assert "morvane" not in dense[:2], f"precondition: dense alone misses the bridge passage ({dense})"
    hits = hg.retrieve(COMPOSITIONAL, top_k=3, explain=True)
    assert _ids(hits)[:2] == ["harbor", "morvane"]
    assert hits[0].explanation["bridge"]["role"] == "first hop"
    ex = _second_hop(hits[1])
    assert ex["entity"] == "edda morvane" and ex["about"] == ["edda morvane"]
    assert ex["first_hop_title"] == "Harbor Lights" and "directed by edda morvane" in ex["fact"]
    assert hop_summary(ex).startswith("second hop from 'Harbor Lights': about edda morvane (fact: ")


def test_comparison_reaches_both_directors(hg):
    """Both named films are first hops (ranks 1-2) and each one's director is reached from it through
    the fact that names the director: the directors are ranks 3-4, above the cast, whose pages look
    more like a question about who was born later."""
    dense = _ids(hg.retrieve(COMPARISON, top_k=4, mode="dense"))
    assert not {"morvane", "ekvold"} <= set(dense), f"precondition: dense alone misses a director ({dense})"
    hits = hg.retrieve(COMPARISON, top_k=5, explain=True)
    assert set(_ids(hits)[:2]) == {"harbor", "orchard"}
    assert set(_ids(hits)[2:4]) == {"morvane", "ekvold"}
    assert {h.explanation["bridge"]["role"] for h in hits[:2]} == {"first hop"}
    via = {h.doc_id: _second_hop(h) for h in hits[2:4]}
    assert (via["morvane"]["entity"], via["morvane"]["first_hop_title"]) == ("edda morvane", "Harbor Lights")
    assert (via["ekvold"]["entity"], via["ekvold"]["first_hop_title"]) == ("gunnar ekvold", "Quiet Orchard")
    assert "directed by edda morvane" in via["morvane"]["fact"] and "directed by gunnar ekvold" in via["ekvold"]["fact"]
    side = next(h for h in hits[:2] if "named" in h.explanation["bridge"])
    assert side.explanation["bridge"]["named"] == [{"harbor": "harbor lights", "orchard": "quiet orchard"}[side.doc_id]]


def test_inference_through_spouse_then_father(hg):
    """Father-in-law = the father of the spouse: the queen's page is the first hop and her husband's
    page (which names his father) comes second, reached through "king bertram ashcombe" (a longer
    entity name that contains the page's title) — above the abbey page that only shares "Estmark"."""
    dense = _ids(hg.retrieve(INFERENCE, top_k=3, mode="dense"))
    assert "bertram" not in dense[:2], f"precondition: dense alone misses the bridge passage ({dense})"
    hits = hg.retrieve(INFERENCE, top_k=3, explain=True)
    assert _ids(hits)[:2] == ["ysolde", "bertram"]
    ex = _second_hop(hits[1])
    assert ex["entity"] == "king bertram ashcombe" and ex["about"] == ["king bertram ashcombe"]
    assert ex["first_hop_title"] == "Ysolde of Varn" and "king bertram ashcombe" in ex["fact"]


def test_filtered_passages_are_never_hops(hg):
    """A filter's excluded passage is neither returned nor a first hop that others are reached from."""
    hits = hg.retrieve(COMPOSITIONAL, top_k=8, explain=True, filters={"doc_id": {"$ne": "morvane"}})
    assert "morvane" not in _ids(hits) and _ids(hits)[0] == "harbor"
    hits = hg.retrieve(COMPARISON, top_k=8, explain=True, filters={"doc_id": {"$nin": ["harbor"]}})
    assert "harbor" not in _ids(hits)
    reached_from = {h.explanation["bridge"].get("first_hop_title") for h in hits if "bridge" in h.explanation}
    assert "Harbor Lights" not in reached_from and "Quiet Orchard" in reached_from
    assert "ekvold" in _ids(hits)[:2]


def test_single_first_hop_without_sides(hg):
    """bridge_sides=0 keeps the top passage as the only first hop: the other film is no longer a
    first hop and its director is not reached from it."""
    res = hg.retriever.search([COMPARISON], hg.config.replace(bridge_sides=0), "hybrid")[0]
    assert res.bridge.first_hops == [res.bridge.first_hop]
    snap = hg.snapshot
    reached_from = {snap.passage_titles[link.first_hop] for link in res.bridge.links.values()}
    assert reached_from == {snap.passage_titles[res.bridge.first_hop]}



def test_hybrid_query_never_builds_a_corpus_long_score_vector(hg, monkeypatch):
    """Candidate-only scoring through the second hop: with every dense conversion of a score vector
    made to fail, the three hop questions give the same hits, scores and explanations as before
    (a query costs what its candidates and first hops reach, not the corpus size)."""
    from hippograph.retrievers.sparse import SparseScores

    questions = [COMPOSITIONAL, COMPARISON, INFERENCE]
    before = [[(h.doc_id, h.score, h.explanation) for h in hits]
              for hits in hg.retrieve_many(questions, top_k=6, explain=True)]

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"a {self.n}-long score vector was made dense during a query")

    monkeypatch.setattr(SparseScores, "toarray", refuse)
    after = [[(h.doc_id, h.score, h.explanation) for h in hits]
             for hits in hg.retrieve_many(questions, top_k=6, explain=True)]
    assert after == before
    res = hg.retriever.search([COMPOSITIONAL], hg.config, "hybrid")[0]
    assert isinstance(res.bridge.boost, SparseScores)
    assert 0 < res.bridge.boost.idx.size < hg.snapshot.n_passages  # only the reached passages are stored

SHARED_TITLE_DOCS = [
    {"id": "harbor", "title": "Harbor Lights",
     "text": "Harbor Lights is a 1962 Danish drama film directed by Edda Morvane. The film stars Pell Arnquist."},
    # three documents share one title that names the bridge entity (as every turn of a chat session shares
    # its session's title): a category, not the entity's own page
    *({"id": f"log{i}", "title": "Edda Morvane",
       "text": f"Entry {i}: the weather in Esbjerg was {w} and the harbour was {h}."}
      for i, (w, h) in enumerate([("grey", "quiet"), ("windy", "busy"), ("calm", "empty")])),
]


def test_a_title_shared_by_many_documents_is_not_a_page(hg, tmp_path):
    """The path score (a page reached from its first hop, mostly whatever its own similarity) is for an
    entity's own page. Passages under a title shared by several documents get at most the reach-1 boost
    (w · own fit), so a session's worth of turns cannot jump behind the top passage together."""
    from hippograph.retrievers.hops import Pages

    snap = hg.snapshot
    assert Pages(snap).is_page(snap.entity_index["edda morvane"])  # one document: her page

    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in SHARED_TITLE_DOCS), encoding="utf-8")
    HippoGraph.build(src, tmp_path / "index", Config()).close()
    with HippoGraph.open(tmp_path / "index") as shared:
        s = shared.snapshot
        e = s.entity_index["edda morvane"]
        pages = Pages(s)
        assert len(pages.about(e)) == 3 and not pages.is_page(e)
        res = shared.retriever.search([COMPOSITIONAL], shared.config, "hybrid")[0]
        assert res.bridge is not None and s.passage_doc_ids[res.bridge.first_hop] == "harbor"
        assert e in res.bridge.bridges
        w = shared.config.bridge_weight
        for p in pages.about(e).tolist():
            assert res.bridge.boost[p] <= w + 1e-9, (s.passage_ids[p], float(res.bridge.boost[p]))
