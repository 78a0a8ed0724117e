"""The embedding stage: unit texts → float32 rows, each distinct text encoded once.

Overlapping chunks repeat sentences and facts repeat across passages, so a block of texts
is deduplicated before it reaches the model. Encoding runs in blocks so a progress bar
can count units as they are done.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hippograph.embedders import Embedder

from .report import Progress

ENCODE_BLOCK = 4096
"""Distinct texts handed to the embedder per call (progress granularity; the model batches inside)."""


def encode_units(
    embedder: Embedder, texts: Sequence[str], *, batch_size: int, progress: Progress | None = None,
    stage: str = "embed",
) -> np.ndarray:
    """(len(texts), dim) float32 embeddings; repeated texts are encoded once."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    out = np.empty((len(unique), embedder.dim), dtype=np.float32)
    for a in range(0, len(unique), ENCODE_BLOCK):
        part = unique[a:a + ENCODE_BLOCK]
        out[a:a + len(part)] = embedder.encode(part, batch_size=batch_size, show_progress=False)
        if progress is not None:
            progress.advance(stage, len(part), unit="text")
    if len(unique) == len(texts):
        return out
    pos = {t: i for i, t in enumerate(unique)}
    return out[[pos[t] for t in texts]]
