"""07 Lagent Agent: the agent's held-out tasks, traced."""
from __future__ import annotations

from ...artifacts import AGENT_EVAL, load_agent_eval
from ..core import Outcome, check

LAB = "07_agent.ipynb"
CAMP = "进阶岛: Lagent 自定义你的 Agent 智能体"


def _rows(ctx):
    return ctx.cached("agent", lambda: load_agent_eval(ctx.ws)["rows"])


@check("agent.traced", LAB, "留存的智能体轨迹", "Traced held-out tasks", needs=(AGENT_EVAL,),
       verifies="agent/eval holds ≥ 20 traced held-out questions of each kind (arithmetic, date, no tool needed), "
                "one trace per question",
       hint="run the evaluation cell of lab 07 to the end (do not stop it)",
       hint_zh="把实验 07 的评测单元格运行到底（不要中途停止）", camp=CAMP)
def traced(ctx):
    art = ctx.get(AGENT_EVAL)
    rows = _rows(ctx)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("arithmetic", "date", "notool")}
    n_tr = sum(1 for l in art.file("traces.jsonl").read_text(encoding="utf-8").splitlines() if l.strip())
    ok = all(v >= 20 for v in kinds.values()) and n_tr == len(rows)
    return Outcome(ok, ", ".join(f"{k} {v}" for k, v in kinds.items()) + f"; {n_tr} traces", value=len(rows),
                   claimed=sum(art.metrics.get(f"{k}_tasks", 0) for k in kinds))


@check("agent.notool", LAB, "不需要工具时不调用", "No tool when none is needed", needs=(AGENT_EVAL,),
       verifies="on held-out questions that need no tool (self-cognition, chit-chat), the agent answers without "
                "calling one on ≥ 60 % (recomputed from rows.jsonl)",
       hint="the SFT data needs its no-tool conversations (`data.notool_examples` in lab 03)",
       hint_zh="SFT 数据需要包含无需调用工具的对话（实验 03 中的 `data.notool_examples`）", camp=CAMP)
def notool(ctx):
    rows = [r for r in _rows(ctx) if r["kind"] == "notool"]
    if not rows:
        return Outcome(False, "no notool rows")
    n = sum(bool(r["tool_ok"]) and not r["called"] for r in rows)
    rate = n / len(rows)
    return Outcome(rate >= 0.6, f"{rate:.1%} ({n}/{len(rows)}) without a call", value=rate,
                   claimed=ctx.get(AGENT_EVAL).metrics.get("notool_with_tools"))


@check("agent.constrained", LAB, "约束解码的调用都有效", "Constrained calls are valid", needs=(AGENT_EVAL,),
       verifies="with decoding constrained by the tools' JSON schemas (each tool task's first turn a required call, "
                "OpenAI's tool_choice), ≥ 95 % of the calls decoded under the schemas parse and run "
                "(agent/eval's constrained_call_valid)",
       hint="run lab 07's held-out-task cell (section 4) to the end with the InternLM2 protocol and "
            "`AgentConfig.constrained` left on: it decodes each call under the tools' schemas with lm-format-enforcer "
            "(the `lmformatenforcer` package), in the same decode loop as the free-form run",
       hint_zh="使用 InternLM2 协议并保持 `AgentConfig.constrained` 开启，把实验 07 的留出任务单元格（第 4 节）运行到底："
               "它用 lm-format-enforcer（`lmformatenforcer` 包）按各工具的参数模式约束解码每一次调用，"
               "与自由生成共用同一个解码循环", camp=CAMP)
def constrained(ctx):
    m = ctx.get(AGENT_EVAL).metrics
    v = m.get("constrained_call_valid")
    if v is None:
        if any(k.startswith("constrained_") for k in m):  # it ran with tool_choice="auto" and no call was opened
            return Outcome(False, "the constrained run made no tool call: the model answered every question directly "
                                  "(run it with AgentConfig.tool_choice='required', the default)")
        return Outcome(False, "no constrained run recorded")
    return Outcome(v >= 0.95, f"{v:.1%} valid", value=v)
