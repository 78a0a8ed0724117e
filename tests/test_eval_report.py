"""eval report: distinct series styles, dataset paths relative to the project."""
from __future__ import annotations

import json

from eval import report as R

from .conftest import ROOT


def test_every_series_has_its_own_colour_and_marker():
    names = [f"system_{i}" for i in range(16)]
    styles = R.series_styles(names)
    assert len({s["color"] for s in styles.values()}) == 16
    assert len({s["marker"] for s in styles.values()}) == 16


def test_reports_name_dataset_files_relative_to_the_project():
    shared = ROOT.parent / "shared" / "datasets" / "musique_train100" / "corpus.json"
    assert R.project_relative(f"{shared}, {shared}") == "../shared/datasets/musique_train100/corpus.json, " \
                                                        "../shared/datasets/musique_train100/corpus.json"
    assert R.project_relative(f"--datasets custom:{shared},{ROOT}/q.jsonl --out eval/x") == \
        "--datasets custom:../shared/datasets/musique_train100/corpus.json,q.jsonl --out eval/x"
    results = json.loads((ROOT / "eval" / "results" / "latest.json").read_text(encoding="utf-8"))
    text = R.render(results, None, ROOT / "eval" / "RESULTS.md", None)
    assert "Source: `../shared/datasets/" in text
    assert "`/work" not in text and "`/home" not in text and "`/tmp" not in text
