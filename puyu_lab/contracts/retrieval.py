"""How text becomes search terms: one rule for the agent's corpus search and the RAG lab's BM25.

Lower-cased Latin words and numbers, and the characters and character bigrams of Chinese runs
(the usual segmenter-free indexing of Chinese, as Lucene's CJK analyzer does).
"""
from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z]+|\d+|[\u3400-\u9fff\uf900-\ufaff]+")


def search_tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in _WORD.findall(text):
        if _CJK.match(run):
            out.extend(run)
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.append(run.lower())
    return out
