"""Thread policy (hippograph/threads.py): CPU count from affinity, cgroup quota, OMP_NUM_THREADS, Config.threads."""
from __future__ import annotations

from pathlib import Path

import pytest

from hippograph import threads
from hippograph.config import Config


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def no_cgroup(tmp_path: Path) -> dict:
    return {"cgroup_root": tmp_path / "none", "proc_cgroup": tmp_path / "none" / "cgroup", "environ": {}}


def test_affinity_is_the_ceiling(no_cgroup):
    assert threads.available_cpus(0, **no_cgroup) == threads.affinity_cpus()
    assert threads.available_cpus(10_000, **no_cgroup) == threads.affinity_cpus()


def test_config_threads_and_omp_cap(no_cgroup):
    assert threads.available_cpus(1, **no_cgroup) == 1
    env = dict(no_cgroup, environ={"OMP_NUM_THREADS": "1"})
    assert threads.available_cpus(0, **env) == 1
    for junk in ("", "zero", "-3", "0"):
        env = dict(no_cgroup, environ={"OMP_NUM_THREADS": junk})
        assert threads.available_cpus(0, **env) == threads.affinity_cpus()
    env = dict(no_cgroup, environ={"OMP_NUM_THREADS": "1,4"})  # nested levels: the outer one counts
    assert threads.available_cpus(0, **env) == 1


def test_cgroup_v2_quota_of_own_group_and_ancestors(tmp_path: Path):
    root = tmp_path / "cg"
    proc = tmp_path / "proc_self_cgroup"
    _write(proc, "0::/user.slice/job\n")
    _write(root / "cpu.max", "max 100000\n")
    assert threads.cgroup_cpu_quota(root, proc) is None
    _write(root / "user.slice" / "job" / "cpu.max", "150000 100000\n")
    assert threads.cgroup_cpu_quota(root, proc) == pytest.approx(1.5)
    _write(root / "user.slice" / "cpu.max", "50000 100000\n")  # a tighter parent binds
    assert threads.cgroup_cpu_quota(root, proc) == pytest.approx(0.5)
    assert threads.available_cpus(0, cgroup_root=root, proc_cgroup=proc, environ={}) == 1


def test_cgroup_v1_quota(tmp_path: Path):
    root = tmp_path / "cg"
    proc = tmp_path / "proc_self_cgroup"
    _write(proc, "4:memory:/x\n1:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cpu_quota(root, proc) is None
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "100000\n")
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cpu_quota(root, proc) == pytest.approx(1.0)
    assert threads.available_cpus(0, cgroup_root=root, proc_cgroup=proc, environ={}) == 1


def test_garbled_cgroup_files_are_ignored(tmp_path: Path):
    root = tmp_path / "cg"
    proc = tmp_path / "proc_self_cgroup"
    _write(proc, "garbage without colons\n")
    _write(root / "cpu.max", "lots of words here\n")
    _write(root / "cpu" / "cpu.cfs_quota_us", "abc\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "0\n")
    assert threads.cgroup_cpu_quota(root, proc) is None


def test_busy_threads_leaves_cores_to_other_work():
    assert threads.busy_threads(2, cpus=2, load=2.0) == 2  # only our own two threads
    assert threads.busy_threads(2, cpus=2, load=3.1) == 1  # one other busy process
    assert threads.busy_threads(1, cpus=2, load=2.0) == 1  # stays at 1 while it is there
    assert threads.busy_threads(1, cpus=2, load=5.0) == 1  # never below one
    assert threads.busy_threads(1, cpus=2, load=0.9) == 2  # it left
    assert threads.busy_threads(2, cpus=8, load=4.0) == 6


def test_embedding_threads_adapt_only_when_asked():
    try:
        threads.set_limit(0, adaptive=False)
        assert threads.embedding_threads(2) == threads.available_cpus()  # deterministic: never the load
        threads.set_limit(0, adaptive=True)
        assert 1 <= threads.embedding_threads(2) <= threads.available_cpus()
    finally:
        threads.set_limit(0)


def test_config_threads_default_is_auto_and_limits_spacy():
    assert Config().threads == 0 and Config().adaptive_threads is False
    try:
        threads.set_limit(1)
        assert threads.available_cpus() == 1
        assert threads.spacy_processes(4) == 1
    finally:
        threads.set_limit(0)
    assert threads.spacy_processes(1) == 1
