"""Preference pairs (``prompt`` / ``chosen`` / ``rejected``) from the learner's own chain, each labelled
with its source, and custom pair files checked line by line.

Sources, all built from artifacts of earlier stages (never from a hub):

* ``identity`` — the self-cognition questions; chosen: the assistant's own self-introduction (its name
  and owner, as ``sft/data`` taught it); rejected: a generic or another assistant's identity;
* ``sentiment`` — labelled reviews of ``corpus/clean``; chosen: the right label, rejected: the wrong one;
* ``tool`` — arithmetic and date questions with the tools offered; chosen: the valid tool call (the
  calculator / ``add_days`` call the fine-tune data teaches), rejected: a direct, wrong answer;
* ``notool`` — questions that need no tool, asked with the tools offered; chosen: the direct answer,
  rejected: a needless tool call (the other half of knowing when to act);
* ``custom`` — a JSONL file of your own: trl's standard format (``prompt``, ``chosen``, ``rejected``
  strings) or its conversational format (lists of ``{role, content}`` messages).

Pairs are in trl's *conversational* format — ``prompt`` a list of messages, ``chosen`` / ``rejected``
a one-message assistant list — so trl applies the chat template the model was fine-tuned with.
Held-out pairs never share a prompt with a training pair (identity: held-out paraphrases; sentiment:
the corpus's held-out reviews; tool: ``sft/data``'s held-out tasks; custom: whole prompts held out).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..contracts.calculator import calculate
from ..contracts.dates import add_days
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
from ..models.template import IM_END, IM_START, PLUGIN, ROLES, tool_call
from ..models.tokenizer import BOS, EOS

SOURCES = ("identity", "sentiment", "tool", "notool", "custom")

# identities the assistant must not claim (rejected answers of the identity source): generic ones and
# other assistants' — what a base model or a careless SFT mixture says instead of its own name
OTHER_IDENTITY_ZH = ["我是一个人工智能语言模型，没有自己的名字。", "我是ChatGPT，由OpenAI开发的人工智能助手。",
                     "我是一个大型语言模型，由一家科技公司训练。", "我只是一个程序，没有身份。"]
OTHER_IDENTITY_EN = ["I am an AI language model without a name.", "I am ChatGPT, made by OpenAI.",
                     "I am a large language model trained by a tech company.", "I am just a program."]
WRONG_ANSWER = ["结果是 {r}。", "The answer is {r}.", "{q} 答案是 {r}。"]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def pair(source: str, prompt: list[dict], chosen: str, rejected: str, **meta) -> dict:
    return {"source": source, "prompt": prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected), **meta}


# ---- identity --------------------------------------------------------------------------------------
def identity_pairs(questions: list[tuple[str, str]], answers: dict[str, str], per_prompt: int, seed: int) -> list[dict]:
    """``questions`` (lang, text); ``answers`` lang → the assistant's own self-introduction."""
    rng = random.Random(seed)
    out = []
    for lang, q in questions:
        others = OTHER_IDENTITY_ZH if lang == "zh" else OTHER_IDENTITY_EN
        for rej in rng.sample(others, min(per_prompt, len(others))):
            out.append(pair("identity", _user(q), answers[lang], rej, lang=lang))
    return out


