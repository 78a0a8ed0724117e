"""LangChain / LlamaIndex / Haystack adapters, each run inside its framework's own pipeline object.

The adapters must return exactly what `HippoGraph.retrieve` returns (same passages, same
order, same scores) with the provenance metadata intact, and the multi-hop gold passages
of the sample questions must reach the framework's downstream step (prompt / formatter).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

META_KEYS = {"passage_id", "doc_id", "title", "source", "span", "score"}
Q1 = "In which town was the founder of Kessel Shipworks born?"
Q1_GOLD = {"Kessel Shipworks", "Aldous Brannock"}
Q3 = "Who founded the university where the inventor of the Wren relay studied?"


@pytest.fixture(scope="module")
def hg(sample_index):
    from hippograph import HippoGraph

    with HippoGraph.open(sample_index) as graph:
        yield graph


def _expected(hg, query, top_k, **kw):
    return [(h.passage_id, h.score) for h in hg.retrieve(query, top_k, **kw)]


def test_importing_hippograph_needs_no_framework():
    code = textwrap.dedent(
        """
        import sys
        import hippograph, hippograph.api, hippograph.cli, hippograph.integrations, hippograph.server
        loaded = [m for m in ("langchain_core", "llama_index", "haystack", "fastapi", "uvicorn") if m in sys.modules]
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_missing_framework_names_the_extra():
    code = textwrap.dedent(
        """
        import importlib, sys
        for top, mod, extra in [("langchain_core", "langchain", "langchain"),
                                ("llama_index", "llamaindex", "llamaindex"),
                                ("haystack", "haystack", "haystack")]:
            sys.modules[top] = None          # makes `import top` raise ImportError
            try:
                importlib.import_module("hippograph.integrations." + mod)
            except ImportError as exc:
                assert f"pip install 'hippograph[{extra}]'" in str(exc), str(exc)
                print("ok", mod)
            else:
                raise SystemExit(f"{mod}: imported without its framework")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.split() == ["ok", "langchain", "ok", "llamaindex", "ok", "haystack"]


# ---------------------------------------------------------------------------- LangChain
def test_langchain_runnable_chain(hg, sample_index):
    from langchain_core.runnables import RunnableLambda

    from hippograph.integrations.langchain import HippoGraphRetriever

    def format_docs(docs):
        return "\n\n".join(f"[{d.metadata['title']}] {d.page_content}" for d in docs)

    retriever = HippoGraphRetriever(index=str(sample_index), top_k=5)  # a path: the adapter opens it
    chain = retriever | RunnableLambda(format_docs)
    context = chain.invoke(Q1)
    for title in Q1_GOLD:
        assert f"[{title}]" in context

    docs = retriever.invoke(Q1)
    assert [(d.metadata["passage_id"], d.metadata["score"]) for d in docs] == _expected(hg, Q1, 5)
    hits = {h.passage_id: h for h in hg.retrieve(Q1, 5)}
    for d in docs:
        h = hits[d.metadata["passage_id"]]
        assert META_KEYS <= set(d.metadata) and "explanation" not in d.metadata
        assert d.id == h.passage_id and d.page_content == h.text
        assert (d.metadata["doc_id"], d.metadata["title"], d.metadata["source"]) == (h.doc_id, h.title, h.source)
        assert d.metadata["span"] == list(h.span)

    # per-call top_k, batch (thread pool inside LangChain) and async agree with the sync call
    assert len(retriever.invoke(Q1, top_k=2)) == 2
    batch = retriever.batch([Q1, Q3])
    assert [d.id for d in batch[0]] == [d.id for d in docs]
    adocs = asyncio.run(retriever.ainvoke(Q1))
    assert [d.id for d in adocs] == [d.id for d in docs]


def test_langchain_mode_overrides_and_explain(hg):
    from hippograph.integrations.langchain import HippoGraphRetriever

    bm25 = HippoGraphRetriever(hg, top_k=4, mode="bm25").invoke(Q3)
    assert [(d.id, d.metadata["score"]) for d in bm25] == _expected(hg, Q3, 4, mode="bm25")
    damped = HippoGraphRetriever(hg, top_k=4, config_overrides={"damping": 0.3}).invoke(Q3)
    assert [(d.id, d.metadata["score"]) for d in damped] == _expected(hg, Q3, 4, damping=0.3)

    explained = HippoGraphRetriever(hg, top_k=3, explain=True).invoke(Q1)
    assert all({"seeds", "scores"} <= set(d.metadata["explanation"]) for d in explained)

    with pytest.raises(ValueError, match="dampnig"):
        HippoGraphRetriever(hg, config_overrides={"dampnig": 0.3})
    with pytest.raises(ValueError, match="mode"):
        HippoGraphRetriever(hg, mode="vector")
    with pytest.raises(ValueError, match="top_k"):
        HippoGraphRetriever(hg, top_k=0)


# ---------------------------------------------------------------------------- LlamaIndex
def test_llamaindex_query_engine_with_mock_llm(hg):
    from llama_index.core import Settings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import MetadataMode

    from hippograph.integrations.llamaindex import HippoGraphRetriever

    previous = Settings._embed_model
    Settings.embed_model = MockEmbedding(embed_dim=8)  # nothing may try to load a real embedding model
    try:
        retriever = HippoGraphRetriever(hg, top_k=5)
        # MockLLM without max_tokens echoes its prompt: the response shows what the LLM was given.
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
        response = engine.query(Q1)
    finally:
        Settings._embed_model = previous

    nodes = response.source_nodes
    assert [(n.node.node_id, n.score) for n in nodes] == _expected(hg, Q1, 5)
    hits = {h.passage_id: h for h in hg.retrieve(Q1, 5)}
    for n in nodes:
        h = hits[n.node.node_id]
        assert n.node.get_content() == h.text
        assert n.node.ref_doc_id == h.doc_id
        assert META_KEYS <= set(n.node.metadata) and n.node.metadata["title"] == h.title
        llm_view = n.node.get_content(metadata_mode=MetadataMode.LLM)
        assert f"title: {h.title}" in llm_view and h.passage_id not in llm_view
    prompt = str(response.response)
    gold = [h for h in hits.values() if h.title in Q1_GOLD]
    assert len(gold) == len(Q1_GOLD)
    for h in gold:
        assert h.text.split("\n")[-1][:60] in prompt  # the gold passages reached the LLM prompt


def test_llamaindex_async_and_stable_ids(hg):
    from hippograph.integrations.llamaindex import HippoGraphRetriever

    retriever = HippoGraphRetriever(hg, top_k=3, mode="dense", explain=True)
    sync = retriever.retrieve(Q3)
    again = asyncio.run(retriever.aretrieve(Q3))
    assert [n.node.node_id for n in sync] == [n.node.node_id for n in again] == [p for p, _ in _expected(hg, Q3, 3, mode="dense")]
    assert all("explanation" in n.node.metadata for n in sync)


# ---------------------------------------------------------------------------- Haystack
def test_haystack_pipeline_run(hg, sample_index):
    from haystack import Pipeline
    from haystack.components.builders import PromptBuilder

    from hippograph.integrations.haystack import HippoGraphRetriever

    pipe = Pipeline()
    pipe.add_component("retriever", HippoGraphRetriever(sample_index, top_k=5))
    pipe.add_component(
        "prompt",
        PromptBuilder(
            template="{% for d in documents %}[{{ d.meta['title'] }}] {{ d.content }}\n{% endfor %}Q: {{ question }}",
            required_variables=["documents", "question"],
        ),
    )
    pipe.connect("retriever.documents", "prompt.documents")
    out = pipe.run({"retriever": {"query": Q1}, "prompt": {"question": Q1}}, include_outputs_from={"retriever"})

    docs = out["retriever"]["documents"]
    assert [(d.id, d.score) for d in docs] == _expected(hg, Q1, 5)
    hits = {h.passage_id: h for h in hg.retrieve(Q1, 5)}
    for d in docs:
        h = hits[d.id]
        assert d.content == h.text and META_KEYS <= set(d.meta) and d.meta["doc_id"] == h.doc_id
    for title in Q1_GOLD:
        assert f"[{title}]" in out["prompt"]["prompt"]

    # serialisation round trip (index stored by path) and per-run top_k
    data = pipe.to_dict()
    assert data["components"]["retriever"]["init_parameters"]["index"] == str(sample_index)
    # Haystack 3 only deserialises classes from allow-listed modules.
    clone = Pipeline.from_dict(data, allowed_modules=["hippograph.integrations.haystack"])
    out2 = clone.run({"retriever": {"query": Q1, "top_k": 2}, "prompt": {"question": Q1}}, include_outputs_from={"retriever"})
    assert [d.id for d in out2["retriever"]["documents"]] == [d.id for d in docs[:2]]


def test_haystack_overrides_and_async(hg):
    from hippograph.integrations.haystack import HippoGraphRetriever

    comp = HippoGraphRetriever(hg, top_k=3, mode="ppr", config_overrides={"damping": 0.3})
    docs = comp.run(query=Q3)["documents"]
    assert [(d.id, d.score) for d in docs] == _expected(hg, Q3, 3, mode="ppr", damping=0.3)
    adocs = asyncio.run(comp.run_async(query=Q3))["documents"]
    assert [d.id for d in adocs] == [d.id for d in docs]
    with pytest.raises(TypeError, match="index must be"):
        HippoGraphRetriever(42)


def test_haystack_opens_the_index_in_warm_up_and_saves_an_absolute_path(hg, sample_index, monkeypatch):
    from haystack import Pipeline

    from hippograph.errors import HippoGraphError
    from hippograph.integrations.haystack import HippoGraphRetriever

    monkeypatch.chdir(sample_index.parent)
    comp = HippoGraphRetriever(sample_index.name, top_k=2)  # a relative path
    assert comp._opts is None  # constructing (or loading) a pipeline opens nothing
    data = comp.to_dict()
    assert data["init_parameters"]["index"] == str(sample_index.resolve())
    pipe = Pipeline()
    pipe.add_component("retriever", comp)
    moved = Pipeline.from_dict(pipe.to_dict(), allowed_modules=["hippograph.integrations.haystack"])
    monkeypatch.chdir("/")
    out = moved.run({"retriever": {"query": Q1}})  # Pipeline.run calls warm_up: the saved path still works
    assert [(d.id, d.score) for d in out["retriever"]["documents"]] == _expected(hg, Q1, 2)

    missing = HippoGraphRetriever("no-such-index")  # nothing is read until warm_up
    with pytest.raises(HippoGraphError, match="no-such-index"):
        missing.warm_up()
    with pytest.raises(ValueError, match="damping_typo"):
        HippoGraphRetriever(sample_index, config_overrides={"damping_typo": 0.3})
