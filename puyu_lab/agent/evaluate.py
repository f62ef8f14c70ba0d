"""Held-out tasks through the agent loop, with the tools vs answering directly, and the
``agent/eval`` artifact (traces, per-task rows, success rates).

Three task kinds, all held out of the fine-tune lab's training conversations (``sft/data`` parts):

    arithmetic  "37*41 等于多少？"            success: the answer states the result (the calculator)
    date        "2024-05-01 之后 37 天是哪一天？"  success: the answer states the ISO date (add_days)
    notool      self-cognition, chit-chat      success: answered without calling any tool

Call validity counts every attempted call (a reply with ``<|action_start|>``): valid when it
parsed against the tool's schema and the tool ran without error.
"""
from __future__ import annotations

import json
import random
from typing import Callable

from ..artifacts import brought, load_sft_data
from ..contracts.tasks import ARITHMETIC_HELDOUT, ARITHMETIC_QUESTION, DATE_HELDOUT, DATE_QUESTION, NOTOOL_HELDOUT
from ..events import Emitter, Event, StopFlag
from ..models.base import Model
from ..workspace import Workspace
from .agent import STAGE, Agent, Trace, has_number
from .protocols import NO_ACTION

ARTIFACT = "agent/eval"
KINDS = {"arithmetic": ARITHMETIC_HELDOUT, "date": DATE_HELDOUT, "notool": NOTOOL_HELDOUT}
TOOL_OF = {"arithmetic": "calculator", "date": "add_days", "notool": None}
AGENT_TOOLS = ("calculator", "add_days")  # the tools the fine-tune lab's conversations offer, in this order


def heldout_tasks(ws: Workspace, n: int | None = None, seed: int = 0, kind: str = "arithmetic") -> list[dict]:
    """The fine-tune lab's held-out tasks of one kind (never in its training conversations)."""
    if kind not in KINDS:
        from ..errors import InputError

        raise InputError(f"kind={kind!r}: use one of {', '.join(KINDS)}",
                         zh=f"kind={kind!r}：可选 {', '.join(KINDS)}")
    ws = ws.for_stage("agent")  # reads only what stages.py declares for the stage
    rows = load_sft_data(ws, KINDS[kind])
    if n is not None and n < len(rows):
        rows = random.Random(seed).sample(rows, n)
    return rows


def question(kind: str, task: dict) -> str:
    if task.get("question"):  # a task set that phrases its own questions (the course model's unseen forms)
        return task["question"]
    if kind == "arithmetic":
        return ARITHMETIC_QUESTION.format(e=task["expression"])  # the fine-tune data's first question form
    if kind == "date":
        return DATE_QUESTION.format(date=task["date"], days=task["days"])
    return task["prompt"]


def answer_ok(kind: str, answer: str | None, task: dict, q: str) -> bool:
    if kind == "arithmetic":
        return has_number(answer, task["result"], q)
    if kind == "date":
        return bool(answer) and task["result"] in answer
    return bool(answer)


def ask_all_directly(backend: Model, questions: list[str], max_new_tokens: int = 32) -> list[str]:
    """Each question as one user turn, no tools offered: the model's answer (decoded together where the
    backend batches)."""
    from .protocols import strip_end

    msgs = [[{"role": "user", "content": q}] for q in questions]
    if getattr(backend, "can_batch", False):
        gens = backend.generate_batch(msgs, max_new_tokens=max_new_tokens, keep_special=True)
    else:
        gens = [backend.generate(m, max_new_tokens=max_new_tokens, keep_special=True) for m in msgs]
    return [strip_end(g.text) for g in gens]


def call_validity(trace: Trace, *, marked_only: bool = False) -> tuple[int, int]:
    """(attempted calls, valid calls) of one trace: a call step whose observation is ok is valid;
    a parse error (the model tried to act, the reply could not be run) is an invalid attempt. ``marked_only``
    (a constrained run): only calls opened with the protocol's marker count — the ones decoded under the tools'
    schemas; a call written as plain text was free text to the constraint, and fails its task instead."""
    attempts = valid = 0
    for i, s in enumerate(trace.steps):
        if s["kind"] == "call":
            attempts += 1
            nxt = trace.steps[i + 1] if i + 1 < len(trace.steps) else None
            valid += bool(nxt and nxt["kind"] == "observation" and nxt.get("ok"))
        elif s["kind"] == "error" and s.get("error_kind") not in (None, "backend") and not (
                marked_only and s.get("error_kind") == NO_ACTION):
            attempts += 1
    return attempts, valid


def first_call(trace: Trace) -> str | None:
    """The first call of a trace as ``tool({args})``, ``✗ <why>`` for a call that could not be run,
    or None when the model called nothing: what the lab shows free-form vs constrained."""
    for s in trace.steps:
        if s["kind"] == "call":
            return f"{s['tool']}({json.dumps(s['args'], ensure_ascii=False)})"
        if s["kind"] == "error" and s.get("error_kind") not in (None, "backend"):
            return f"✗ {s['error_kind']}"
    return None


