"""The prompts GRPO samples from: the tasks of ``sft/data``'s training conversations (never its held-out parts, nor
the course model's held-out tasks, which the agent and eval labs measure), each asked with the tools offered as the
agent asks it (the tool system prompt and the tool list, :func:`puyu_lab.contracts.protocol.tool_prompt`), with
its kind and gold answer.

A tool task's numbers come from the training conversation's own call; its question is asked again in the RL
stage's own phrasings (:data:`~puyu_lab.contracts.tasks.ARITHMETIC_RL_FORMS`, ``DATE_RL_FORMS``), round robin.
Why: asked in the fine-tune's own sentences, every completion of a group is already right — no spread within the
group, so GRPO's advantages are all zero and nothing is learned (measured on the course assistant: reward 1.5 at
every step, std 0). A no-tool question is asked as the conversation asked it.

The gold answer of a tool question is what the real tool computes from the conversation's call (so it is right
even where a conversation's wording is not); a no-tool question has none (``""``)."""
from __future__ import annotations

import json
import random

from ..artifacts import SFT_DATA, load_sft_data
from ..contracts.protocol import tool_prompt
from ..contracts.tasks import ARITHMETIC_RL_FORMS, DATE_RL_FORMS
from ..errors import InputError
from ..workspace import Workspace
from .config import TaskMix
from .rewards import TOOL_OF, parse_call


def _task(conv: dict) -> dict | None:
    msgs = conv.get("messages") or []
    user = next((m for m in msgs if m.get("role") == "user"), None)
    reply = next((m for m in msgs if m.get("role") == "assistant"), None)
    if user is None or reply is None:
        return None
    if conv.get("kind") == "notool":
        return {"kind": "notool", "question": user["content"], "gold": ""}
    if conv.get("kind") not in ("tool", "date"):  # sft/data: "tool" (calculator) and "date" (add_days)
        return None
    call = parse_call(reply["content"])
    if call is None or not call.valid:
        return None
    kind = next(k for k, t in TOOL_OF.items() if t == call.name)
    gold = call.result["date"] if kind == "date" else call.result
    return {"kind": kind, "question": user["content"], "gold": json.dumps(gold) if kind == "arithmetic" else gold,
            "args": call.args}


def _key(kind: str, args: dict) -> tuple:
    return (kind, args["expression"]) if kind == "arithmetic" else (kind, args["date"], int(args["days"]))


def heldout_keys() -> set[tuple]:
    """The course model's held-out tool tasks (what the agent lab asks the policy), which RL never trains on."""
    from ..models import course

    keys = set()
    try:
        for t in course.heldout_tasks("arithmetic"):
            keys.add(_key("arithmetic", t))
        for t in course.heldout_tasks("date"):
            keys.add(_key("date", t))
        keys |= {("notool", t["prompt"]) for t in course.heldout_tasks("notool")}
    except course.CourseModelMissing:
        pass
    return keys


def rephrase(task: dict, i: int) -> str:
    """The tool task's question in the ``i``-th RL phrasing (round robin)."""
    a = task["args"]
    if task["kind"] == "arithmetic":
        return ARITHMETIC_RL_FORMS[i % len(ARITHMETIC_RL_FORMS)].format(e=a["expression"])
    return DATE_RL_FORMS[i % len(DATE_RL_FORMS)].format(date=a["date"], days=a["days"])


def training_tasks(ws: Workspace, mix: TaskMix) -> list[dict]:
    """``mix``'s prompts of each kind, drawn (seeded) from ``sft/data``'s training conversations: each
    ``{"prompt": <messages>, "kind", "gold", "question"}``, trl's conversational prompt form."""
    by_kind: dict[str, list[dict]] = {k: [] for k in TOOL_OF}
    seen = heldout_keys()
    for conv in load_sft_data(ws, "train"):
        t = _task(conv)
        if t is None:
            continue
        key = ("notool", t["question"]) if t["kind"] == "notool" else _key(t["kind"], t["args"])
        if key not in seen:
            seen.add(key)
            by_kind[t["kind"]].append(t)
    rng = random.Random(mix.seed)
    out = []
    for kind in TOOL_OF:
        want, have = getattr(mix, kind), by_kind[kind]
        if want and not have:
            raise InputError(f"{SFT_DATA} has no {kind} conversation to ask: rebuild it with tool examples "
                             "(03_finetune.ipynb)",
                             zh=f"{SFT_DATA} 里没有 {kind} 类的对话可用来提问：请带上工具样例重新生成（03_finetune.ipynb）")
        picked = rng.sample(have, want) if want <= len(have) else [rng.choice(have) for _ in range(want)]
        for i, t in enumerate(picked):
            t = {k: v for k, v in t.items() if k != "args"} | (
                {} if kind == "notool" else {"question": rephrase(t, i), "trained_as": t["question"]})
            out.append({"prompt": tool_prompt(t["question"]), **t})
    rng.shuffle(out)
    return out
