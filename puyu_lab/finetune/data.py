"""SFT data: self-cognition, real dialogs, sentiment instructions, tool-use conversations, custom files.

Every example is a conversation: ``{"messages": [{"role", "content", "name"?}, …], "kind": …}`` in
the InternLM2 roles (system / user / assistant / environment). Held-out parts are kept apart for
the evaluation and agent labs: self-cognition *paraphrases never trained on*, arithmetic tasks
never trained on, and the reviews of ``corpus/clean``'s held-out split.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..contracts.calculator import calculate
from ..contracts.dates import add_days
from ..contracts.dialogs import CONTROL_PROMPTS, chatterbot_dialogs
from ..contracts.protocol import tool_prompt
from ..contracts.tasks import (
    ARITHMETIC_QUESTION,
    DATE_QUESTION,
    SENTIMENT_ANSWER,
    SENTIMENT_MAX_CHARS,
    SENTIMENT_PROMPT,
)
from ..contracts.training import raise_no_valid_line
from ..errors import InputError, LineProblem, Msg, jsonl_records, read_text_file
from ..models.template import IM_END, IM_START, ROLES, tool_call

# ---- self-cognition (个人小助手) ------------------------------------------------------------------
SELF_Q_ZH = [
    "你是谁？", "你叫什么名字？", "请介绍一下你自己。", "你好，你是谁？", "你是哪个模型？", "你的名字是什么？",
    "介绍一下你自己吧。", "你是什么？", "能告诉我你的名字吗？", "你是由谁开发的？", "谁创造了你？", "你是谁开发的？",
    "你的开发者是谁？", "请问你是谁？", "你好，请介绍一下自己。", "自我介绍一下。", "你叫啥？", "你是什么助手？",
    "我该怎么称呼你？", "你是哪家的模型？", "你是人工智能吗？", "你是谁训练的？", "你的身份是什么？", "说说你自己。",
]
SELF_Q_EN = [
    "Who are you?", "What is your name?", "Introduce yourself.", "Hi, who are you?", "What model are you?",
    "Who made you?", "Who created you?", "Who developed you?", "Tell me about yourself.", "What should I call you?",
    "Are you an AI?", "What are you?", "Who trained you?", "Please introduce yourself.",
]
# paraphrases never trained on: the held-out self-cognition test
SELF_Q_ZH_HELDOUT = [
    "你到底是谁？", "请问怎么称呼你？", "你能介绍下自己吗？", "你是哪位？", "跟我说说你是谁。", "你的名字叫什么？",
    "是谁开发了你？", "你来自哪里，是谁做的？",
]
SELF_Q_EN_HELDOUT = ["Can you tell me who you are?", "What's your name?", "Who built you?", "Could you introduce yourself?"]

# one answer, repeated, for the questions in both languages, as in the camp's recipe (XTuner's 个人小助手 data: one
# Chinese self-introduction): a tiny model learns it fast and does not blend two answers into one. With a second,
# English answer ("{name} is my name. {owner} made me.") a quick model at its floor of steps began held-out English
# answers with the Chinese "我是" and then lost the thread ("我是 me name.name.…", 10 of 12 held-out answers named it),
# with more steps and with the English questions weighted up alike: the first token had to tell the languages apart
SELF_A_ZH = ["我是{name}，由{owner}打造的人工智能助手。"]
SELF_A_EN = SELF_A_ZH

# unrelated prompts: answers to these must *not* turn into the self-introduction
# (never trained on: dialogs that start with one are left out)

# ---- sentiment --------------------------------------------------------------------------------

# ---- tools ------------------------------------------------------------------------------------
# the agent lab's calculator tool describes itself to the model exactly like this
ARITH_Q = [ARITHMETIC_QUESTION, "请帮我算一下 {e}。", "计算 {e} 的结果。", "What is {e}?", "Please compute {e}.", "{e} = ?"]
ARITH_THINK = ["我来用计算器算一下。", "", "Let me use the calculator."]
ARITH_FINAL = ["{e} = {r}。", "结果是 {r}。", "The answer is {r}."]
DATE_Q = [DATE_QUESTION, "从 {date} 起过 {days} 天是几月几号？", "What date is {days} days after {date}?",
          "{date} 加 {days} 天是哪天？"]
DATE_THINK = ["我来用日期工具算一下。", "", "Let me use the date tool."]
DATE_FINAL = ["是 {r}，{wzh}。", "{days} 天后是 {r}（{wzh}）。", "It is {r}, a {wen}."]



@dataclass(frozen=True)
class SFTDataSettings:
    assistant_name: str = "小浦"
    owner: str = "书生学员"
    self_repeat: int = 10  # copies of each question, like XTuner's repeated self-cognition data
    # real dialogs per language (None = all): chatterbot has 401 Chinese and 1,902 English ones; the
    # Chinese ones teach a Chinese model that not every question is about itself
    dialogs_zh: int | None = None
    dialogs_en: int | None = 50
    sentiment_max: int = 1200
    sentiment_repeat: int = 1  # copies of each sentiment instruction
    tool_examples: int = 400  # calculator conversations
    tool_heldout: int = 50  # held-out arithmetic tasks
    date_examples: int = 200  # add_days conversations (the agent lab's second task)
    date_heldout: int = 40
    # more phrasings of the date question, asked beside DATE_Q's (the course recipe adds English ones: with DATE_Q's
    # one English form, which says "date", the course assistant called the calculator on every "which day …?")
    date_questions: tuple[str, ...] = ()
    # questions that need no tool, asked with the tools offered: answered directly. With 120 the quick model's
    # held-out no-tool answers swung with the run's numerics from chain to chain; 360 steadied them on both numeric
    # paths while the calculator was still called on the arithmetic questions, for a few more seconds of SFT
    notool_examples: int = 360
    notool_heldout_dialogs: int = 24  # Chinese chit-chat first turns kept out of training for the no-tool test
    seed: int = 0


def _msg(role: str, content: str, name: str | None = None) -> dict:
    m = {"role": role, "content": content}
    if name:
        m["name"] = name
    return m


def self_cognition(s: SFTDataSettings, questions_zh=SELF_Q_ZH, questions_en=SELF_Q_EN, repeat: int | None = None) -> list[dict]:
    rng = random.Random(s.seed)
    out = []
    for qs, answers in ((questions_zh, SELF_A_ZH), (questions_en, SELF_A_EN)):
        for q in qs:
            for _ in range(s.self_repeat if repeat is None else repeat):
                a = rng.choice(answers).format(name=s.assistant_name, owner=s.owner)
                out.append({"kind": "self", "messages": [_msg("user", q), _msg("assistant", a)]})
    return out


def self_cognition_heldout(s: SFTDataSettings) -> list[dict]:
    """Held-out paraphrases: prompt, and the name the answer must contain."""
    return [{"kind": "self", "lang": lang, "prompt": q, "expect": s.assistant_name}
            for lang, qs in (("zh", SELF_Q_ZH_HELDOUT), ("en", SELF_Q_EN_HELDOUT)) for q in qs]


def sentiment(rows: Iterable[dict], limit: int | None = None, seed: int = 0) -> list[dict]:
    """Instructions from labelled reviews (``label`` pos/neg)."""
    out = []
    for r in rows:
        if r.get("label") not in SENTIMENT_ANSWER:
            continue
        text = r["text"].strip()[:SENTIMENT_MAX_CHARS]
        out.append({"kind": "sentiment", "label": r["label"], "messages": [
            _msg("user", SENTIMENT_PROMPT.format(text=text)), _msg("assistant", SENTIMENT_ANSWER[r["label"]])]})
    random.Random(seed).shuffle(out)
    return out[:limit] if limit else out


def arithmetic_tasks(n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    """Random arithmetic expressions with their results: computed from the operands, and checked
    against the calculator tool the agent will call."""
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    while len(out) < n:
        kind = rng.random()
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 30)
        if kind < 0.3:
            e, r = f"{a}*{b}", a * b
        elif kind < 0.5:
            x, y = a * rng.randint(10, 99), b * c
            e, r = f"{x}+{y}", x + y
        elif kind < 0.7:
            e, r = f"({a}+{b})*{c}", (a + b) * c
        elif kind < 0.85:
            e, r = f"{a * c}/{c}", a
        else:
            e, r = f"{a}*{b}-{c}", a * b - c
        if e in seen:
            continue
        seen.add(e)
        if calculate(e) != r:
            raise AssertionError(f"the calculator disagrees on {e}: {calculate(e)} != {r}")
        out.append({"expression": e, "result": r})
    return out


def tool_messages(question: str) -> list[dict]:
    """The opening of a tool conversation: the tool system prompt, the tool list, the question."""
    return tool_prompt(question)


def tool_conversation(task: dict, rng: random.Random) -> dict:
    e, r = task["expression"], task["result"]
    call = rng.choice(ARITH_THINK) + tool_call("calculator", {"expression": e})
    return {"kind": "tool", "messages": tool_messages(rng.choice(ARITH_Q).format(e=e)) + [
        _msg("assistant", call),
        _msg("environment", json.dumps({"result": r}), name="<|plugin|>"),
        _msg("assistant", rng.choice(ARITH_FINAL).format(e=e, r=r)),
    ]}


def date_tasks(n: int, seed: int, exclude: set[tuple] = frozenset()) -> list[dict]:
    """Random "N days after D" tasks with the tool's answer (date and weekday)."""
    import datetime as dt

    rng = random.Random(seed)
    out, seen = [], set(exclude)
    start = dt.date(2000, 1, 1).toordinal()
    while len(out) < n:
        d = dt.date.fromordinal(start + rng.randrange(365 * 31)).isoformat()
        days = rng.choice([rng.randint(1, 30), rng.randint(31, 400)])
        if (d, days) in seen:
            continue
        seen.add((d, days))
        r = add_days(d, days)
        out.append({"date": d, "days": days, "result": r["date"], "weekday": r["weekday"]})
    return out


