"""The pretrain stage in one call: the tokenizer, then the model (``tokenizer/spm``, ``model/base``)."""
from __future__ import annotations

from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Workspace
from .config import PretrainConfig


def run(ws: Workspace, cfg: PretrainConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None):
    """Train ``tokenizer/spm`` at the preset's vocabulary size, then ``model/base`` → ``PretrainResult``."""
    from .train import pretrain, train_tokenizer

    ws = ws.for_stage("pretrain")  # reads only what stages.py declares for the stage
    cfg = cfg or PretrainConfig.for_profile()
    train_tokenizer(ws, cfg.preset.vocab_size, on_event=on_event)
    if stop is not None:
        stop.check()
    return pretrain(ws, cfg, on_event=on_event, stop=stop)
