"""The RL stage in one call: GRPO on the assistant with the checked (or the naive) reward → ``model/rl``."""
from __future__ import annotations

from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Workspace
from .config import RLConfig


def run(ws: Workspace, cfg: RLConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None):
    """GRPO with ``cfg`` (default: the profile's) → ``RLResult`` (``model/rl`` or ``model/rl-naive`` written)."""
    from .train import train

    ws = ws.for_stage("rl")  # reads only what stages.py declares for the stage
    cfg = cfg or RLConfig.for_profile()
    if stop is not None:
        stop.check()
    return train(ws, cfg, on_event=on_event, stop=stop)
