"""Per-document signals, computed once into a DataFrame; every filter is a threshold over them.

The formulas follow datatrove's Gopher quality, Gopher repetition, C4 and FineWeb filters
exactly (same definitions, same order of checks), with the word tokenizer of :mod:`.text`, so a
threshold here and the same threshold in datatrove keep the same documents.
"""
from __future__ import annotations

import bisect
import re
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
_DROP_PUNCT = {ord(c): None for c in PUNCTUATION_SET}


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


def _dup_scan(inv: np.ndarray, cand: list[int], lo: int, hi: int, lens: np.ndarray, n: int,
              seen: np.ndarray) -> int:
    """datatrove's find_all_duplicate on positions ``lo:hi``: scan n-grams left to right; a key
    seen at an earlier *visited* position counts its characters and jumps n ahead (jumped-over
    positions are not marked seen).

    Same result, less Python: ``cand`` (sorted) lists the positions whose key occurred earlier;
    the stretches between them hold first occurrences only and are marked seen in bulk.
    """
    rep, idx = 0, lo
    ci = bisect.bisect_left(cand, lo)
    nc = len(cand)
    while idx < hi:
        while ci < nc and cand[ci] < idx:
            ci += 1
        c = cand[ci] if ci < nc and cand[ci] < hi else hi
        if c > idx:
            seen[inv[idx:c]] = True
            idx = c
            if idx >= hi:
                break
        k = inv[idx]
        if seen[k]:
            rep += int(lens[idx])
            idx += n
        else:
            seen[k] = True
            idx += 1
    return rep


def line_repetition_signals(text: str) -> dict[str, float]:
    """Gopher's duplicate paragraph and line fractions."""
    n_text = len(text)
    paragraphs = _PARA_RE.split(text.strip())
    d_n, d_c = _find_duplicates(paragraphs)
    out = {"dup_para_frac": d_n / len(paragraphs), "dup_para_char_frac": d_c / n_text if n_text else 0.0}
    lines = _LINE_RE.split(text)
    d_n, d_c = _find_duplicates(lines)
    out["dup_line_frac"] = d_n / len(lines)
    out["dup_line_char_frac"] = d_c / n_text if n_text else 0.0
    return out


_MASK32 = (1 << 32) - 1


