"""The small event mechanism engines use to report progress, and cooperative stopping.

Engines take ``on_event`` (any callable receiving an :class:`Event`) and, for long work, a
:class:`StopFlag`. They know nothing about widgets: a panel subscribes by passing its own
callback; a script gets tqdm bars from :func:`progress`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


# Event kinds every engine uses (an engine may add its own: "sample", "step", "task", …).
START = "start"  # an engine's work begins
PROGRESS = "progress"  # done / total of a step
WARNING = "warning"  # something the learner should read; the work goes on
DONE = "done"  # the work finished
# the Trainer bridge's (pretrain, fine-tune): a training run's begin / log / eval / checkpoint / end
BEGIN, LOG, EVAL, CHECKPOINT, END, SAMPLE = "begin", "log", "eval", "checkpoint", "end", "sample"
BUDGET = "budget"  # a time-budgeted run's plan: the steps its budget buys on this machine (puyu_lab.budget)


@dataclass(frozen=True)
class Event:
    kind: str  # one of the kinds above, or an engine's own
    stage: str  # which engine sent it ("data", "pretrain", ...)
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


Listener = Callable[[Event], None]


class Emitter:
    """Fan-out of events to listeners. ``emit`` never lets a listener's error stop the engine."""

    def __init__(self, stage: str, *listeners: Listener | None):
        self.stage = stage
        self._listeners: list[Listener] = [fn for fn in listeners if fn is not None]
        self.errors: list[BaseException] = []

    def subscribe(self, fn: Listener) -> Callable[[], None]:
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def emit(self, kind: str, **data: Any) -> Event:
        event = Event(kind, self.stage, data)
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception as exc:  # a broken view must not kill a training run
                self.errors.append(exc)
        return event


class Stopped(Exception):
    """Raised inside an engine when its :class:`StopFlag` was set."""


class StopFlag:
    """A thread-safe 'please stop' flag: the UI sets it, the engine checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:  # a method, as threading.Event's: either can be passed as a stop flag
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped("stopped on request")


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    emitter: Emitter | None = None,
    stop: StopFlag | None = None,
    every: int = 1,
    show: bool = True,
) -> Iterator[T]:
    """Iterate with a tqdm bar (scripts) and ``progress`` events (panels); honours ``stop``."""
    from tqdm.auto import tqdm

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = tqdm(total=total, desc=desc, disable=not show, leave=False)
    try:
        for i, item in enumerate(items, 1):
            if stop is not None:
                stop.check()
            yield item
            bar.update(1)
            if emitter is not None and (i % every == 0 or i == total):
                emitter.emit("progress", desc=desc, done=i, total=total)
    finally:
        bar.close()


def trainer_callback(emitter: Emitter, *, tokens_per_step: int, stop: StopFlag | None = None,
                     sample_fn: Callable | None = None, sample_every: int = 0, tokens_per_byte: float | None = None):
    """A ``transformers.TrainerCallback`` that turns the Trainer's hooks into events and honours ``stop``
    (at the end of the step: it saves a checkpoint and stops training).

    ``tokens_per_step`` gives tokens/s; a trainer's own metrics with a ``/`` in their name (trl's
    ``rewards/margins`` …) travel in the events' ``extra``; every ``sample_every`` steps it emits ``sample`` with
    ``sample_fn(model)`` (a dict prompt → text); with ``tokens_per_byte`` the eval events carry bits
    per byte."""
    import math
    from pathlib import Path

    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        def __init__(self):
            self.t_start = None
            self.step_start = 0
            self.stopped = False
            self.sample_every = sample_every
            self.sample_steps: set[int] | None = None  # a time budget's planned steps instead (puyu_lab.budget)

        def on_train_begin(self, args, state, control, **kw):
            self.t_start = time.perf_counter()
            self.step_start = state.global_step
            emitter.emit(BEGIN, max_steps=state.max_steps, step=state.global_step,
                         history=list(state.log_history), tokens_per_step=tokens_per_step)

        def on_step_end(self, args, state, control, **kw):
            if stop is not None and stop.is_set():
                control.should_save = True
                control.should_training_stop = True
                self.stopped = True
            if self.sample_steps is not None:
                due = state.global_step in self.sample_steps
            else:
                due = bool(self.sample_every) and state.global_step % self.sample_every == 0
            if sample_fn is not None and due:
                emitter.emit(SAMPLE, step=state.global_step, samples=sample_fn(kw.get("model")))

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            elapsed = time.perf_counter() - (self.t_start or time.perf_counter())
            done = state.global_step - self.step_start
            tps = done * tokens_per_step / elapsed if elapsed > 0 and done else 0.0
            eta = (state.max_steps - state.global_step) * elapsed / done if done else None
            # a trainer's own metrics beside the loss (trl's rewards/chosen, rewards/margins …), by their names
            extra = {k.removeprefix("eval_"): v for k, v in logs.items() if "/" in k and isinstance(v, (int, float))}
            if "eval_loss" in logs:
                bpb = logs["eval_loss"] * tokens_per_byte / math.log(2) if tokens_per_byte else None
                emitter.emit(EVAL, step=state.global_step, eval_loss=logs["eval_loss"], bits_per_byte=bpb, extra=extra)
            elif "loss" in logs:
                emitter.emit(LOG, step=state.global_step, max_steps=state.max_steps, loss=logs["loss"],
                             learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                             tokens_per_s=tps, eta_s=eta, elapsed_s=elapsed, extra=extra)

        def on_save(self, args, state, control, **kw):
            emitter.emit(CHECKPOINT, step=state.global_step,
                         path=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))

        def on_train_end(self, args, state, control, **kw):
            emitter.emit(END, step=state.global_step, max_steps=state.max_steps, stopped=self.stopped)

    return EventCallback()


def read_log_history(source) -> list[dict]:
    """A Trainer log history: a list, or the path of a ``curve.json`` (a list) or ``trainer_state.json``
    (its ``log_history``)."""
    import json
    from pathlib import Path

    if isinstance(source, (str, Path)):
        data = json.loads(Path(source).read_text(encoding="utf-8"))
        return list(data["log_history"] if isinstance(data, dict) else data)
    return list(source)


def train_rate(history: list[dict], tokens_per_step: float, *, from_step: int = 0) -> float:
    """Training tokens per second over a Trainer run, from the Trainer's own timing (0 when unknown). A resumed
    run's history holds the earlier sessions' steps too, its runtime only this session's: ``from_step`` is the
    step it resumed from."""
    end = next((h for h in reversed(history) if "train_runtime" in h), None)
    if not end or not end.get("train_runtime"):
        return 0.0
    steps = max(h.get("step", 0) for h in history) - from_step
    return max(steps, 0) * tokens_per_step / end["train_runtime"]


def history_summary(history: list[dict]) -> dict:
    """The last step, and the last train loss, grad norm and eval loss of a log history."""
    steps = [h.get("step", 0) for h in history]
    last_train = next((h for h in reversed(history) if "loss" in h), {})
    last_eval = next((h for h in reversed(history) if "eval_loss" in h), {})
    return {"step": max(steps) if steps else 0, "loss": last_train.get("loss"),
            "grad_norm": last_train.get("grad_norm"), "eval_loss": last_eval.get("eval_loss")}
