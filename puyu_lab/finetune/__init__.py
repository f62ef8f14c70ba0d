"""Fine-tune stage (XTuner): SFT data (self-cognition, dialogs, sentiment, tool use, custom files),
full / LoRA / QLoRA training with the InternLM2 chat template, merging, and the XTuner config.

Engines only (no widgets): ``config`` (``SFTConfig``, sized per profile), ``data`` (the SFT mixture
and custom-file checks), ``train`` (the Trainer run, merge, scoring), ``entry`` (``run``: the data,
then training), ``cli`` (``puyu-lab finetune …``). The chat format itself is the model layer's
(:mod:`puyu_lab.models.template`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"SFTConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import SFTConfig
    from .entry import run
