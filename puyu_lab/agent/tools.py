"""Tools, AgentLego-style: a Python callable plus the JSON-schema description the model sees.

    registry = ToolRegistry()

    @registry.tool
    def add_days(date: str, days: int) -> str:
        '''Add a number of days to a date.

        date: an ISO date, e.g. 2024-05-01
        days: how many days to add (negative goes back)
        '''

The schema (name, description, parameters) comes from the signature and the docstring: type hints
become JSON types, ``name: text`` lines of the docstring describe the parameters, parameters
without a default are required. ``registry.call(name, args)`` validates the arguments against the
schema first and turns every problem into a :class:`ToolError` whose message is written for the
model (it becomes the next observation). The model reads it in English, the language of its tool-use training
data; each message of this module carries its Chinese too (a :class:`~puyu_lab.errors.Msg`), which the trace
shows a learner who reads Chinese (:meth:`ToolResult.as_text_zh`).
"""
from __future__ import annotations

import inspect
import json
import re
import time
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InputError, Msg, zh_of

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
_JSON_TYPES_ZH = {"string": "字符串（string）", "integer": "整数（integer）", "number": "数字（number）",
                  "boolean": "布尔值（boolean）", "array": "数组（array）", "object": "对象（object）"}


class ToolDefinitionError(InputError, TypeError):
    """A function that cannot be described to a model as a tool (your own tool in the agent lab): what to change."""


class ToolError(Exception):
    """A failed call, explained for the model (unknown tool, bad arguments, the tool's own error). Its message may
    be a :class:`~puyu_lab.errors.Msg`: the model reads the English, a learner reading Chinese the ``.zh``."""

    @property
    def message(self) -> str:
        """The message as raised (a Msg keeps its Chinese; ``str(err)`` is the English alone)."""
        return self.args[0] if self.args and isinstance(self.args[0], str) else str(self)


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of an object
    fn: Callable[..., Any]
    # parameter → a regex its string value must match under constrained decoding (agent.constrained);
    # the model is not shown it (the prompt stays short)
    patterns: dict = field(default_factory=dict)

    @property
    def schema(self) -> dict:
        """What the model sees (InternLM2 / OpenAI function description)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, args: Any) -> dict:
        """The arguments coerced to the schema, or a :class:`ToolError` naming the field and the fix."""
        if args is None:
            args = {}
        if isinstance(args, str) and len(self.parameters.get("properties", {})) == 1:
            args = {next(iter(self.parameters["properties"])): args}  # a bare value for a one-argument tool
        if not isinstance(args, dict):
            raise ToolError(Msg(f"arguments of {self.name} must be a JSON object like "
                                f"{example_args(self)}, got {type(args).__name__}",
                                f"{self.name} 的参数必须是 JSON 对象，例如 {example_args(self)}；"
                                f"收到的是 {type(args).__name__}"))
        props, required = self.parameters.get("properties", {}), self.parameters.get("required", [])
        unknown = [k for k in args if k not in props]
        if unknown:
            raise ToolError(Msg(f"{self.name} has no parameter {', '.join(map(repr, unknown))}; "
                                f"its parameters are: {', '.join(props) or '(none)'}",
                                f"{self.name} 没有参数 {'、'.join(map(repr, unknown))}；"
                                f"它的参数是：{'、'.join(props) or '（无）'}"))
        missing = [k for k in required if k not in args]
        if missing:
            raise ToolError(Msg(f"{self.name} needs the parameter {', '.join(map(repr, missing))}, "
                                f"e.g. {example_args(self)}",
                                f"{self.name} 缺少参数 {'、'.join(map(repr, missing))}，例如 {example_args(self)}"))
        out = {}
        for k, v in args.items():
            want = props[k].get("type")
            out[k] = _coerce(self.name, k, v, want)
        return out


def _coerce(tool: str, key: str, v: Any, want: str | None) -> Any:
    if want is None:
        return v
    if want == "string":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, str):
            return v
    elif want == "integer":
        if isinstance(v, bool):
            pass
        elif isinstance(v, int):
            return v
        elif isinstance(v, float) and v.is_integer():
            return int(v)
        elif isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            return int(v)
    elif want == "number":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
    elif want == "boolean":
        if isinstance(v, bool):
            return v
    elif want == "array" and isinstance(v, list):
        return v
    elif want == "object" and isinstance(v, dict):
        return v
    article = "an" if want[0] in "aeiou" else "a"
    got = json.dumps(v, ensure_ascii=False)
    raise ToolError(Msg(f"parameter {key!r} of {tool} must be {article} {want}, got {got}",
                        f"{tool} 的参数 {key!r} 必须是 {_JSON_TYPES_ZH.get(want, want)}，收到的是 {got}"))


def example_args(tool: Tool) -> str:
    ex = {"string": "…", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    props = tool.parameters.get("properties", {})
    return json.dumps({k: ex.get(p.get("type"), "…") for k, p in props.items()}, ensure_ascii=False)


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph and ``name: description`` lines of a docstring."""
    doc = inspect.cleandoc(doc or "")
    summary, params = [], {}
    in_summary = True
    for line in doc.splitlines():
        m = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$", line)
        if m and not in_summary:
            params[m.group(1)] = m.group(2).strip()
        elif not line.strip():
            in_summary = False
        elif in_summary:
            summary.append(line.strip())
    return " ".join(summary), params


