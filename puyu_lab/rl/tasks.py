"""The prompts GRPO samples from: the questions of ``sft/data``'s training conversations (the same forms the agent
lab's held-out tasks share, never those tasks), each asked with the tools offered as the agent asks it (the tool
system prompt and the tool list, :func:`puyu_lab.contracts.protocol.tool_prompt`), with its kind and gold answer.

The gold answer of a tool question is what the real tool computes from the training conversation's own call
(so it is right even where a conversation's wording is not); a no-tool question has none (``""``)."""
from __future__ import annotations

import json
import random

from ..artifacts import SFT_DATA, load_sft_data
from ..contracts.protocol import tool_prompt
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
    return {"kind": kind, "question": user["content"], "gold": json.dumps(gold) if kind == "arithmetic" else gold}


def training_tasks(ws: Workspace, mix: TaskMix) -> list[dict]:
    """``mix``'s prompts of each kind, drawn (seeded) from ``sft/data``'s training conversations: each
    ``{"prompt": <messages>, "kind", "gold", "question"}``, trl's conversational prompt form."""
    by_kind: dict[str, list[dict]] = {k: [] for k in TOOL_OF}
    seen = set()
    for conv in load_sft_data(ws, "train"):
        t = _task(conv)
        if t is not None and t["question"] not in seen:
            seen.add(t["question"])
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
        out += [{"prompt": tool_prompt(t["question"]), **t} for t in picked]
    rng.shuffle(out)
    return out
