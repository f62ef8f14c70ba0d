"""Views over the engines: widgets and HTML that subscribe to engine events and draw. One module
per stage (``data``, ``pretrain``, ``finetune``, ``preference``, ``deploy``, ``eval``, ``agent``, ``rag``), plus
``chat`` (any model, from the fine-tune lab on), ``chain`` (the chain map), ``base`` (shared drawing)
and ``snapshot`` (static HTML of live widgets, for reports that open offline: when ``make chain``
sets ``$PUYU_LAB_SNAPSHOTS``, importing the panels installs its after-each-cell hook)."""
import os

from ..lazy import exports
from . import snapshot  # no widget import until used
from .base import HTMLView, Throttle, html_table, run_in_thread  # noqa: F401
from .chain import chain_map, doctor_view, profiles_view  # noqa: F401

# every panel, by the module that holds it (widgets load only when a panel is asked for)
PANELS = {
    "DataCleaningPanel": "data",
    "TrainingPanel": "pretrain",
    "inspect_chat": "finetune",
    "PreferencePanel": "preference",
    "ChatPanel": "chat",
    "QuantTradeoffPanel": "deploy",
    "MemoryWhatIf": "deploy",
    "EvalPanel": "eval",
    "AgentTracePanel": "agent",
    "RAGPanel": "rag",
}

__all__ = ["HTMLView", "Throttle", "html_table", "run_in_thread", "chain_map", "doctor_view", "profiles_view",
           *PANELS]

__getattr__ = exports(__name__, PANELS)

if os.environ.get(snapshot.ENV):
    snapshot.install(os.environ[snapshot.ENV])
