"""One learner's server in a cgroup of its own: the cap on its memory, CPU and processes, and the one place from
which everything it started is found and ended.

Used by :class:`puyu_lab.hub.spawner.CappedSpawner` where systemd does not run (where it does, the hub uses
systemd's own units through SystemdSpawner instead, and this module is not involved). The single-user server joins
its group before it drops root (in the spawner's ``preexec_fn``), so every process it starts later — the kernels,
the terminals, and the llama.cpp server the deploy lab starts from a kernel — is born inside it and counted against
the same caps: the kernel does not let a process leave a cgroup on its own (moving needs write access to the
cgroup files, which stay root's).

- **memory**: ``memory.max`` (v2) / ``memory.limit_in_bytes`` (v1), with no swap beyond it. When the group reaches it
  the kernel's OOM killer ends the group's largest process — in a notebook, the kernel that allocated — and nothing
  outside the group (``memory.oom.group`` is left off, so the learner's server itself survives and restarts the
  kernel).
- **CPU**: ``cpu.max`` (v2) / ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (v1): the group gets at most
  ``cpus`` cores' time per period, however many threads it runs.
- **processes**: ``pids.max``, where the pids controller is there (a fork bomb stays inside its quota).

Same approach as :mod:`puyu_lab.agent.cgroup` (the sandbox's per-run memory group), read from the same
``/proc/self/mountinfo`` and ``/proc/self/cgroup``: v2 groups are made under the nearest ancestor of the hub's own
cgroup that delegates the controllers (v2 inner groups may not hold processes), v1 groups under the hub's own cgroup
in each controller's hierarchy. That module's groups last one code run and cap memory and processes; these last as
long as a learner's server and cap CPU as well, hence a second, small module rather than a change to the sandbox's.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from ..errors import InputError

PREFIX = "puyu-hub"  # every learner's group is <base>/puyu-hub/<name>
from ..agent.cgroup import path_inside, unescape_mountinfo  # the sandbox's mountinfo helpers: one reading of /proc/self/mountinfo

CPU_PERIOD_US = 100_000
CONTROLLERS = ("memory", "cpu", "pids")


def _write(path: str, value) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@dataclass
class Layout:
    """Where this process may make a learner's group: ``version`` 2 (one folder for all controllers) or 1 (a
    folder per controller); ``dirs`` maps a controller (memory, cpu, pids, and cpuacct on v1 for the CPU time) to
    the folder under which the groups are made."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"cgroup v{self.version}: " + ", ".join(f"{c} under {d}" for c, d in sorted(self.dirs.items()))


def find_layout() -> Layout:
    """The folders under which learners' groups go, or one :class:`InputError` saying why there are none."""
    v2, v1 = None, {}
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) < 5 or len(r) < 3:
            continue
        if r[0] == "cgroup2":
            v2 = (unescape_mountinfo(f[4]), unescape_mountinfo(f[3]))
        elif r[0] == "cgroup":
            for c in r[2].split(","):
                if c in (*CONTROLLERS, "cpuacct"):
                    v1[c] = (unescape_mountinfo(f[4]), unescape_mountinfo(f[3]))
    own = {}
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in (parts[1].split(",") if parts[1] else ["unified"]):
                own[c] = parts[2]

    def folder(mount, path):
        mnt, root = mount
        if root != "/" and path_inside(path, root):
            path = path[len(root.rstrip("/")):] or "/"
        return os.path.normpath(mnt + "/" + path.lstrip("/"))

    if v2 and "unified" in own and {"memory", "cpu"} <= set(_read(os.path.join(v2[0], "cgroup.controllers")).split()):
        d = folder(v2, own["unified"])
        while path_inside(d, v2[0]):
            ctl = set(_read(os.path.join(d, "cgroup.subtree_control")).split())
            if {"memory", "cpu"} <= ctl and os.access(d, os.W_OK):
                return Layout(2, {c: d for c in CONTROLLERS if c in ctl})
            if d == v2[0]:
                break
            d = os.path.dirname(d)
    if "memory" in v1 and "cpu" in v1 and "memory" in own and "cpu" in own:
        dirs = {c: folder(v1[c], own[c]) for c in (*CONTROLLERS, "cpuacct") if c in v1 and c in own}
        if all(os.access(d, os.W_OK) for d in dirs.values()):
            return Layout(1, dirs)
    raise InputError(
        "no cgroup this process may limit (memory and cpu controllers, writable): start the hub as root on a "
        "system with cgroups (v2 with memory and cpu delegated, or v1), or where systemd runs, which the hub then uses",
        zh="找不到本进程可以设限的 cgroup（需要可写的 memory 和 cpu 控制器）：请以 root 身份在启用 cgroup 的系统上启动 hub"
           "（v2 需委派 memory 与 cpu，或 v1）；若系统运行着 systemd，hub 会改用 systemd")


