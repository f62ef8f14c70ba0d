"""书生·万卷 Data stage: load raw text, compute signals, filter, scrub PII, deduplicate, export."""
from __future__ import annotations

__all__ = ["DataConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "DataConfig":
        from .config import DataConfig
        return DataConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
