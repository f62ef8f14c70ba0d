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


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "start", "progress", "metric", "log", "done"
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

    @property
    def is_set(self) -> bool:
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
