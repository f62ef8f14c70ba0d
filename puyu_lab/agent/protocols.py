"""How an agent talks to a model: the prompt it builds and how it reads the model's reply.

* :class:`InternLM2Protocol` — InternLM2's function-call format (what the fine-tune lab trained)::

      <|im_start|>system name=<|plugin|>
      [{"name": "calculator", "description": …, "parameters": {…}}]<|im_end|>
      …
      <|im_start|>assistant
      thought<|action_start|><|plugin|>
      {"name": "calculator", "parameters": {"expression": "12*7"}}<|action_end|>
      <|im_end|>
      <|im_start|>environment name=<|plugin|>
      {"result": 84}<|im_end|>

  ``<|interpreter|>`` instead of ``<|plugin|>`` sends code to the ``python`` tool.
* :class:`ReActProtocol` — Thought / Action / Action Input / Observation / Final Answer text.

Parsing is forgiving where the intent is unambiguous (a missing ``<|action_end|>``, single quotes,
``arguments`` for ``parameters``, a bare value for a one-parameter tool, special tokens an endpoint
stripped) and notes every repair. Where it is not, the reply becomes a :class:`Parsed` of kind
``error`` whose ``error`` text tells the model exactly what was wrong and how to write it — it is
returned to the model as the next observation. The model reads it in English (its tool-use training data's
language); each error is a :class:`~puyu_lab.errors.Msg` whose ``.zh`` is what a learner reading Chinese sees
(``Parsed.error_zh``, the trace's ``text_zh``).

One module, ~450 lines, on purpose: both protocols share the call checking, the error texts the model reads and
the repair notes, and a reader compares the two formats side by side.
"""
from __future__ import annotations

import ast
import json
import re
from abc import ABC, abstractmethod
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contracts.tasks import TOOL_SYSTEM
from ..errors import Msg, zh_of
from ..models.template import ACTION_END, ACTION_START, INTERPRETER, PLUGIN
from .tools import ToolError, ToolRegistry

END_MARKS = ("<|im_end|>", "</s>", "<|endoftext|>")

# error kinds (also what the tests and the trace panel's diagnosis key on)
NO_ACTION, BAD_JSON, UNKNOWN_TOOL, BAD_ARGUMENTS = "no_action", "bad_json", "unknown_tool", "bad_arguments"
# what each kind means, for a learner reading the trace in Chinese (the model reads the English error text itself)
ERROR_KINDS_ZH = {NO_ACTION: "没有标记成工具调用，所以什么也没有运行", BAD_JSON: "调用写得不是合法的 JSON",
                  UNKNOWN_TOOL: "调用了不存在的工具", BAD_ARGUMENTS: "参数不符合工具的 schema", "backend": "模型后端出错"}
NAME_ALIASES = ("tool", "function", "tool_name")  # a call's keys read as "name"
PARAMETER_ALIASES = ("arguments", "args", "params", "input")  # and as "parameters"


@dataclass
class Parsed:
    kind: str  # "call" | "final" | "error"
    raw: str
    thought: str = ""
    tool: str | None = None
    args: dict | None = None
    answer: str | None = None
    error_kind: str | None = None
    error: str | None = None  # written for the model: it becomes the observation (a Msg: .zh for the learner)
    notes: list[str] = field(default_factory=list)  # forgiving repairs that were applied
    call_id: str | None = None  # an endpoint's id of this call (native tool calling)
    more: list["Parsed"] = field(default_factory=list)  # the further calls of the same reply, in order

    @property
    def error_zh(self) -> str | None:
        """The error in Chinese, for a learner (the model reads :attr:`error`, in English)."""
        return None if self.error is None else zh_of(self.error)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.error is not None:
            d["error_zh"] = self.error_zh
        return d


def _with(en: str, zh: str, how) -> Msg:
    """An error of the parse: its English and Chinese, each followed by how to write the call (``how``, a Msg)."""
    return Msg(en + str(how), zh + zh_of(how))


def strip_end(text: str) -> str:
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for m in END_MARKS:
            if text.endswith(m):
                text, changed = text[: -len(m)].rstrip(), True
    return text


def _first_object(text: str) -> str | None:
    """The first balanced ``{…}`` in ``text`` (strings respected)."""
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, None, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == in_str:
                    in_str = None
            elif c in "\"'":
                in_str = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i + 1]
        start = text.find("{", start + 1)
    return None