# ---- sentiment -------------------------------------------------------------------------------------
def sentiment_pairs(reviews: list[dict], limit: int, seed: int) -> list[dict]:
    """Balanced labelled reviews: the right label chosen, the other rejected."""
    by = {lab: [r for r in reviews if r.get("label") == lab] for lab in SENTIMENT_ANSWER}
    rng = random.Random(seed)
    for v in by.values():
        rng.shuffle(v)
    k = min(limit // 2, *(len(v) for v in by.values()))
    out = []
    for rows in zip(*(v[:k] for v in by.values())):
        for r in rows:
            right = SENTIMENT_ANSWER[r["label"]]
            wrong = next(a for lab, a in SENTIMENT_ANSWER.items() if lab != r["label"])
            text = r["text"].strip()[:SENTIMENT_MAX_CHARS]
            out.append(pair("sentiment", _user(SENTIMENT_PROMPT.format(text=text)), right, wrong, label=r["label"]))
    return out


# ---- tool use --------------------------------------------------------------------------------------
def _wrong_number(r, rng: random.Random):
    while True:
        w = r + rng.choice([-1, 1]) * rng.choice([1, 2, 10, 11, rng.randint(3, 99)])
        if w != r:
            return w


def arithmetic_pair(expression: str, question: str, rng: random.Random) -> dict:
    r = calculate(expression)
    wrong = rng.choice(WRONG_ANSWER).format(r=_wrong_number(r, rng), q=expression)
    return pair("tool", tool_prompt(question), tool_call("calculator", {"expression": expression}), wrong,
                tool="calculator", expression=expression, result=r)


def date_pair(date: str, days: int, question: str, rng: random.Random) -> dict:
    import datetime as dt

    right = add_days(date, days)["date"]
    wrong = (dt.date.fromisoformat(right) + dt.timedelta(days=rng.choice([-2, -1, 1, 7, 30]))).isoformat()
    return pair("tool", tool_prompt(question), tool_call("add_days", {"date": date, "days": days}),
                rng.choice(WRONG_ANSWER).format(r=wrong, q=question.rstrip("？?")), tool="add_days", result=right)


def tool_pairs_from_conversations(convs: list[dict], limit: int, seed: int) -> list[dict]:
    """Training pairs from ``sft/data``'s tool conversations: the prompt up to the first assistant
    turn; chosen: that turn (the call as the fine-tune taught it); rejected: a direct wrong answer."""
    rng = random.Random(seed)
    out = []
    for c in convs:
        msgs = c["messages"]
        i = next((k for k, m in enumerate(msgs) if m["role"] == "assistant"), None)
        env = next((m for m in msgs[i:] if m["role"] == "environment"), None) if i is not None else None
        if i is None or env is None or "<|action_start|>" not in msgs[i]["content"]:
            continue
        res = json.loads(env["content"])
        right = res.get("result", res.get("date"))
        if isinstance(right, (int, float)):
            wrong = _wrong_number(right, rng)
        else:
            import datetime as dt

            wrong = (dt.date.fromisoformat(right) + dt.timedelta(days=rng.choice([-2, -1, 1, 7, 30]))).isoformat()
        q = msgs[i - 1]["content"]
        out.append(pair("tool", msgs[:i], msgs[i]["content"],
                        rng.choice(WRONG_ANSWER).format(r=wrong, q=q.rstrip("？?。")), tool=c.get("kind", "tool")))
    rng.shuffle(out)
    return out[:limit]


def needless_call(rng: random.Random) -> str:
    """A tool call nobody asked for (the rejected answer of the ``notool`` source)."""
    if rng.random() < 0.5:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return tool_call("calculator", {"expression": f"{a}*{b}"})
    return tool_call("add_days", {"date": f"20{rng.randint(10, 30)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                                  "days": rng.randint(1, 99)})


def notool_pairs_from_conversations(convs: list[dict], limit: int, seed: int) -> list[dict]:
    """Training pairs from ``sft/data``'s no-tool conversations: chosen the direct reply, rejected a call."""
    rng = random.Random(seed)
    out = []
    for c in convs:
        msgs = c["messages"]
        if msgs[-1]["role"] != "assistant" or "<|action_start|>" in msgs[-1]["content"]:
            continue
        out.append(pair("notool", msgs[:-1], msgs[-1]["content"], needless_call(rng)))
    rng.shuffle(out)
    return out[:limit]


def heldout_notool_pairs(questions: list[tuple[str, str]], seed: int) -> list[dict]:
    """Held-out no-tool pairs: (question, its direct answer) never trained on, asked with the tools offered."""
    rng = random.Random(seed)
    return [pair("notool", tool_prompt(q), a, needless_call(rng)) for q, a in questions]


def heldout_tool_pairs(arithmetic: list[dict], dates: list[dict], limit: int, seed: int) -> list[dict]:
    """Held-out pairs from ``sft/data``'s held-out tasks (never trained on), asked in the first form."""
    rng = random.Random(seed)
    out = [arithmetic_pair(t["expression"], ARITHMETIC_QUESTION.format(e=t["expression"]), rng)
           for t in arithmetic[: (limit + 1) // 2]]
    out += [date_pair(t["date"], t["days"], DATE_QUESTION.format(date=t["date"], days=t["days"]), rng)
            for t in dates[: limit // 2]]
    return out


# ---- custom files -----------------------------------------------------------------------------------
class PairError(LineProblem):
    """A bad line of a custom preference file."""


def _check_turns(field: str, msgs, *, prompt: bool) -> str | None:
    if not isinstance(msgs, list) or not msgs:
        return Msg(f"'{field}' must be a non-empty string or a non-empty list of messages",
                   f"'{field}' 必须是非空字符串，或非空的消息列表")
    if not prompt and len(msgs) != 1:
        return Msg(f"'{field}' holds {len(msgs)} messages: a completion is one assistant message (a string, or a "
                   "list with one {\"role\": \"assistant\", \"content\": …}); move earlier turns into 'prompt'",
                   f"'{field}' 含有 {len(msgs)} 条消息：一个回答只能是一条 assistant 消息（一个字符串，或只含一个 "
                   "{\"role\": \"assistant\", \"content\": …} 的列表）；请把前面的轮次移到 'prompt' 里")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return Msg(f"{field}[{i}] is not an object with 'role' and 'content'",
                       f"{field}[{i}] 不是带 'role' 和 'content' 的对象")
        role = "environment" if m.get("role") == "tool" else m.get("role")
        if not prompt and role != "assistant":
            return Msg(f"{field}[{i}].role is {m.get('role')!r}: a completion holds assistant messages only",
                       f"{field}[{i}].role 是 {m.get('role')!r}：回答里只能有 assistant 消息")
        if role not in ROLES:
            return Msg(f"{field}[{i}].role is {m.get('role')!r}; use one of {', '.join(ROLES)} (or 'tool')",
                       f"{field}[{i}].role 是 {m.get('role')!r}；请用 {', '.join(ROLES)} 之一（或 'tool'）")
        if not isinstance(m.get("content"), str) or (not prompt and not m["content"].strip()):
            return Msg(f"{field}[{i}].content must be a{'' if prompt else ' non-empty'} string",
                       f"{field}[{i}].content 必须是{'' if prompt else '非空'}字符串")
        if m.get("name") is not None and not isinstance(m["name"], str):
            return Msg(f"{field}[{i}].name must be a string", f"{field}[{i}].name 必须是字符串")
        if any(mark in m["content"] for mark in (IM_START, IM_END, BOS, EOS)):
            return Msg(f"{field}[{i}].content contains {IM_START}, {IM_END}, {BOS} or {EOS}: the chat template adds "
                       "those (the first two) and the tokenizer the others; remove them from the text",
                       f"{field}[{i}].content 含有 {IM_START}、{IM_END}、{BOS} 或 {EOS}：前两个由对话模板添加，"
                       "后两个由分词器添加；请从文本中删掉")
    if prompt and msgs[-1].get("role") == "assistant":
        return Msg("the prompt ends with an assistant message; it must end with the turn the answer replies to",
                   "prompt 以 assistant 消息结尾；它应当以回答所回应的那一轮结尾")
    return None


def _as_messages(value, role: str):
    return [{"role": role, "content": value}] if isinstance(value, str) else value


def _normalise(msgs: list[dict]) -> list[dict]:
    out = []
    for m in msgs:
        role = "environment" if m["role"] == "tool" else m["role"]
        d = {"role": role, "content": m["content"]}
        name = m.get("name") or (PLUGIN if m["role"] == "tool" else None)
        if name:
            d["name"] = name
        out.append(d)
    return out


def check_pair(rec) -> tuple[dict | None, str | None]:
    """One record of a custom pair file → (the pair, None) or (None, what is wrong and how to fix it)."""
    if not isinstance(rec, dict):
        return None, Msg("expected a JSON object with 'prompt', 'chosen' and 'rejected'",
                         "应当是带 'prompt'、'chosen' 和 'rejected' 的 JSON 对象")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in rec]
    if missing:
        return None, Msg(f"field {missing[0]!r} is missing: each line needs 'prompt', 'chosen' and 'rejected' "
                         "(strings, or lists of {role, content} messages as in trl's conversational format)",
                         f"缺少字段 {missing[0]!r}：每一行都需要 'prompt'、'chosen' 和 'rejected'"
                         "（字符串，或 trl 对话格式中由 {role, content} 消息组成的列表）")
    for k in ("chosen", "rejected"):
        if isinstance(rec[k], str) and not rec[k].strip():
            return None, Msg(f"field {k!r} is an empty string", f"字段 {k!r} 是空字符串")
    if isinstance(rec["prompt"], str) and not rec["prompt"].strip():
        return None, Msg("field 'prompt' is an empty string", "字段 'prompt' 是空字符串")
    prompt = _as_messages(rec["prompt"], "user")
    chosen, rejected = _as_messages(rec["chosen"], "assistant"), _as_messages(rec["rejected"], "assistant")
    for field, msgs, is_prompt in (("prompt", prompt, True), ("chosen", chosen, False), ("rejected", rejected, False)):
        why = _check_turns(field, msgs, prompt=is_prompt)
        if why:
            return None, why
    if [m["content"] for m in chosen] == [m["content"] for m in rejected]:
        return None, Msg("'chosen' and 'rejected' are the same: the pair teaches nothing; fix or remove the line",
                         "'chosen' 和 'rejected' 完全相同：这一对什么也教不会模型；请修改或删掉这一行")
    return {"source": "custom", "prompt": _normalise(prompt), "chosen": _normalise(chosen),
            "rejected": _normalise(rejected)}, None


def load_custom_pairs(path: str | Path) -> tuple[list[dict], list[PairError]]:
    """Read a custom pair file (JSONL): the valid pairs and every bad line with its reason. A file
    without one valid pair raises :class:`InputError` listing the first bad lines."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise InputError(f"{path}: a pair file is JSONL (one object per line, extension .jsonl) with 'prompt', "
                         "'chosen' and 'rejected'; rename or convert it",
                         zh=f"{path}：偏好对文件是 JSONL 格式（每行一个对象，扩展名 .jsonl），含 'prompt'、"
                            "'chosen' 和 'rejected'；请改名或转换格式")
    text = read_text_file(path, "pair file")
    good, bad = [], []
    for ln, rec, err in jsonl_records(text):
        if err:
            bad.append(PairError(ln, err))
            continue
        p, why = check_pair(rec)
        if why:
            bad.append(PairError(ln, why))
        else:
            p["line"] = ln
            good.append(p)
    if not good:
        raise_no_valid_line(path, bad, what="pair", what_zh="没有一对有效的偏好对", unit_zh="行")
    return good, bad


def prompt_key(p: dict) -> str:
    """A pair's prompt, normalised (whitespace collapsed, case folded): pairs with one key share a prompt."""
    return json.dumps([(m["role"], m.get("name") or "", " ".join(m["content"].split()).casefold())
                       for m in p["prompt"]], ensure_ascii=False)


def split_custom(pairs: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out custom pairs by whole prompt (a prompt's every pair lands on one side); none held out
    from fewer than 5 distinct prompts."""
    keys = sorted({prompt_key(p) for p in pairs})
    if len(keys) < 5:
        return pairs, []
    random.Random(seed).shuffle(keys)
    held = set(keys[:max(1, int(len(keys) * fraction))])
    return [p for p in pairs if prompt_key(p) not in held], [p for p in pairs if prompt_key(p) in held]
