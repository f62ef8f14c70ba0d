"""Tokenization and hashing shared by the signals, the dedup and the exported datatrove steps.

One word tokenizer for every rule: a CJK character is a word (so word-based rules become
character-based for Chinese), a run of other word characters is a word, and every other
non-space characters is a word of its own (a symbol, such as ``**`` or ``://``).
"""
from __future__ import annotations

import re

import numpy as np

from .textconst import TERMINAL_PUNCTUATION

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
WORD_RE = re.compile(rf"[{CJK}]|[^\W{CJK}]+|[^\w\s]+")
CJK_RE = re.compile(rf"[{CJK}]")
_TP = "".join(re.escape(c) for c in sorted(TERMINAL_PUNCTUATION))
# a sentence ends after a run of terminal punctuation (plus closing quotes/brackets)
SENT_END_RE = re.compile(rf"[{_TP}]+[\"'”’」』）)\]]*")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans: each ends after terminal punctuation; a trailing rest is a sentence too."""
    spans, start = [], 0
    for m in SENT_END_RE.finditer(text):
        if text[start:m.end()].strip():
            spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def n_sentences(text: str) -> int:
    """As datatrove's ``split_into_sentences`` counts with this tokenizer: at least one."""
    return max(1, len(sentence_spans(text)))


# --- 64-bit polynomial hashing (arithmetic mod 2**64, numpy wraps) ----------------------------
_P = np.uint64(0x100000001B3)  # odd, so invertible mod 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))


_POW_CACHE: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**0 … base**(n-1) mod 2**64 (cached, grown by doubling)."""
    key = int(base)
    have = _POW_CACHE.get(key)
    if have is None or len(have) < n:
        size = max(n, 2 * len(have) if have is not None else 4096)
        out = np.empty(size, dtype=np.uint64)
        out[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(np.full(size - 1, base, dtype=np.uint64), out=out[1:])
        _POW_CACHE[key] = have = out
    return have[:n]


def substring_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hash of ``codes[s:e]`` for every (s, e), position-independent, in O(len) vectorized work."""
    n = len(codes)
    with np.errstate(over="ignore"):
        pw = _powers(_P, n + 1)
        inv = _powers(_P_INV, n + 1)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * pw[:n], out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * inv[starts]
        return h ^ (ends - starts).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
