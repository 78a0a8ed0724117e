"""How many CPU threads hippograph may use: the cores it is allowed, and its share of a busy machine.

`available_cpus` is the ceiling: the CPUs this process may run on (`sched_getaffinity`), the
cgroup CPU quota (a container limited to 1.5 CPUs gets 2 threads, not the host's 64),
`OMP_NUM_THREADS` when the user set it, and `Config.threads` (0 = auto). Thread pools
(torch intra-op, faiss/OpenMP, spaCy worker processes) are sized from it.

`busy_threads` adapts how many embedding passes run at once to a shared machine
(`Config.adaptive_threads`, off by default): when the 1-minute load average, minus the threads we
run ourselves, says other work occupies cores, fewer passes run side by side (at least 1). Each
pass is single-threaded (`embedders.FORWARD_THREADS`), so neither setting changes a vector: a
pass never waits on a descheduled sibling thread, and an index grown by `add`, built on Ray or
on a busy machine equals a scratch build of the same documents.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Mapping

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

_limit = 0  # Config.threads of the running build / open index (0 = auto)
_adaptive = False  # Config.adaptive_threads


def set_limit(threads: int, adaptive: bool = False) -> None:
    """Record `Config.threads` (0 = auto) and `Config.adaptive_threads` for this process, and
    size the faiss/OpenMP pool from them."""
    global _limit, _adaptive
    _limit = max(0, int(threads or 0))
    _adaptive = bool(adaptive)
    _available_cache.clear()
    n = available_cpus()
    try:
        import faiss

        if faiss.omp_get_max_threads() != n:
            faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover - faiss is a core dependency
        pass


_available_cache: dict[tuple, int] = {}


def available_cpus(
    threads: int | None = None,
    *,
    cgroup_root: Path | str = CGROUP_ROOT,
    proc_cgroup: Path | str = PROC_CGROUP,
    environ: Mapping[str, str] | None = None,
) -> int:
    """CPUs this process may use: min of affinity, cgroup quota, OMP_NUM_THREADS and `threads` (≥ 1).

    `threads` defaults to the limit recorded by `set_limit` (`Config.threads`; 0 = auto).
    `cgroup_root`, `proc_cgroup` and `environ` exist so tests can point at fake files and variables.
    """
    env = os.environ if environ is None else environ
    limit = _limit if threads is None else max(0, int(threads))
    key = (limit, str(cgroup_root), str(proc_cgroup), env.get("OMP_NUM_THREADS"))
    if environ is None and key in _available_cache:
        return _available_cache[key]
    counts = [affinity_cpus()]
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        counts.append(max(1, math.ceil(quota)))
    omp = _positive_int(env.get("OMP_NUM_THREADS"))
    if omp is not None:
        counts.append(omp)
    if limit > 0:
        counts.append(limit)
    n = max(1, min(counts))
    if environ is None:
        _available_cache[key] = n
    return n


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (os.cpu_count where the platform has no affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def cgroup_cpu_quota(root: Path | str = CGROUP_ROOT, proc_cgroup: Path | str = PROC_CGROUP) -> float | None:
    """The cgroup CPU quota in CPUs (e.g. 1.5), or None when unlimited or not readable.

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``. cgroup v1:
    ``cpu.cfs_quota_us`` (-1 = unlimited) and ``cpu.cfs_period_us`` under ``cpu/`` or
    ``cpu,cpuacct/``. For v2 the process's own cgroup (from `proc_cgroup`) and its ancestors
    are read; the tightest quota wins.
    """
    root = Path(root)
    v2, v1 = _own_cgroups(Path(proc_cgroup))
    limits = []
    for folder in _with_ancestors(root, v2):
        text = _read(folder / "cpu.max")
        parts = (text or "").split()
        if len(parts) == 2 and parts[0] != "max":
            limits.append(_ratio(parts[0], parts[1]))
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in _with_ancestors(root / sub, v1):
            limits.append(_ratio(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")))
    found = [q for q in limits if q is not None]
    return min(found) if found else None  # every ancestor's quota applies: the tightest binds


def _own_cgroups(proc_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup v2 path and v1 `cpu` controller path (relative, "" if unknown)."""
    v2 = v1 = ""
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2].strip().strip("/")
        elif "cpu" in parts[1].split(","):
            v1 = parts[2].strip().strip("/")
    return v2, v1


def _with_ancestors(root: Path, rel: str) -> list[Path]:
    """`root/rel` and each folder above it up to `root` itself."""
    out, folder = [], root / rel if rel else root
    while True:
        out.append(folder)
        if folder == root or root not in folder.parents:
            return out
        folder = folder.parent


def busy_threads(own_threads: int, *, cpus: int | None = None, load: float | None = None) -> int:
    """Threads worth running now: the available CPUs minus those other work keeps busy (≥ 1).

    `own_threads` is how many threads this process is running (they are part of the load
    average). `load` defaults to the 1-minute load average.
    """
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not available: assume a quiet machine
            return cpus
    others = max(0.0, load - max(0, own_threads))
    return int(max(1, min(cpus, round(cpus - others))))


def embedding_threads(own_threads: int) -> int:
    """Embedding forward passes to run at once (each on one thread): the available CPUs, or with
    `Config.adaptive_threads` what `busy_threads` leaves on a busy machine."""
    return busy_threads(own_threads) if _adaptive else available_cpus()


def spacy_processes(requested: int, *, auto: bool = False) -> int:
    """spaCy worker processes: the configured `n_process`, capped at the available CPUs. 0 means
    auto: the available CPUs where a pool may be started (`auto`, the shard worker), else 1."""
    if int(requested) == 0:
        return available_cpus() if auto else 1
    return max(1, min(int(requested), available_cpus()))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ratio(quota: str | None, period: str | None) -> float | None:
    if quota is None or period is None:
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # v1 uses -1 for "no limit"
        return None
    return q / p


def _positive_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value.strip().split(",")[0])  # OMP_NUM_THREADS may list per-level counts: "4,2"
    except ValueError:
        logger.debug("OMP_NUM_THREADS=%r is not a number; ignored", value)
        return None
    return n if n > 0 else None
