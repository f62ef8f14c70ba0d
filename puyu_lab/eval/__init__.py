"""Evaluation stage (OpenCompass): perplexity, multiple-choice and generation tasks across models."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"EvalConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import EvalConfig
    from .entry import run
