"""The Python tool's sandbox (``puyu_lab/agent/sandbox.py``): what starting one run costs.

``print(1)`` through the sandbox (bubblewrap — as root also setpriv and a second bwrap — the masks, and where one
can be made the run's cgroup and the shell gate that moves the run into it) side by side with the unsafe opt-in
(a child ``python -I -S`` with only the rlimits and the audit hook), interleaved, 3 rounds of 10 runs each; the
first run of a fresh process, which also probes the sandbox once; making and removing one run's cgroup alone.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import warnings

ROUNDS, RUNS = 3, 10
FIRST = ("import time; from puyu_lab.agent.sandbox import run_python\n"
         "t = time.perf_counter(); run_python('print(1)'); a = time.perf_counter() - t\n"
         "t = time.perf_counter(); run_python('print(1)'); print(a, time.perf_counter() - t)")


def main() -> str:
    from puyu_lab.agent.cgroup import RunGroup, find_cgroup_base
    from puyu_lab.agent.sandbox import Limits, cgroup_limits, isolation_status, run_python

    ok, how = isolation_status()
    if not ok:
        return f"sandbox unavailable here, nothing to time: {how}"
    unsafe = Limits(unsafe_unsandboxed=True)
    kinds = {"print(1) through the sandbox": Limits(), "print(1), unsafe opt-in (no isolation)": unsafe}
    medians: dict[str, list[float]] = {k: [] for k in kinds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the unsafe opt-in's warning, once per run
        for _ in range(ROUNDS):
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(RUNS):
                for k, lim in kinds.items():
                    t = time.perf_counter()
                    r = run_python("print(1)", lim)
                    times[k].append(time.perf_counter() - t)
                    assert r.ok and r.output.strip() == "1", r
            for k in kinds:
                medians[k].append(statistics.median(times[k]))
    first = [subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, check=True).stdout.split()
             for _ in range(ROUNDS)]
    medians["first run of a fresh process (probes once)"] = [float(a) for a, _ in first]
    medians["its second run"] = [float(b) for _, b in first]
    limits = cgroup_limits(Limits())
    base, why = find_cgroup_base(*limits)
    if base:
        made = []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            for _ in range(RUNS):
                RunGroup(base, *limits).close()
            made.append((time.perf_counter() - t) / RUNS)
        medians[f"a run's cgroup made and removed ({base.describe().split(',')[0]})"] = made
    out = [f"{'what':56} {'ms':>7}  (round medians: min–max)"]
    for k, v in medians.items():
        out.append(f"{k:56} {statistics.median(v) * 1e3:7.1f}  ({min(v) * 1e3:.1f}–{max(v) * 1e3:.1f})")
    if not base:
        out.append(f"no cgroup step here: {why}")
    out.append(f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; isolation: {how})")
    return "\n".join(out)
