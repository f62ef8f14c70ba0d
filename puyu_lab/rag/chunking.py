"""Sentence-aware chunking of ``corpus/clean`` (Chinese and English) and the corpus's cloze questions.

Written by hand: LlamaIndex's ``SentenceSplitter`` and LangChain's splitters are not dependencies
here, and the rule is a dozen lines — sentences end at 。！？!? (and '.' + space), a document's
first line (a news headline) stays with its first sentence, sentences are packed into chunks of at
most ``max_chars`` and a sentence longer than that is cut at the limit.
"""
from __future__ import annotations

import re

_SENT = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+[”’」』）)]*|\n|$)|[^。！？!?\n]+")
_EN_END = re.compile(r"(?<=[.;])\s+(?=[A-Z])")


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order, each with its end punctuation; newlines end a sentence."""
    out = []
    for s in _SENT.findall(text):
        s = s.strip()
        if not s:
            continue
        out.extend(p for p in _EN_END.split(s) if p.strip())
    return out


def chunk_text(text: str, max_chars: int = 200) -> list[str]:
    """Whole sentences packed into chunks of at most ``max_chars`` characters (a longer sentence is cut)."""
    chunks, cur = [], ""
    for s in sentences(text):
        while len(s) > max_chars:
            if cur:
                chunks.append(cur)
                cur = ""
            chunks.append(s[:max_chars])
            s = s[max_chars:]
        sep = " " if cur and cur[-1].isascii() and s[:1].isascii() else ""
        if cur and len(cur) + len(sep) + len(s) > max_chars:
            chunks.append(cur)
            cur, sep = "", ""
        cur += sep + s
    if cur:
        chunks.append(cur)
    return chunks


def chunk_docs(docs, max_chars: int = 200) -> list[dict]:
    """One row per chunk: ``id`` (``<doc id>#<n>``), ``doc``, ``source``, ``text``."""
    rows = []
    for d in docs:
        for n, c in enumerate(chunk_text(d["text"], max_chars)):
            rows.append({"id": f"{d['id']}#{n}", "doc": str(d["id"]), "source": d.get("source", ""), "text": c})
    return rows