def task_eval(agent: Agent, kind: str, tasks: list[dict], *, direct: bool = True,
              on_event: Callable[[Event], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Success with the tools and (``direct``, tool tasks only) without, per-task rows, the traces."""
    em = Emitter(STAGE, on_event)
    tool = TOOL_OF[kind]
    direct = direct and tool is not None
    rows = []
    attempts = valid = 0
    if stop is not None:
        stop.check()
    qs = [question(kind, t) for t in tasks]
    done = [0]

    def progress(i: int, trace: Trace) -> None:
        done[0] += 1
        em.emit("progress", desc=kind, done=done[0], total=len(tasks))

    traces = agent.run_batch(qs, stop=stop, on_done=progress)  # the questions' turns decoded together
    if stop is not None:
        stop.check()
    directs = ask_all_directly(agent.backend, qs) if direct else [None] * len(qs)
    for t, q, tr, ans in zip(tasks, qs, traces, directs):
        a, v = call_validity(tr, marked_only=agent.constrained)
        attempts, valid = attempts + a, valid + v
        called = [s.get("tool") for s in tr.calls]
        ok = tr.status == "answered" and (not called if tool is None else answer_ok(kind, tr.answer, t, q))
        row = {"kind": kind, "question": q, **{k: t[k] for k in ("expression", "result", "date", "days") if k in t},
               "tool_answer": tr.answer, "tool_status": tr.status, "called": called, "called_tool": tool in called,
               "first_call": first_call(tr),
               "tool_ok": ok, "calls_attempted": a, "calls_valid": v, "turns": len(tr.turns), "seconds": tr.seconds}
        if direct:
            row.update(direct_answer=ans, direct_ok=answer_ok(kind, ans, t, q))
        rows.append(row)
    n = max(1, len(rows))
    metrics = {"tasks": len(rows), "with_tools": sum(r["tool_ok"] for r in rows) / n,
               "called_any": sum(bool(r["called"]) for r in rows) / n,
               "calls_attempted": attempts, "call_valid": valid / attempts if attempts else None,
               "mean_turns": sum(r["turns"] for r in rows) / n}
    if tool is not None:
        metrics["called_tool"] = sum(r["called_tool"] for r in rows) / n
    if direct:
        metrics["direct"] = sum(r["direct_ok"] for r in rows) / n
    em.emit("metric", task=kind, **metrics)
    return {"metrics": metrics, "rows": rows, "traces": traces}


def arithmetic_eval(agent: Agent, tasks: list[dict], **kw) -> dict:
    """:func:`task_eval` on arithmetic tasks; ``called_calculator`` is kept as its metrics' name."""
    res = task_eval(agent, "arithmetic", tasks, **kw)
    res["metrics"]["called_calculator"] = res["metrics"]["called_tool"]
    return res


def suite_eval(agent: Agent, tasks: dict[str, list[dict]], *, direct: bool = True,
               on_event: Callable[[Event], None] | None = None, stop: StopFlag | None = None) -> dict:
    """Every kind in ``tasks`` (kind → tasks): one result whose metrics are prefixed by kind
    (``arithmetic_with_tools``, ``date_direct``, ``notool_with_tools`` …) plus the calls' validity
    over all kinds (``call_valid``)."""
    out = {"metrics": {}, "rows": [], "traces": [], "by_kind": {}}
    attempts = valid = 0
    for kind, ts in tasks.items():
        r = task_eval(agent, kind, ts, direct=direct, on_event=on_event, stop=stop)
        out["by_kind"][kind] = r["metrics"]
        out["metrics"].update({f"{kind}_{k}": v for k, v in r["metrics"].items()})
        out["rows"] += r["rows"]
        out["traces"] += r["traces"]
        attempts += r["metrics"]["calls_attempted"]
        valid += sum(row["calls_valid"] for row in r["rows"])
    out["metrics"]["calls_attempted"] = attempts
    out["metrics"]["call_valid"] = valid / attempts if attempts else None
    return out


def save_eval(ws: Workspace, result: dict, *, model: str, backend: str, protocol: str,
              name: str = ARTIFACT, extra: dict | None = None) -> "object":
    # a model folder (the shipped course assistant) is no artifact of this workspace, nor are its tasks sft/data's
    own = brought(model) is None
    parents = [ws.get(model)] if own and ws.exists(model) else []
    if own and ws.exists("sft/data"):
        parents.append(ws.get("sft/data"))
    with ws.write(name, kind="report", stage=STAGE, parents=parents,
                  params={"model": model, "backend": backend, "protocol": protocol}) as w:
        with open(w.path / "rows.jsonl", "w", encoding="utf-8") as f:
            for r in result["rows"]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        with open(w.path / "traces.jsonl", "w", encoding="utf-8") as f:
            for tr in result["traces"]:
                f.write(json.dumps(tr.to_dict() if isinstance(tr, Trace) else tr, ensure_ascii=False) + "\n")
        ms = result["metrics"]  # the success rates first: the workspace's status table shows the first four
        for k in sorted(ms, key=lambda k: not k.endswith(("with_tools", "_direct"))):
            w.metrics[k] = round(ms[k], 4) if isinstance(ms[k], float) else ms[k]
        w.metrics.update(extra or {})
    return ws.get(name)