def loads_forgiving(text: str) -> tuple[Any, list[str]]:
    """JSON, or a JSON-like object a model wrote (code fences, single quotes, trailing text).
    Raises ``ValueError`` with the JSON error's position when nothing works."""
    notes: list[str] = []
    s = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", s, re.S)
    if fence:
        s = fence.group(1)
        notes.append("removed a ``` code fence around the JSON")
    try:
        return json.loads(s, strict=False), notes  # strict=False: raw newlines inside strings
    except json.JSONDecodeError as e:
        first_error = e
    obj = _first_object(s)
    if obj is not None and obj != s:
        try:
            v = json.loads(obj, strict=False)
            notes.append("ignored text around the JSON object")
            return v, notes
        except json.JSONDecodeError:
            pass
    try:
        v = ast.literal_eval(obj or s)  # single quotes, True/False/None
        if isinstance(v, (dict, list)):
            notes.append("read a Python-style literal (single quotes) as JSON")
            return v, notes
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    e = first_error
    raise ValueError(Msg(f"{e.msg} at line {e.lineno} column {e.colno}",
                         f"第 {e.lineno} 行第 {e.colno} 列：{e.msg}")) from None


def _why(e: ValueError) -> Msg:
    """A :func:`loads_forgiving` error's reason, in both languages."""
    m = e.args[0] if e.args else ""
    return m if isinstance(m, Msg) else Msg(str(e), str(e))


def check_call(tools: ToolRegistry, name: Any, args: Any, raw: str, thought: str, notes: list[str],
               how: str) -> Parsed:
    """A call to a known tool with valid arguments, or the error that says which part is wrong."""
    if not isinstance(name, str) or not name:
        return Parsed("error", raw, thought, error_kind=BAD_JSON, notes=notes,
                      error=_with("the call has no tool name; ", "这次调用没有写工具名；", how))
    try:
        tool = tools.get(name)
    except ToolError as e:
        return Parsed("error", raw, thought, tool=name, error_kind=UNKNOWN_TOOL, notes=notes, error=e.message)
    if isinstance(args, str) and len(tool.parameters.get("properties", {})) != 1:
        try:
            args, more = loads_forgiving(args)
            notes = notes + ["the parameters were a JSON string: decoded it"] + more
        except ValueError:
            pass
    try:
        clean = tool.validate(args)
    except ToolError as e:
        return Parsed("error", raw, thought, tool=name, args=args if isinstance(args, dict) else None,
                      error_kind=BAD_ARGUMENTS, notes=notes,
                      error=Msg(f"bad arguments: {e.message}", f"参数有误：{zh_of(e.message)}"))
    return Parsed("call", raw, thought, tool=name, args=clean, notes=notes)


def split_action(rest: str) -> tuple[str, str, list[str]]:
    """After ``<|action_start|>``: the executor, the call up to ``<|action_end|>`` (or the reply's end), notes."""
    executor, notes = "plugin", []
    if rest.startswith(PLUGIN):
        rest = rest[len(PLUGIN):]
    elif rest.startswith(INTERPRETER):
        rest, executor = rest[len(INTERPRETER):], "interpreter"
    else:
        notes.append("no <|plugin|> after <|action_start|>: assumed a plugin call")
    body, end, after = rest.partition(ACTION_END)
    if not end:
        notes.append("no <|action_end|>: took the call up to the end of the reply")
    elif after.strip():
        notes.append("ignored text after <|action_end|>")
    return executor, body, notes


def call_fields(obj: dict) -> tuple[Any, Any, list[str]]:
    """A call object's tool name and parameters, read under an alias where missing (a null name too), and notes."""
    name, args, notes = obj.get("name"), obj.get("parameters"), []
    if name is None and (alias := next((a for a in NAME_ALIASES if a in obj), None)):
        name, notes = obj[alias], notes + [f'read "{alias}" as "name"']
    if "parameters" not in obj and (alias := next((a for a in PARAMETER_ALIASES if a in obj), None)):
        args, notes = obj[alias], notes + [f'read "{alias}" as "parameters"']
    return name, args, notes


@dataclass
class Turn:
    """One earlier model turn, as the next prompt shows it."""
    raw: str
    parsed: Parsed
    observation: str
    call_id: str = "call_0"
    more: list["Turn"] = field(default_factory=list)  # the reply's further calls (an endpoint's tool_calls)


