"""Index summaries (stage times, embedder, fallback warning) and quiet third-party model loading."""
from __future__ import annotations

import logging

import pytest

import hippograph.embedders as emb_mod
from hippograph import HippoGraph
from hippograph.cli import main as cli_main

DOCS = [{"id": "a", "title": "Ada", "text": "Ada Lovelace worked with Charles Babbage in London."},
        {"id": "b", "title": "Babbage", "text": "Charles Babbage designed the Analytical Engine in London."}]


def test_summary_shows_stage_times_and_embedder(sample_index, capsys):
    stats = HippoGraph.open(sample_index).stats()
    assert stats["embedder_warning"] is None  # tfidf was asked for: not a fallback
    assert "total" in stats["timings"] and len(stats["timings"]) >= 4  # per-stage times of the write
    assert cli_main(["info", str(sample_index)]) == 0
    out = capsys.readouterr().out
    assert "embedder   tfidf" in out and "stages (s)" in out and "extract" in out and "total" in out
    assert "WARNING" not in out


def test_tfidf_fallback_is_a_warning_and_shows_in_the_summary(tmp_path, monkeypatch, caplog, capsys):
    import json

    monkeypatch.setattr(emb_mod, "_dense_libs_installed", lambda: False)  # the dense extra is not installed
    src = tmp_path / "docs.json"
    src.write_text(json.dumps(DOCS), encoding="utf-8")
    idx = tmp_path / "idx"
    with caplog.at_level(logging.WARNING, logger="hippograph"):
        assert cli_main(["index", str(src), "--index", str(idx), "--quiet"]) == 0
    assert any(r.levelno == logging.WARNING and "TF-IDF" in r.getMessage() for r in caplog.records)
    built = capsys.readouterr().out
    assert "WARNING    embedder 'auto' fell back to the zero-model TF-IDF" in built and "hippograph[dense]" in built
    assert HippoGraph.open(idx).stats()["embedder_warning"].startswith("embedder 'auto' fell back")
    assert cli_main(["info", str(idx)]) == 0
    assert "WARNING    embedder 'auto' fell back" in capsys.readouterr().out


@pytest.mark.slow
def test_model_loading_is_quiet_unless_verbose(capfd):
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    quiet = emb_mod.SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8)
    quiet.encode(["a cat on a mat"], show_progress=True)  # our own bar may show; the loader's may not
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "embed all-MiniLM-L6-v2" in err
    assert hf_logging.is_progress_bar_enabled() == was  # the third-party state is restored

    logging.getLogger("hippograph").setLevel(logging.INFO)  # `hippograph -v`
    try:
        emb_mod.SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8).encode(["a cat"])
    finally:
        logging.getLogger("hippograph").setLevel(logging.NOTSET)
    assert "Loading weights" in capfd.readouterr().err
