"""The preference stage in one call: the pairs (``pref/data``), then DPO or ORPO (``model/dpo`` / ``model/orpo``)."""
from __future__ import annotations

from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Workspace
from .config import PrefConfig


def run(ws: Workspace, cfg: PrefConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None):
    """Build ``pref/data`` from ``cfg`` (default: the profile's), then preference-tune → ``PrefResult``."""
    from .mixture import prepare_pairs
    from .train import train

    ws = ws.for_stage("preference")  # reads only what stages.py declares for the stage
    cfg = cfg or PrefConfig.for_profile()
    prepare_pairs(ws, cfg)
    if stop is not None:
        stop.check()
    return train(ws, cfg, on_event=on_event, stop=stop)
