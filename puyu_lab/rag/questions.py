"""Questions with known answers, built from the corpus itself: cloze questions on quantities.

A held-out news chunk's clause that holds a quantity (一百五十万吨, １５日, ３０％ …) becomes
"填空：<left>____<right>": the answer is the quantity, its source chunk is known. The same rule
on documents that are *not* in the index gives questions the index cannot answer — real questions
about real news, whose answer is simply not there (HuixiangDou's "资料中没有相关内容" case).
Quantities are the answer type because they are what a reader cannot guess from the question
(a name or place often can be) and they are found without a segmenter.
"""
from __future__ import annotations

import random
import re

# a quantity: digits (ASCII or full-width) or Chinese numerals, two or more, and a unit of up to two characters
QUANTITY = re.compile(r"(?:[0-9０-９][0-9０-９.．,，%％]*[0-9０-９%％]|[零〇一二三四五六七八九十百千万亿两]{2,})"
                      r"(?:多|余)?[年月日号时分秒人名个位家所项件次场倍元万亿吨公里米台辆架条天岁斤克户种部队股只]{0,2}")
_CUT = re.compile(r"[\n。！？；]")
PROMPT = "填空：{left}____{right}"


def quantities(text: str) -> list[re.Match]:
    return [m for m in QUANTITY.finditer(text) if len(m.group(0)) >= 2]


def cloze(chunk: dict, rng: random.Random, left_chars: int = 14, right_chars: int = 6, min_left: int = 6) -> dict | None:
    """A cloze question on one quantity of ``chunk`` (``None`` when it has no usable one)."""
    text = chunk["text"]
    ms = [m for m in quantities(text) if m.start() >= min_left]
    rng.shuffle(ms)
    for m in ms:
        left = _CUT.split(text[max(0, m.start() - left_chars):m.start()])[-1]
        right = _CUT.split(text[m.end():m.end() + right_chars])[0]
        right = re.split(r"[，,]", right)[0]
        if len(left) < min_left or left.count("____"):
            continue
        return {"question": PROMPT.format(left=left, right=right), "left": left, "right": right,
                "answer": m.group(0), "chunk": chunk["id"], "doc": chunk["doc"]}
    return None


def make_questions(chunks: list[dict], n: int, seed: int, *, per_doc: int = 1, left_chars: int = 14,
                   right_chars: int = 6, sources=("news-zh",)) -> list[dict]:
    """At most ``per_doc`` questions per document (each from a different chunk), ``n`` in all, from ``chunks``
    in a seeded order."""
    rng = random.Random(seed)
    by_doc: dict[str, list[dict]] = {}
    for c in chunks:
        if c["source"] in sources:
            by_doc.setdefault(c["doc"], []).append(c)
    docs = sorted(by_doc)
    rng.shuffle(docs)
    out = []
    for d in docs:
        got = 0
        for c in rng.sample(by_doc[d], len(by_doc[d])):
            q = cloze(c, rng, left_chars=left_chars, right_chars=right_chars, min_left=min(6, left_chars))
            if q and got < per_doc and len(out) < n:
                out.append(q)
                got += 1
    return out
