"""The agent stage in one call: the held-out tasks (arithmetic, dates, questions that need no tool)
through the agent loop with the tools, and the tool tasks answered directly → ``agent/eval``;
the same tool tasks under constrained decoding, and through the GGUF levels when the deploy lab
has run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError
from ..events import Event, StopFlag
from ..workspace import Artifact, Workspace
from .config import AgentConfig


@dataclass
class AgentResult:
    result: dict  # suite_eval's metrics, rows and traces (transformers backend, free-form decoding)
    artifact: Artifact  # agent/eval
    tasks: dict  # kind → held-out tasks
    constrained: dict = field(default_factory=dict)  # kind → metrics under the schema grammar
    levels: dict = field(default_factory=dict)  # GGUF level → kind → metrics (with the tools)
    copy: dict = field(default_factory=dict)  # models.probes.copy_probe of the model: can it copy from its context?

    @property
    def metrics(self) -> dict:
        return self.result["metrics"]

    def table(self) -> list[dict]:
        """One row per task kind: success with the tools (free-form), directly, with the calls
        constrained by the schemas, and per GGUF level; and a last row with the calls' validity."""
        rows = []
        for kind, m in self.result["by_kind"].items():
            c = self.constrained.get("by_kind", {}).get(kind)
            row = {"task": kind, "tasks": m["tasks"], "with tools": m["with_tools"], "directly": m.get("direct"),
                   "constrained": c["with_tools"] if c else None}
            row.update({lv: by[kind]["with_tools"] if kind in by else None for lv, by in self.levels.items()})
            rows.append(row)
        rows.append({"task": "valid calls", "tasks": self.metrics["calls_attempted"],
                     "with tools": self.metrics["call_valid"], "directly": None,
                     "constrained": self.constrained.get("call_valid"),
                     **{lv: by.get("call_valid") for lv, by in self.levels.items()}})
        return rows


def heldout_suite(ws: Workspace, cfg: AgentConfig) -> dict:
    """kind → the held-out tasks ``cfg`` asks for."""
    from .evaluate import heldout_tasks

    if cfg.tasks == "course":
        from ..models import course

        return {k: course.heldout_tasks(k, cfg.n_tasks, seed=cfg.seed) for k in cfg.kinds}
    return {k: heldout_tasks(ws, cfg.n_tasks, seed=cfg.seed, kind=k) for k in cfg.kinds}


def run(ws: Workspace, cfg: AgentConfig | None = None, *, on_event: Callable[[Event], None] | None = None,
        stop: StopFlag | None = None) -> AgentResult:
    """``suite_eval`` on the held-out tasks sized by ``cfg`` (default: the profile's), ``save_eval``."""
    from ..artifacts import gguf_name, ladder_files
    from ..models import GGUFModel, HFModel
    from .agent import Agent
    from .builtin import default_registry
    from .evaluate import AGENT_TOOLS, save_eval, suite_eval

    ws = ws.for_stage("agent")  # reads only what stages.py declares for the stage
    cfg = cfg or AgentConfig.for_profile()
    tools = default_registry(ws).subset(*AGENT_TOOLS)
    limits = dict(protocol=cfg.protocol, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens)
    tasks = heldout_suite(ws, cfg)
    tool_tasks = {k: v for k, v in tasks.items() if k != "notool"}
    backend = HFModel.load(cfg.model, ws=ws)
    constrained = {}
    try:
        from ..models.probes import copy_probe

        copy = copy_probe(backend)  # a call copies the question's numbers: can this model copy at all?
        result = suite_eval(Agent(backend, tools, **limits), tasks, direct=cfg.direct, on_event=on_event, stop=stop)
        if cfg.constrained and cfg.protocol == "internlm2":
            c = suite_eval(Agent(backend, tools, constrained=True, tool_choice=cfg.tool_choice, **limits), tool_tasks,
                           direct=False, on_event=on_event, stop=stop)
            constrained = {"by_kind": c["by_kind"], "call_valid": c["metrics"]["call_valid"], "rows": c["rows"],
                           "traces": c["traces"]}
    finally:
        backend.close()
    levels = {}
    if cfg.levels and ws.exists(gguf_name(cfg.model)):
        files = ladder_files(ws, cfg.model)
        for lv in cfg.levels:
            if lv not in files:
                raise InputError(f"{gguf_name(cfg.model)} has no level {lv}; it has {', '.join(files)}",
                                 zh=f"{gguf_name(cfg.model)} 中没有 {lv} 这一量化档位；现有：{', '.join(files)}")
            gguf = GGUFModel(files[lv])
            try:
                g = suite_eval(Agent(gguf, tools, **limits), tool_tasks, direct=False, on_event=on_event, stop=stop)
                levels[lv] = {**g["by_kind"], "call_valid": g["metrics"]["call_valid"]}
            finally:
                gguf.close()
    extra = {f"constrained_{k}_with_tools": round(m["with_tools"], 4) for k, m in constrained.get("by_kind", {}).items()}
    if constrained:
        extra["constrained_call_valid"] = constrained["call_valid"]
    extra.update(copy_first_nll=copy["first_nll"], copy_second_nll=copy["second_nll"], copy_gain=copy["gain"])
    for lv, by in levels.items():
        extra.update({f"{lv}_{k}_with_tools": round(m["with_tools"], 4) for k, m in by.items() if k != "call_valid"})
    art = save_eval(ws, result, model=cfg.model, backend=backend.name, protocol=cfg.protocol, name=cfg.output,
                    extra={**extra, "tasks": cfg.tasks})
    return AgentResult(result, art, tasks, constrained, levels, copy)
