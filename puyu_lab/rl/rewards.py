"""The rewards: small pure functions in trl's reward-function signature, ``f(completions, **columns) → list[float]``.

trl calls each as ``f(prompts=…, completions=…, completion_ids=…, <the dataset's columns>…, trainer_state=…)``;
these read ``completions`` and the columns ``kind`` ("arithmetic" | "date" | "notool") and ``gold`` (the
expected result: a number or an ISO date as text, "" for a no-tool question) and ignore the rest. A completion is
one assistant turn as text *with its protocol markers kept* (``<|action_start|><|plugin|>…<|action_end|>``,
``<|im_end|>``): trl decodes with ``skip_special_tokens=True``, which erases the markers, so the stage's trainer
hands these functions the completions decoded from ``completion_ids`` with the markers (``train.marked``).

What one completion can be checked for (the decision, issue #41). trl's ``GRPOTrainer`` runs its own tool loop only
for a tokenizer whose chat template declares a response schema (``parse_response``); the chain's InternLM2 template
declares none, and the agent loop lives in the agent stage, which this stage may not import. So each completion is
*one* turn: for a tool question the turn is the call, and the reward runs the real tool (the calculator and
``add_days`` of :mod:`puyu_lab.contracts`) on the parsed call and checks that the call's result equals the gold
answer — the answer the model would copy from the observation in its next turn (the copy is the agent lab's
measure, not this reward's). A correct number or date written directly, without a call, counts as correct too:
the answer is checkable either way.

- :func:`answer_correct` 1 when the answer is right: the call's computed result (or the number / date the turn
  states) equals ``gold``; a no-tool question is answered when the turn says something and calls nothing.
- :func:`call_valid` 1 for a call that parses under the protocol, names a real tool and whose arguments the tool
  takes (it runs without error); −1 for an attempted call that does not; 0 when there is no call.
- :func:`no_needless_call` −1 for a call on a no-tool question, else 0.
- :func:`format_penalty` −1 for a turn cut off at the token limit (no end mark), −0.5 for text after a call's
  ``<|action_end|>`` (a call ends the turn: the observation comes next), else 0.
- :func:`made_call` the naive reward: 1 for any call. It teaches calling on every question (reward hacking).

:data:`REWARD_SETS` names the functions and weights of each ``RLConfig.reward``; :func:`total` is their weighted
sum (what trl logs as ``reward``), so a run's figures can be recomputed from its saved completions.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..contracts.calculator import calculate
from ..contracts.dates import add_days
from ..contracts.protocol import TOOL_SCHEMAS
from ..errors import InputError

ACTION_START, ACTION_END, PLUGIN = "<|action_start|>", "<|action_end|>", "<|plugin|>"
END_MARKS = ("<|im_end|>", "</s>", "<|endoftext|>")
TOOLS: dict[str, Callable[..., Any]] = {"calculator": calculate, "add_days": add_days}
SCHEMAS = {s["name"]: s for s in TOOL_SCHEMAS}
KINDS = ("arithmetic", "date", "notool")
TOOL_OF = {"arithmetic": "calculator", "date": "add_days", "notool": None}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Call:
    """A call a turn attempted: its tool and arguments when they parse, the tool's result when it ran, or why not."""

    name: str | None
    args: dict | None
    result: Any = None
    error: str | None = None  # None: a valid call (parsed, a real tool, arguments the tool took)

    @property
    def valid(self) -> bool:
        return self.error is None


def text_of(completion) -> str:
    """A completion as text: a string, or trl's conversational form (a list of messages) joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return "".join(str(m.get("content", "")) for m in completion)


def strip_end(text: str) -> str:
    text = text.strip()
    while text.endswith(END_MARKS):
        text = text[: -len(next(m for m in END_MARKS if text.endswith(m)))].rstrip()
    return text


def _typed(value, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return True


def parse_call(completion) -> Call | None:
    """The call a turn makes (the InternLM2 plugin call: ``<|action_start|><|plugin|>\\n{"name": …,
    "parameters": {…}}<|action_end|>``), run on the real tool; ``None`` when the turn calls nothing. Strict where
    the agent's parser forgives (it repairs near-JSON): a reward pays only what the protocol says."""
    text = text_of(completion)
    if ACTION_START not in text:
        return None
    body = text.split(ACTION_START, 1)[1]
    if not body.startswith(PLUGIN):
        return Call(None, None, error="no <|plugin|> after <|action_start|>")
    body = body[len(PLUGIN):]
    if ACTION_END not in body:
        return Call(None, None, error="the call is not closed with <|action_end|>")
    try:
        obj = json.loads(body.split(ACTION_END, 1)[0])
    except ValueError as e:
        return Call(None, None, error=f"not JSON: {e}")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("parameters"), dict):
        return Call(None, None, error='not {"name": …, "parameters": {…}}')
    name, args = obj["name"], obj["parameters"]
    if name not in TOOLS:
        return Call(name, args, error=f"no tool {name!r}")
    props = SCHEMAS[name]["parameters"]["properties"]
    missing = [k for k in SCHEMAS[name]["parameters"]["required"] if k not in args]
    extra = [k for k in args if k not in props]
    wrong = [k for k in args if k in props and not _typed(args[k], props[k].get("type", ""))]
    if missing or extra or wrong:
        return Call(name, args, error=f"arguments: missing {missing}, unknown {extra}, wrong type {wrong}")
    try:
        return Call(name, args, result=TOOLS[name](**args))
    except InputError as e:
        return Call(name, args, error=e.en)


