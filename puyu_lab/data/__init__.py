"""书生·万卷 Data stage: load raw text, compute signals, filter, scrub PII, deduplicate, export."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"DataConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import DataConfig
    from .entry import run
