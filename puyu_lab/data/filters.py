"""The cleaning recipe: rules as thresholds over precomputed signals, in datatrove's order.

A rule drops a document when its signal crosses the threshold for the document's rule language
(``en`` = datatrove's defaults, ``zh`` = Chinese-aware variants where a word-based rule makes no
sense for Chinese). Every drop keeps its reason — the first rule that fails, named as datatrove
names it — so dropped documents stay inspectable. Applying a recipe is vectorized numpy over
the signal table: milliseconds for 50k documents, so a panel slider can re-run it on every move.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

# group -> datatrove's filter name
GROUPS = {
    "language": "LanguageFilter (py3langid)",
    "gopher_repetition": "GopherRepetitionFilter",
    "gopher_quality": "GopherQualityFilter",
    "fineweb": "FineWebQualityFilter",
    "c4": "C4QualityFilter",
}


class UnknownRule(InputError, KeyError):
    """A recipe names a rule there is none of (a KeyError too, as a dictionary's missing key is)."""


# the funnel's stages, in order: the filter groups, then the two dedup steps
STAGES = ("raw", *GROUPS, "exact_dedup", "near_dedup")


@dataclass(frozen=True)
class Rule:
    name: str  # the reason datatrove gives when it drops a document
    group: str
    signal: str
    op: str  # "<": drop when signal < threshold; ">": drop when signal > threshold
    en: float | None  # datatrove's default (None: rule off)
    zh: float | None  # the Chinese-aware threshold (None: rule off for Chinese)
    param: str  # the datatrove constructor argument this threshold sets
    help: str = ""


RULES: tuple[Rule, ...] = (
    # Gopher repetition (Rae et al. 2021, table A1) — language-neutral with our tokenizer
    Rule("dup_para_frac", "gopher_repetition", "dup_para_frac", ">", 0.3, 0.3, "dup_para_frac",
         "fraction of paragraphs that are repeats"),
    Rule("dup_para_char_frac", "gopher_repetition", "dup_para_char_frac", ">", 0.2, 0.2, "dup_para_char_frac",
         "fraction of characters in repeated paragraphs"),
    Rule("dup_line_frac", "gopher_repetition", "dup_line_frac", ">", 0.3, 0.3, "dup_line_frac",
         "fraction of lines that are repeats"),
    Rule("dup_line_char_frac", "gopher_repetition", "dup_line_char_frac", ">", 0.2, 0.2, "dup_line_char_frac",
         "fraction of characters in repeated lines"),
    # For Chinese an n-gram is n characters joined by n-1 spaces (2n-1 characters for n of text),
    # so the same coverage of the text needs a threshold (2n-1)/n times higher.
    *(Rule(f"top_{n}_gram", "gopher_repetition", f"top_{n}_gram_frac", ">", t, tz, f"top_n_grams[{n}]",
           f"characters covered by the most frequent {n}-gram (words; characters for Chinese)")
      for n, t, tz in ((2, 0.2, 0.3), (3, 0.18, 0.3), (4, 0.16, 0.28))),
    *(Rule(f"duplicated_{n}_n_grams", "gopher_repetition", f"dup_{n}_gram_frac", ">", t, t, f"dup_n_grams[{n}]",
           f"characters in repeated {n}-grams")
      for n, t in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))),
    # Gopher quality — for Chinese a "word" is a character: length rules off, counts rescaled
    Rule("gopher_short_doc", "gopher_quality", "n_non_symbol_words", "<", 50, 15, "min_doc_words",
         "too few words (Chinese: characters)"),
    Rule("gopher_long_doc", "gopher_quality", "n_non_symbol_words", ">", 100000, 100000, "max_doc_words",
         "too many words"),
    Rule("gopher_below_avg_threshold", "gopher_quality", "avg_word_length", "<", 3, None, "min_avg_word_length",
         "mean word length too short (off for Chinese: every word is one character)"),
    Rule("gopher_above_avg_threshold", "gopher_quality", "avg_word_length", ">", 10, None, "max_avg_word_length",
         "mean word length too long (off for Chinese)"),
    Rule("gopher_too_many_hashes", "gopher_quality", "hash_ratio", ">", 0.1, 0.1, "max_symbol_word_ratio",
         "'#' per word"),
    Rule("gopher_too_many_ellipsis", "gopher_quality", "ellipsis_ratio", ">", 0.1, 0.1, "max_symbol_word_ratio",
         "ellipses per word"),
    Rule("gopher_too_many_bullets", "gopher_quality", "bullet_lines_ratio", ">", 0.9, 0.9, "max_bullet_lines_ratio",
         "fraction of lines starting with a bullet"),
    Rule("gopher_too_many_end_ellipsis", "gopher_quality", "end_ellipsis_lines_ratio", ">", 0.3, 0.3,
         "max_ellipsis_lines_ratio", "fraction of lines ending in an ellipsis"),
    Rule("gopher_below_alpha_threshold", "gopher_quality", "alpha_words_ratio", "<", 0.8, 0.6,
         "max_non_alpha_words_ratio", "fraction of words with a letter (Chinese text carries more punctuation)"),
    Rule("gopher_enough_stop_words", "gopher_quality", "stop_words", "<", 2, 2, "min_stop_words",
         "distinct stop words present (Chinese: 的了是在和有我不这也)"),
    # FineWeb (Penedo et al. 2024)
    Rule("line_punct_ratio", "fineweb", "line_punct_ratio", "<", 0.12, 0.12, "line_punct_thr",
         "fraction of lines ending in terminal punctuation"),
    Rule("short_line_ratio", "fineweb", "short_line_ratio", ">", 0.67, 0.67, "short_line_thr",
         "fraction of lines of 30 characters or fewer"),
    Rule("char_dup_ratio", "fineweb", "char_dup_ratio", ">", 0.01, 0.01, "char_duplicates_ratio",
         "characters in duplicated lines"),
    Rule("list_ratio", "fineweb", "list_ratio", ">", 0.3, 0.3, "new_line_ratio", "newlines per word"),
    # C4 (Raffel et al. 2020); its line rules also rewrite the text (see signals.c4_signals)
    Rule("too_few_sentences", "c4", "c4_sentences", "<", 5, 1, "min_num_sentences",
         "sentences left after C4's line rules"),
)
RULES_BY_NAME = {r.name: r for r in RULES}


