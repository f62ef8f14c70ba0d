"""The agent stage in one call: held-out arithmetic with the calculator vs directly → ``agent/eval``
(and the same tasks through the GGUF levels, when the deploy lab has run)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError
from ..events import Event, StopFlag
from ..workspace import Artifact, Workspace, stage_entry
from .config import AgentConfig


@dataclass
class AgentResult:
    result: dict  # arithmetic_eval's metrics, rows and traces (transformers backend)
    artifact: Artifact  # agent/eval
    tasks: list
    levels: dict = field(default_factory=dict)  # GGUF level → its metrics (with the calculator)

    @property
    def metrics(self) -> dict:
        return self.result["metrics"]


@stage_entry("agent")
def run(ws: Workspace, cfg: AgentConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> AgentResult:
    """``heldout_tasks`` sized by ``cfg`` (default: the profile's), ``arithmetic_eval``, ``save_eval``."""
    from ..artifacts import gguf_name, ladder_files
    from ..models import GGUFModel, HFModel
    from .agent import Agent
    from .builtin import default_registry
    from .evaluate import arithmetic_eval, heldout_tasks, save_eval

    cfg = cfg or AgentConfig.for_profile()
    calc = default_registry(ws).subset("calculator")
    limits = dict(protocol=cfg.protocol, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens)
    tasks = heldout_tasks(ws, cfg.n_tasks, seed=cfg.seed)
    backend = HFModel.load(cfg.model, ws=ws)
    try:
        result = arithmetic_eval(Agent(backend, calc, **limits), tasks, direct=cfg.direct, on_event=on_event, stop=stop)
    finally:
        backend.close()
    art = save_eval(ws, result, model=cfg.model, backend=backend.name, protocol=cfg.protocol)
    levels = {}
    if cfg.levels and ws.exists(gguf_name(cfg.model)):
        files = ladder_files(ws, cfg.model)
        for lv in cfg.levels:
            if lv not in files:
                raise InputError(f"{gguf_name(cfg.model)} has no level {lv}; it has {', '.join(files)}")
            gguf = GGUFModel(files[lv])
            try:
                levels[lv] = arithmetic_eval(Agent(gguf, calc, **limits), tasks, direct=False, on_event=on_event,
                                             stop=stop)["metrics"]
            finally:
                gguf.close()
    return AgentResult(result, art, tasks, levels)
