"""The Ray executor: a write's shards built by Ray Data actors, merged by the driver in order.

    driver: group_documents ─► window of ≤ WINDOW_SHARDS shard specs (index, key, path, documents)
    ─► ray.data.from_items ─► map_batches(ShardBuilder, batch_size=1 shard, actor pool) ─►
    each actor: one spaCy model + one embedder, `shards.build_shard` into the shared
    ``.build/`` directory ─► small records (index, key, counts) ─► driver checks every
    expected shard is done exactly once ─► the local merge, in shard order.

The shard directory must be on a filesystem every Ray node sees (one machine, or NFS / a
shared volume on a cluster). `build_shard` replaces a partial directory and writes
``done.json`` last, so a task Ray retries after a worker died is idempotent. Finished shards
are reused exactly as on the local path (same keys), so a killed build resumes with either
executor. Ray is imported only here, only when `Config.executor` is 'ray'.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from hippograph.config import Config
from hippograph.embedders import Embedder, make_embedder
from hippograph.errors import ConfigError, HippoGraphError
from hippograph.types import Document

from . import shards
from .shards import ShardSpec

logger = logging.getLogger(__name__)

RAY_INSTALL_HINT = "pip install 'hippograph[ray]'"
WINDOW_SHARDS = 64
"""Shards handed to Ray at once: bounds the documents the driver and object store hold, while
keeping every actor busy (the merge of one window runs while nothing else is queued)."""


def import_ray() -> Any:
    """The `ray` module, or a one-line error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"executor='ray' needs Ray Data ({exc}); install it with: {RAY_INSTALL_HINT}") from exc
    return ray


@contextmanager
def ray_session(config: Config, show_progress: bool = False) -> Iterator[Any]:
    """Attach to `config.ray_address`, or use the Ray instance already running in this process,
    or start a local one (shut down again on exit)."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=config.ray_address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=show_progress or logger.isEnabledFor(logging.INFO))
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = config.ray_address or "a new local instance"
            raise HippoGraphError(f"ray_address={where}: cannot start or reach Ray ({exc})") from exc
        started = True
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = show_progress
    try:
        yield ray
    finally:
        ctx.enable_progress_bars = bars
        if started:
            ray.shutdown()


class ShardBuilder:
    """A Ray Data callable class: loads the embedder once per actor (spaCy is loaded once per
    process by `shards.default_extractor`) and builds one shard per batch."""

    def __init__(self, config: dict, embedder_dir: str | None, embedder_spec: dict, extract: Any = None):
        self.config = Config.from_dict(config)
        self.extract = extract
        if embedder_dir is not None:
            self.embedder: Embedder = shards.load_shipped_embedder(embedder_spec, embedder_dir, self.config)
        else:
            self.embedder = make_embedder(self.config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"index": [], "key": [], "path": [], "passages": [], "pid": []}
        for index, key, path, blob in zip(batch["index"], batch["key"], batch["path"], batch["documents"]):
            documents = [Document(**d) for d in json.loads(blob)]
            done = shards.build_shard(documents, self.config, Path(str(path)), embedder=self.embedder,
                                      extract=self.extract, key=str(key))
            counts = shards.read_done(done)["counts"]
            out["index"].append(int(index))
            out["key"].append(str(key))
            out["path"].append(str(path))
            out["passages"].append(int(counts.get("passages", 0)))
            out["pid"].append(os.getpid())
        return {k: np.asarray(v) for k, v in out.items()}


def build_shards(
    specs: Iterable[ShardSpec],
    config: Config,
    embedder: Embedder,
    build_dir: Path,
    *,
    extract: shards.Extract | None = None,
    show_progress: bool = False,
) -> Iterator[tuple[ShardSpec, bool]]:
    """Yield (spec, built) for every spec in order once its shard is finished on disk; shards
    already done (same key) are reused, the others are built on Ray a window at a time."""
    specs = iter(specs)
    window = list(islice(specs, WINDOW_SHARDS))
    if not window:
        return  # nothing to add: Ray is not started
    with ray_session(config, show_progress) as ray:
        embedder_dir = shards.ship_fitted_embedder(embedder, Path(build_dir))
        while window:
            todo = [s for s in window if not shards.shard_done(s.path, s.key)]
            if todo:
                _run_window(ray, todo, config, embedder, embedder_dir, extract)
            built = {s.index for s in todo}
            for s in window:
                yield s, s.index in built
            window = list(islice(specs, WINDOW_SHARDS))


def _run_window(ray: Any, todo: list[ShardSpec], config: Config, embedder: Embedder, embedder_dir: str | None,
                extract: shards.Extract | None) -> None:
    """Build `todo` on an actor pool and check each shard came back finished exactly once."""
    items = [{"index": s.index, "key": s.key, "path": str(s.path), "documents": json.dumps([dataclasses.asdict(d) for d in s.documents])}
             for s in todo]
    concurrency = config.ray_concurrency or _default_concurrency(ray, config)
    concurrency = max(1, min(concurrency, len(todo)))
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardBuilder,
        fn_constructor_kwargs={"config": config.to_dict(), "embedder_dir": embedder_dir,
                               "embedder_spec": embedder.spec(), "extract": extract},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=config.ray_num_cpus, num_gpus=config.ray_num_gpus or None,
    )  # Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1: a killed actor is
    # restarted and its shard redone (tests/test_ray.py kills one); build_shard makes that idempotent
    try:
        rows = ds.take_all()
    except Exception as exc:  # Ray wraps worker errors in its own types
        raise HippoGraphError(f"ray executor: building shards failed ({_first_line(exc)})") from exc
    seen: dict[int, int] = {}
    for row in rows:
        seen[int(row["index"])] = seen.get(int(row["index"]), 0) + 1
    for s in todo:
        if seen.get(s.index, 0) != 1 or not shards.shard_done(s.path, s.key):
            raise HippoGraphError(
                f"ray executor: shard {s.index} ({s.path}) came back {seen.get(s.index, 0)} times "
                f"{'finished' if shards.shard_done(s.path, s.key) else 'unfinished'}; expected once, finished")
    extra = set(seen) - {s.index for s in todo}
    if extra:
        raise HippoGraphError(f"ray executor: unexpected shards {sorted(extra)[:5]} came back")


def _default_concurrency(ray: Any, config: Config) -> int:
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // max(config.ray_num_cpus, 1e-9)))


def _first_line(exc: BaseException) -> str:
    """The user's error inside a Ray worker error: the innermost cause that is not Ray's own,
    else the last 'SomeError: message' line of Ray's text (which embeds the worker traceback)."""
    cause, seen = exc, set()
    while id(cause) not in seen:
        seen.add(id(cause))
        nxt = getattr(cause, "cause", None) or cause.__cause__
        if not isinstance(nxt, BaseException):
            break
        cause = nxt
    if not type(cause).__module__.startswith("ray"):
        lines = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {lines[0] if lines else ''}"
    found = [line.strip() for line in str(exc).splitlines()
             if re.match(r"^\s*[A-Za-z_][\w.]*(Error|Exception): ", line) and not line.strip().startswith("ray.")]
    if found:
        return found[-1]
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
