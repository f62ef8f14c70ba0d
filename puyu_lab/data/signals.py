"""Per-document signals, computed once into a DataFrame; every filter is a threshold over them.

The formulas follow datatrove's Gopher quality, Gopher repetition, C4 and FineWeb filters
exactly (same definitions, same order of checks), with the word tokenizer of :mod:`.text`, so a
threshold here and the same threshold in datatrove keep the same documents.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd

from ..events import Emitter, Event, StopFlag, progress
from . import pii
from .text import CJK_RE, codepoints, n_sentences, substring_hashes, words
from .textconst import PUNCTUATION_SET, TERMINAL_PUNCTUATION

STOP_WORDS = {
    "en": frozenset(["the", "be", "to", "of", "and", "that", "have", "with"]),  # Gopher's
    "zh": frozenset(["的", "了", "是", "在", "和", "有", "我", "不", "这", "也"]),  # most frequent function characters
}
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)

# C4 line-level behaviour per language. Chinese lines end in 。！？ and hold no spaces, so C4's
# "ends in . ? ! \" '" and "at least 3 words" line rules would drop every line: off for zh.
C4_LINE = {
    "en": {"filter_no_terminal_punct": True, "min_words_per_line": 3},
    "zh": {"filter_no_terminal_punct": False, "min_words_per_line": -1},
}
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
C4_POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
_PARA_RE = re.compile(r"\n{2,}")
_LINE_RE = re.compile("\n+")
_STOP_CHARS = tuple(TERMINAL_PUNCTUATION)
_DIGIT_RE = re.compile(r"\d")
_SPACE_RE = re.compile(r"\s")


@lru_cache(maxsize=1)
def _lang_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


# py3langid also answers Wu (wuu) and Cantonese (yue) for some Mandarin news and reviews
ZH_FAMILY = frozenset({"zh", "wuu", "yue", "gan", "hak", "cmn"})


def language(text: str) -> tuple[str, float]:
    """(language, probability) by py3langid; Chinese varieties are reported as ``zh``."""
    lang, score = _lang_identifier().classify(text[:2000])
    return ("zh" if lang in ZH_FAMILY else lang), float(score)


def rule_language(lang: str) -> str:
    """Which rule set a document gets: Chinese-aware for zh, datatrove's English defaults otherwise."""
    return "zh" if lang == "zh" else "en"


