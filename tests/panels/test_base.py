"""What every panel shares (puyu_lab/panels/base.py): the throttle that caps redraws, and the one wait for a
worker thread."""
from ..asyncutil import run_coroutine
import time

import pytest

from puyu_lab.panels.base import Throttle


def test_throttle_caps_rate_and_keeps_last():
    calls = []
    th = Throttle(calls.append, hz=5)
    t0 = time.monotonic()
    for i in range(200):
        th(i)
        time.sleep(0.005)  # ~1 s of updates at 200 Hz
    elapsed = time.monotonic() - t0
    th.flush()
    assert calls[-1] == 199, "the final state is always drawn"
    assert len(calls) <= 5 * elapsed + 2, f"{len(calls)} draws in {elapsed:.2f}s"


def test_panels_share_one_wait():
    """The panels with a worker thread wait for it through one implementation (panels.base.WorkerWait): draw what
    is pending, re-raise what the run raised, return what it returned — blocking or awaited."""
    import asyncio

    from puyu_lab.panels.agent import AgentTracePanel
    from puyu_lab.panels.base import WorkerWait, run_in_thread
    from puyu_lab.panels.induction import LessonPanel
    from puyu_lab.panels.pretrain import TrainingPanel

    for panel in (AgentTracePanel, LessonPanel, TrainingPanel):
        assert (panel.wait, panel.wait_async) == (WorkerWait.wait, WorkerWait.wait_async), panel.__name__

    class Panel(WorkerWait):
        def __init__(self, fn):
            self.drawn, self.result, self.error = 0, None, None
            self.thread = run_in_thread(fn, on_done=self.done)

        def done(self, result, error):
            self.result, self.error = result, error

        def flush(self):
            self.drawn += 1

    ok = Panel(lambda: 42)
    assert ok.wait(timeout=5) == 42 and ok.drawn == 1
    assert run_coroutine(ok.wait_async(timeout=5)) == 42 and ok.drawn == 2
    bad = Panel(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_coroutine(bad.wait_async(timeout=5))
    assert bad.drawn == 1  # what was pending is drawn before the error is raised