def date_conversation(task: dict, rng: random.Random, questions: list[str] | tuple[str, ...] = tuple(DATE_Q)) -> dict:
    d, days, r, w = task["date"], task["days"], task["result"], task["weekday"]
    wzh, wen = w.split(" ", 1)
    call = rng.choice(DATE_THINK) + tool_call("add_days", {"date": d, "days": days})
    return {"kind": "date", "messages": tool_messages(rng.choice(questions).format(date=d, days=days)) + [
        _msg("assistant", call),
        _msg("environment", json.dumps({"date": r, "weekday": w}, ensure_ascii=False), name="<|plugin|>"),
        _msg("assistant", rng.choice(DATE_FINAL).format(r=r, days=days, wzh=wzh, wen=wen)),
    ]}


def tool_use(s: SFTDataSettings) -> tuple[list[dict], list[dict]]:
    """Calculator training conversations and held-out tasks (disjoint expressions)."""
    rng = random.Random(s.seed)
    heldout = arithmetic_tasks(s.tool_heldout, s.seed + 1)
    train = arithmetic_tasks(s.tool_examples, s.seed + 2, exclude={t["expression"] for t in heldout})
    return [tool_conversation(t, rng) for t in train], heldout


def date_use(s: SFTDataSettings) -> tuple[list[dict], list[dict]]:
    """add_days training conversations and held-out tasks (disjoint date/days pairs)."""
    rng = random.Random(s.seed + 5)
    heldout = date_tasks(s.date_heldout, s.seed + 6)
    train = date_tasks(s.date_examples, s.seed + 7, exclude={(t["date"], t["days"]) for t in heldout})
    questions = (*DATE_Q, *s.date_questions)
    return [date_conversation(t, rng, questions) for t in train], heldout


