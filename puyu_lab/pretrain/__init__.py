"""InternLM-Train stage: a sentencepiece tokenizer and a tiny InternLM2-style model, trained from scratch."""
from __future__ import annotations

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"PretrainConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