class Protocol(ABC):
    name = "protocol"
    stop: tuple[str, ...] = ()

    @abstractmethod
    def messages(self, question: str, tools: ToolRegistry, history: list[Turn],
                 system: str | None = None) -> list[dict]:
        """The chat messages for ``question`` after the earlier turns of ``history``."""

    @abstractmethod
    def parse(self, text: str, tools: ToolRegistry) -> Parsed:
        """The model's reply read as a call, a final answer or an error to show it."""

    def parse_generation(self, gen, tools: ToolRegistry) -> Parsed:
        return self.parse(gen.text, tools)

    @abstractmethod
    def call_text(self, name: str, args: dict) -> str:
        """How a correct call looks in this protocol (used in error messages and the lab)."""


class InternLM2Protocol(Protocol):
    name = "internlm2"
    # the fine-tune lab's tool conversations start with exactly this system text
    system_prompt = TOOL_SYSTEM

    def messages(self, question, tools, history, system=None):
        msgs = [{"role": "system", "content": system if system is not None else self.system_prompt}]
        if len(tools):
            msgs.append({"role": "system", "name": PLUGIN,
                         "content": json.dumps(tools.schemas(), ensure_ascii=False)})
        msgs.append({"role": "user", "content": question})
        for t in history:
            p = t.parsed
            # a call is shown back in its canonical form (as the fine-tune data writes it)
            said = (p.thought + self.call_text(p.tool, p.args) + "\n") if p.kind == "call" else strip_end(t.raw)
            msgs.append({"role": "assistant", "content": said})
            msgs.append({"role": "environment", "name": PLUGIN, "content": t.observation})
        return msgs

    def call_text(self, name, args):
        return f"{ACTION_START}{PLUGIN}\n" + json.dumps({"name": name, "parameters": args},
                                                        ensure_ascii=False) + ACTION_END

    def _how(self) -> Msg:
        call = '<|action_start|><|plugin|>\n{"name": "<tool>", "parameters": {…}}<|action_end|>'
        return Msg(f"write it as {call}", f"请写成 {call}")

    def parse(self, text, tools):
        raw, text = text, strip_end(text)
        if ACTION_START in text:
            return self._parse_marked(text, raw, tools)
        return self._parse_unmarked(text, raw, tools)

    def _parse_marked(self, text: str, raw: str, tools: ToolRegistry) -> Parsed:
        """A reply with ``<|action_start|>``: the thought before it, then the call of its executor."""
        thought, rest = text.split(ACTION_START, 1)
        executor, body, notes = split_action(rest)
        if executor == "interpreter":
            code = re.sub(r"^\s*```(?:python)?\s*|\s*```\s*$", "", body)
            return check_call(tools, "python", {"code": code}, raw, thought.strip(), notes, self._how())
        return self._plugin_call(body, raw, thought.strip(), notes, tools)

    def _plugin_call(self, body: str, raw: str, thought: str, notes: list[str], tools: ToolRegistry) -> Parsed:
        """A plugin call's JSON object (``{"name": …, "parameters": …}``, or their aliases) as a call."""
        if not body.strip():
            return Parsed("error", raw, thought, error_kind=BAD_JSON, notes=notes,
                          error=_with("the call is empty; ", "调用的内容是空的；", self._how()))
        try:
            obj, more = loads_forgiving(body)
        except ValueError as e:
            why = _why(e)
            return Parsed("error", raw, thought, error_kind=BAD_JSON, notes=notes,
                          error=_with(f"the call is not valid JSON ({why}); ", f"调用不是合法的 JSON（{zh_of(why)}）；",
                                      self._how()))
        notes += more
        if not isinstance(obj, dict):
            got = type(obj).__name__
            return Parsed("error", raw, thought, error_kind=BAD_JSON, notes=notes,
                          error=_with(f"the call must be a JSON object, got {got}; ",
                                      f"调用必须是一个 JSON 对象，收到的却是 {got}；", self._how()))
        name, args, more = call_fields(obj)
        return check_call(tools, name, args, raw, thought, notes + more, self._how())

    def _parse_unmarked(self, text: str, raw: str, tools: ToolRegistry) -> Parsed:
        """A reply without ``<|action_start|>``: a final answer, or a call that is not marked as one."""
        if m_call := re.search(r'\{\s*["\']name["\']\s*:', text):
            return self._bare_json_call(text, raw, tools, m_call.start())
        if PLUGIN in text or ACTION_END in text:
            return Parsed("error", raw, text, error_kind=NO_ACTION,
                          error=_with("a tool call must start with <|action_start|>; ",
                                      "工具调用必须以 <|action_start|> 开头；", self._how()))
        return Parsed("final", raw, answer=text)

    def _bare_json_call(self, text: str, raw: str, tools: ToolRegistry, start: int) -> Parsed:
        """A ``{"name": …}`` object without ``<|action_start|>`` (an endpoint may strip special tokens): the call
        where it names a known tool and has its parameters, otherwise an error that says how to mark it."""
        body, obj, more = _first_object(text), None, []
        if body is None:
            body = text[start:]
        else:
            with suppress(ValueError):
                obj, more = loads_forgiving(body)
        thought = text[:text.find(body)].strip()
        if isinstance(obj, dict) and isinstance(obj.get("name"), str) and obj["name"] in tools \
                and any(k in obj for k in ("parameters", "arguments")):
            notes = ["no <|action_start|> token (an endpoint may strip special tokens): read the JSON call anyway"]
            args = obj.get("parameters", obj.get("arguments"))
            return check_call(tools, obj["name"], args, raw, thought, notes + more, self._how())
        return Parsed("error", raw, thought, error_kind=NO_ACTION,
                      error=_with("this looks like a tool call but it is not marked as one, so nothing ran; ",
                                  "这看起来像一次工具调用，但没有标记成调用，所以什么也没有运行；", self._how()))


