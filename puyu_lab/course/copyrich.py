"""Copy-rich pretraining documents: text in which something said earlier must be said again.

A model learns to copy from its context (induction heads) only from data that rewards copying,
and only after millions of tokens (N ≈ 10^5.7·√(batch × context), Aoyama, Wilcox & Schneider
2025). Natural text rewards it rarely; these documents reward it on every line, in the forms the
course assistant will need later: a span of the corpus quoted again, random runs of the
vocabulary's own pieces shown twice (as text, and as token ids — what ``models/probes.py`` measures), digit
strings read back,
key → value lookups, and tool transcripts whose call copies the question's numbers and whose
answer copies the tool's result (computed by the real calculator and date tools).

No library generates such data; it is a few string templates over the real corpus and tools.
Each kind is a function ``(rng, …) → str``; :func:`copy_rich_documents` mixes them.
"""
from __future__ import annotations

import json
import random
from typing import Sequence

from ..contracts.calculator import calculate
from ..contracts.dates import add_days

KINDS = ("span", "runs", "token_runs", "digits", "lookup", "calculator", "dates")

_SPAN_LEAD = ["再说一遍：", "原文是：", "引用：", "重复一次：", "Again: ", "Quote: ", "Once more: ", "换句话说，原句是："]
_RUN_SEP = [" | ", "\n", "；", " => ", "\n重复：", "\nrepeat: "]
_DIGIT_Q = ["号码 {x}，请复述：{x}", "The code is {x}. Read it back: {x}", "编号：{x}\n再读一遍：{x}",
            "订单号 {x} 已记录，确认订单号 {x}。", "PIN {x}, confirmed {x}"]
_KEYS_ZH = list("甲乙丙丁戊己庚辛壬癸") + ["张三", "李四", "王五", "赵六", "北京", "上海", "广州", "深圳", "苹果", "香蕉"]
_LOOKUP = [("{k}的编号是 {v}。", "问：{k}的编号是多少？答：{v}"), ("{k} → {v}", "{k} → {v}"),
           ("key {k} = {v}", "lookup {k}: {v}"), ("{k}：{v}", "查询 {k}：{v}")]
_CALC_Q = ["{e} 等于多少？", "请计算 {e}", "What is {e}?", "算一下 {e}。", "Compute {e}.", "{e} = ?"]
_CALC_A = ["{e} = {r}", "答案是 {r}。", "The answer is {r}.", "结果：{r}", "{e} 的结果是 {r}。"]
_DATE_Q = ["{d} 之后 {n} 天是哪天？", "What date is {n} days after {d}?", "从 {d} 起过 {n} 天是几号？"]
_DATE_A = ["是 {r}，{w}。", "It is {r} ({w}).", "{d} 加 {n} 天是 {r}。"]


def span(rng: random.Random, text: str) -> str:
    """A passage of the corpus, then one of its spans said again."""
    text = text.strip()[: rng.randint(80, 500)]
    if len(text) < 24:
        return text
    n = rng.randint(8, min(64, len(text) // 2))
    i = rng.randrange(0, len(text) - n)
    return f"{text}\n{rng.choice(_SPAN_LEAD)}{text[i:i + n]}"


def runs(rng: random.Random, pieces: Sequence[str]) -> str:
    """A run of random vocabulary pieces, shown two or three times."""
    run = "".join(rng.choice(pieces) for _ in range(rng.randint(6, 40))).replace("▁", " ")
    return rng.choice(_RUN_SEP).join([run] * rng.choice([2, 2, 3]))


def token_runs(rng: random.Random, low: int, high: int) -> list[int]:
    """A run of random token ids in ``[low, high)``, shown two or three times, as ids: the same run written as text
    is re-tokenized into other, longer pieces, so its two showings need not even match token for token. The run's
    length varies (8–48): with runs of one length (32, the probe's) the model learnt to look back 32 positions —
    a gain of 8.1 nats/token on the probe and none at lengths 24 or 40 — not to copy by content."""
    run = [rng.randrange(low, high) for _ in range(rng.randint(8, 48))]
    return run * rng.choice([2, 2, 3])


def digits(rng: random.Random) -> str:
    x = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 24)))
    return rng.choice(_DIGIT_Q).format(x=x)


def _key(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_KEYS_ZH) + str(rng.randint(1, 99))
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))


def lookup(rng: random.Random) -> str:
    """A table of keys and values, then questions that read values back by their key."""
    fact, ask = rng.choice(_LOOKUP)
    pairs = {}
    while len(pairs) < rng.randint(3, 10):
        pairs[_key(rng)] = rng.randint(10, 999_999)
    lines = [fact.format(k=k, v=v) for k, v in pairs.items()]
    asks = [ask.format(k=k, v=pairs[k]) for k in rng.sample(list(pairs), k=min(len(pairs), rng.randint(1, 3)))]
    return "\n".join(lines + asks)


def _expression(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(2, 30)
    return rng.choice([f"{a}*{b}", f"{a}+{b * c}", f"{a}-{b}", f"({a}+{b})*{c}", f"{a * c}/{c}", f"{a}*{b}-{c}"])


def calculator(rng: random.Random) -> str:
    """A question, the calculator call that copies its expression, the result, the answer that copies it."""
    e = _expression(rng)
    r = calculate(e)
    r = int(r) if float(r).is_integer() else r
    call = json.dumps({"name": "calculator", "parameters": {"expression": e}})
    return "\n".join([rng.choice(_CALC_Q).format(e=e), call, json.dumps({"result": r}),
                      rng.choice(_CALC_A).format(e=e, r=r)])


def dates(rng: random.Random) -> str:
    d = f"{rng.randint(1990, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    n = rng.randint(1, 400)
    res = add_days(d, n)
    call = json.dumps({"name": "add_days", "parameters": {"date": d, "days": n}})
    return "\n".join([rng.choice(_DATE_Q).format(d=d, n=n), call, json.dumps(res, ensure_ascii=False),
                      rng.choice(_DATE_A).format(d=d, n=n, r=res["date"], w=res["weekday"])])


def copy_rich_documents(texts: Sequence[str], pieces: Sequence[str], n: int, *, seed: int = 0,
                        weights: dict[str, float] | None = None, ids: tuple[int, int] | None = None) -> list[dict]:
    """``n`` documents ``{"text", "ids", "kind"}``, kinds drawn by ``weights`` (default: equal). ``texts``
    are natural documents to quote from, ``pieces`` the tokenizer's ordinary pieces, ``ids`` the range of
    ordinary token ids ``token_runs`` draws from (needed only for that kind). A document is its ``text``, or
    where ``ids`` is not empty, those token ids (``text`` then empty)."""
    rng = random.Random(seed)
    weights = weights or {k: 1.0 for k in KINDS}
    unknown = set(weights) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown copy-rich kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
    if weights.get("token_runs") and ids is None:
        raise ValueError("token_runs needs the range of token ids to draw from: copy_rich_documents(..., ids=(low, high))")
    kinds, w = zip(*weights.items())
    make = {"span": lambda: span(rng, rng.choice(texts)), "runs": lambda: runs(rng, pieces),
            "token_runs": lambda: token_runs(rng, *ids),
            "digits": lambda: digits(rng), "lookup": lambda: lookup(rng),
            "calculator": lambda: calculator(rng), "dates": lambda: dates(rng)}
    out = []
    for kind in rng.choices(kinds, weights=w, k=n):
        doc = make[kind]()
        out.append({"text": "", "ids": doc, "kind": kind} if isinstance(doc, list) else {"text": doc, "ids": [], "kind": kind})
    return out
