"""Views over the engines: widgets and HTML that subscribe to engine events and draw."""
from .base import HTMLView, Throttle, html_table, run_in_thread  # noqa: F401
from .chain_map import chain_map, doctor_view, profiles_view  # noqa: F401

__all__ = ["HTMLView", "Throttle", "html_table", "run_in_thread", "chain_map", "doctor_view", "profiles_view",
           "DataCleaningPanel", "TrainingPanel", "ChatPanel", "inspect_chat", "AgentTracePanel"]


def __getattr__(name):  # widgets load only when a panel is asked for
    if name == "DataCleaningPanel":
        from .data_panel import DataCleaningPanel

        return DataCleaningPanel
    if name == "TrainingPanel":
        from .training import TrainingPanel

        return TrainingPanel
    if name == "ChatPanel":
        from .chat import ChatPanel

        return ChatPanel
    if name == "inspect_chat":
        from .inspector import inspect_chat

        return inspect_chat
    if name == "AgentTracePanel":
        from .agent_trace import AgentTracePanel

        return AgentTracePanel
    raise AttributeError(name)
