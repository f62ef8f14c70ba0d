"""``puyu-lab hub capacity``: what one learner's chain costs, and from that how many learners a server holds.

Each lab runs headless (``puyu-lab chain --only <lab>``, the same run as ``make chain``) in a fresh workspace that
carries over from lab to lab, inside a cgroup of its own where this process may make one (as root: the hub's
:class:`puyu_lab.hub.cgroups.LearnerGroup`, uncapped), so the figures cover everything the lab started — its kernel,
llama.cpp servers, converters:

- **CPU seconds**: the group's CPU time (``cpuacct.usage`` / ``cpu.stat``), else the finished children's rusage;
- **memory**: the group's own peak (``memory.max_usage_in_bytes`` / ``memory.peak``: what a ``--mem`` cap must cover,
  pages shared between its processes counted once, the page cache it read included), and the peak of the summed
  resident memory of its processes, sampled four times a second (pages the processes share counted once per process: an upper
  bound; the only figure where no cgroup can be made);
- **wall seconds**.

From the sums it estimates, for servers of 16, 32 and 64 cores (``--cores``) with ``--ram-per-core`` GiB each, how
many learners fit in memory (the group's peak, else the RSS sum, with 10 % kept for the system) and how long a chain takes when all of them run it at
once: ``max(alone, cpu / cap, learners × cpu / cores)`` — CPU-bound labs share the cores evenly, a learner never
gets more than the hub's ``--cpu-limit``. It is an estimate from one learner's measurement, printed as such.
"""
from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LabCost:
    lab: str
    ok: bool
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    cgroup_peak: int | None  # bytes, page cache included (v1 max_usage / v2 memory.peak), where there is one


def _rss_of(pids) -> int:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure_lab(lab: str, home: Path, profile: str) -> LabCost:
    import psutil

    group = None
    try:
        from .cgroups import LearnerGroup

        if os.geteuid() == 0:
            group = LearnerGroup(f"capacity-{os.getpid()}-{lab}").make(mem_bytes=None, cpus=None, pids=None)
    except Exception:  # noqa: BLE001 — no cgroup here: the process tree and rusage instead
        group = None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "puyu_lab", "chain", "--profile", profile, "--home", str(home), "--only", lab]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, preexec_fn=(lambda: group.join()) if group else None, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            if group:
                pids = group.pids()
            else:
                try:
                    p = psutil.Process(proc.pid)
                    pids = [p.pid, *(c.pid for c in p.children(recursive=True))]
                except psutil.NoSuchProcess:
                    pids = []
            peak[0] = max(peak[0], _rss_of(pids))
            stop.wait(0.25)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    wall = time.monotonic() - t0
    stop.set()
    t.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cg_peak = None
    if group:
        cpu = group.cpu_seconds() or cpu
        cg_peak = group.memory_peak()
        group.remove()
    if proc.returncode != 0:
        print(out[-3000:], file=sys.stderr)
    return LabCost(lab, proc.returncode == 0, wall, cpu, peak[0], cg_peak)


def estimate(costs: list[LabCost], cores: int, ram_gib: float, cpu_limit: float) -> dict:
    """Learners that fit a server of ``cores`` and ``ram_gib``, and the chain's time with all of them running it."""
    cpu = sum(c.cpu_s for c in costs)
    alone = sum(c.wall_s for c in costs)
    peak = max((c.cgroup_peak or c.peak_rss) for c in costs) or 1
    learners = max(0, math.floor(ram_gib * 0.9 * 2 ** 30 / peak))
    capped = cpu / cpu_limit if cpu_limit else 0.0
    chain = max(alone, capped, learners * cpu / cores) if learners else float("nan")
    return {"cores": cores, "ram_gib": ram_gib, "learners": learners, "chain_min": chain / 60,
            "alone_min": alone / 60}


def table(costs: list[LabCost], cores=(16, 32, 64), ram_per_core: float = 4.0, cpu_limit: float = 1.0) -> str:
    from ..i18n import tr

    lines = [tr("| 实验 | 墙钟 s | CPU s | 峰值 RSS MB | cgroup 峰值 MB |",
                "| lab | wall s | CPU s | peak RSS MB | cgroup peak MB |"), "|---|---|---|---|---|"]
    for c in costs:
        cg = f"{c.cgroup_peak / 2 ** 20:.0f}" if c.cgroup_peak else "—"
        lines.append(f"| {c.lab}{'' if c.ok else ' (FAILED)'} | {c.wall_s:.1f} | {c.cpu_s:.1f} | "
                     f"{c.peak_rss / 2 ** 20:.0f} | {cg} |")
    lines += ["", tr(f"| 核数 | 内存 GiB | 学员数（受内存限制） | 全员同时跑完链路（分钟，每人上限 {cpu_limit:g} 核） |",
                     f"| cores | RAM GiB | learners (memory-bound) | chain time, all at once (min, {cpu_limit:g} core cap each) |"),
              "|---|---|---|---|"]
    for n in cores:
        e = estimate(costs, n, n * ram_per_core, cpu_limit)
        lines.append(f"| {n} | {e['ram_gib']:g} | {e['learners']} | {e['chain_min']:.1f} |")
    return "\n".join(lines)


def run(labs: list[str] | None, home: Path, profile: str = "quick", say=print) -> list[LabCost]:
    from ..labrunner import discover

    keys = [nb.stem.split("_")[0] for nb in discover()]
    want = [k for k in keys if not labs or any(k.startswith(x) or x.startswith(k) for x in labs)]
    costs = []
    for k in want:
        c = measure_lab(k, home, profile)
        say(f"{k}: wall {c.wall_s:.1f} s, CPU {c.cpu_s:.1f} s, peak RSS {c.peak_rss / 2 ** 20:.0f} MB"
            + ("" if c.ok else " — FAILED (later labs need its artifact: stopping)"))
        costs.append(c)
        if not c.ok:
            break
    return costs
