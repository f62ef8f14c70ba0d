"""InternLM-Train stage: a sentencepiece tokenizer and a tiny InternLM2-style model, trained from scratch."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"PretrainConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import PretrainConfig
    from .entry import run
