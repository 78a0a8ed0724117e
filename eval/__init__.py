"""hippograph evaluation harness: benchmarks, baselines, metrics, speed and the RESULTS.md report.

Run from the repository root: ``python -m eval run --datasets musique_train100 --out eval/results/``.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = Path(__file__).resolve().parent