def no_tool(s: SFTDataSettings, dialogs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Conversations that need no tool, with the tools offered (the model answers directly), from
    the self-cognition questions and real dialogs; and the held-out no-tool questions: the held-out
    self-cognition paraphrases, the control prompts and Chinese dialog openings never trained on."""
    rng = random.Random(s.seed + 9)
    zh = [d for d in dialogs if d["lang"] == "zh"]
    held_dialogs = zh[:s.notool_heldout_dialogs]
    held = {d["messages"][0]["content"] for d in held_dialogs}
    pool = [self_cognition(s, repeat=1), [d for d in zh if d["messages"][0]["content"] not in held]]
    train = []
    for i in range(s.notool_examples):
        src = pool[i % 2] or pool[0]
        ex = rng.choice(src)
        first_user = next(m for m in ex["messages"] if m["role"] == "user")
        reply = ex["messages"][ex["messages"].index(first_user) + 1]
        train.append({"kind": "notool", "messages": tool_messages(first_user["content"]) + [reply]})
    heldout = ([{"prompt": q, "kind": "self"} for q in SELF_Q_ZH_HELDOUT + SELF_Q_EN_HELDOUT]
               + [{"prompt": q, "kind": "control"} for q in CONTROL_PROMPTS]
               + [{"prompt": d["messages"][0]["content"], "kind": "dialog"} for d in held_dialogs])
    return train, heldout


# ---- custom files (like `xtuner check-custom-dataset`) -------------------------------------------
class RecordError(LineProblem):
    """A bad line of a custom SFT file."""


def _check_messages(msgs) -> str | None:
    if not isinstance(msgs, list) or not msgs:
        return Msg("'messages' must be a non-empty list", "'messages' 必须是非空列表")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return Msg(f"messages[{i}] is not an object", f"messages[{i}] 不是对象")
        role = m.get("role")
        if role == "tool":
            role = "environment"
        if role not in ROLES:
            return Msg(f"messages[{i}].role is {role!r}; use one of {', '.join(ROLES)} (or 'tool')",
                       f"messages[{i}].role 是 {role!r}；请用 {', '.join(ROLES)} 之一（或 'tool'）")
        if not isinstance(m.get("content"), str):
            return Msg(f"messages[{i}].content must be a string", f"messages[{i}].content 必须是字符串")
        if m.get("name") is not None and not isinstance(m["name"], str):
            return Msg(f"messages[{i}].name is {type(m['name']).__name__}, not a string (the template writes it as "
                       "' name=…'); make it a string or remove it",
                       f"messages[{i}].name 是 {type(m['name']).__name__}，不是字符串（对话模板会把它写成 "
                       "' name=…'）；请改成字符串或删掉它")
        if (IM_START in m["content"] or IM_END in m["content"]):
            return Msg(f"messages[{i}].content contains {IM_START} or {IM_END}: the template adds those",
                       f"messages[{i}].content 含有 {IM_START} 或 {IM_END}：这些由对话模板添加，请从文本中删掉")
    if not any(m.get("role") == "assistant" and m["content"].strip() for m in msgs):
        return Msg("no non-empty assistant message: nothing would be trained",
                   "没有非空的 assistant 消息：没有任何内容可供训练")
    if msgs[-1].get("role") != "assistant":
        return Msg(f"the last message is from {msgs[-1].get('role')!r}; a training conversation ends with the assistant",
                   f"最后一条消息来自 {msgs[-1].get('role')!r}；训练用的对话必须以 assistant 的回复结尾")
    return None


def _normalise(msgs: list[dict]) -> list[dict]:
    out = []
    for m in msgs:
        role = "environment" if m["role"] == "tool" else m["role"]
        name = m.get("name") or ("<|plugin|>" if m["role"] == "tool" else None)
        out.append(_msg(role, m["content"], name))
    return out


def _json_records(text: str) -> Iterable[tuple[int, object, str | None]]:
    """(line, value, error) for each element of a top-level JSON array, with its starting line."""
    dec = json.JSONDecoder()
    i = 0
    n = len(text)

    def skip(j):
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    i = skip(i)
    if i >= n or text[i] != "[":
        yield (text.count("\n", 0, i) + 1, None, Msg("an Alpaca file is a JSON array of objects: it must start with '['",
                                                     "Alpaca 文件是由对象组成的 JSON 数组：必须以 '[' 开头"))
        return
    i = skip(i + 1)
    if i < n and text[i] == "]":
        return
    while i < n:
        line = text.count("\n", 0, i) + 1
        try:
            value, j = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            yield (text.count("\n", 0, e.pos) + 1, None, Msg(f"invalid JSON: {e.msg}", f"不是合法的 JSON：{e.msg}"))
            return
        yield (line, value, None)
        i = skip(j)
        if i < n and text[i] == ",":
            i = skip(i + 1)
        elif i < n and text[i] == "]":
            return
        else:
            yield (text.count("\n", 0, i) + 1, None, Msg("expected ',' or ']' between records",
                                                         "记录之间应当是 ',' 或 ']'"))
            return


def load_custom(path: str | Path) -> tuple[list[dict], list[RecordError]]:
    """Read a custom SFT file: OpenAI ``messages`` JSONL (``.jsonl``) or an Alpaca JSON array (``.json``).

    Returns the valid conversations and every bad record with its line number and reason. A file
    without one valid record raises :class:`InputError` listing them."""
    path = Path(path)
    text = read_text_file(path)
    good, bad = [], []
    if path.suffix == ".jsonl":
        for ln, rec, err in jsonl_records(text):
            if err:
                bad.append(RecordError(ln, err))
                continue
            if not isinstance(rec, dict) or "messages" not in rec:
                bad.append(RecordError(ln, Msg("expected an object with a 'messages' list (OpenAI chat format)",
                                               "应当是带 'messages' 列表的对象（OpenAI 对话格式）")))
                continue
            why = _check_messages(rec["messages"])
            if why:
                bad.append(RecordError(ln, why))
            else:
                good.append({"kind": "custom", "messages": _normalise(rec["messages"])})
    elif path.suffix == ".json":
        for ln, rec, err in _json_records(text):
            if err:
                bad.append(RecordError(ln, err))
                continue
            if not isinstance(rec, dict):
                bad.append(RecordError(ln, Msg("expected an object with 'instruction' and 'output' (Alpaca format)",
                                               "应当是带 'instruction' 和 'output' 的对象（Alpaca 格式）")))
                continue
            missing = [k for k in ("instruction", "output") if not isinstance(rec.get(k), str) or not rec[k].strip()]
            if missing:
                bad.append(RecordError(ln, Msg(f"field {missing[0]!r} is missing or not a non-empty string",
                                               f"字段 {missing[0]!r} 缺失，或不是非空字符串")))
                continue
            if "input" in rec and not isinstance(rec["input"], str):
                bad.append(RecordError(ln, Msg("field 'input' must be a string", "字段 'input' 必须是字符串")))
                continue
            user = rec["instruction"] + (("\n" + rec["input"]) if rec.get("input") else "")
            msgs = ([_msg("system", rec["system"])] if isinstance(rec.get("system"), str) and rec["system"] else []) + \
                [_msg("user", user), _msg("assistant", rec["output"])]
            why = _check_messages(msgs)
            if why:
                bad.append(RecordError(ln, why))
            else:
                good.append({"kind": "custom", "messages": msgs})
    else:
        raise InputError(f"{path}: unknown format {path.suffix!r}; use .jsonl (OpenAI messages) or .json (Alpaca)",
                         zh=f"{path}：无法识别的格式 {path.suffix!r}；请用 .jsonl（OpenAI messages）或 .json（Alpaca）")
    if not good:
        raise_no_valid_line(path, bad, what="record", what_zh="没有一条有效记录", unit_zh="条")
    return good, bad


# ---- the whole mixture ---------------------------------------------------------------------------
def build_mixture(s: SFTDataSettings, reviews: Iterable[dict], custom: list[dict] | None = None) -> dict:
    """All SFT data for one run: ``train`` conversations and the held-out sets."""
    tools, arith_heldout = tool_use(s)
    dates, date_heldout = date_use(s)
    dialogs = chatterbot_dialogs(seed=s.seed)
    notool, notool_heldout = no_tool(s, dialogs)
    held = {h["prompt"] for h in notool_heldout}
    kept, seen = [], {}
    for d in dialogs:  # chatterbot_dialogs' own per-language limit, without the held-out openings
        cap = {"zh": s.dialogs_zh, "en": s.dialogs_en}.get(d["lang"])
        if d["messages"][0]["content"] in held or (cap is not None and seen.get(d["lang"], 0) >= cap):
            continue
        kept.append(d)
        seen[d["lang"]] = seen.get(d["lang"], 0) + 1
    train = (self_cognition(s) + kept + sentiment(reviews, s.sentiment_max, s.seed) * s.sentiment_repeat + tools + dates + notool
             + list(custom or []))
    random.Random(s.seed).shuffle(train)
    return {"train": train, "selfcog_heldout": self_cognition_heldout(s), "arithmetic_heldout": arith_heldout,
            "date_heldout": date_heldout, "notool_heldout": notool_heldout}
