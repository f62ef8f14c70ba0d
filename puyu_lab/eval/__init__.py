"""Evaluation stage (OpenCompass): perplexity, multiple-choice and generation tasks across models."""
from __future__ import annotations

__all__ = ["EvalConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "EvalConfig":
        from .config import EvalConfig
        return EvalConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
