"""Deploy stage (LMDeploy): GGUF conversion, the quantization ladder, measurements, serving."""
from __future__ import annotations

__all__ = ["DeployConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "DeployConfig":
        from .config import DeployConfig
        return DeployConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
