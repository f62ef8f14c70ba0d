"""Errors a learner can fix. The CLI prints them as one line; anything else is a bug and keeps its traceback."""
from __future__ import annotations

from dataclasses import dataclass


class PuyuError(Exception):
    """Base for errors caused by input or setup, whose message says what to do — in English (the first argument)
    and in Chinese (``zh=``), the same file, line, field and commands in both. ``str(err)`` is the one in the
    current language (:func:`puyu_lab.i18n.get_language`), so a lab, the CLI and a ChecksFailed show what the
    learner reads; ``err.en`` / ``err.zh`` keep both (tests match on ``err.en``)."""

    def __init__(self, *args, zh: str | None = None):
        super().__init__(*args)
        self.en = str(args[0]) if args else ""
        self.zh = zh

    def __str__(self) -> str:
        if self.zh:
            from .i18n import get_language

            if get_language() == "zh":
                return self.zh
        if len(self.args) == 1:  # the English as written (a KeyError base would quote it)
            return self.en
        return super().__str__()


class InputError(PuyuError, ValueError):
    """Bad input data: the message names the file, the line or field, and what to do."""


class MissingInput(InputError, FileNotFoundError):
    """A file or folder the learner named (a model path, a checkpoint to resume) is not there: an
    :class:`InputError` that callers catching ``FileNotFoundError`` still catch."""


class UsageError(PuyuError, RuntimeError):
    """A call made out of order (a panel asked to run while it still runs, to resume with nothing to resume): the
    message says what to do first."""


class Msg(str):
    """A message built in one place and raised (or listed) in another, in both languages: it is the English
    string (it compares, joins and matches as that), and ``.zh`` is its Chinese. :func:`zh_of` reads either."""

    zh: str

    def __new__(cls, en: str, zh: str):
        s = super().__new__(cls, en)
        s.zh = zh
        return s

    def __reduce__(self):  # copies and pickles (a DataFrame's attrs are deep-copied) keep both languages
        return type(self), (str(self), self.zh)


def zh_of(text) -> str:
    """The Chinese of a :class:`Msg` (or of a PuyuError); a plain string is returned as it is."""
    return getattr(text, "zh", None) or str(text)


def localized(text) -> str:
    """``text`` (a :class:`Msg`, a PuyuError or a plain string) in the current language
    (:func:`puyu_lab.i18n.get_language`): its Chinese for a zh reader, else its English."""
    from .i18n import get_language

    if get_language() == "zh":
        return zh_of(text)
    return getattr(text, "en", None) or str(text)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, PuyuError)  # the workspace's and the profiles' errors are PuyuErrors too


# what read_text_file's callers call their file, in Chinese (anything else reads as 文件)
_WHAT_ZH = {"file": "文件", "probe file": "探针文件", "task file": "任务文件", "pair file": "偏好对文件",
            "data file": "数据文件"}


def _zh_what(what: str) -> str:
    return _WHAT_ZH.get(what, "文件")


def read_text_file(path, what: str = "file") -> str:
    """A text file as UTF-8 (a BOM is accepted), or one :class:`InputError` naming the line of the
    first bad byte and how to convert the file."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}", zh=f"{path}：{_zh_what(what)}不存在")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows / Excel "UTF-8") is accepted
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        raise InputError(f"{path}:{line}: bytes at offset {start} are not UTF-8 ({e.reason}); save the {what} "
                         "as UTF-8 (e.g. `iconv -f GB18030 -t UTF-8`)",
                         zh=f"{path}:{line}：偏移 {start} 处的字节不是 UTF-8 编码（{e.reason}）；请把该{_zh_what(what)}"
                         "另存为 UTF-8（例如用 `iconv -f GB18030 -t UTF-8` 转换）") from None


def jsonl_records(text: str):
    """(line number, value, error) for each non-blank line of JSONL text; value is None on an error."""
    import json

    for ln, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield ln, json.loads(raw), None
        except json.JSONDecodeError as e:
            yield ln, None, Msg(f"invalid JSON at column {e.colno}: {e.msg}", f"第 {e.colno} 列起不是合法的 JSON：{e.msg}")


@dataclass
class LineProblem:
    """What is wrong with one line of a learner's file (a custom SFT or preference file), in both languages."""

    line: int
    reason: str  # English; a Msg, whose .zh is the Chinese

    @property
    def en(self) -> str:
        return f"line {self.line}: {self.reason}"

    @property
    def zh(self) -> str:
        return f"第 {self.line} 行：{zh_of(self.reason)}"

    def __str__(self) -> str:  # in the current language
        from .i18n import get_language

        return self.zh if get_language() == "zh" else self.en
