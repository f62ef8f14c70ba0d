"""InternLM-Train stage: a sentencepiece tokenizer and a tiny InternLM2-style model, trained from scratch."""
from __future__ import annotations

__all__ = ["PretrainConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "PretrainConfig":
        from .config import PretrainConfig
        return PretrainConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
