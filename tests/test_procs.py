"""The end-of-run check finds a kernel a test left behind, and tells an orphan from a fixture's child."""
from __future__ import annotations

import subprocess
import sys
import time

from . import procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "ipykernel_launcher"]  # looks like a kernel


def test_a_left_kernel_is_found_and_an_orphan_is_told_apart():
    import os

    # a process of the same kind that this run did not start (a build, another session): never the run's business
    outsider = subprocess.Popen(SLEEPER, env={k: v for k, v in os.environ.items() if k != procs.MARK})
    child = subprocess.Popen(SLEEPER)
    crash = subprocess.Popen(SLEEPER[:3] + ["/usr/lib/chromium/chrome_crashpad_handler"])  # Chromium leaves it idle
    # a double fork: the shell exits at once, so its sleeper belongs to no test any more (as a kernel whose server died)
    subprocess.run(["sh", "-c", " ".join(f"'{a}'" for a in SLEEPER) + " >/dev/null 2>&1 &"], check=True)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            left = procs.leftovers()
            if len(left) >= 2:
                break
            time.sleep(0.1)
        pids = {p.pid for p in left}
        assert child.pid in pids and outsider.pid not in pids and crash.pid not in pids, procs.describe(left)
        assert crash.pid in {p.pid for p in procs.leftovers(idle=True)}  # ended at the end, not counted
        stray = procs.orphans(left)
        assert child.pid not in {p.pid for p in stray}  # a test's own child: its test ends it
        assert len(stray) == 1 and "ipykernel_launcher" in " ".join(stray[0].cmdline()), procs.describe(stray)
    finally:
        procs.kill(_mine())  # only this test's sleepers: a session fixture's server may be running beside them
        outsider.kill()
        crash.kill()
        child.wait(5)
        crash.wait(5)
        outsider.wait(5)
    assert not _mine()


def _mine():
    return [p for p in procs.leftovers() if "time.sleep(60)" in procs.describe([p])[0]]