@dataclass
class Recipe:
    """Everything that decides what stays: saved with the corpus and exported to datatrove."""

    languages: tuple[str, ...] = ("zh", "en")
    min_lang_score: float = 0.65  # datatrove LanguageFilter's default
    groups: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(GROUPS, True))
    thresholds: dict[str, dict[str, float | None]] = field(
        default_factory=lambda: {r.name: {"en": r.en, "zh": r.zh} for r in RULES})
    c4_lorem_ipsum: bool = True
    c4_curly_bracket: bool = True
    pii: bool = True
    exact_dedup: bool = True
    near_dedup: bool = True
    minhash_ngram: int = 5
    minhash_bands: int = 14
    minhash_rows: int = 8
    minhash_seed: int = 1
    heldout_fraction: float = 0.05

    def threshold(self, rule: str, lang: str) -> float | None:
        return self.thresholds[rule][lang]

    def set(self, rule: str, value: float | None, lang: str | None = None) -> None:
        """Set a rule's threshold for one language, or both. Rules that share one datatrove
        parameter (the '#' and ellipsis ratios: ``max_symbol_word_ratio``) move together, so the
        exported pipeline always means the same recipe."""
        if rule not in RULES_BY_NAME:
            raise UnknownRule(f"unknown rule {rule!r}; rules: {', '.join(RULES_BY_NAME)}",
                              zh=f"没有 {rule!r} 这条规则；现有规则：{', '.join(RULES_BY_NAME)}")
        param = RULES_BY_NAME[rule].param
        for r in RULES:
            if r.param == param and r.group == RULES_BY_NAME[rule].group:
                for lg in ([lang] if lang else ["en", "zh"]):
                    self.thresholds[r.name][lg] = value

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["languages"] = list(self.languages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        d["languages"] = tuple(d.get("languages", ("zh", "en")))
        base = cls()
        known = {r.name for r in RULES}
        th = base.thresholds
        for k, v in (d.pop("thresholds", None) or {}).items():
            if k not in known:
                raise UnknownRule(f"recipe names an unknown rule {k!r}", zh=f"清洗配方里有一条不存在的规则 {k!r}")
            th[k] = dict(v)
        return cls(**{**d, "thresholds": th})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


@dataclass
class Verdict:
    """The outcome of a recipe over a signal table."""

    keep: np.ndarray  # bool per document
    reason: np.ndarray  # "" when kept, else the first failing rule
    stage: np.ndarray  # the funnel stage that dropped it ("" when kept)
    funnel: pd.DataFrame  # stage, documents, characters (after that stage)

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    def reasons(self) -> pd.Series:
        r = pd.Series(self.reason)
        return r[r != ""].value_counts()


def filter_mask(sig: pd.DataFrame, recipe: Recipe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule filters only (no dedup): (keep, reason, stage) arrays."""
    n = len(sig)
    reason = np.full(n, "", dtype=object)
    stage = np.full(n, "", dtype=object)
    is_zh = (sig["rule_lang"] == "zh").to_numpy()

    def drop(mask: np.ndarray, name: str, group: str) -> None:
        new = mask & (reason == "")
        reason[new] = name
        stage[new] = group

    drop((sig["n_chars"] == 0).to_numpy(), "empty", "language")
    if recipe.groups.get("language", True):
        bad_lang = ~sig["lang"].isin(recipe.languages).to_numpy() | (sig["lang_score"].to_numpy() < recipe.min_lang_score)
        drop(bad_lang, "language", "language")
    for group in GROUPS:
        if group == "language" or not recipe.groups.get(group, True):
            continue
        for rule in (r for r in RULES if r.group == group):
            if group == "c4" and rule.name == "too_few_sentences":
                _drop_c4_doc_rules(sig, recipe, drop)
            if group == "fineweb" and rule.name == "line_punct_ratio":
                drop(sig["fw_empty"].to_numpy(dtype=bool), "empty", "fineweb")
            th = recipe.thresholds[rule.name]
            t_en = np.nan if th["en"] is None else th["en"]
            t_zh = np.nan if th["zh"] is None else th["zh"]
            thr = np.where(is_zh, t_zh, t_en)
            val = sig[rule.signal].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                m = (val < thr) if rule.op == "<" else (val > thr)
            drop(m, rule.name, group)  # NaN thresholds and NaN signals compare False: kept
    return reason == "", reason, stage


def _drop_c4_doc_rules(sig: pd.DataFrame, recipe: Recipe, drop) -> None:
    """lorem ipsum / curly bracket: whichever line comes first drops the document (as in C4)."""
    lorem = sig["c4_lorem_at"].to_numpy() if recipe.c4_lorem_ipsum else np.full(len(sig), -1)
    curly = sig["c4_curly_at"].to_numpy() if recipe.c4_curly_bracket else np.full(len(sig), -1)
    big = np.iinfo(np.int64).max
    lo = np.where(lorem >= 0, lorem, big)
    cu = np.where(curly >= 0, curly, big)
    drop((lo < big) & (lo <= cu), "lorem_ipsum", "c4")
    drop((cu < big) & (cu < lo), "curly_bracket", "c4")


def _drop_repeats(key: pd.Series, keep: np.ndarray, reason: np.ndarray, stage: np.ndarray, why: str,
                  at: str) -> np.ndarray:
    """``keep`` less every kept document whose ``key`` an earlier kept one has (marked ``why``, at stage ``at``)."""
    dup = np.zeros(len(key), dtype=bool)
    dup[keep] = key[keep].duplicated().to_numpy()
    reason[dup] = why
    stage[dup] = at
    return keep & ~dup


def apply(sig: pd.DataFrame, recipe: Recipe, *, exact_key: pd.Series | None = None,
          cluster: pd.Series | np.ndarray | None = None) -> Verdict:
    """Rules, then exact and near dedup among the survivors (first in corpus order is kept)."""
    keep, reason, stage = filter_mask(sig, recipe)
    if recipe.exact_dedup and exact_key is not None:
        keep = _drop_repeats(pd.Series(np.asarray(exact_key), index=sig.index), keep, reason, stage,
                             "exact_duplicate", "exact_dedup")
    if recipe.near_dedup and cluster is not None:
        keep = _drop_repeats(pd.Series(np.asarray(cluster), index=sig.index), keep, reason, stage,
                             "near_duplicate", "near_dedup")
    chars = sig["n_chars"].to_numpy()
    rows, alive = [], np.ones(len(sig), dtype=bool)
    rows.append(("raw", int(alive.sum()), int(chars.sum())))
    for st in STAGES[1:]:
        alive &= stage != st
        rows.append((st, int(alive.sum()), int(chars[alive].sum())))
    funnel = pd.DataFrame(rows, columns=["stage", "documents", "characters"])
    return Verdict(keep, reason, stage, funnel)