class ReActProtocol(Protocol):
    name = "react"
    stop = ("\nObservation:", "Observation:")
    system_prompt = (
        "Answer the question. You can use these tools:\n{tools}\n\n"
        "Use this format:\n"
        "Thought: what to do next\n"
        "Action: the tool name, one of [{names}]\n"
        "Action Input: the tool's parameters as a JSON object\n"
        "Observation: the tool's result (written for you)\n"
        "… (Thought / Action / Action Input / Observation can repeat)\n"
        "Thought: I know the answer\n"
        "Final Answer: the answer"
    )

    def messages(self, question, tools, history, system=None):
        desc = "\n".join(f"{t.name}: {t.description} Parameters: {json.dumps(t.parameters, ensure_ascii=False)}"
                         for t in tools)
        sys_text = system if system is not None else self.system_prompt.format(
            tools=desc, names=", ".join(t.name for t in tools))
        msgs = [{"role": "system", "content": sys_text}, {"role": "user", "content": question}]
        for t in history:
            p = t.parsed
            said = (f"Thought: {p.thought}\n" if p.thought else "") + self.call_text(p.tool, p.args) \
                if p.kind == "call" else strip_end(t.raw)
            msgs.append({"role": "assistant", "content": said})
            msgs.append({"role": "user", "content": f"Observation: {t.observation}"})
        return msgs

    def call_text(self, name, args):
        return f"Action: {name}\nAction Input: {json.dumps(args, ensure_ascii=False)}"

    def _how(self) -> Msg:
        return Msg('write "Action: <tool>" and then "Action Input: {…}" on the next line, or "Final Answer: …"',
                   '先写 "Action: <tool>"，下一行写 "Action Input: {…}"；或者写 "Final Answer: …"')

    def parse(self, text, tools):
        raw = text
        text = strip_end(text)
        notes: list[str] = []
        if "Observation:" in text:
            text = text.split("Observation:", 1)[0].rstrip()
            notes.append("ignored an Observation the model wrote itself")
        m_act = re.search(r"^\s*Action\s*:\s*(.*)$", text, re.M | re.I)
        m_fin = re.search(r"^\s*Final\s*Answer\s*:\s*(.*)", text, re.M | re.I | re.S)
        thought_m = re.search(r"Thought\s*:\s*(.*?)(?=^\s*(?:Action|Final\s*Answer)\s*:|\Z)", text, re.S | re.M | re.I)
        thought = thought_m.group(1).strip() if thought_m else ""
        if m_fin and (not m_act or m_fin.start() < m_act.start()):
            return Parsed("final", raw, thought, answer=m_fin.group(1).strip(), notes=notes)
        if not m_act:
            return Parsed("error", raw, thought or text, error_kind=NO_ACTION, notes=notes,
                          error=_with("neither an Action nor a Final Answer was found; ",
                                      "既没有找到 Action，也没有找到 Final Answer；", self._how()))
        name = m_act.group(1).strip().strip("`'\"[]")
        inline = re.match(r"^(\w+)\s*[\[(](.*)[\])]$", name)
        m_in = re.search(r"^\s*Action\s*Input\s*:\s*(.*)", text[m_act.end():], re.M | re.I | re.S)
        if inline and not m_in:  # Action: calculator[12*7]
            name, arg_text = inline.group(1), inline.group(2)
            notes.append("read the input from Action: tool[…]")
        elif not m_in:
            return Parsed("error", raw, thought, tool=name, error_kind=BAD_ARGUMENTS, notes=notes,
                          error=_with(f"Action: {name} has no Action Input line; ",
                                      f"Action: {name} 后面缺少 Action Input 这一行；", self._how()))
        else:
            arg_text = m_in.group(1).strip()
        if name not in tools:
            return check_call(tools, name, None, raw, thought, notes, self._how())
        tool = tools.get(name)
        try:
            args, more = loads_forgiving(arg_text)
            notes += more
        except ValueError as e:
            if len(tool.parameters.get("properties", {})) == 1:
                args = arg_text.strip().strip("`")
                notes.append("the Action Input was not JSON: used it as the tool's only parameter")
            else:
                why = _why(e)
                return Parsed("error", raw, thought, tool=name, error_kind=BAD_JSON, notes=notes,
                              error=_with(f"the Action Input is not valid JSON ({why}); ",
                                          f"Action Input 不是合法的 JSON（{zh_of(why)}）；", self._how()))
        return check_call(tools, name, args, raw, thought, notes, self._how())


