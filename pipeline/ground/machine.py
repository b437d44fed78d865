"""What this machine offers a build: the cores and the memory this process may use (CPU
affinity, cgroup limits), and a worker's share of the cores."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota)) if quota else max(1, cores)


def _cgroup_quota() -> int | None:
    try:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.max") as stream:
            limit, period = stream.read().split()[:2]
        return None if limit == "max" else max(1, -(-int(limit) // int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as stream:
            quota = int(stream.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as stream:
            period = int(stream.read())
        return None if quota <= 0 else max(1, -(-quota // period))
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process may still take: the kernel's MemAvailable, capped by what a cgroup v2
    memory limit leaves; None where neither is known."""
    found = []
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as stream:
            limit = stream.read().strip()
        with open("/sys/fs/cgroup/memory.current") as stream:
            used = int(stream.read())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def core_share(processes: int) -> int:
    """The cores each of `processes` processes sharing this machine gets (at least one)."""
    return max(1, available_cores() // processes)
