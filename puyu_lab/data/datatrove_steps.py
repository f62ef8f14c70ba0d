"""datatrove building blocks for the exported pipeline (``puyu-lab data export-datatrove``).

Imported only by that generated script (datatrove is not needed to use puyu-lab): the same word
tokenizer, language identification and PII rules as puyu-lab, as datatrove steps, so the
cleaning scales out on datatrove's local, Slurm or Ray executors and keeps the same documents.
"""
from __future__ import annotations

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.word_tokenizers import WordTokenizer

from . import pii
from .filters import RULES, Recipe
from .signals import C4_LINE, STOP_WORDS, language, rule_language
from .text import sentence_spans, words


class PuyuWordTokenizer(WordTokenizer):
    """puyu-lab's tokenizer: a CJK character is a word; runs of other word characters are words;
    every other non-space character is a symbol word. Sentences end at terminal punctuation."""

    def __init__(self) -> None:
        super().__init__("puyu")

    def word_tokenize(self, text: str) -> list[str]:
        return words(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b].strip() for a, b in sentence_spans(text)]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return sentence_spans(text)


TOKENIZER = PuyuWordTokenizer()


class Py3LangIDFilter(BaseFilter):
    """Language identification with py3langid (offline; datatrove's own uses a downloaded fastText
    model). Tags ``language``/``language_score`` and keeps the wanted languages."""

    name = "🌐 Language ID (py3langid)"

    def __init__(self, languages=("zh", "en"), min_score: float = 0.65, exclusion_writer=None):
        """``languages=None`` tags every document and keeps it (the language rule switched off)."""
        super().__init__(exclusion_writer)
        self.languages = None if languages is None else set(languages)
        self.min_score = min_score

    def filter(self, doc: Document):
        if not doc.text:
            return False, "empty"
        lang, score = language(doc.text)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = score
        if self.languages is not None and (lang not in self.languages or score < self.min_score):
            return False, "language"
        return True


class ByLanguage(BaseFilter):
    """Dispatch each document to the filter configured for its rule language (zh or en)."""

    def __init__(self, filters: dict[str, BaseFilter], exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.filters = filters
        self.name = next(iter(filters.values())).name + " (by language)"

    def filter(self, doc: Document):
        return self.filters[rule_language(doc.metadata.get("language", "en"))].filter(doc)


class PIIScrubber(PipelineStep):
    """E-mails, IPs, mainland mobile numbers and resident ID numbers → tags such as ``<PHONE>``."""

    name = "🔒 PII (puyu-lab rules)"
    type = "✂️ - FORMAT"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                doc.text, counts = pii.scrub(doc.text)
                for kind, n in counts.items():
                    if n:
                        self.stat_update(f"pii_{kind}", value=n)
            yield doc


def _th(recipe: Recipe, rule: str, lang: str):
    return recipe.thresholds[rule][lang]


def filter_steps(recipe: Recipe) -> list[BaseFilter]:
    """The recipe's rule filters as datatrove steps, in puyu-lab's order."""
    steps: list[BaseFilter] = []
    on = recipe.groups.get("language", True)
    steps.append(Py3LangIDFilter(recipe.languages if on else None, recipe.min_lang_score))
    g = recipe.groups

    def per_lang(make):
        return ByLanguage({lg: make(lg) for lg in ("en", "zh")})

    if g.get("gopher_repetition", True):
        steps.append(per_lang(lambda lg: GopherRepetitionFilter(
            dup_line_frac=_th(recipe, "dup_line_frac", lg), dup_para_frac=_th(recipe, "dup_para_frac", lg),
            dup_line_char_frac=_th(recipe, "dup_line_char_frac", lg),
            dup_para_char_frac=_th(recipe, "dup_para_char_frac", lg),
            top_n_grams=tuple((n, _th(recipe, f"top_{n}_gram", lg)) for n in (2, 3, 4)
                              if _th(recipe, f"top_{n}_gram", lg) is not None),
            dup_n_grams=tuple((n, _th(recipe, f"duplicated_{n}_n_grams", lg)) for n in range(5, 11)
                              if _th(recipe, f"duplicated_{n}_n_grams", lg) is not None),
            language=TOKENIZER)))
    if g.get("gopher_quality", True):
        steps.append(per_lang(lambda lg: GopherQualityFilter(
            min_doc_words=_th(recipe, "gopher_short_doc", lg), max_doc_words=_th(recipe, "gopher_long_doc", lg),
            min_avg_word_length=_th(recipe, "gopher_below_avg_threshold", lg),
            max_avg_word_length=_th(recipe, "gopher_above_avg_threshold", lg),
            max_symbol_word_ratio=_th(recipe, "gopher_too_many_hashes", lg),
            max_bullet_lines_ratio=_th(recipe, "gopher_too_many_bullets", lg),
            max_ellipsis_lines_ratio=_th(recipe, "gopher_too_many_end_ellipsis", lg),
            max_non_alpha_words_ratio=_th(recipe, "gopher_below_alpha_threshold", lg),
            min_stop_words=_th(recipe, "gopher_enough_stop_words", lg),
            stop_words=sorted(STOP_WORDS[lg]), language=TOKENIZER)))
    if g.get("fineweb", True):
        steps.append(per_lang(lambda lg: FineWebQualityFilter(
            line_punct_thr=_th(recipe, "line_punct_ratio", lg), short_line_thr=_th(recipe, "short_line_ratio", lg),
            char_duplicates_ratio=_th(recipe, "char_dup_ratio", lg), new_line_ratio=_th(recipe, "list_ratio", lg),
            language=TOKENIZER)))
    if g.get("c4", True):
        steps.append(per_lang(lambda lg: C4QualityFilter(
            filter_no_terminal_punct=C4_LINE[lg]["filter_no_terminal_punct"],
            min_words_per_line=C4_LINE[lg]["min_words_per_line"],
            min_num_sentences=int(_th(recipe, "too_few_sentences", lg) or -1),
            filter_lorem_ipsum=recipe.c4_lorem_ipsum, filter_curly_bracket=recipe.c4_curly_bracket,
            language=TOKENIZER)))
    return steps


__all__ = ["PuyuWordTokenizer", "Py3LangIDFilter", "ByLanguage", "PIIScrubber", "filter_steps", "RULES"]
