"""书生·万卷 Data stage: load raw text, compute signals, filter, scrub PII, deduplicate, export."""
from __future__ import annotations

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"DataConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
