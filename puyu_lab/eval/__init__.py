"""Evaluation stage (OpenCompass): perplexity, multiple-choice and generation tasks across models."""
from __future__ import annotations

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"EvalConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