def _find_duplicates(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    dup_n = dup_chars = 0
    for x in items:
        if x in seen:
            dup_n += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    return dup_n, dup_chars


def _all_duplicate_chars(keys: np.ndarray, lens: np.ndarray, n: int) -> int:
    """datatrove's find_all_duplicate: scan n-grams left to right; a key seen at an earlier
    *visited* position counts its characters and jumps n ahead (the jumped-over are not seen).

    Same result, less Python: stretches with no repeated key are marked seen in bulk, and the
    loop runs only over positions whose key occurred before.
    """
    m = len(keys)
    if m == 0:
        return 0
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    if len(uniq) == m:
        return 0
    cand = np.flatnonzero(first[inv] < np.arange(m))  # positions whose key occurred earlier
    seen = np.zeros(len(uniq), dtype=bool)
    rep, idx, ci, nc = 0, 0, 0, len(cand)
    inv_l = inv.tolist()
    cand_l = cand.tolist()
    while idx < m:
        while ci < nc and cand_l[ci] < idx:
            ci += 1
        c = cand_l[ci] if ci < nc else m
        if c > idx:  # first occurrences only: all become seen
            seen[inv[idx:c]] = True
            idx = c
            if idx >= m:
                break
        k = inv_l[idx]
        if seen[k]:
            rep += int(lens[idx])
            idx += n
        else:
            seen[k] = True
            idx += 1
    return rep


def repetition_signals(text: str, ws: list[str], ids: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    n_text = len(text)
    paragraphs = _PARA_RE.split(text.strip())
    d_n, d_c = _find_duplicates(paragraphs)
    out["dup_para_frac"] = d_n / len(paragraphs)
    out["dup_para_char_frac"] = d_c / n_text if n_text else 0.0
    lines = _LINE_RE.split(text)
    d_n, d_c = _find_duplicates(lines)
    out["dup_line_frac"] = d_n / len(lines)
    out["dup_line_char_frac"] = d_c / n_text if n_text else 0.0
    nw = len(ws)
    if nw:
        wlen = _VOCAB.length[ids]
        joined = "".join(ws)
        codes = codepoints(joined)
        offs = np.zeros(nw + 1, dtype=np.int64)
        np.cumsum(wlen, out=offs[1:])
    for n in TOP_NGRAMS:
        frac = 0.0
        if nw >= n:
            # " ".join(words[i:i+n]) differ iff the word sequences differ (words hold no spaces)
            starts = offs[: nw - n + 1]
            ends = offs[n:]
            keys = substring_hashes(ids.astype(np.uint64), np.arange(0, nw - n + 1), np.arange(n, nw + 1))
            _, first, counts = np.unique(keys, return_index=True, return_counts=True)
            best = counts.max()
            # Counter.most_common(1): among the most frequent, the first one seen
            pos = first[counts == best].min()
            top_len = int(ends[pos] - starts[pos]) + (n - 1)
            frac = top_len * int(best) / n_text
        out[f"top_{n}_gram_frac"] = frac
    for n in DUP_NGRAMS:
        frac = 0.0
        if nw >= n:
            starts = offs[: nw - n + 1]
            ends = offs[n:]
            # datatrove keys these n-grams by "".join(words): hash the concatenated characters
            keys = substring_hashes(codes, starts, ends)
            frac = _all_duplicate_chars(keys, ends - starts, n) / n_text
        out[f"dup_{n}_gram_frac"] = frac
    return out


class Vocab:
    """Token ids plus per-token properties, so per-word tests run once per distinct token."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self._cap = 0
        self.is_symbol = np.zeros(0, dtype=bool)
        self.has_alpha = np.zeros(0, dtype=bool)
        self.length = np.zeros(0, dtype=np.int64)
        self.stop_ids = {lang: self.ids(sorted(ws)) for lang, ws in STOP_WORDS.items()}

    def _grow(self, need: int) -> None:
        cap = max(1024, self._cap)
        while cap < need:
            cap *= 2
        for name in ("is_symbol", "has_alpha", "length"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self._cap = cap

    def _add(self, w: str) -> int:
        i = len(self.index)
        if i >= self._cap:
            self._grow(i + 1)
        self.index[w] = i
        self.is_symbol[i] = all(ch in PUNCTUATION_SET for ch in w)
        self.has_alpha[i] = any(c.isalpha() for c in w)
        self.length[i] = len(w)
        return i

    def ids(self, ws: list[str]) -> np.ndarray:
        get, add = self.index.get, self._add
        return np.fromiter((i if (i := get(w)) is not None else add(w) for w in ws), dtype=np.int64, count=len(ws))


_VOCAB = Vocab()


def quality_signals(text: str, ws: list[str], ids: np.ndarray, lang: str) -> dict[str, float]:
    nw = len(ws)
    non_symbol = ~_VOCAB.is_symbol[ids]
    n_ns = int(non_symbol.sum())
    lines = text.splitlines()
    n_lines = len(lines) or 1
    return {
        "n_words": nw,
        "n_non_symbol_words": n_ns,
        "avg_word_length": float(_VOCAB.length[ids][non_symbol].mean()) if n_ns else np.nan,
        "hash_ratio": text.count("#") / nw if nw else np.nan,
        "ellipsis_ratio": (text.count("...") + text.count("…")) / nw if nw else np.nan,
        "bullet_lines_ratio": sum(s.lstrip().startswith(("•", "-")) for s in lines) / n_lines,
        "end_ellipsis_lines_ratio": sum(s.rstrip().endswith(("...", "…")) for s in lines) / n_lines,
        "alpha_words_ratio": float(_VOCAB.has_alpha[ids].mean()) if nw else np.nan,
        "stop_words": int(np.isin(_VOCAB.stop_ids[lang], ids).sum()),
    }


def fineweb_signals(text: str, ws: list[str]) -> dict[str, float]:
    lines = [ln for ln in text.split("\n") if ln.strip() != ""]
    if not lines:
        return {"fw_empty": True, "line_punct_ratio": np.nan, "short_line_ratio": np.nan,
                "char_dup_ratio": np.nan, "list_ratio": np.nan}
    n = len(lines)
    return {
        "fw_empty": False,
        "line_punct_ratio": sum(1 for ln in lines if ln.endswith(_STOP_CHARS)) / n,
        "short_line_ratio": sum(1 for ln in lines if len(ln) <= 30) / n,
        "char_dup_ratio": _find_duplicates(lines)[1] / max(1, len(text.replace("\n", ""))),
        "list_ratio": text.count("\n") / len(ws) if ws else np.nan,
    }


def c4_signals(text: str, lang: str) -> dict:
    """One pass of C4's line rules. Records where lorem ipsum / a curly bracket would drop the
    document (line index, -1 if never), the sentence count, and the text with C4's lines removed."""
    cfg = C4_LINE[lang]
    kept, n_sent = [], 0
    lorem_at = curly_at = -1
    for i, line in enumerate(text.splitlines()):
        line = line.strip()
        parts = line.split()
        if any(len(w) > 1000 for w in parts):
            continue
        line = C4_CITATION_RE.sub("", line)
        if cfg["filter_no_terminal_punct"] and (not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")):
            continue
        if len(parts) < cfg["min_words_per_line"]:
            continue
        low = line.lower()
        if "lorem ipsum" in low and lorem_at < 0:
            lorem_at = i
        if "javascript" in low:
            continue
        if "{" in line and curly_at < 0:
            curly_at = i
        if any(p in low for p in C4_POLICY):
            continue
        n_sent += n_sentences(line)
        kept.append(line)
    return {"c4_lorem_at": lorem_at, "c4_curly_at": curly_at, "c4_sentences": n_sent,
            "c4_text": "\n".join(kept).strip()}


def general_signals(text: str) -> dict[str, float]:
    n = len(text) or 1
    non_space = n - len(_SPACE_RE.findall(text))
    cjk = len(CJK_RE.findall(text))
    return {
        "n_chars": len(text),
        "n_lines": text.count("\n") + 1,
        "cjk_ratio": cjk / max(1, non_space),
        "digit_ratio": len(_DIGIT_RE.findall(text)) / n,
        "symbol_ratio": sum(1 for c in text if c in PUNCTUATION_SET) / n,
    }


def doc_signals(text: str) -> dict:
    lang, score = language(text)
    rl = rule_language(lang)
    ws = words(text)
    ids = _VOCAB.ids(ws)
    sig = {"lang": lang, "lang_score": score, "rule_lang": rl}
    sig.update(general_signals(text))
    sig.update(quality_signals(text, ws, ids, rl))
    sig.update(repetition_signals(text, ws, ids) if text else {})
    sig.update(fineweb_signals(text, ws))
    sig.update(c4_signals(text, rl))
    sig.update(pii.count(text))
    return sig


def compute_signals(raw: pd.DataFrame, *, on_event: Callable[[Event], None] | None = None,
                    stop: StopFlag | None = None, show_progress: bool = True) -> pd.DataFrame:
    """One row of signals per raw document, index aligned with ``raw``."""
    em = Emitter("data", on_event)
    em.emit("start", step="signals", total=len(raw))
    rows = [doc_signals(t) for t in progress(raw["text"].tolist(), desc="signals", emitter=em, stop=stop,
                                              every=max(1, len(raw) // 100), show=show_progress)]
    sig = pd.DataFrame(rows, index=raw.index)
    em.emit("done", step="signals", total=len(raw))
    return sig


def signal_counts(sig: pd.DataFrame) -> Counter:
    return Counter(sig["lang"])