def make_tool(fn: Callable, name: str | None = None, description: str | None = None) -> Tool:
    """A :class:`Tool` from a function's signature, type hints and docstring."""
    summary, pdocs = _doc_parts(fn.__doc__ or "")
    hints = typing.get_type_hints(fn)
    props, required = {}, []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {fn.__name__}: *args / **kwargs cannot be described to a model",
                                      zh=f"工具 {fn.__name__}：*args / **kwargs 没法向模型描述，请写出具体的参数")
        t = hints.get(p.name, str)
        origin = typing.get_origin(t) or t
        if origin not in _JSON_TYPES:
            raise ToolDefinitionError(f"tool {fn.__name__}: parameter {p.name!r} has type {t!r}; "
                                      f"use one of str, int, float, bool, list, dict",
                                      zh=f"工具 {fn.__name__}：参数 {p.name!r} 的类型是 {t!r}；"
                                         f"请用 str、int、float、bool、list、dict 之一")
        props[p.name] = {"type": _JSON_TYPES[origin]}
        if p.name in pdocs:
            props[p.name]["description"] = pdocs[p.name]
        if p.default is p.empty:
            required.append(p.name)
    desc = description or summary
    if not desc:
        raise ToolDefinitionError(f"tool {fn.__name__}: give it a docstring; its first line is what the model reads",
                                  zh=f"工具 {fn.__name__}：请给它写 docstring；模型读到的就是 docstring 的第一行")
    return Tool(name or fn.__name__, desc, {"type": "object", "properties": props, "required": required}, fn)


@dataclass
class ToolResult:
    ok: bool
    value: Any  # the tool's return value (ok) or the error message
    seconds: float

    def as_text(self) -> str:
        """The observation the model reads."""
        if not self.ok:
            return f"error: {self.value}"
        v = self.value
        return str(v) if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    def as_text_zh(self) -> str:
        """The same observation for a learner reading Chinese: this package's own words (an error, the sandbox's
        stop line: a :class:`~puyu_lab.errors.Msg`'s ``.zh``) in Chinese, what the tool returned as it is."""
        if not self.ok:
            return f"错误：{zh_of(self.value)}"
        v = self.value
        return zh_of(v) if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


@dataclass
class ToolRegistry:
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool) -> Tool:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tool.name):
            raise ToolDefinitionError(f"tool name {tool.name!r}: use letters, digits and _ (it goes into JSON and "
                                      "ReAct text)",
                                      zh=f"工具名 {tool.name!r}：只能用字母、数字和 _（它会写进 JSON 和 ReAct 文本）")
        self.tools[tool.name] = tool
        return tool

    def tool(self, fn: Callable | None = None, *, name: str | None = None, description: str | None = None):
        """Decorator: ``@registry.tool`` or ``@registry.tool(name=…, description=…)``."""
        def wrap(f):
            self.add(make_tool(f, name, description))
            return f
        return wrap(fn) if fn is not None else wrap

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def __iter__(self):
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def schemas(self) -> list[dict]:
        return [t.schema for t in self.tools.values()]

    def subset(self, *names: str) -> "ToolRegistry":
        return ToolRegistry({n: self.get(n) for n in names})

    def get(self, name: str) -> Tool:
        if name not in self.tools:
            close = [n for n in self.tools if n.lower() == str(name).lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            hint_zh = f"（是不是想用 {close[0]!r}？）" if close else ""
            raise ToolError(Msg(f"there is no tool {name!r}{hint}; the tools are: {', '.join(self.tools) or '(none)'}",
                                f"没有名为 {name!r} 的工具{hint_zh}；可用的工具：{'、'.join(self.tools) or '（无）'}"))
        return self.tools[name]

    def call(self, name: str, args: Any) -> ToolResult:
        t0 = time.perf_counter()
        try:
            tool = self.get(name)
            kwargs = tool.validate(args)
            value = tool.fn(**kwargs)
            return ToolResult(True, value, time.perf_counter() - t0)
        except ToolError as e:
            return ToolResult(False, e.message, time.perf_counter() - t0)
        except Exception as e:  # the tool's own failure is an observation too
            return ToolResult(False, Msg(f"{name} failed: {type(e).__name__}: {e}",
                                         f"{name} 运行出错：{type(e).__name__}: {e}"), time.perf_counter() - t0)
