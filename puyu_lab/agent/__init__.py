"""Agent stage (Lagent / AgentLego): tools, protocols, the agent loop, and its traces.

Engines only (no widgets): ``tools`` (registry + JSON schema), ``builtin`` (calculator, sandboxed
Python, BM25 corpus search, dates), ``sandbox``, ``protocols`` (InternLM2 function call, ReAct,
OpenAI native tools), ``backends`` (transformers, llama.cpp, OpenAI-compatible), ``agent`` (the loop
and :class:`Trace`), ``evaluate`` (held-out arithmetic with vs without tools → ``agent/eval``).
"""
from __future__ import annotations

__all__ = ["AgentConfig", "run"]


def __getattr__(name):  # the package imports light; its config and entry point load on first use
    if name == "AgentConfig":
        from .config import AgentConfig
        return AgentConfig
    if name == "run":
        from .entry import run
        return run
    raise AttributeError(name)
