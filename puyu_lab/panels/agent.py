"""AgentTracePanel: the live timeline of an agent run, as a custom anywidget.

Its JavaScript and CSS are local files (``static/agent_trace.js``/``.css``), nothing from a CDN.
The widget's synced state is the trace itself — ``steps``, ``turns`` (exact prompt, raw output,
parse result, diagnosis), ``status`` — so a recorded trace and a live run draw the same way. Events
from :meth:`puyu_lab.agent.Agent.run` are batched and sent at most 5 times a second.
"""
from __future__ import annotations

import threading
from pathlib import Path

import anywidget
import traitlets

from ..events import Event, StopFlag
from ..i18n import both, get_language, t
from .base import Throttle, WorkerWait, error_text, run_in_thread

STATIC = Path(__file__).parent / "static"
LABEL_KEYS = ("step_thought", "step_call", "step_observation", "step_final", "step_error", "prompt_sent",
              "raw_output", "parse_result", "why_no_tool", "turn", "question", "stop")
STATUSES = ("running", "answered", "max_turns", "stopped", "error")  # a Trace's status: the badge's text


def labels() -> dict:
    """What the panel's JavaScript writes, in the course language: headings Chinese and English together (``both``),
    the status badge and the units in the current language (``t``), and ``lang``, which says whether a turn's
    ``diagnosis_zh`` and a step's ``text_zh`` (the Chinese of this package's own words) are shown."""
    return {"title": both("agent_trace"), **{k: both(k) for k in LABEL_KEYS},
            **{f"status_{s}": t(f"status_{s}") for s in STATUSES},
            "tokens": t("tokens"), "tok": t("tok"), "model_read": t("model_read"), "lang": get_language()}


class AgentTracePanel(WorkerWait, anywidget.AnyWidget):
    _esm = STATIC / "agent_trace.js"
    _css = STATIC / "agent_trace.css"

    steps = traitlets.List(traitlets.Dict()).tag(sync=True)
    turns = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    question = traitlets.Unicode("").tag(sync=True)
    backend = traitlets.Unicode("").tag(sync=True)
    labels = traitlets.Dict().tag(sync=True)
    stop_requested = traitlets.Bool(False).tag(sync=True)
    error_text = traitlets.Unicode("").tag(sync=True)  # the worker's exception, shown as an error line

    def __init__(self, trace=None, **kw):
        super().__init__(**kw)
        self.labels = labels()
        self._lock = threading.Lock()
        self._steps: list[dict] = []
        self._turns: list[dict] = []
        self._meta: dict = {}
        self._push = Throttle(self._flush)
        self.stop_flag = StopFlag()
        self.thread: threading.Thread | None = None
        self.trace = None  # the finished run's Trace
        self.error: BaseException | None = None  # what the worker raised, kept
        self.observe(lambda ch: ch["new"] and self.stop_flag.set(), names="stop_requested")
        if trace is not None:
            self.show_trace(trace)

    # ---- engine events --------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        with self._lock:
            if event.kind == "start":
                self._steps, self._turns = [], []
                self._meta = {"question": event["question"], "backend": event["backend"], "status": "running"}
            elif event.kind == "turn":
                self._turns.append(event["turn"])
            elif event.kind == "step":
                self._steps.append(event["step"])
            elif event.kind == "done":
                self._meta["status"] = event["status"]
        self._push()
        if event.kind == "done":
            self._push.flush()

    def _flush(self) -> None:
        with self._lock:
            steps, turns, meta = list(self._steps), list(self._turns), dict(self._meta)
        with self.hold_sync():
            self.question = meta.get("question", "")
            self.backend = meta.get("backend", "")
            self.turns = turns
            self.steps = steps
            self.status = meta.get("status", "")

    # ---- recorded traces and runs ---------------------------------------------------------------
    def show_trace(self, trace) -> "AgentTracePanel":
        """Draw a finished trace (a :class:`~puyu_lab.agent.Trace`, its dict, or a saved JSON file)."""
        from ..agent.agent import Trace

        if isinstance(trace, (str, Path)):
            trace = Trace.load(trace)
        d = trace.to_dict() if isinstance(trace, Trace) else dict(trace)
        with self._lock:
            self._steps, self._turns = list(d["steps"]), list(d["turns"])
            self._meta = {"question": d["question"], "backend": d.get("backend", ""), "status": d["status"]}
        self._flush()
        return self

    def run(self, agent, question: str, *, wait: bool = False):
        """Run ``agent`` on ``question`` in a worker thread: the trace fills step by step and the
        Stop button works meanwhile. Returns the thread; :meth:`wait` (or ``wait=True``) gives the
        :class:`~puyu_lab.agent.Trace`. An exception of the run is shown in the panel and kept in
        :attr:`error`."""
        if self.thread is not None and self.thread.is_alive():
            from ..errors import UsageError

            raise UsageError("this panel is still running an agent: wait() for it or press Stop first",
                             zh="这个面板还在运行智能体：先 wait() 等它结束，或者先按“停止”")
        self.stop_flag.clear()
        self.stop_requested = False
        self.trace, self.error, self.error_text = None, None, ""
        with self._lock:  # drawn as running before the worker's first event
            self._steps, self._turns = [], []
            self._meta = {"question": question, "backend": getattr(agent.backend, "name", ""), "status": "running"}
        self._flush()

        def done(trace, error) -> None:
            self.trace, self.error = trace, error
            if error is not None:
                with self._lock:
                    self._meta["status"] = "error"
                self._push.flush()
                self._flush()
                self.error_text = error_text(error)

        self.thread = run_in_thread(lambda: agent.run(question, on_event=self.on_event, stop=self.stop_flag),
                                    on_done=done, name="puyu-agent")
        if wait:
            return self.wait()
        return self.thread

    def flush(self) -> None:
        """Send what the throttle still holds now."""
        self._push.flush()

    def _outcome(self):
        return self.trace  # what wait / wait_async return

    def request_stop(self) -> None:
        """What the Stop button does: the run ends at the model's next token."""
        self.stop_requested = True
        self.stop_flag.set()
