"""A cgroup of its own for each sandbox run: the cap on the run's total memory (and its process count).

:func:`find_cgroup_base` finds, once, where this process may make cgroups with a memory limit — its own cgroup
(v1), or the nearest ancestor that delegates the memory controller (v2, whose inner cgroups may not hold
processes) — or says why there is none (a normal user without a delegated cgroup, a container without one); it
also sweeps the empty cgroups that runs of a process that has since died left behind. A :class:`RunGroup` is one
run's cgroup, named ``puyu-sandbox-<pid of this process>-<n>``: made and limited before the run starts (the
memory limit with no swap beyond it, ``memory.oom.group`` where there is one, ``pids.max`` where the pids
controller is available), the run's first process added to it, read for the kernel's OOM kills while the run
goes on, and killed and removed after it. :mod:`puyu_lab.agent.sandbox` decides the limits and starts the run.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

CGROUP_PREFIX = "puyu-sandbox-"  # each run's cgroup: puyu-sandbox-<pid of this process>-<n>


def _write(path: str, value) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_or_empty(path: str) -> str:
    try:
        return _read(path)
    except OSError:
        return ""


def unescape_mountinfo(p: str) -> str:  # mountinfo writes spaces, tabs, newlines and backslashes as octal escapes
    return p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def path_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass
class CgroupBase:
    version: int  # 2: the unified hierarchy; 1: the memory (and pids) controllers' own hierarchies
    memory: str  # the folder in which each run's cgroup is made
    pids: str | None  # v1: the same in the pids hierarchy; v2: == memory when pids is enabled there; None: no pids cap

    def describe(self) -> str:
        return f"v{self.version} {'memory and pids' if self.pids else 'memory'}, under {self.memory}"


def find_cgroup_base(memory_max: int, pids_max: int) -> tuple[CgroupBase | None, str]:
    """Where this process may make cgroups with a memory limit — in its own cgroup, or (v2, whose inner
    cgroups may not hold processes) the nearest ancestor that delegates memory — or ``None`` and why not.
    A trial group with these limits (bytes, processes) is made and removed to prove it."""
    try:
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
                    if c in ("memory", "pids"):
                        v1[c] = (unescape_mountinfo(f[4]), unescape_mountinfo(f[3]))
        own = {}
        for line in _read("/proc/self/cgroup").splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                own[c] = path
    except (OSError, ValueError) as e:
        return None, f"cgroups unreadable: {e}"

    def folder(mount, path):
        mnt, root = mount
        if root != "/" and path_inside(path, root):
            path = path[len(root.rstrip("/")):] or "/"
        return os.path.normpath(mnt + "/" + path.lstrip("/"))

    base = None
    if v2 and "unified" in own and "memory" in _read_or_empty(os.path.join(v2[0], "cgroup.controllers")).split():
        d = folder(v2, own["unified"])
        while path_inside(d, v2[0]):
            ctl = _read_or_empty(os.path.join(d, "cgroup.subtree_control")).split()
            if "memory" in ctl:
                if os.access(d, os.W_OK):
                    base = CgroupBase(2, d, d if "pids" in ctl else None)
                break
            if d == v2[0]:
                break
            d = os.path.dirname(d)
        if base is None:
            return None, (f"cgroup v2: no cgroup around this process that delegates the memory controller to it "
                          f"(run as root, or in a cgroup delegated to this user, e.g. `systemd-run --user --scope "
                          f"-p Delegate=yes`)")
    elif "memory" in v1 and "memory" in own:
        d = folder(v1["memory"], own["memory"])
        if not os.access(d, os.W_OK):
            return None, f"cgroup v1: this user may not make cgroups in {d} (run as root)"
        p = folder(v1["pids"], own["pids"]) if "pids" in v1 and "pids" in own else None
        base = CgroupBase(1, d, p if p and os.access(p, os.W_OK) else None)
    else:
        return None, "no memory cgroup controller on this system"
    _sweep(base)
    try:  # a trial group: made, limited and removed
        g = RunGroup(base, memory_max, pids_max)
        g.close()
    except OSError as e:
        return None, f"cgroup v{base.version}: cannot make a limited cgroup under {base.memory} ({e})"
    return base, ""


def _sweep(base: CgroupBase) -> None:
    """Remove the empty cgroups that runs of a process that has since died left behind."""
    for top in {base.memory, base.pids} - {None}:
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for n in names:
            if n.startswith(CGROUP_PREFIX):
                try:
                    os.kill(int(n[len(CGROUP_PREFIX):].split("-")[0]), 0)
                except ProcessLookupError:
                    try:
                        os.rmdir(os.path.join(top, n))
                    except OSError:
                        pass
                except (ValueError, PermissionError):
                    pass


_group_ids = iter(range(1, 1 << 62))
_group_lock = threading.Lock()


class RunGroup:
    """One run's cgroup (memory, and pids where available): made before the run, removed after it.
    ``memory_max``: bytes (no swap beyond them); ``pids_max``: processes and threads."""

    def __init__(self, base: CgroupBase, memory_max: int, pids_max: int):
        with _group_lock:
            name = f"{CGROUP_PREFIX}{os.getpid()}-{next(_group_ids)}"
        self.version, self.dirs, self.added = base.version, [], False
        try:
            mem = os.path.join(base.memory, name)
            os.mkdir(mem)
            self.dirs.append(mem)
            if base.version == 2:
                _write(os.path.join(mem, "memory.max"), memory_max)
                for f, v in (("memory.swap.max", 0), ("memory.oom.group", 1)):
                    if os.path.exists(os.path.join(mem, f)):
                        _write(os.path.join(mem, f), v)
                if base.pids:
                    _write(os.path.join(mem, "pids.max"), pids_max)
                self.events = os.path.join(mem, "memory.events")
            else:
                _write(os.path.join(mem, "memory.limit_in_bytes"), memory_max)
                if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):  # and no swap beyond it
                    _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), memory_max)
                self.events = os.path.join(mem, "memory.oom_control")
                if base.pids:
                    p = os.path.join(base.pids, name)
                    os.mkdir(p)
                    self.dirs.append(p)
                    _write(os.path.join(p, "pids.max"), pids_max)
        except BaseException:
            self.close()
            raise

    def add(self, pid: int) -> None:
        for d in self.dirs:
            _write(os.path.join(d, "cgroup.procs"), pid)
        self.added = True

    def oom_kills(self) -> int:
        for line in _read_or_empty(self.events).splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def close(self) -> None:
        """Kill anything still in it, then remove it (innermost first)."""
        for d in reversed(self.dirs):
            end = time.monotonic() + 2.0
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > end:
                        break
                try:
                    if os.path.exists(os.path.join(d, "cgroup.kill")):
                        _write(os.path.join(d, "cgroup.kill"), 1)
                    else:
                        for pid in _read_or_empty(os.path.join(d, "cgroup.procs")).split():
                            os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
                time.sleep(0.005)
        self.dirs = []
