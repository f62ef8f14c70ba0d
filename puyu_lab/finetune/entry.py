"""The fine-tune stage in one call: the SFT data, then training and merging (``sft/data``, ``model/sft``)."""
from __future__ import annotations

from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Workspace
from .config import SFTConfig


def run(ws: Workspace, cfg: SFTConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None):
    """Build ``sft/data`` from ``cfg`` (default: the profile's), then fine-tune → ``SFTResult``."""
    from .train import finetune, prepare_data

    ws = ws.for_stage("finetune")  # reads only what stages.py declares for the stage
    cfg = cfg or SFTConfig.for_profile()
    prepare_data(ws, cfg)
    if stop is not None:
        stop.check()
    return finetune(ws, cfg, on_event=on_event, stop=stop)
