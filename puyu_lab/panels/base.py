"""Groundwork every panel shares: throttled updates, the look, bilingual headings.

A panel is a view: it subscribes to an engine's events and draws. It keeps no state that the
engine does not also have; heavy work runs in a worker thread (:func:`run_in_thread`) so a
Stop button's click reaches the kernel while the work runs.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from ..i18n import both, t

MAX_HZ = 5.0

CSS = """
<style>
.puyu { font-family: -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif; font-size: 13px; }
.puyu h4 { margin: 6px 0 4px; color: #1f3a93; }
.puyu table.puyu-table { border-collapse: collapse; margin: 4px 0; }
.puyu table.puyu-table th { background: #eef2fb; text-align: left; padding: 3px 8px; border-bottom: 1px solid #c9d3ea; }
.puyu table.puyu-table td { padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
.puyu .ok { color: #1e8e3e; font-weight: 600; } .puyu .bad { color: #c5221f; font-weight: 600; }
.puyu .warn { color: #b06000; font-weight: 600; } .puyu .dim { color: #777; }
</style>
"""

STATUS_CLASS = {"present": "ok", "ok": "ok", "missing": "bad", "fail": "bad", "stale": "warn", "warn": "warn"}

# one palette for every chart, so the same stage/level has the same colour everywhere
PALETTE = ["#1f3a93", "#e8710a", "#1e8e3e", "#c5221f", "#9334e6", "#12b5cb", "#f9ab00", "#5f6368"]


class Throttle:
    """Call ``fn`` at most ``hz`` times a second; the last call in a burst is never lost.

    ``__call__`` records the latest arguments; a call that comes too soon is deferred to a
    timer that fires with the newest arguments. :meth:`flush` draws the pending state now.
    """

    def __init__(self, fn: Callable[..., Any], hz: float = MAX_HZ):
        self.fn = fn
        self.interval = 1.0 / hz
        self._last = 0.0
        self._pending: tuple[tuple, dict] | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.calls = 0  # how many times fn really ran (tests and benchmarks read it)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._pending = (args, kwargs)
            wait = self._last + self.interval - time.monotonic()
            if wait <= 0:
                self._fire_locked()
            elif self._timer is None:
                self._schedule_locked(wait)

    def _schedule_locked(self, wait: float) -> None:
        self._timer = threading.Timer(wait, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():
                self._timer = None
            if self._pending is None:
                return
            # a direct call may have drawn while this timer waited for the lock: keep the rate
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._schedule_locked(wait)
                return
            self._fire_locked()

    def _fire_locked(self) -> None:
        args, kwargs = self._pending  # type: ignore[misc]
        self._pending = None
        self._last = time.monotonic()
        self.calls += 1
        self.fn(*args, **kwargs)

    def flush(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pending is not None:
                self._fire_locked()


def run_in_thread(fn: Callable[[], Any], *, on_done: Callable[[Any, BaseException | None], None] | None = None,
                  name: str = "puyu-worker") -> threading.Thread:
    """Run ``fn`` in a daemon thread; ``on_done(result, error)`` is called when it ends.

    The thread keeps what ``fn`` returned and what it raised as ``thread.result`` / ``thread.error``;
    without ``on_done`` an error is also re-raised in the thread, so ``threading.excepthook`` prints
    it instead of it vanishing."""

    def target() -> None:
        result, error = None, None
        try:
            result = fn()
        except BaseException as exc:  # reported to the panel, not lost in a thread
            error = exc
        th.result, th.error = result, error
        if on_done is not None:
            on_done(result, error)
        elif error is not None:
            raise error

    th = threading.Thread(target=target, name=name, daemon=True)
    th.result, th.error = None, None  # type: ignore[attr-defined]
    th.start()
    return th


def join_polling(th: threading.Thread | None, timeout: float | None = None) -> None:
    """Wait for a worker thread, handling widget events through jupyter-ui-poll where it can
    (outside a kernel — scripts, tests — a plain join).

    Seen with ipykernel 7.4 and jupyter-ui-poll 1.1.0: the kernel has no ``do_one_iteration`` any
    more, the poll silently does nothing, and a Stop click waits until the cell ends. There an
    awaiting cell works instead (ipykernel 7 dispatches widget messages while a cell awaits): see
    :meth:`WorkerWait.wait_async`."""
    if th is None:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        from jupyter_ui_poll import ui_events

        with ui_events() as poll:
            while th.is_alive() and (deadline is None or time.monotonic() < deadline):
                poll(20)
                time.sleep(0.05)
    except Exception:  # not in a kernel: a plain join
        th.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


async def await_thread(th: threading.Thread | None, timeout: float | None = None) -> None:
    """``await`` a worker thread from a notebook cell: the kernel's event loop stays free while the
    cell waits, so widget clicks (Stop) are handled meanwhile (ipykernel 7 dispatches comm messages
    during an awaiting cell)."""
    import asyncio

    deadline = None if timeout is None else time.monotonic() + timeout
    while th is not None and th.is_alive() and (deadline is None or time.monotonic() < deadline):
        await asyncio.sleep(0.05)


class WorkerWait:
    """``wait`` / ``wait_async`` for a panel whose run goes in a worker thread (:func:`run_in_thread`).

    The panel keeps ``thread`` (the worker), ``error`` (what the run raised) and ``result`` (what it returned;
    a panel that keeps it under another name overrides :meth:`_outcome`), and has ``flush()`` (draws what its
    throttle still holds)."""

    thread: threading.Thread | None
    error: BaseException | None
    result: Any
    flush: Callable[[], None]

    def _outcome(self) -> Any:
        return self.result

    def _finish(self) -> Any:
        self.flush()
        if self.error is not None:
            raise self.error
        return self._outcome()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends and return its outcome; re-raises the run's exception. In a notebook
        prefer ``await panel.wait_async()``: a blocking wait cannot see the Stop click on ipykernel 7 (see
        :func:`join_polling`)."""
        join_polling(self.thread, timeout)
        return self._finish()

    async def wait_async(self, timeout: float | None = None) -> Any:
        """``await panel.wait_async()`` in a notebook cell: the kernel's event loop stays free while the
        cell waits, so it handles the Stop click meanwhile (ipykernel 7 dispatches widget messages
        during an awaiting cell; a blocking wait cannot see them there). Returns the run's outcome."""
        await await_thread(self.thread, timeout)
        return self._finish()


def error_text(error: BaseException) -> str:
    """How a panel words an exception of its worker: ``TypeName: message``."""
    return f"{type(error).__name__}: {error}"


def error_html(error: BaseException) -> str:
    return f"<span class='puyu bad'>⚠ {html.escape(error_text(error))}</span>"


def esc(x: Any) -> str:
    return html.escape(str(x))


def heading(key: str, level: int = 4) -> str:
    return f"<h{level}>{esc(both(key))}</h{level}>"


def html_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None,
               status_col: str | None = None, labels: dict[str, str] | None = None) -> str:
    """A small styled HTML table; ``status_col`` values get ok/warn/bad colours."""
    rows = list(rows)
    cols = list(columns or (rows[0].keys() if rows else []))
    labels = labels or {}
    head = "".join(f"<th>{esc(labels.get(c, t(c)))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if c == status_col:
                cls = STATUS_CLASS.get(str(v), "")
                cells.append(f'<td class="{cls}">{esc(t(str(v)))}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="puyu-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class HTMLView:
    """A static view rendered as HTML in a notebook (and as text in a terminal)."""

    def __init__(self, body: str, text: str = ""):
        self.body = body
        self.text = text

    def _repr_html_(self) -> str:
        return CSS + f'<div class="puyu">{self.body}</div>'

    def __repr__(self) -> str:
        return self.text or self.body
