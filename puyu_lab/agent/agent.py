"""The agent loop (Lagent-style): ask the model, run the tool it calls, show it the result, repeat.

    agent = Agent(HFModel.load("model/sft", ws=ws), default_registry(ws), protocol="internlm2")
    trace = agent.run("37*41 等于多少？", on_event=panel.on_event)

Every model turn becomes a ``turn`` record (the exact prompt, the raw reply, the parse result, token
counts, time, and for turns without a call a diagnosis of why no tool was called); every thing that
happened becomes a ``step`` (thought, call, observation, final, error) in order. Both stream out as
events while the loop runs, and both are kept in the :class:`Trace`, which saves as JSON.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Msg, zh_of
from ..events import Emitter, Event, StopFlag
from ..models.base import Generation, Model
from ..models.template import ACTION_START
from .constrained import ToolCallConstraint
from .protocols import ERROR_KINDS_ZH, Parsed, Protocol, Turn, get_protocol
from .tools import ToolRegistry

STAGE = "agent"


@dataclass
class Trace:
    question: str
    protocol: str
    backend: str
    tools: list[str]
    steps: list[dict] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    answer: str | None = None
    status: str = "running"  # answered | max_turns | stopped | error
    seconds: float = 0.0
    constrained: bool = False  # tool calls decoded under the registry's JSON-schema grammar

    @property
    def calls(self) -> list[dict]:
        return [s for s in self.steps if s["kind"] == "call"]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Trace":
        return cls(**d)

    def save(self, path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Trace":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def diagnose(parsed: Parsed, gen: Generation, tools: ToolRegistry, protocol: Protocol, turn: int) -> Msg | None:
    """Why this turn called no tool (None when it did), for the learner: a :class:`~puyu_lab.errors.Msg`, the English
    string with its Chinese as ``.zh`` (the turn record keeps both: ``diagnosis`` and ``diagnosis_zh``). The model
    never reads it. ``turn`` counts from 0; the panel and the labs show it from 1."""
    if parsed.kind == "call":
        return None
    if not len(tools):
        return Msg("No tools were offered, so the model could only answer directly.",
                   "没有提供任何工具，模型只能直接回答。")
    if parsed.kind == "error":  # parsed.error is what the model reads next (English); its .zh says the same
        kind = ERROR_KINDS_ZH.get(parsed.error_kind, parsed.error_kind)
        return Msg(f"The model tried to act but its reply could not be run ({parsed.error_kind}): {parsed.error}",
                   f"模型想调用工具，但它的回复无法执行（{kind}）：{zh_of(parsed.error)}")
    if turn > 0:
        return Msg("The model answered after seeing a tool result: this is the expected last step.",
                   "模型看到工具结果后给出了回答：这正是预期中的最后一步。")
    en, zh = ["The model answered directly: its reply contains no tool call."], ["模型直接回答了：它的回复里没有工具调用。"]
    top = ", ".join(f"{t!r} {p:.1%}" for t, p in gen.first_token[:3])
    if gen.watch_prob is not None:
        en.append(f"At its first token it gave {ACTION_START} a probability of {gen.watch_prob:.2%}; "
                  f"it preferred {top}.")
        zh.append(f"在第一个词元处，它给 {ACTION_START} 的概率是 {gen.watch_prob:.2%}，更倾向于 {top}。")
        if gen.watch_prob < 0.01:
            en.append("The model has not learned to call tools for prompts like this one: fine-tune it on "
                      "tool-use conversations in this exact format (the fine-tune lab's sft/data has them).")
            zh.append("模型还没学会在这类提示下调用工具：用完全相同格式的工具调用对话微调它"
                      "（微调实验的 sft/data 里就有）。")
    elif gen.first_token:
        en.append("Its first-token candidates: " + top)
        zh.append("它第一个词元的候选：" + top)
    if protocol.name == "react" and "Action" not in gen.text:
        en.append("In ReAct a call needs the lines 'Action: <tool>' and 'Action Input: {…}'.")
        zh.append("在 ReAct 格式里，一次调用需要写出 'Action: <tool>' 和 'Action Input: {…}' 两行。")
    return Msg(" ".join(en), "".join(zh))


class Agent:
    def __init__(self, backend: Model, tools: ToolRegistry, protocol: str | Protocol = "internlm2",
                 max_turns: int = 4, max_new_tokens: int = 96, system: str | None = None, constrained: bool = False,
                 tool_choice: str = "auto"):
        self.backend, self.tools = backend, tools
        self.protocol = get_protocol("openai" if backend.native_tools and protocol == "internlm2" else protocol)
        self.max_turns, self.max_new_tokens, self.system = max_turns, max_new_tokens, system
        self.constrained = constrained  # calls follow the tools' schemas (puyu_lab.agent.constrained)
        from ..errors import InputError

        if constrained and (self.protocol.name != "internlm2" or not backend.can_constrain):
            raise InputError("constrained=True needs the internlm2 protocol and a local model (transformers / GGUF)",
                             zh="constrained=True 需要 internlm2 协议和本地模型（transformers / GGUF）")
        # OpenAI's tool_choice: "auto" (the model decides whether to call) or "required" (its first turn is a call,
        # decoded under the tools' schemas: constrained=True)
        if tool_choice not in ("auto", "required"):
            raise InputError(f"tool_choice={tool_choice!r}: choose 'auto' or 'required'",
                             zh=f"tool_choice={tool_choice!r}：可选 'auto' 或 'required'")
        if tool_choice == "required" and not constrained:
            raise InputError("tool_choice='required' needs constrained=True (the call is decoded under the schemas)",
                             zh="tool_choice='required' 需要 constrained=True（工具调用按 schema 约束解码）")
        self.tool_choice = tool_choice

    def run(self, question: str, *, on_event: Callable[[Event], None] | None = None,
            stop: StopFlag | None = None) -> Trace:
        session = self._session(question, on_event, stop)
        req = next(session)
        while True:
            messages, kw = req
            try:
                gen = self.backend.generate(messages, stop_flag=stop, **kw)
            except Exception as e:
                session.throw(e)  # the trace records the error step, then it is raised here
                raise
            try:
                req = session.send(gen)
            except StopIteration as done:
                return done.value

    def run_batch(self, questions: list[str], *, stop: StopFlag | None = None,
                  on_done: Callable[[int, Trace], None] | None = None) -> list[Trace]:
        """``run`` on every question, their model turns decoded together (``Model.generate_batch``: on
        transformers one forward per token for all of them). Each trace is what ``run`` gives for its question,
        to float rounding of the batched logits; ``on_done(i, trace)`` as each one ends."""
        if not getattr(self.backend, "can_batch", False):  # llama.cpp, an endpoint: one question at a time
            traces = []
            for i, q in enumerate(questions):
                traces.append(self.run(q, stop=stop))
                if on_done is not None:
                    on_done(i, traces[-1])
            return traces
        sessions = [self._session(q, None, stop) for q in questions]
        traces: list[Trace | None] = [None] * len(questions)
        pending = {}
        for i, s in enumerate(sessions):
            pending[i] = next(s)
        while pending:
            order = list(pending)
            kw = pending[order[0]][1]
            try:
                gens = self.backend.generate_batch(
                    [pending[i][0] for i in order], stop_flag=stop, max_new_tokens=kw["max_new_tokens"],
                    stop=kw["stop"], watch=kw["watch"], keep_special=kw["keep_special"],
                    constraints=[pending[i][1]["constraint"] for i in order])
            except Exception as e:
                for i in order:  # each trace records the error step
                    try:
                        sessions[i].throw(e)
                    except Exception:
                        pass
                raise
            for i, gen in zip(order, gens):
                try:
                    pending[i] = sessions[i].send(gen)
                except StopIteration as done:
                    del pending[i]
                    traces[i] = done.value
                    if on_done is not None:
                        on_done(i, done.value)
        return traces

    def _session(self, question: str, on_event, stop):
        """One question's loop as a generator: it yields ``(messages, generate kwargs)`` for each model turn,
        is sent the Generation back, and returns the Trace — so ``run`` decodes one question and ``run_batch``
        many at once through the same steps."""
        em = Emitter(STAGE, on_event)
        trace = Trace(question, self.protocol.name, self.backend.name, [t.name for t in self.tools],
                      constrained=self.constrained)
        constraint = ToolCallConstraint(self.backend, self.tools) if self.constrained and len(self.tools) else None
        t_start = time.perf_counter()
        em.emit("start", question=question, protocol=trace.protocol, backend=trace.backend, tools=trace.tools,
                constrained=self.constrained)
        history: list[Turn] = []

        def step(kind: str, turn: int, **data) -> None:
            s = {"index": len(trace.steps), "kind": kind, "turn": turn, **data}
            trace.steps.append(s)
            em.emit("step", step=s)

        def act(parsed: Parsed, turn: int, timing: dict) -> str:
            """Run one call (or report why it cannot run) as steps; the observation for the model."""
            if parsed.kind == "error":
                # the error text is what the model reads next (English); a learner reading Chinese reads its Chinese
                # (the panel keeps the model's exact text in the step's tooltip)
                kind = ERROR_KINDS_ZH.get(parsed.error_kind, parsed.error_kind)
                step("error", turn, text=str(parsed.error), error_kind=parsed.error_kind, tool=parsed.tool,
                     text_zh=f"{kind}：{zh_of(parsed.error)}", **timing)
                observation = f"error: {parsed.error}"
                step("observation", turn, text=observation, ok=False, seconds=0.0,
                     text_zh=f"错误（{kind}）：{zh_of(parsed.error)}")
                return observation
            step("call", turn, tool=parsed.tool, args=parsed.args, notes=parsed.notes,
                 text=self.protocol.call_text(parsed.tool, parsed.args), **timing)
            result = self.tools.call(parsed.tool, parsed.args)
            observation = str(result.as_text())  # what the model reads
            # for a learner reading Chinese: the same observation with this package's own words (an error, the
            # sandbox's stop line) in Chinese; what the tool itself returned stays as it is
            said = {"text_zh": zh} if (zh := result.as_text_zh()) != observation else {}
            step("observation", turn, text=observation, ok=result.ok, tool=parsed.tool,
                 seconds=round(result.seconds, 4), **said)
            return observation

        kw = dict(max_new_tokens=self.max_new_tokens, stop=self.protocol.stop,
                  watch=ACTION_START if self.protocol.name == "internlm2" else None,
                  tools=self.tools.schemas() if self.backend.native_tools else None, keep_special=True,
                  constraint=constraint)
        try:
            for turn in range(self.max_turns):
                if stop is not None and stop.is_set():
                    trace.status = "stopped"
                    break
                messages = self.protocol.messages(question, self.tools, history, self.system)
                if constraint is not None:
                    constraint.required = self.tool_choice == "required" and turn == 0
                gen: Generation = yield messages, kw
                parsed = self.protocol.parse_generation(gen, self.tools)
                rec = {"turn": turn, "prompt": gen.prompt, "raw": gen.text, "parse": parsed.to_dict(),
                       "prompt_tokens": gen.prompt_tokens, "output_tokens": gen.output_tokens,
                       "seconds": round(gen.seconds, 4), "first_token": gen.first_token, "watch_prob": gen.watch_prob,
                       "native_calls": gen.tool_calls}
                why = diagnose(parsed, gen, self.tools, self.protocol, turn)
                rec["diagnosis"] = None if why is None else str(why)  # English; the Chinese beside it
                rec["diagnosis_zh"] = None if why is None else zh_of(why)
                trace.turns.append(rec)
                em.emit("turn", turn=rec)
                if gen.finish == "stopped" or (stop is not None and stop.is_set()):
                    trace.status = "stopped"  # Stop ended the generation itself: nothing of it runs
                    break
                timing = {"seconds": rec["seconds"], "tokens": gen.output_tokens}
                if parsed.thought:
                    step("thought", turn, text=parsed.thought, **timing)
                    timing = {}
                if parsed.kind == "final":
                    step("final", turn, text=parsed.answer, **timing)
                    trace.answer, trace.status = parsed.answer, "answered"
                    break
                observation = act(parsed, turn, timing)
                more = []  # an endpoint may ask for several calls at once: each runs, in order
                for i, extra in enumerate(parsed.more, 1):
                    more.append(Turn(gen.text, extra, act(extra, turn, {}), call_id=extra.call_id or f"call_{turn}_{i}"))
                history.append(Turn(gen.text, parsed, observation, call_id=parsed.call_id or f"call_{turn}",
                                    more=more))
            else:
                trace.status = "max_turns"
        except Exception as e:
            trace.status = "error"
            step("error", len(trace.turns), text=f"{type(e).__name__}: {e}", error_kind="backend",
                 text_zh=f"{ERROR_KINDS_ZH['backend']}：{type(e).__name__}: {zh_of(e)}")
            raise
        finally:
            trace.seconds = round(time.perf_counter() - t_start, 4)
            em.emit("done", status=trace.status, answer=trace.answer, seconds=trace.seconds)
        return trace


# ---- success on tasks with a numeric answer ---------------------------------------------------------
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def has_number(answer: str | None, expected, question: str = "") -> bool:
    """Whether ``answer`` states the number ``expected`` (a whole number token, not one that only
    repeats a number of the ``question``)."""
    if not answer:
        return False
    want = float(expected)
    given = set(_NUM.findall(question.replace(",", "")))
    for m in _NUM.findall(answer.replace(",", "")):
        if m in given:
            continue
        try:
            if abs(float(m) - want) < 1e-6 * max(1.0, abs(want)):
                return True
        except ValueError:
            continue
    return False
