"""The embedding stage: unit texts → float32 rows, each distinct text encoded once.

Overlapping chunks repeat sentences and facts repeat across passages, so a block of texts
is deduplicated before it reaches the model. Encoding runs in blocks so a progress bar
can count units as they are done. With `Config.sentence_vectors = "late"` a passage's pass
also gives its sentences' vectors (`encode_passages_with_sentences`).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np

from hippograph.config import Config
from hippograph.embedders import Embedder

from .report import Progress

ENCODE_BLOCK = 4096
"""Distinct texts handed to the embedder per call (progress granularity; the model batches inside)."""
STABLE_BLOCK = 65_536
"""Distinct texts per `encode_stable` call: its padding costs up to one batch per text length per call,
so fewer, larger calls (a whole shard's units at defaults; progress advances per call)."""


def encode_units(
    embedder: Embedder, texts: Sequence[str], *, batch_size: int, progress: Progress | None = None,
    stage: str = "embed",
) -> np.ndarray:
    """(len(texts), dim) float32 embeddings; repeated texts are encoded once."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    out = np.empty((len(unique), embedder.dim), dtype=np.float32)
    # a unit's vector must not depend on which others share its call: a local shard skips units the
    # index holds, a Ray actor does not, an add embeds only new ones (`encode_stable`)
    stable = getattr(embedder, "encode_stable", None)
    encode = stable if stable is not None else partial(embedder.encode, show_progress=False)
    block = ENCODE_BLOCK if stable is None else STABLE_BLOCK
    for a in range(0, len(unique), block):
        part = unique[a:a + block]
        out[a:a + len(part)] = encode(part, batch_size=batch_size)
        if progress is not None:
            progress.advance(stage, len(part), unit="text")
    if len(unique) == len(texts):
        return out
    pos = {t: i for i, t in enumerate(unique)}
    return out[[pos[t] for t in texts]]


def late_sentences(config: Config, embedder: Embedder) -> bool:
    """Whether sentence rows come from their passage's pass (`Config.sentence_vectors`): asked
    only where the model is loaded anyway (it reads the model's pooling and tokenizer)."""
    return config.sentence_vectors == "late" and bool(getattr(embedder, "pools_token_means", False))


def encode_passages_with_sentences(
    embedder: Embedder, texts: Sequence[str], sentence_spans: Sequence[Sequence[tuple[int, int]]], *,
    batch_size: int, progress: Progress | None = None, stage: str = "embed passages",
) -> tuple[np.ndarray, np.ndarray]:
    """(passage rows, sentence rows in passage order): one model pass per passage text gives its
    vector and those of its sentences, character spans of that text (`encode_with_spans`)."""
    dim = embedder.dim
    starts = np.cumsum([0] + [len(row) for row in sentence_spans])
    passages = np.empty((len(texts), dim), dtype=np.float32)
    sentences = np.empty((int(starts[-1]), dim), dtype=np.float32)
    for a in range(0, len(texts), ENCODE_BLOCK):
        b = min(len(texts), a + ENCODE_BLOCK)
        passages[a:b], sentences[starts[a]:starts[b]] = embedder.encode_with_spans(  # type: ignore[attr-defined]
            texts[a:b], sentence_spans[a:b], batch_size=batch_size)
        if progress is not None:
            progress.advance(stage, b - a, unit="text")
    return passages, sentences