class LearnerGroup:
    """One learner's server group: ``LearnerGroup(name)`` names it, :meth:`make` makes it (or resets it: anything
    left in it is ended) with its caps — ``mem_bytes``, ``cpus``, ``pids``, where ``None`` or 0 leaves that resource
    uncapped — and :meth:`remove` ends what is in it and removes it."""

    def __init__(self, name: str, layout: Layout | None = None):
        self.layout = layout or find_layout()
        self.name = name
        self.dirs = {c: os.path.join(base, PREFIX, name) for c, base in self.layout.dirs.items()}

    def make(self, *, mem_bytes: int | None, cpus: float | None, pids: int | None) -> "LearnerGroup":
        for ctl, d in self.dirs.items():
            top = os.path.dirname(d)
            if self.layout.version == 2 and not os.path.isdir(top):
                os.makedirs(top, exist_ok=True)
                want = " ".join(f"+{c}" for c in CONTROLLERS if c in self.layout.dirs)
                _write(os.path.join(top, "cgroup.subtree_control"), want)
            os.makedirs(d, exist_ok=True)
        self.kill()  # a group left by a server that died: end what is still in it before the new server joins
        self._limit(mem_bytes, cpus, pids)
        return self

    def _limit(self, mem_bytes, cpus, pids) -> None:
        mem, cpu, pid = self.dirs.get("memory"), self.dirs.get("cpu"), self.dirs.get("pids")
        if self.layout.version == 2:
            _write(os.path.join(mem, "memory.max"), int(mem_bytes) if mem_bytes else "max")
            if os.path.exists(os.path.join(mem, "memory.swap.max")):
                _write(os.path.join(mem, "memory.swap.max"), 0 if mem_bytes else "max")
            _write(os.path.join(cpu, "cpu.max"), f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}" if cpus
                   else f"max {CPU_PERIOD_US}")
            if pid:
                _write(os.path.join(pid, "pids.max"), int(pids) if pids else "max")
            return
        # v1: memsw (memory + swap) can never be below memory, so the order of the two writes depends on the change
        lim = int(mem_bytes) if mem_bytes else -1
        files = [os.path.join(mem, "memory.limit_in_bytes")]
        if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
            files.append(os.path.join(mem, "memory.memsw.limit_in_bytes"))
        for f in files if lim != -1 and int(_read(files[0]) or 0) > lim else reversed(files):
            _write(f, lim)
        _write(os.path.join(cpu, "cpu.cfs_period_us"), CPU_PERIOD_US)
        _write(os.path.join(cpu, "cpu.cfs_quota_us"), int(cpus * CPU_PERIOD_US) if cpus else -1)
        if pid:
            _write(os.path.join(pid, "pids.max"), int(pids) if pids else "max")

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid into to join (one per hierarchy)."""
        return sorted({os.path.join(d, "cgroup.procs") for d in self.dirs.values() if os.path.isdir(d)})

    def join(self, pid: int | None = None) -> None:
        """Move ``pid`` (default: this process) into the group; its children are born there."""
        pid = pid or os.getpid()
        for f in self.procs_files():
            _write(f, pid)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for f in self.procs_files():
            found |= {int(p) for p in _read(f).split()}
        return sorted(found)

    def kill(self, timeout: float = 5.0) -> None:
        """End every process in the group (SIGKILL), waiting up to ``timeout`` for the group to empty."""
        d = self.dirs.get("memory", "")
        if self.layout.version == 2 and os.path.exists(os.path.join(d, "cgroup.kill")):
            _write(os.path.join(d, "cgroup.kill"), 1)
        end = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left or time.monotonic() > end:
                return
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)

    def remove(self) -> None:
        """End what is left and remove the group (its folders)."""
        self.kill()
        for d in sorted(set(self.dirs.values()), reverse=True):
            for folder in (d, os.path.dirname(d)):  # and puyu-hub/ itself once the last learner's group is gone
                try:
                    os.rmdir(folder)
                except OSError:
                    pass

    # ---- what the group used (the capacity measurement) ------------------------------------------------------
    def memory_peak(self) -> int | None:
        """The group's peak memory in bytes since it was made (v1 ``memory.max_usage_in_bytes``, v2
        ``memory.peak``), or None where the kernel does not keep it."""
        d = self.dirs.get("memory", "")
        raw = _read(os.path.join(d, "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"))
        return int(raw) if raw.strip().isdigit() else None

    def oom_kills(self) -> int:
        d = self.dirs.get("memory", "")
        if self.layout.version == 2:
            for line in _read(os.path.join(d, "memory.events")).splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
            return 0
        for line in _read(os.path.join(d, "memory.oom_control")).splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the group's processes used, in seconds."""
        if self.layout.version == 2:
            for line in _read(os.path.join(self.dirs.get("cpu", ""), "cpu.stat")).splitlines():
                k, _, v = line.partition(" ")
                if k == "usage_usec":
                    return int(v) / 1e6
            return None
        acct = self.dirs.get("cpuacct")
        raw = _read(os.path.join(acct, "cpuacct.usage")) if acct else ""
        return int(raw) / 1e9 if raw.strip().isdigit() else None

    def throttled(self) -> int:
        """How many CPU periods the group was held back in by its CPU cap (``nr_throttled``)."""
        for line in _read(os.path.join(self.dirs.get("cpu", ""), "cpu.stat")).splitlines():
            k, _, v = line.partition(" ")
            if k == "nr_throttled":
                return int(v)
        return 0
