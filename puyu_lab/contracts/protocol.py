"""The tool protocol's text: what the assistant and the environment write in a tool conversation.

The tokenizer trains on the corpus *plus* these lines (the pretrain lab), so that the JSON keys,
the tool names and the schema list the later stages use are whole pieces instead of letters and
byte fallbacks: a calculator call takes ~18 tokens instead of 66. The values are random (numbers,
dates); the held-out tasks of the fine-tune lab are drawn elsewhere and only share the format.
"""
from __future__ import annotations

import json
import random

from .calculator import CALCULATOR_SCHEMA
from .dates import ADD_DAYS_SCHEMA
from .tasks import TOOL_SYSTEM

TOOL_SCHEMAS = [CALCULATOR_SCHEMA, ADD_DAYS_SCHEMA]  # the tools the fine-tune lab teaches, in this order


def schema_text(schemas: list[dict] | None = None) -> str:
    """The tool list as the InternLM2 template writes it (``system name=<|plugin|>``)."""
    return json.dumps(TOOL_SCHEMAS if schemas is None else schemas, ensure_ascii=False)


def tool_prompt(question: str, schemas: list[dict] | None = None) -> list[dict]:
    """A question asked with the tools offered, as the fine-tune data opens its tool conversations:
    the tool system prompt, the tool list (InternLM2's ``system name=<|plugin|>``), the question."""
    return [{"role": "system", "content": TOOL_SYSTEM},
            {"role": "system", "content": schema_text(schemas), "name": "<|plugin|>"},
            {"role": "user", "content": question}]


def called_tool(text: str) -> str:
    """The tool an assistant's reply calls: the ``name`` of its first InternLM2 plugin call, ``"none"``
    when it calls none, ``"invalid"`` when a call starts but its name cannot be read."""
    import re

    if "<|action_start|>" not in text:
        return "none"
    m = re.search(r'<\|action_start\|><\|plugin\|>\s*\{\s*"name"\s*:\s*"([^"]+)"', text)
    return m.group(1) if m else "invalid"


def call_json(name: str, parameters: dict) -> str:
    """The JSON of one call (``models.template.tool_call`` wraps it in the action tokens)."""
    return json.dumps({"name": name, "parameters": parameters}, ensure_ascii=False)


def _expression(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 30)
    return rng.choice([f"{a}*{b}", f"{a * c}+{b}", f"({a}+{b})*{c}", f"{a * c}/{c}", f"{a}*{b}-{c}"])


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1990, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def protocol_lines(n: int = 1000, seed: int = 0) -> list[str]:
    """``n`` rounds of protocol text: a calculator call and its result, a date call and its result,
    and (every fourth round) the system prompt with the tool list."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        out.append(call_json("calculator", {"expression": _expression(rng)}))
        out.append(json.dumps({"result": rng.randint(0, 99_999)}))
        d = _date(rng)
        out.append(call_json("add_days", {"date": d, "days": rng.randint(1, 400)}))
        out.append(json.dumps({"date": _date(rng), "weekday": rng.choice(["星期一 Monday", "星期五 Friday"])},
                              ensure_ascii=False))
        if i % 4 == 0:
            out.extend([TOOL_SYSTEM, schema_text()])
    return out
