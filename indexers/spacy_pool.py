"""A kept pool of spawned spaCy processes, for the shard worker (`TripleExtractor(spawned_pool=True)`).

Each process parses *and* applies the rules to a block of passages and returns only the
extractions. The pool is started once and kept for the whole write (starting a process costs
a spaCy load). It is spawned, not forked: the shard worker holds torch threads after its first
shard, and spawning re-imports the worker's own ``__main__``, not a user's script.

This module imports no spaCy when it loads: a spawned process imports it to run `_start`, which
blocks torch before spaCy comes in — spaCy's thinc imports torch when it is installed (≈ 0.23 GB
per process) though no pipeline we load uses it.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Sequence

from hippograph.types import Extraction, Passage

log = logging.getLogger(__name__)


class SpacyPool:
    """`processes` spawned extraction processes for one extractor configuration."""

    def __init__(self, processes: int, config: dict[str, Any], resolve_pronouns: bool, common_noun_chunks: bool):
        log.info("extraction: starting %d spaCy processes, kept for the whole write", processes)
        self._processes = processes
        self._executor = ProcessPoolExecutor(
            processes, mp_context=mp.get_context("spawn"), initializer=_start,
            initargs=(os.getpid(), config, resolve_pronouns, common_noun_chunks))

    def start(self) -> None:
        """Spawn every process now (each loads spaCy in the background) instead of at the first `map`."""
        for _ in range(self._processes):
            self._executor.submit(_ready)

    def map(self, blocks: Sequence[list[Passage]]) -> Iterator[list[Extraction]]:
        """Extractions of each block, in order. A process that died is a one-line RuntimeError
        (`ProcessPoolExecutor` notices; a `multiprocessing.Pool` would wait forever)."""
        try:
            yield from self._executor.map(_extract, blocks)
        except BrokenProcessPool as exc:
            raise RuntimeError(f"a spaCy extraction process exited unexpectedly ({exc})") from None

    def pids(self) -> list[int]:
        """The pool's process ids (none before its first task)."""
        return list((self._executor._processes or {}).keys())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _start(parent: int, config: dict[str, Any], resolve_pronouns: bool, common_noun_chunks: bool) -> None:
    """Process initializer: leave Ctrl-C to the parent (which stops the pool), exit when the
    parent dies (a killed shard worker must not leave its spaCy processes behind, holding its
    pipes), keep torch out, then load the extractor."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="hippograph-parent-watch", daemon=True).start()
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` now raises ImportError
    from .extraction import worker_init

    worker_init(config, resolve_pronouns, common_noun_chunks)


def _ready() -> None:
    """A no-op task: submitting one per process makes the executor spawn them all (`SpacyPool.start`)."""


def _extract(passages: list[Passage]) -> list[Extraction]:
    from .extraction import worker_extract

    return worker_extract(passages)


def _exit_with(parent: int, every: float = 1.0) -> None:
    """Exit this process once `parent` is no longer its parent (it died; we were re-parented)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)