class OpenAIToolsProtocol(Protocol):
    """Native tool calling of an OpenAI-compatible endpoint: the tool list travels in the request,
    calls come back as ``tool_calls``. A reply without ``tool_calls`` is read with the InternLM2
    parser (which also finds a JSON call whose special tokens the server stripped)."""

    name = "openai"

    def __init__(self, system: str | None = None):
        self.system_prompt = system
        self._text = InternLM2Protocol()

    def messages(self, question, tools, history, system=None):
        sys_text = system if system is not None else self.system_prompt
        msgs = ([{"role": "system", "content": sys_text}] if sys_text else []) + [{"role": "user", "content": question}]
        for t in history:
            p = t.parsed
            if p.kind == "call" or t.more:
                # every call of the reply, then one ``tool`` message per call with its id, in order
                calls = [t] + list(t.more)
                msgs.append({"role": "assistant", "content": p.thought or "", "tool_calls": [
                    {"id": c.call_id, "type": "function",
                     "function": {"name": c.parsed.tool or "",
                                  "arguments": json.dumps(c.parsed.args or {}, ensure_ascii=False)}}
                    for c in calls]})
                msgs.extend({"role": "tool", "tool_call_id": c.call_id, "content": c.observation} for c in calls)
            else:
                msgs.append({"role": "assistant", "content": strip_end(t.raw)})
                msgs.append({"role": "user", "content": t.observation})
        return msgs

    def call_text(self, name, args):
        return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)

    def parse(self, text, tools):
        return self._text.parse(text, tools)

    def parse_generation(self, gen, tools):
        if not gen.tool_calls:
            return self.parse(gen.text, tools)
        thought = (gen.text or "").strip()
        parsed = [self._parse_call(c, gen.text, thought, tools) for c in gen.tool_calls]
        first = parsed[0]
        if len(parsed) > 1:
            first.notes = [f"{len(parsed)} tool calls in one reply: each runs, in order"] + first.notes
            first.more = parsed[1:]
        return first

    @staticmethod
    def _parse_call(c: dict, raw: str, thought: str, tools) -> Parsed:
        """One of an endpoint's ``tool_calls`` as a call (or the error that says what is wrong)."""
        notes: list[str] = []
        args = c["arguments"]
        if isinstance(args, str):
            try:
                args, more = loads_forgiving(args) if args.strip() else ({}, [])
                notes += more
            except ValueError as e:
                why = _why(e)
                return Parsed("error", raw, thought, tool=c["name"], error_kind=BAD_JSON, notes=notes,
                              call_id=c.get("id"),
                              error=Msg(f"the arguments of {c['name']} are not valid JSON ({why})",
                                        f"{c['name']} 的参数不是合法的 JSON（{zh_of(why)}）"))
        p = check_call(tools, c["name"], args, raw, thought, notes,
                       Msg("call it with a JSON object of its parameters", "请用一个包含各参数的 JSON 对象来调用它"))
        p.call_id = c.get("id")
        return p


PROTOCOLS = {"internlm2": InternLM2Protocol, "react": ReActProtocol, "openai": OpenAIToolsProtocol}


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        from ..errors import InputError

        raise InputError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}",
                         zh=f"没有 {name!r} 这种协议；可选：{', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]()
