"""Fine-tune stage (XTuner): SFT data (self-cognition, dialogs, sentiment, tool use, custom files),
full / LoRA / QLoRA training with the InternLM2 chat template, merging, and the XTuner config.

Engines only (no widgets): ``config`` (``SFTConfig``, sized per profile), ``data`` (the SFT mixture
and custom-file checks), ``train`` (the Trainer run, merge, scoring), ``entry`` (``run``: the data,
then training), ``cli`` (``puyu-lab finetune …``). The chat format itself is the model layer's
(:mod:`puyu_lab.models.template`).
"""
from __future__ import annotations

__all__ = ["SFTConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "SFTConfig":
        from .config import SFTConfig
        return SFTConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
