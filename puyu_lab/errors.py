"""Errors a learner can fix. The CLI prints them as one line; anything else is a bug and keeps its traceback."""
from __future__ import annotations


class PuyuError(Exception):
    """Base for errors caused by input or setup, whose message says what to do."""


class InputError(PuyuError, ValueError):
    """Bad input data: the message names the file, the line or field, and what to do."""


def is_user_error(exc: BaseException) -> bool:
    from .profiles import ProfileError
    from .workspace import WorkspaceError

    return isinstance(exc, (PuyuError, ProfileError, WorkspaceError))
