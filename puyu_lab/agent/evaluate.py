"""Held-out arithmetic: the same model with the calculator (through the agent loop) vs answering
directly, and the ``agent/eval`` artifact (traces, per-task rows, success rates)."""
from __future__ import annotations

import json
import random
from typing import Callable

from ..events import Emitter, Event, StopFlag
from ..artifacts import load_sft_data
from ..contracts.tasks import ARITHMETIC_HELDOUT, ARITHMETIC_QUESTION
from ..models.base import Model
from ..workspace import Workspace, stage_entry
from .agent import STAGE, Agent, Trace, has_number

QUESTION = ARITHMETIC_QUESTION  # the fine-tune data's first question form
ARTIFACT = "agent/eval"


@stage_entry("agent")
def heldout_tasks(ws: Workspace, n: int | None = None, seed: int = 0) -> list[dict]:
    """The fine-tune lab's held-out arithmetic tasks (never in its training conversations)."""
    rows = load_sft_data(ws, ARITHMETIC_HELDOUT)
    if n is not None and n < len(rows):
        rows = random.Random(seed).sample(rows, n)
    return rows


def ask_directly(backend: Model, question: str, max_new_tokens: int = 32) -> str:
    from .protocols import strip_end

    gen = backend.generate([{"role": "user", "content": question}], max_new_tokens=max_new_tokens,
                           keep_special=True)
    return strip_end(gen.text)


def arithmetic_eval(agent: Agent, tasks: list[dict], *, direct: bool = True,
                    on_event: Callable[[Event], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Success rates with tools and (``direct``) without, per-task rows and the traces."""
    em = Emitter(STAGE, on_event)
    rows, traces = [], []
    for i, t in enumerate(tasks):
        if stop is not None:
            stop.check()
        q = QUESTION.format(e=t["expression"])
        tr = agent.run(q)
        called = any(s.get("tool") == "calculator" for s in tr.calls)
        row = {"expression": t["expression"], "result": t["result"], "tool_answer": tr.answer,
               "tool_status": tr.status, "called_calculator": called,
               "tool_ok": tr.status == "answered" and has_number(tr.answer, t["result"], q),
               "turns": len(tr.turns), "seconds": tr.seconds}
        if direct:
            ans = ask_directly(agent.backend, q)
            row.update(direct_answer=ans, direct_ok=has_number(ans, t["result"], q))
        rows.append(row)
        traces.append(tr)
        em.emit("progress", desc="arithmetic", done=i + 1, total=len(tasks))
    n = max(1, len(rows))
    metrics = {"tasks": len(rows), "with_tools": sum(r["tool_ok"] for r in rows) / n,
               "called_calculator": sum(r["called_calculator"] for r in rows) / n,
               "mean_turns": sum(r["turns"] for r in rows) / n}
    if direct:
        metrics["direct"] = sum(r["direct_ok"] for r in rows) / n
    em.emit("metric", **metrics)
    return {"metrics": metrics, "rows": rows, "traces": traces}


def save_eval(ws: Workspace, result: dict, *, model: str, backend: str, protocol: str,
              name: str = ARTIFACT) -> "object":
    parents = [ws.get(model)] if ws.exists(model) else []
    if ws.exists("sft/data"):
        parents.append(ws.get("sft/data"))
    with ws.write(name, kind="report", stage=STAGE, parents=parents,
                  params={"model": model, "backend": backend, "protocol": protocol}) as w:
        with open(w.path / "rows.jsonl", "w", encoding="utf-8") as f:
            for r in result["rows"]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        with open(w.path / "traces.jsonl", "w", encoding="utf-8") as f:
            for tr in result["traces"]:
                f.write(json.dumps(tr.to_dict() if isinstance(tr, Trace) else tr, ensure_ascii=False) + "\n")
        w.metrics.update({k: round(v, 4) if isinstance(v, float) else v for k, v in result["metrics"].items()})
    return ws.get(name)
