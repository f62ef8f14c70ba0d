"""Processes a test left behind: a kernel, a JupyterLab, a llama.cpp server or a browser still running after
the test that started it. They compete with the tests after them for the machine's two cores (a kernel left
by a browser test took ~16 % of a core through a whole chain on the EPYC), so the run fails when one is left.

Only processes that carry this test run's mark in their environment (every process the run starts inherits it,
an orphaned kernel too) and match these kinds are counted: a machine's own services, a build beside the run or a
second session are never the test run's business (an earlier version that went by start time alone killed a
``cmake --build … llama-server`` running beside the tests)."""
from __future__ import annotations

import os
import time

import psutil

# what the tests start: kernels, JupyterLab / Jupyter servers, llama.cpp's servers and their launcher, browsers
KINDS = ("ipykernel", "jupyter-lab", "jupyter_lab", "jupyterlab", "jupyter-server", "jupyter_server",
         "llama-server", "llama_cpp.server", "puyu_lab/deploy/launch.py", "puyu_lab.deploy.launch",
         "chromium", "chrome", "playwright", "llama-perplexity", "llama-bench", "llama-imatrix")


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


MARK = "PUYU_LAB_TEST_RUN"  # set once per test run (conftest); inherited by everything the run starts


def mark() -> str:
    """This run's mark, set in the environment the first time (conftest does it when pytest starts)."""
    return os.environ.setdefault(MARK, f"{os.getpid()}-{time.time():.6f}")


# Chromium's crash reporter: Chromium double-forks it and leaves it behind by design (idle, no CPU); ended at the
# end of the run, never counted as a test's leak
IDLE = ("chrome_crashpad_handler",)


def leftovers(*, ignore: set[int] = frozenset(), idle: bool = False) -> list[psutil.Process]:
    """Live processes of :data:`KINDS` that carry this run's mark, except this one and ``ignore`` (and, unless
    ``idle``, the :data:`IDLE` ones)."""
    want = mark()
    skip = {os.getpid(), *ignore}
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if p.pid in skip or p.info["status"] == psutil.STATUS_ZOMBIE or p.environ().get(MARK) != want:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        line = _cmdline(p)
        if any(k in line for k in KINDS) and (idle or not any(k in line for k in IDLE)):
            found.append(p)
    return found


def describe(procs: list[psutil.Process]) -> list[str]:
    return [f"pid {p.pid}: {_cmdline(p)[:160]}" for p in procs]


def orphans(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those no longer below this process: nothing in the test run can stop them (a fixture's server is its child)."""
    mine = {c.pid for c in psutil.Process().children(recursive=True)}
    return [p for p in procs if p.pid not in mine]


def kill(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=timeout)