def batch_word_signals(ids_list: list[np.ndarray], words_flat: list[str], n_chars: np.ndarray,
                       rule_langs: list[str]) -> dict[str, np.ndarray]:
    """The word-based signals of many documents at once (vectorized over the whole batch).

    ``ids_list`` holds each document's token ids, ``words_flat`` all tokens in order. Gives
    Gopher quality's word counts, mean word length, alpha-word ratio and stop words, and Gopher
    repetition's top n-gram (n = 2..4, keyed like ``" ".join``) and duplicated n-gram
    (n = 5..10, keyed like ``"".join``) fractions.
    """
    D = len(ids_list)
    lens = np.fromiter((len(x) for x in ids_list), dtype=np.int64, count=D)
    total = int(lens.sum())
    ids = np.concatenate(ids_list) if total else np.zeros(0, dtype=np.int64)
    doc = np.repeat(np.arange(D), lens)
    tok0 = np.zeros(D + 1, dtype=np.int64)
    np.cumsum(lens, out=tok0[1:])
    out: dict[str, np.ndarray] = {"n_words": lens}
    V = _VOCAB
    sym = V.is_symbol[ids]
    wl = V.length[ids]
    n_ns = np.bincount(doc, weights=~sym, minlength=D)
    out["n_non_symbol_words"] = n_ns.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["avg_word_length"] = np.bincount(doc, weights=wl * ~sym, minlength=D) / np.where(n_ns > 0, n_ns, np.nan)
        out["alpha_words_ratio"] = np.bincount(doc, weights=V.has_alpha[ids], minlength=D) / np.where(lens > 0, lens, np.nan)
    is_zh = np.array([rl == "zh" for rl in rule_langs], dtype=bool)
    stop = np.where(is_zh[doc], V.stop_zh[ids], V.stop_en[ids])
    pairs = np.unique(doc[stop] * np.int64(V.capacity) + ids[stop])
    out["stop_words"] = np.bincount(pairs // V.capacity, minlength=D).astype(np.int64)

    # token n-gram keys: position-independent hashes, salted with the document so that
    # equal n-grams of different documents never meet
    coff = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(wl, out=coff[1:])
    codes = codepoints("".join(words_flat))
    salt = mix_doc(doc)
    pos_in_doc = np.arange(total) - tok0[doc]
    left = lens[doc] - pos_in_doc  # tokens from here to the end of the document
    uids = ids.astype(np.uint64)
    for n in TOP_NGRAMS:
        frac = np.zeros(D)
        st = np.flatnonzero(left >= n)
        if len(st):
            keys = substring_hashes(uids, st, st + n) ^ salt[st]
            _, first, counts, _ = _group(keys)
            g_pos = st[first]  # global token index of each distinct n-gram's first occurrence
            g_doc = doc[g_pos]
            # per document: the most frequent n-gram, ties to the one seen first (Counter.most_common)
            score = counts.astype(np.int64) << 32 | (_MASK32 - (g_pos - tok0[g_doc]))
            best = np.full(D, -1, dtype=np.int64)
            np.maximum.at(best, g_doc, score)
            has = best >= 0
            cnt = best >> 32
            p0 = tok0[:-1] + (_MASK32 - (best & _MASK32))
            p0 = np.where(has, p0, 0)
            top_len = coff[np.minimum(p0 + n, total)] - coff[p0] + (n - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(has, top_len * cnt / np.maximum(n_chars, 1), 0.0)
        out[f"top_{n}_gram_frac"] = frac
    for n in DUP_NGRAMS:
        rep = np.zeros(D)
        st = np.flatnonzero(left >= n)
        if len(st):
            keys = substring_hashes(codes, coff[st], coff[st + n]) ^ salt[st]
            inv, first, counts, is_first = _group(keys)
            # keys are salted per document, so a repeat is always within one document; only
            # documents holding one need datatrove's sequential scan
            cand = np.flatnonzero(~is_first)
            if len(cand):
                seen = np.zeros(len(first), dtype=bool)
                cand_l = cand.tolist()
                span = coff[st + n] - coff[st]
                for d in np.unique(doc[st[cand]]):
                    lo, hi = np.searchsorted(st, [tok0[d], tok0[d + 1]])
                    rep[d] = _dup_scan(inv, cand_l, int(lo), int(hi), span, n, seen)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"dup_{n}_gram_frac"] = np.where(n_chars > 0, rep / np.maximum(n_chars, 1), 0.0)
    return out


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hash-group equal keys (no sort): codes in order of first appearance, each code's first
    position and count, and whether each position is its key's first appearance."""
    codes, _ = pd.factorize(keys)
    counts = np.bincount(codes)
    is_first = np.empty(len(codes), dtype=bool)
    if len(codes):
        is_first[0] = True
        is_first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return codes, np.flatnonzero(is_first), counts, is_first


def mix_doc(doc: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (doc.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        return x ^ (x >> np.uint64(29))


class Vocab:
    """Token ids plus per-token properties, so per-word tests run once per distinct token."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self._cap = 0
        self.is_symbol = np.zeros(0, dtype=bool)
        self.has_alpha = np.zeros(0, dtype=bool)
        self.length = np.zeros(0, dtype=np.int64)
        self.stop_en = np.zeros(0, dtype=bool)
        self.stop_zh = np.zeros(0, dtype=bool)

    def _grow(self, need: int) -> None:
        cap = max(1024, self._cap)
        while cap < need:
            cap *= 2
        for name in ("is_symbol", "has_alpha", "length", "stop_en", "stop_zh"):
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
        self.stop_en[i] = w in STOP_WORDS["en"]
        self.stop_zh[i] = w in STOP_WORDS["zh"]
        return i

    @property
    def capacity(self) -> int:
        return max(self._cap, 1)

    def ids(self, ws: list[str]) -> np.ndarray:
        get, add = self.index.get, self._add
        return np.fromiter((i if (i := get(w)) is not None else add(w) for w in ws), dtype=np.int64, count=len(ws))


_VOCAB = Vocab()


def line_quality_signals(text: str, nw: int) -> dict[str, float]:
    """Gopher quality's character and line counts (its word counts come from the batch)."""
    lines = text.splitlines()
    n_lines = len(lines) or 1
    return {
        "hash_ratio": text.count("#") / nw if nw else np.nan,
        "ellipsis_ratio": (text.count("...") + text.count("…")) / nw if nw else np.nan,
        "bullet_lines_ratio": sum(s.lstrip().startswith(("•", "-")) for s in lines) / n_lines,
        "end_ellipsis_lines_ratio": sum(s.rstrip().endswith(("...", "…")) for s in lines) / n_lines,
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
        "symbol_ratio": (len(text) - len(text.translate(_DROP_PUNCT))) / n,
    }


def batch_signals(texts: list[str]) -> pd.DataFrame:
    """Every signal for a batch of documents: per-document string work, then one vectorized pass."""
    rows, ids_list, flat, rls = [], [], [], []
    for text in texts:
        lang, score = language(text)
        rl = rule_language(lang)
        ws = words(text)
        sig = {"lang": lang, "lang_score": score, "rule_lang": rl}
        sig.update(general_signals(text))
        sig.update(line_quality_signals(text, len(ws)))
        sig.update(line_repetition_signals(text))
        sig.update(fineweb_signals(text, ws))
        sig.update(c4_signals(text, rl))
        sig.update(pii.count(text))
        rows.append(sig)
        ids_list.append(_VOCAB.ids(ws))
        flat.extend(ws)
        rls.append(rl)
    df = pd.DataFrame(rows)
    for k, v in batch_word_signals(ids_list, flat, df["n_chars"].to_numpy() if len(df) else np.zeros(0), rls).items():
        df[k] = v
    return df[COLUMNS] if len(df) else pd.DataFrame(columns=COLUMNS)


def doc_signals(text: str) -> dict:
    """The signals of one document (a batch of one)."""
    return batch_signals([text]).iloc[0].to_dict()


def compute_signals(raw: pd.DataFrame, *, on_event: Callable[[Event], None] | None = None,
                    stop: StopFlag | None = None, show_progress: bool = True, batch: int = 256) -> pd.DataFrame:
    """One row of signals per raw document, index aligned with ``raw``."""
    em = Emitter("data", on_event)
    texts = raw["text"].tolist()
    em.emit("start", step="signals", total=len(texts))
    parts = []
    starts = range(0, len(texts), batch)
    for i in progress(starts, desc="signals", emitter=em, stop=stop, show=show_progress):
        parts.append(batch_signals(texts[i:i + batch]))
        em.emit("progress", step="signals", done=min(i + batch, len(texts)), total=len(texts))
    sig = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    sig.index = raw.index
    em.emit("done", step="signals", total=len(texts))
    return sig


COLUMNS = [
    "lang", "lang_score", "rule_lang", "n_chars", "n_lines", "cjk_ratio", "digit_ratio", "symbol_ratio",
    "n_words", "n_non_symbol_words", "avg_word_length", "hash_ratio", "ellipsis_ratio", "bullet_lines_ratio",
    "end_ellipsis_lines_ratio", "alpha_words_ratio", "stop_words",
    "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac",
    *(f"top_{n}_gram_frac" for n in TOP_NGRAMS), *(f"dup_{n}_gram_frac" for n in DUP_NGRAMS),
    "fw_empty", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio",
    "c4_lorem_at", "c4_curly_at", "c4_sentences", "c4_text",
    "pii_email", "pii_ip", "pii_phone", "pii_id_number",
]
