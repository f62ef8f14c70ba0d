"""Agent stage (Lagent / AgentLego): tools, protocols, the agent loop, and its traces.

Engines only (no widgets): ``tools`` (registry + JSON schema), ``builtin`` (calculator, sandboxed
Python, BM25 corpus search, dates), ``sandbox``, ``protocols`` (InternLM2 function call, ReAct,
OpenAI native tools), ``constrained`` (tool calls decoded from their schemas), ``agent`` (the loop
and :class:`Trace`; its model comes from :mod:`puyu_lab.models`), ``evaluate`` (held-out arithmetic with vs without tools → ``agent/eval``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# the package imports light; its config and entry point load on first use
_EXPORTS = {"AgentConfig": "config", "run": "entry"}
__all__ = list(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # editors and type checkers see the names (go to definition); at run time they load lazily
    from .config import AgentConfig
    from .entry import run
