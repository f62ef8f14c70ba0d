"""The built-in tools: calculator, Python interpreter, corpus search (BM25) and date arithmetic.

``default_registry(ws)`` returns all of them; the calculator's and add_days' schemas are shared
contracts (:mod:`puyu_lab.contracts.calculator`, :mod:`puyu_lab.contracts.dates`), which the
fine-tune lab's tool-use conversations show the model.
"""
from __future__ import annotations

import re
import threading

from ..contracts.calculator import (CALCULATOR_DESCRIPTION, CALCULATOR_SCHEMA, EXPRESSION_PATTERN, CalculatorError,
                                   calculate)
from ..contracts.dates import ADD_DAYS_DESCRIPTION, ADD_DAYS_SCHEMA, DATE_PATTERN, DateError, add_days, parse_date
from ..contracts.retrieval import search_tokens
from ..errors import Msg, zh_of
from .sandbox import Limits, SandboxUnavailable, run_python
from .tools import Tool, ToolError, ToolRegistry, make_tool

def _calculator(expression: str) -> dict:
    try:
        return {"result": calculate(expression)}
    except CalculatorError as e:
        # the reason comes from the shared contract (puyu_lab.contracts.calculator): the model reads its English
        # (the language of its tool-use training data), a learner reading Chinese the trace's Chinese
        raise ToolError(Msg(f"calculator: {e.en}", f"计算器：{zh_of(e)}")) from None


calculator = Tool(CALCULATOR_SCHEMA["name"], CALCULATOR_DESCRIPTION, CALCULATOR_SCHEMA["parameters"], _calculator,
                  patterns={"expression": EXPRESSION_PATTERN})


def python_tool(limits: Limits | None = None) -> Tool:
    lim = limits or Limits()

    def python(code: str) -> str:
        """Run Python code in a sandbox and return what it prints (the last expression is shown).

        code: Python source (standard library only); no files outside its folder, no network, no processes
        """
        try:
            return run_python(code, lim).observation()
        except SandboxUnavailable as e:  # no isolation here: the model (and the trace) read why, and the fix
            raise ToolError(Msg(str(e), "本机无法启动沙箱，代码没有运行；`puyu-lab doctor` 会说明缺什么、怎么装。"
                                        f"原文：{e}")) from None

    t = make_tool(python)
    t.description += f" Limits: {lim.wall_s:g} s, {lim.memory_mb} MB, {lim.max_output} characters of output."
    return t


def _add_days(date: str, days: int) -> dict:
    try:
        return add_days(date, days)
    except DateError as e:
        raise ToolError(Msg(e.en, zh_of(e))) from None


add_days_tool = Tool(ADD_DAYS_SCHEMA["name"], ADD_DAYS_DESCRIPTION, ADD_DAYS_SCHEMA["parameters"], _add_days,
                     patterns={"date": DATE_PATTERN})


def days_between(start: str, end: str) -> dict:
    """The number of days from one date to another.

    start: an ISO date, e.g. 2024-05-01
    end: an ISO date, e.g. 2024-10-01
    """
    try:
        a, b = parse_date(start, "start"), parse_date(end, "end")
    except DateError as e:
        raise ToolError(Msg(e.en, zh_of(e))) from None
    return {"days": (b - a).days}


# ---- corpus search (terms: contracts.retrieval.search_tokens, shared with the RAG lab) ----------------------


class CorpusIndex:
    """BM25 (bm25s) over the documents of ``corpus/clean``; built once, on first use."""

    def __init__(self, docs: list[dict], snippet_chars: int = 120):
        import bm25s

        self.docs, self.snippet_chars = docs, snippet_chars
        self.bm25 = bm25s.BM25()
        self.bm25.index([search_tokens(d["text"]) or ["∅"] for d in docs], show_progress=False)

    @classmethod
    def from_workspace(cls, ws, corpus: str = "corpus/clean", split: str = "train") -> "CorpusIndex":
        from ..artifacts import load_corpus

        ds = load_corpus(ws, split, corpus)
        cols = [c for c in ("id", "source", "text") if c in ds.column_names]
        return cls(ds.select_columns(cols).to_list())

    def search(self, query: str, k: int = 3) -> list[dict]:
        terms = search_tokens(query)
        if not terms:
            raise ToolError(Msg("the query has no words to search for", "查询里没有可以检索的词"))
        k = max(1, min(int(k), 10, len(self.docs)))
        idx, scores = self.bm25.retrieve([terms], k=k, show_progress=False)
        out = []
        for i, s in zip(idx[0], scores[0]):
            if s <= 0:
                continue
            d = self.docs[int(i)]
            text = re.sub(r"\s+", " ", d["text"]).strip()
            out.append({"id": d.get("id", int(i)), "source": d.get("source"), "score": round(float(s), 2),
                        "text": text[:self.snippet_chars] + ("…" if len(text) > self.snippet_chars else "")})
        return out


def search_tool(ws, corpus: str = "corpus/clean") -> Tool:
    ws = ws.for_stage("agent")  # bound now: the search's later read, in whatever thread, is checked too
    lock, holder = threading.Lock(), {}

    def search(query: str, k: int = 3) -> list:
        """Search the cleaned corpus (书生·万卷 lab) and return the best-matching passages.

        query: words to look for (Chinese or English)
        k: how many passages to return (1-10)
        """
        with lock:
            if "index" not in holder:
                holder["index"] = CorpusIndex.from_workspace(ws, corpus)
        return holder["index"].search(query, k) or Msg("no passage matches", "没有匹配的段落")

    return make_tool(search)


def default_registry(ws=None, *, python_limits: Limits | None = None) -> ToolRegistry:
    """All built-in tools (corpus search only with a workspace that has ``corpus/clean``)."""
    reg = ToolRegistry()
    reg.add(calculator)
    reg.add(python_tool(python_limits))
    reg.add(add_days_tool)
    between = make_tool(days_between)
    between.patterns = {"start": DATE_PATTERN, "end": DATE_PATTERN}
    reg.add(between)
    if ws is not None and ws.exists("corpus/clean"):
        reg.add(search_tool(ws))
    return reg