def _same_number(a, gold: str) -> bool:
    try:
        return math.isclose(float(a), float(gold), rel_tol=1e-6, abs_tol=1e-6)
    except (TypeError, ValueError):
        return False


def _correct(completion, kind: str, gold: str) -> bool:
    text = text_of(completion)
    call = parse_call(text)
    if kind == "notool":
        return call is None and bool(strip_end(text))
    if call is not None:
        if not call.valid or call.name != TOOL_OF[kind]:
            return False
        return _same_number(call.result, gold) if kind == "arithmetic" else call.result["date"] == gold
    said = strip_end(text)
    if kind == "arithmetic":
        return any(_same_number(n, gold) for n in _NUMBER.findall(said))
    return gold in _DATE.findall(said)


def answer_correct(completions, kind, gold, **kwargs) -> list[float]:
    """1.0 when the turn's answer is right (see the module's docstring), else 0.0."""
    return [float(_correct(c, k, g)) for c, k, g in zip(completions, kind, gold)]


def call_valid(completions, **kwargs) -> list[float]:
    """1.0 for a valid call, −1.0 for an attempted call that is not, 0.0 for no call."""
    out = []
    for c in completions:
        call = parse_call(c)
        out.append(0.0 if call is None else 1.0 if call.valid else -1.0)
    return out


def no_needless_call(completions, kind, **kwargs) -> list[float]:
    """−1.0 for a call (valid or not) on a question that needs no tool, else 0.0."""
    return [-1.0 if k == "notool" and ACTION_START in text_of(c) else 0.0 for c, k in zip(completions, kind)]


def format_penalty(completions, **kwargs) -> list[float]:
    """−1.0 for a turn cut off at the token limit, −0.5 for text after a call's ``<|action_end|>``, else 0.0."""
    out = []
    for c in completions:
        text = text_of(c).rstrip()
        if not text.endswith(END_MARKS):
            out.append(-1.0)
        elif ACTION_END in text and strip_end(text.split(ACTION_END, 1)[1]):
            out.append(-0.5)
        else:
            out.append(0.0)
    return out


def made_call(completions, **kwargs) -> list[float]:
    """The naive reward: 1.0 for any call, whatever the question, else 0.0."""
    return [1.0 if ACTION_START in text_of(c) else 0.0 for c in completions]


# each RLConfig.reward: its functions and their weights (trl's reward_funcs and reward_weights, in this order)
REWARD_SETS: dict[str, tuple[tuple[Callable, float], ...]] = {
    "checked": ((answer_correct, 1.0), (call_valid, 0.5), (no_needless_call, 1.0), (format_penalty, 1.0)),
    "naive": ((made_call, 1.0),),
}


def reward_set(name: str) -> tuple[list[Callable], list[float]]:
    """The functions and weights of the reward ``name`` ("checked" or "naive")."""
    if name not in REWARD_SETS:
        raise InputError(f"reward={name!r}: choose one of {', '.join(REWARD_SETS)}",
                         zh=f"reward={name!r}：可选 {', '.join(REWARD_SETS)}")
    fns, weights = zip(*REWARD_SETS[name])
    return list(fns), list(weights)


def score(name: str, completions, **columns) -> dict[str, list[float]]:
    """Every function of the reward ``name`` on ``completions``: function name → rewards."""
    fns, _ = reward_set(name)
    return {f.__name__: f(completions, **columns) for f in fns}


def total(name: str, completions, **columns) -> list[float]:
    """The weighted sum of the reward ``name``'s functions per completion (what trl logs as ``reward``)."""
    fns, weights = reward_set(name)
    parts = [f(completions, **columns) for f in fns]
    return [sum(w * p[i] for w, p in zip(weights, parts)) for i in range(len(completions))]
