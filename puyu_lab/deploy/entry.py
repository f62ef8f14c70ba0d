"""The deploy stage in one call: the GGUF ladder, then its measurements (``gguf/<model>``, ``quant/<model>``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..events import Event, StopFlag
from ..workspace import Artifact, Workspace
from .config import DeployConfig


@dataclass
class DeployResult:
    gguf: Artifact  # gguf/<model>: the ladder of files
    artifact: Artifact  # quant/<model>: size, perplexity, KL, top-1 and speed per level


def run(ws: Workspace, cfg: DeployConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> DeployResult:
    """Convert and quantize ``cfg.model`` (default config: the profile's), then measure the ladder."""
    from .pipeline import build_ladder, measure

    ws = ws.for_stage("deploy")  # reads only what stages.py declares for the stage
    cfg = cfg or DeployConfig.for_profile()
    gguf = build_ladder(ws, cfg.model, list(cfg.levels), imatrix=cfg.imatrix, skip_tokens=cfg.n_tokens, n_ctx=cfg.n_ctx,
                       on_event=on_event)
    if stop is not None:
        stop.check()
    quant = measure(ws, cfg.model, n_tokens=cfg.n_tokens, n_ctx=cfg.n_ctx, decode_tokens=cfg.decode_tokens,
                    transformers=cfg.transformers, on_event=on_event)
    return DeployResult(gguf, quant)
