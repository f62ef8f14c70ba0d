"""puyu-lab: the InternLM (书生·浦语) chain, run for real in Jupyter.

Engines live in ``puyu_lab.<stage>`` (plain Python); views live in ``puyu_lab.panels``.
"""
from __future__ import annotations

from .version import __version__  # noqa: E402
from . import i18n as _i18n  # noqa: E402
from .i18n import get_language, t, tr  # noqa: E402
from .profiles import get_profile  # noqa: E402
from .workspace import Workspace  # noqa: E402

__all__ = ["__version__", "Workspace", "get_profile", "set_language", "get_language", "t", "tr", "setup"]


def set_language(lang: str | None) -> None:
    """The course language for what follows: ``"zh"`` or ``"en"`` (a locale name such as ``zh_CN`` counts as its
    language); ``None``: ``$PUYU_LAB_LANG``, else the system's. Anything else is an :class:`~puyu_lab.errors.InputError`
    saying so in both languages. (:func:`puyu_lab.i18n.set_language` below it imports no error class: the errors read
    the language from there.)"""
    if lang is not None and not str(lang).strip().lower().startswith(("zh", "en")):
        from .errors import InputError

        raise InputError(f"language must be 'zh' or 'en', not {lang!r}", zh=f"语言只能是 'zh' 或 'en'，而不是 {lang!r}")
    _i18n.set_language(lang)


def setup(profile: str | None = None, language: str | None = None, home: str | None = None):
    """What a lab's first cell calls: choose profile and language, open the workspace.

    Returns ``(profile, workspace)``. ``home`` defaults to ``$PUYU_LAB_HOME`` or the
    ``workspace/`` folder of the project (found from the notebook's folder upwards).
    """
    set_language(language if language else get_language())
    _show_language(get_language())
    prof = get_profile(profile)
    if home is None:
        from .workspace import project_home

        home = str(project_home())
    return prof, Workspace(home)


def _show_language(lang: str) -> None:
    """In a notebook, the CSS that shows the lab's text in ``lang`` only (:mod:`puyu_lab.labtext`)."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is not None:
        from .labtext import language_style

        display(HTML(language_style(lang)))
