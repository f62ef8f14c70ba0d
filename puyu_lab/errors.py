"""Errors a learner can fix. The CLI prints them as one line; anything else is a bug and keeps its traceback."""
from __future__ import annotations


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
        return super().__str__()


class InputError(PuyuError, ValueError):
    """Bad input data: the message names the file, the line or field, and what to do."""


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, PuyuError)  # the workspace's and the profiles' errors are PuyuErrors too


def read_text_file(path, what: str = "file") -> str:
    """A text file as UTF-8 (a BOM is accepted), or one :class:`InputError` naming the line of the
    first bad byte and how to convert the file."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a BOM (Windows / Excel "UTF-8") is accepted
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        raise InputError(f"{path}:{line}: bytes at offset {start} are not UTF-8 ({e.reason}); save the {what} "
                         "as UTF-8 (e.g. `iconv -f GB18030 -t UTF-8`)") from None


def jsonl_records(text: str):
    """(line number, value, error) for each non-blank line of JSONL text; value is None on an error."""
    import json

    for ln, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield ln, json.loads(raw), None
        except json.JSONDecodeError as e:
            yield ln, None, f"invalid JSON at column {e.colno}: {e.msg}"
