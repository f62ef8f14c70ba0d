"""Bilingual lab text from one source: each markdown cell of a lab holds its Chinese and its English.

A cell's two languages sit side by side in the same cell, Chinese first, each in a tagged block::

    <div lang="zh" class="lang-zh">

    **目标。** 把预训练好的模型变成……

    </div>
    <div lang="en" class="lang-en">

    **Goal.** Turn your pretrained model into …

    </div>

The blank lines keep the inside Markdown (CommonMark ends an HTML block at a blank line, in JupyterLab
and nbconvert alike). A heading line that names both languages (``## 参数 Parameters``) may stand above
the blocks, or alone in its cell. :func:`language_style` is the CSS a lab's first cell shows (``puyu_lab.setup``): it
hides the other language's blocks, so a zh learner reads Chinese only and an en learner English only;
before that cell runs (or where the CSS is not applied) both show, Chinese first.

Hand-written because the notebook tools offer no per-language cells: jupyterlab-language-pack-zh-CN
translates JupyterLab's own menus, not a notebook's content, and generating two notebooks per lab would
let their code drift apart.
"""
from __future__ import annotations

import re

LANGS = ("zh", "en")
_BLOCK = re.compile(r'<div lang="(zh|en)" class="lang-\1">\n\n(.*?)\n\n</div>', re.S)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def blocks(source: str) -> dict[str, str]:
    """The cell's text per language (``{}`` for a cell without tagged blocks)."""
    return {m.group(1): m.group(2).strip() for m in _BLOCK.finditer(source)}


def cjk_share(text: str) -> float:
    """The share of CJK characters among the text's letters (CJK characters and Latin letters)."""
    cjk = len(_CJK.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return cjk / max(1, cjk + latin)


def _is_heading_line(source: str) -> bool:
    lines = [l for l in source.strip().splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].lstrip().startswith("#")


def problems(source: str) -> list[str]:
    """What keeps a markdown cell from being bilingual from one source (``[]``: it is)."""
    if _is_heading_line(source):
        if _CJK.search(source) and _LATIN_WORD.search(source):
            return []
        return ["a heading names only one language: write both on its line (## 参数 Parameters)"]
    got = blocks(source)
    out = [f"no {lang} block (<div lang=\"{lang}\" class=\"lang-{lang}\"> … </div>, blank lines inside)"
           for lang in LANGS if not got.get(lang)]
    if got.get("zh") and cjk_share(got["zh"]) < 0.3:
        out.append(f"the zh block is mostly not Chinese ({cjk_share(got['zh']):.0%} CJK)")
    if got.get("en") and _CJK.search(re.sub(r"`[^`]*`", "", got["en"])) and cjk_share(got["en"]) > 0.2:
        out.append(f"the en block is largely Chinese ({cjk_share(got['en']):.0%} CJK)")
    # a bilingual heading line may stand above the blocks (## 2 预训练 Pretraining)
    stray = "\n".join(l for l in _BLOCK.sub("", source).splitlines()
                      if l.strip() and not (l.lstrip().startswith("#") and _CJK.search(l) and _LATIN_WORD.search(l)))
    if stray:
        out.append(f"text outside the language blocks: {stray[:60]!r}")
    if got and list(got)[0] != "zh":
        out.append("the zh block comes first")
    return out


def language_style(lang: str) -> str:
    """The CSS that shows one language's blocks only (``lang``: zh or en). It names both, so when a later cell
    switches the language its style, coming later in the page, wins."""
    shown = "zh" if lang.startswith("zh") else "en"
    other = "en" if shown == "zh" else "zh"
    return f"<style>.lang-{other} {{ display: none; }} .lang-{shown} {{ display: block; }}</style>"


_CODEISH = re.compile(r"`[^`]*`|'[^'\n]*'|\"[^\"\n]*\"|https?://\S+|\S*[/\\]\S*|\S+\.\w{2,5}\b|\b\w+=\S*|\b[a-z_]+_[a-z_]+\b|<[^>]+>")


def english_only_sentences(text: str, min_words: int = 4) -> list[str]:
    """Lines of ``text`` that read as an English sentence and hold no Chinese: ``min_words`` or more English words
    once code, quoted strings (a dict's keys), paths, file names, key=value pairs and snake_case names are set aside (what a zh learner must not
    meet in a lab's output)."""
    out = []
    for line in text.splitlines():
        if _CJK.search(line):
            continue
        words = re.findall(r"\b[A-Za-z][a-z]+\b", _CODEISH.sub(" ", line))
        if len(words) >= min_words:
            out.append(line.strip())
    return out
